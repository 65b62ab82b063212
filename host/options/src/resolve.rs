//! Precedence: each option starts at its default, then `remex.toml`, then `REMEX_*` variables,
//! then flags set it, each stronger than the one before. Every value is checked against its
//! spec on the way, and remembers where it came from.

use std::collections::{BTreeMap, BTreeSet};

use crate::error::{OptionsError, Source};
use crate::inputs::{FileEntry, OptionInputs};
use crate::parse::{self, RawValue};
use crate::registry::OptionRegistry;
use crate::rules;
use crate::spec::{GLOBAL_SCOPE, OptionKey, OptionSpec, OptionValue, ValueShape};
use crate::suggest::closest;

/// An option's value and where it came from.
#[derive(Clone, Debug, PartialEq)]
pub struct ResolvedValue {
    /// `None` for an option with no default that nothing set.
    pub value: Option<OptionValue>,
    pub source: Source,
}

/// Every registered option's value, with its source.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ResolvedOptions {
    values: BTreeMap<OptionKey, ResolvedValue>,
}

impl ResolvedOptions {
    pub fn get(&self, scope: &str, name: &str) -> Option<&ResolvedValue> {
        self.values.get(&OptionKey::new(scope, name))
    }

    /// The option's value, if it has one.
    pub fn value(&self, scope: &str, name: &str) -> Option<&OptionValue> {
        self.get(scope, name).and_then(|r| r.value.as_ref())
    }

    /// Where the option's value came from; [`Source::Default`] for an unknown option.
    pub fn source(&self, scope: &str, name: &str) -> Source {
        self.get(scope, name)
            .map_or(Source::Default, |r| r.source.clone())
    }

    pub fn iter(&self) -> impl Iterator<Item = (&OptionKey, &ResolvedValue)> {
        self.values.iter()
    }

    pub(crate) fn bool(&self, scope: &str, name: &str) -> bool {
        matches!(self.value(scope, name), Some(OptionValue::Bool(true)))
    }

    pub(crate) fn integer(&self, scope: &str, name: &str) -> i64 {
        match self.value(scope, name) {
            Some(OptionValue::Integer(i)) => *i,
            _ => 0,
        }
    }

    pub(crate) fn text(&self, scope: &str, name: &str) -> Option<&str> {
        match self.value(scope, name) {
            Some(OptionValue::Text(s)) => Some(s),
            _ => None,
        }
    }

    pub(crate) fn list(&self, scope: &str, name: &str) -> &[String] {
        match self.value(scope, name) {
            Some(OptionValue::List(items)) => items,
            _ => &[],
        }
    }

    pub(crate) fn dict(&self, scope: &str, name: &str) -> BTreeMap<String, String> {
        match self.value(scope, name) {
            Some(OptionValue::Dict(entries)) => entries.clone(),
            _ => BTreeMap::new(),
        }
    }

    pub(crate) fn set(&mut self, spec: &OptionSpec, value: OptionValue, source: Source) {
        let resolved = ResolvedValue {
            value: Some(value),
            source,
        };
        self.values.insert(spec.key(), resolved);
    }
}

/// How much of the inputs one resolution checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Strictness {
    /// Everything: what no spec declares is an error.
    All,
    /// Only the built-in scopes; other scopes, unknown flags and variables wait for `All`.
    BuiltinScopes,
}

/// Resolves every option of `registry` from `inputs`, then applies the rules between options.
/// Returns the values and any warnings.
pub(crate) fn resolve(
    inputs: &OptionInputs,
    registry: &OptionRegistry,
    strictness: Strictness,
) -> Result<(ResolvedOptions, Vec<String>), OptionsError> {
    let mut resolved = defaults(registry);
    let mut warnings = Vec::new();
    apply_file(inputs, registry, strictness, &mut resolved)?;
    if strictness == Strictness::All {
        warnings.extend(unknown_variables(inputs, registry));
    }
    apply_variables(inputs, registry, &mut resolved)?;
    apply_flags(inputs, registry, strictness, &mut resolved)?;
    warnings.extend(rules::check(&resolved)?);
    Ok((resolved, warnings))
}

pub(crate) fn defaults(registry: &OptionRegistry) -> ResolvedOptions {
    let values = registry
        .specs()
        .iter()
        .map(|spec| {
            let resolved = ResolvedValue {
                value: spec.default.clone(),
                source: Source::Default,
            };
            (spec.key(), resolved)
        })
        .collect();
    ResolvedOptions { values }
}

fn apply_file(
    inputs: &OptionInputs,
    registry: &OptionRegistry,
    strictness: Strictness,
    resolved: &mut ResolvedOptions,
) -> Result<(), OptionsError> {
    for scope in &inputs.scopes {
        let deferred = strictness == Strictness::BuiltinScopes;
        if registry.scope(&scope.name).is_none() && !deferred {
            return Err(unknown_scope(registry, &scope.name, scope.line));
        }
    }
    for entry in &inputs.entries {
        let at = OptionInputs::file_source(entry.line);
        let Some(spec) = registry.get(&entry.scope, &entry.name) else {
            let checked = registry.is_builtin_scope(&entry.scope);
            if strictness == Strictness::All || checked {
                return Err(unknown_file_option(registry, entry));
            }
            continue;
        };
        let value = convert(spec, &RawValue::Toml(entry.value.clone()), &at)?;
        resolved.set(spec, value, at);
    }
    Ok(())
}

