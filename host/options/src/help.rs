//! The text of `remex help-advanced SCOPE` and `remex help KIND`, generated from the same specs
//! the parser reads, with each option's current value and its source when known.

use std::fmt::Write;

use remex_model::{COMMON_FIELDS, FieldSpec, FieldValue, KindSpec};

use crate::registry::OptionRegistry;
use crate::resolve::ResolvedOptions;
use crate::spec::{GLOBAL_SCOPE, OptionSpec, OptionType, OptionValue};

/// The scope `name` names on the command line: `global` (any case) is `GLOBAL`.
pub fn scope_for_help<'a>(registry: &'a OptionRegistry, name: &str) -> Option<&'a str> {
    if name.eq_ignore_ascii_case(GLOBAL_SCOPE) {
        return Some(GLOBAL_SCOPE);
    }
    registry.scope(name).map(|s| s.name.as_str())
}

/// Every option of `scope`: type, default, flag, variable, help, and with `resolved`, the
/// current value and where it came from. `None` for an unknown scope.
pub fn scope_help(
    registry: &OptionRegistry,
    scope: &str,
    resolved: Option<&ResolvedOptions>,
) -> Option<String> {
    let spec = registry.scope(scope)?;
    let mut text = format!("[{}]: {}\n", spec.name, spec.help);
    for option in registry.scope_specs(scope) {
        text.push('\n');
        text.push_str(&option_help(option, resolved));
    }
    Some(text)
}

fn option_help(spec: &OptionSpec, resolved: Option<&ResolvedOptions>) -> String {
    let key = spec.key();
    let mut text = format!("{}\n", spec.name);
    let _ = writeln!(
        text,
        "    type: {}, default: {}",
        spec.ty,
        shown(spec, spec.default.as_ref())
    );
    let _ = writeln!(
        text,
        "    flag: {}, variable: {}",
        key.flag(),
        key.variable()
    );
    if spec.environment_aware {
        let _ = writeln!(
            text,
            "    environment-aware: environment targets override it with `{}`",
            key.field_name()
        );
    }
    if let Some(current) = resolved.and_then(|r| r.get(&spec.scope, &spec.name)) {
        let value = shown(spec, current.value.as_ref());
        let _ = writeln!(text, "    current: {value} ({})", current.source);
    }
    let _ = writeln!(text, "    {}", spec.help);
    text
}

/// A value as help shows it; secrets are never shown.
fn shown(spec: &OptionSpec, value: Option<&OptionValue>) -> String {
    match value {
        None => "none".into(),
        Some(_) if spec.ty == OptionType::Secret => "<hidden>".into(),
        Some(value) => value.to_string(),
    }
}

/// Every field of a target kind: type, default or required, help. For the environment kinds,
/// an option override field also shows, with `resolved`, the value it stands in for.
pub fn kind_help(
    kind: &KindSpec,
    registry: &OptionRegistry,
    resolved: Option<&ResolvedOptions>,
) -> String {
    let mut text = format!("{}: {}\n", kind.name, kind.help);
    for field in &kind.fields {
        text.push('\n');
        text.push_str(&field_help(field, registry, resolved));
    }
    let common: Vec<String> = COMMON_FIELDS.iter().map(|f| format!("`{f}`")).collect();
    let _ = write!(text, "\nEvery target also has {}.\n", common.join(", "));
    text
}

fn field_help(
    field: &FieldSpec,
    registry: &OptionRegistry,
    resolved: Option<&ResolvedOptions>,
) -> String {
    let mut text = format!("{}\n", field.name);
    let default = match (&field.default, field.required) {
        (_, true) => "required".to_owned(),
        (Some(value), false) => format!("default: {}", field_value(value)),
        (None, false) => "default: none".to_owned(),
    };
    let _ = writeln!(text, "    type: {}, {default}", field.ty);
    let option = registry
        .environment_aware()
        .find(|spec| spec.key().field_name() == field.name);
    if let Some(spec) = option {
        let current = resolved.and_then(|r| r.get(&spec.scope, &spec.name));
        let (value, source) = match current {
            Some(current) => (
                shown(spec, current.value.as_ref()),
                current.source.to_string(),
            ),
            None => (shown(spec, spec.default.as_ref()), "default".into()),
        };
        let _ = writeln!(
            text,
            "    when unset: `{}` = {value} ({source})",
            spec.key()
        );
    }
    let _ = writeln!(text, "    {}", field.help);
    text
}

fn field_value(value: &FieldValue) -> String {
    OptionValue::from_field_value(value).to_string()
}
