//! The `remex:plugin` WIT bindings and the conversions between their types and
//! `remex_model`'s. This is the only module that sees the generated types' shapes.

use std::collections::BTreeMap;
use std::time::Duration;

use remex_model::{Environment, FieldSpec, FieldType, FieldValue, KindSpec, Process, Target};

use crate::memo::Encoder;

mod bindings {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "toolchain",
        // Host calls may trap, which is how the cap on host calls stops a plugin.
        imports: { default: trappable },
    });
}

pub(crate) use bindings::{Toolchain, ToolchainPre, remex};

use remex::plugin::types as wit;

/// What `describe` returned, checked and converted.
pub(crate) struct Described {
    pub(crate) name: String,
    pub(crate) version: String,
    pub(crate) kinds: Vec<KindSpec>,
}

pub(crate) fn description(description: wit::Description) -> Result<Described, String> {
    if description.name.is_empty() || description.version.is_empty() {
        return Err("the plugin's name and version must not be empty".to_owned());
    }
    let kinds = description
        .kinds
        .into_iter()
        .map(kind_spec)
        .collect::<Result<Vec<_>, _>>()?;
    check_unique(kinds.iter().map(|k| k.name.as_str()), "target kind")?;
    Ok(Described {
        name: description.name,
        version: description.version,
        kinds,
    })
}

fn kind_spec(kind: wit::KindSpec) -> Result<KindSpec, String> {
    let fields: Vec<FieldSpec> = kind.fields.into_iter().map(field_spec).collect();
    check_unique(fields.iter().map(|f| f.name.as_str()), "field")?;
    for field in &fields {
        if remex_model::COMMON_FIELDS.contains(&field.name.as_str()) {
            return Err(format!(
                "kind `{}` declares the field `{}`, which every target has",
                kind.name, field.name
            ));
        }
        if let Some(default) = &field.default
            && !value_fits(default, field.ty)
        {
            return Err(format!(
                "the default of field `{}` of kind `{}` is not a `{}`",
                field.name, kind.name, field.ty
            ));
        }
    }
    Ok(KindSpec {
        name: kind.name,
        help: kind.help,
        fields,
    })
}

fn check_unique<'a>(names: impl Iterator<Item = &'a str>, what: &str) -> Result<(), String> {
    let mut seen = std::collections::BTreeSet::new();
    for name in names {
        if name.is_empty() {
            return Err(format!("a {what} has an empty name"));
        }
        if !seen.insert(name) {
            return Err(format!("the {what} `{name}` is declared twice"));
        }
    }
    Ok(())
}

fn value_fits(value: &FieldValue, ty: FieldType) -> bool {
    matches!(
        (value, ty),
        (FieldValue::Text(_), FieldType::Text)
            | (FieldValue::Integer(_), FieldType::Integer)
            | (FieldValue::Boolean(_), FieldType::Boolean)
            | (
                FieldValue::TextList(_),
                FieldType::TextList | FieldType::Sources
            )
    )
}

fn field_spec(field: wit::FieldSpec) -> FieldSpec {
    FieldSpec {
        name: field.name,
        ty: field_type(field.type_),
        required: field.required,
        default: field.default.map(field_value),
        help: field.help,
    }
}

fn field_type(ty: wit::FieldType) -> FieldType {
    match ty {
        wit::FieldType::Text => FieldType::Text,
        wit::FieldType::Integer => FieldType::Integer,
        wit::FieldType::Boolean => FieldType::Boolean,
        wit::FieldType::TextList => FieldType::TextList,
        wit::FieldType::Sources => FieldType::Sources,
    }
}

fn field_value(value: wit::FieldValue) -> FieldValue {
    match value {
        wit::FieldValue::Text(text) => FieldValue::Text(text),
        wit::FieldValue::Integer(integer) => FieldValue::Integer(integer),
        wit::FieldValue::Boolean(boolean) => FieldValue::Boolean(boolean),
        wit::FieldValue::TextList(list) => FieldValue::TextList(list),
    }
}

fn wit_field_value(value: &FieldValue) -> wit::FieldValue {
    match value {
        FieldValue::Text(text) => wit::FieldValue::Text(text.clone()),
        FieldValue::Integer(integer) => wit::FieldValue::Integer(*integer),
        FieldValue::Boolean(boolean) => wit::FieldValue::Boolean(*boolean),
        FieldValue::TextList(list) => wit::FieldValue::TextList(list.clone()),
    }
}

pub(crate) fn target(target: &Target) -> wit::Target {
    let fields = target.fields.iter().map(|(name, value)| wit::Field {
        name: name.clone(),
        value: wit_field_value(value),
    });
    wit::Target {
        address: target.address.to_string(),
        kind: target.kind.clone(),
        directory: target.address.dir.clone(),
        fields: fields.collect(),
        dependencies: target
            .dependencies
            .iter()
            .map(ToString::to_string)
            .collect(),
        dependency_inputs: target.dependency_inputs.clone(),
    }
}