fn unknown_scope(registry: &OptionRegistry, scope: &str, line: usize) -> OptionsError {
    let names = registry.scopes().iter().map(|s| s.name.as_str());
    let hint = match closest(scope, names.clone()) {
        Some(near) => format!("; did you mean `[{near}]`?"),
        None => {
            let all: Vec<String> = names.map(|n| format!("`[{n}]`")).collect();
            format!("; the scopes are {}", all.join(", "))
        }
    };
    OptionsError::UnknownScope {
        at: OptionInputs::file_source(line),
        scope: scope.to_owned(),
        hint,
    }
}

/// Suggests a near name in the same scope, else the same name in another scope.
fn unknown_file_option(registry: &OptionRegistry, entry: &FileEntry) -> OptionsError {
    let names = registry.scope_specs(&entry.scope).map(|s| s.name.as_str());
    let elsewhere = registry
        .specs()
        .iter()
        .find(|s| s.name == entry.name && s.scope != entry.scope);
    let hint = match (closest(&entry.name, names), elsewhere) {
        (Some(near), _) => format!("; did you mean `{near}`?"),
        (None, Some(spec)) => format!("; did you mean `{}`, in `[{}]`?", spec.name, spec.scope),
        (None, None) => format!(
            "; `remex help-advanced {}` lists the options of `[{}]`",
            help_name(&entry.scope),
            entry.scope
        ),
    };
    OptionsError::UnknownOption {
        at: OptionInputs::file_source(entry.line),
        option: OptionKey::new(&entry.scope, &entry.name).to_string(),
        hint,
    }
}

/// The argument of `remex help-advanced` for a scope.
fn help_name(scope: &str) -> &str {
    if scope == GLOBAL_SCOPE {
        "global"
    } else {
        scope
    }
}

/// Warns about `REMEX_*` variables that set nothing but look like an option's variable.
///
/// Other variables with the prefix are left alone: the environment is shared with scripts and
/// test harnesses that use `REMEX_` names of their own.
fn unknown_variables(inputs: &OptionInputs, registry: &OptionRegistry) -> Vec<String> {
    let unknown = inputs
        .variables
        .iter()
        .filter(|(name, _)| registry.by_variable(name).is_none());
    unknown
        .filter_map(|(name, _)| {
            let near = closest(name, registry.variables())?;
            Some(format!(
                "environment variable `{name}` sets no option; did you mean `{near}`?"
            ))
        })
        .collect()
}

fn apply_variables(
    inputs: &OptionInputs,
    registry: &OptionRegistry,
    resolved: &mut ResolvedOptions,
) -> Result<(), OptionsError> {
    for (name, text) in &inputs.variables {
        let Some(spec) = registry.by_variable(name) else {
            continue;
        };
        let at = Source::Variable(name.clone());
        let value = convert(spec, &RawValue::Text(text.clone()), &at)?;
        resolved.set(spec, value, at);
    }
    Ok(())
}

fn apply_flags(
    inputs: &OptionInputs,
    registry: &OptionRegistry,
    strictness: Strictness,
    resolved: &mut ResolvedOptions,
) -> Result<(), OptionsError> {
    // A list flag given several times collects every value.
    let mut set_by_flag: BTreeSet<OptionKey> = BTreeSet::new();
    for flag in &inputs.flags {
        let Some((spec, raw, name)) = match_flag(registry, flag) else {
            if strictness == Strictness::All {
                return Err(unknown_flag(registry, flag));
            }
            continue;
        };
        let at = Source::Flag(name);
        let key = spec.key();
        let mut value = convert(spec, &raw, &at)?;
        if set_by_flag.contains(&key)
            && let (Some(OptionValue::List(before)), OptionValue::List(after)) =
                (resolved.value(&key.scope, &key.name), &value)
        {
            value = OptionValue::List(before.iter().chain(after).cloned().collect());
        }
        resolved.set(spec, value, at);
        set_by_flag.insert(key);
    }
    Ok(())
}

/// The option `flag` sets, its raw value, and the flag's name without any value (values can be
/// secrets, and sources are shown in messages).
fn match_flag<'a>(
    registry: &'a OptionRegistry,
    flag: &str,
) -> Option<(&'a OptionSpec, RawValue, String)> {
    let (name, value) = match flag.split_once('=') {
        Some((name, value)) => (name, Some(value)),
        None => (flag, None),
    };
    if let Some(spec) = registry.by_flag(name) {
        let raw = value.map_or(RawValue::Switch(true), |v| RawValue::Text(v.to_owned()));
        return Some((spec, raw, name.to_owned()));
    }
    let positive = format!("--{}", name.strip_prefix("--no-")?);
    let spec = registry.by_flag(&positive)?;
    let is_switch = spec.ty.value_shape() == ValueShape::Bool && value.is_none();
    is_switch.then(|| (spec, RawValue::Switch(false), name.to_owned()))
}

fn unknown_flag(registry: &OptionRegistry, flag: &str) -> OptionsError {
    let name = flag.split_once('=').map_or(flag, |(name, _)| name);
    let hint = match closest(name, registry.flags()) {
        Some(near) => format!("; did you mean `{near}`?"),
        None => "; `remex help-advanced SCOPE` lists each scope's options".into(),
    };
    OptionsError::UnknownOption {
        at: Source::Flag(name.to_owned()),
        option: name.to_owned(),
        hint,
    }
}

/// Converts a raw value for `spec`, naming the option, the source and the valid forms when it
/// does not fit.
fn convert(spec: &OptionSpec, raw: &RawValue, at: &Source) -> Result<OptionValue, OptionsError> {
    parse::convert(&spec.ty, raw).map_err(|found| {
        let found = match (raw, at) {
            (RawValue::Switch(_), Source::Flag(name)) => {
                format!("a flag without a value (write `{name}=VALUE`)")
            }
            _ => found,
        };
        OptionsError::invalid(at.clone(), spec.key(), &spec.ty.expected(), &found)
    })
}
