//! One call of a target kind turned into a [`Target`]: fields checked, defaulted and resolved.

use std::collections::{BTreeMap, HashMap};

use remex_model::{Address, FieldSpec, FieldType, FieldValue, LOCAL_ENVIRONMENT, Location, Target};
use starlark::values::Value;

use crate::defaults::Defaults;
use crate::error::Problem;
use crate::kinds::{Kind, KindTable};
use crate::sources::{EmptyGlobs, SourceResolver};
use crate::suggest::closest;
use crate::values::convert;

/// Where a target is declared, and what its fields are resolved against.
pub(crate) struct Declaration<'a> {
    pub(crate) kinds: &'a KindTable,
    pub(crate) sources: &'a SourceResolver<'a>,
    pub(crate) defaults: &'a Defaults,
    /// The BUILD file's directory, relative to the repository root.
    pub(crate) dir: &'a str,
    pub(crate) location: Location,
}

/// Builds the target declared by a call of kind `kind` with these keyword arguments.
pub(crate) fn build_target(
    declaration: Declaration,
    kind: usize,
    arguments: &[(&str, Value)],
) -> Result<Target, Problem> {
    let spec = declaration.kinds.get(kind);
    let mut given = check_arguments(spec, arguments)?;
    let mut fields = BTreeMap::new();
    for field in &spec.fields {
        if let Some(value) = resolve_field(&declaration, kind, field, &mut given)? {
            fields.insert(field.name.clone(), value);
        }
    }
    into_target(declaration, spec, fields)
}

/// The given fields, each known to the kind and of its type. `None` means "not given", so
/// that a macro can pass its optional parameters through.
fn check_arguments(
    kind: &Kind,
    arguments: &[(&str, Value)],
) -> Result<HashMap<String, FieldValue>, Problem> {
    let mut given = HashMap::new();
    for (name, value) in arguments {
        let field = kind.field(name).ok_or_else(|| Problem::UnknownField {
            field: (*name).to_owned(),
            kind: kind.name.clone(),
            suggestion: closest(name, kind.field_names()),
        })?;
        if value.is_none() {
            continue;
        }
        let converted = convert(*value, field.ty).map_err(|given| Problem::WrongType {
            field: field.name.clone(),
            kind: kind.name.clone(),
            expected: field.ty,
            given,
        })?;
        given.insert(field.name.clone(), converted);
    }
    Ok(given)
}

/// The field's value: given, else from `__defaults__`, else the kind's default. Only globs
/// written for this very target must match files.
fn resolve_field(
    declaration: &Declaration,
    kind: usize,
    field: &FieldSpec,
    given: &mut HashMap<String, FieldValue>,
) -> Result<Option<FieldValue>, Problem> {
    let (value, empty) = if let Some(value) = given.remove(&field.name) {
        (value, EmptyGlobs::Fail)
    } else if let Some(value) = declaration.defaults.get(kind, &field.name) {
        (value.clone(), EmptyGlobs::Allow)
    } else if let Some(value) = &field.default {
        (value.clone(), EmptyGlobs::Allow)
    } else if field.required {
        return Err(Problem::MissingField {
            field: field.name.clone(),
            kind: declaration.kinds.get(kind).name.clone(),
        });
    } else {
        return Ok(None);
    };
    match (field.ty, &value) {
        (FieldType::Sources, FieldValue::TextList(globs)) => {
            let files = declaration
                .sources
                .resolve(declaration.dir, &field.name, globs, empty)?;
            Ok(Some(FieldValue::TextList(files)))
        }
        _ => Ok(Some(value)),
    }
}

/// Moves the common fields that [`Target`] keeps apart out of `fields`.
fn into_target(
    declaration: Declaration,
    kind: &Kind,
    mut fields: BTreeMap<String, FieldValue>,
) -> Result<Target, Problem> {
    let name = take_text(&mut fields, "name").unwrap_or_default();
    if name.is_empty() || name.contains(['/', ':']) {
        return Err(Problem::InvalidName { name });
    }
    let environment =
        take_text(&mut fields, "environment").unwrap_or_else(|| LOCAL_ENVIRONMENT.to_owned());
    let dependencies = match fields.remove("dependencies") {
        Some(FieldValue::TextList(texts)) => parse_dependencies(&texts, declaration.dir)?,
        _ => Vec::new(),
    };
    Ok(Target {
        address: Address::new(declaration.dir, name),
        kind: kind.name.clone(),
        fields,
        dependencies,
        environment,
        location: declaration.location,
        dependency_inputs: Vec::new(),
    })
}

fn take_text(fields: &mut BTreeMap<String, FieldValue>, name: &str) -> Option<String> {
    match fields.remove(name) {
        Some(FieldValue::Text(text)) => Some(text),
        _ => None,
    }
}

/// Parses addresses relative to `dir`, keeping the first of any repeated one.
fn parse_dependencies(texts: &[String], dir: &str) -> Result<Vec<Address>, Problem> {
    let mut addresses: Vec<Address> = Vec::with_capacity(texts.len());
    for text in texts {
        let address = Address::parse(text, dir)?;
        if !addresses.contains(&address) {
            addresses.push(address);
        }
    }
    Ok(addresses)
}