pub(crate) fn environment(environment: &Environment) -> wit::Environment {
    let options = environment
        .options
        .iter()
        .map(|((scope, name), value)| wit::OptionValue {
            scope: scope.clone(),
            name: name.clone(),
            value: wit_field_value(value),
        });
    wit::Environment {
        name: environment.name.clone(),
        remote: environment.remote,
        platform: wit_properties(&environment.platform),
        options: options.collect(),
    }
}

/// Writes everything a `plan` call is given: the target and the environment exactly as the
/// plugin receives them. The records are taken apart field by field, so that a field added to
/// either cannot be left out of the memo's key.
pub(crate) fn encode_plan_input(out: &mut Encoder, target: &Target, environment: &Environment) {
    let wit::Target {
        address,
        kind,
        directory,
        fields,
        dependencies,
        dependency_inputs,
    } = self::target(target);
    out.str(&address);
    out.str(&kind);
    out.str(&directory);
    out.len(fields.len());
    for wit::Field { name, value } in &fields {
        out.str(name);
        encode_field_value(out, value);
    }
    out.strs(&dependencies);
    out.strs(&dependency_inputs);

    let wit::Environment {
        name,
        remote,
        platform,
        options,
    } = self::environment(environment);
    out.str(&name);
    out.u8(u8::from(remote));
    let platform_pairs = platform.iter().map(|p| (p.name.as_str(), p.value.as_str()));
    out.pairs(platform_pairs, platform.len());
    out.len(options.len());
    for wit::OptionValue { scope, name, value } in &options {
        out.str(scope);
        out.str(name);
        encode_field_value(out, value);
    }
}

fn encode_field_value(out: &mut Encoder, value: &wit::FieldValue) {
    match value {
        wit::FieldValue::Text(text) => {
            out.u8(0);
            out.str(text);
        }
        wit::FieldValue::Integer(integer) => {
            out.u8(1);
            out.u64(integer.cast_unsigned());
        }
        wit::FieldValue::Boolean(boolean) => {
            out.u8(2);
            out.u8(u8::from(*boolean));
        }
        wit::FieldValue::TextList(list) => {
            out.u8(3);
            out.strs(list);
        }
    }
}

/// Where the memo files a target's plan: one slot per target and environment, whatever the
/// plan's inputs, so that a new plan replaces the one it supersedes.
pub(crate) fn memo_slot(target: &Target, environment: &Environment) -> Vec<u8> {
    let mut slot = Encoder::default();
    slot.str(&target.address.to_string());
    slot.str(&environment.name);
    slot.0
}

fn wit_properties(properties: &[(String, String)]) -> Vec<wit::Property> {
    let property = |(name, value): &(String, String)| wit::Property {
        name: name.clone(),
        value: value.clone(),
    };
    properties.iter().map(property).collect()
}

/// The size a result is charged against the cap: its bytes of text plus a fixed overhead per
/// string, so that a list of millions of empty strings is not free.
pub(crate) fn result_size(processes: &[wit::Process]) -> usize {
    const PER_STRING: usize = 16;
    let text = |s: &String| s.len() + PER_STRING;
    let texts = |list: &[String]| list.iter().map(text).sum::<usize>();
    let pairs = |name: &String, value: &String| text(name) + text(value);
    let process = |p: &wit::Process| {
        text(&p.description)
            + texts(&p.argv)
            + p.env
                .iter()
                .map(|e| pairs(&e.name, &e.value))
                .sum::<usize>()
            + texts(&p.inputs)
            + texts(&p.output_files)
            + texts(&p.output_directories)
            + text(&p.working_directory)
            + p.platform
                .iter()
                .map(|p| pairs(&p.name, &p.value))
                .sum::<usize>()
    };
    processes.iter().map(process).sum()
}

pub(crate) fn process(process: wit::Process) -> Result<Process, String> {
    if process.argv.is_empty() {
        return Err(format!(
            "process `{}` has an empty `argv`",
            process.description
        ));
    }
    let mut env = BTreeMap::new();
    for var in process.env {
        if env.insert(var.name.clone(), var.value).is_some() {
            return Err(format!(
                "process `{}` sets the environment variable `{}` twice",
                process.description, var.name
            ));
        }
    }
    let platform = process.platform.into_iter().map(|p| (p.name, p.value));
    Ok(Process {
        description: process.description,
        argv: process.argv,
        env,
        input_files: process.inputs,
        output_files: process.output_files,
        output_directories: process.output_directories,
        working_directory: process.working_directory,
        timeout: process.timeout_ms.map(Duration::from_millis),
        platform: platform.collect(),
    })
}
