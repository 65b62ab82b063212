//! `__defaults__(kind = dict(field = value), all = dict(...))`: field defaults for a directory
//! and every directory below it.

use std::collections::HashMap;

use remex_model::{Address, FieldValue};
use starlark::values::Value;
use starlark::values::dict::DictRef;

use crate::error::Problem;
use crate::kinds::KindTable;
use crate::suggest::closest;
use crate::values::convert;

/// The keyword of `__defaults__` that applies to every kind having the field.
const ALL_KINDS: &str = "all";

/// Field defaults by kind index and field name. `None` clears a default set by a parent
/// directory, so the kind's own default applies again.
#[derive(Clone, Debug, Default)]
pub(crate) struct Defaults {
    by_kind: HashMap<usize, HashMap<String, Option<FieldValue>>>,
}

impl Defaults {
    /// The default of `field` for targets of kind `kind`, if one is set.
    pub(crate) fn get(&self, kind: usize, field: &str) -> Option<&FieldValue> {
        self.by_kind.get(&kind)?.get(field)?.as_ref()
    }

    /// These defaults with `newer` laid over them, field by field.
    pub(crate) fn overlay(&self, newer: Defaults) -> Defaults {
        let mut merged = self.clone();
        for (kind, fields) in newer.by_kind {
            merged.by_kind.entry(kind).or_default().extend(fields);
        }
        merged
    }

    fn set(&mut self, kind: usize, field: &str, value: Option<FieldValue>) {
        let fields = self.by_kind.entry(kind).or_default();
        fields.insert(field.to_owned(), value);
    }
}

/// Reads the keyword arguments of one `__defaults__` call made in `dir`. `all` applies first,
/// so a kind's own entry wins over it whatever the order of the arguments.
pub(crate) fn parse_defaults<'v>(
    arguments: &[(&str, Value<'v>)],
    kinds: &KindTable,
    dir: &str,
) -> Result<Defaults, Problem> {
    let mut defaults = Defaults::default();
    let (all, own): (Vec<_>, Vec<_>) = arguments.iter().partition(|(key, _)| *key == ALL_KINDS);
    for (_, value) in all {
        for (field, value) in entries(ALL_KINDS, value)? {
            set_for_all_kinds(&mut defaults, kinds, dir, field, value)?;
        }
    }
    for (kind_name, value) in own {
        let kind = kinds
            .index_of(kind_name)
            .ok_or_else(|| unknown_kind(kinds, kind_name))?;
        for (field, value) in entries(kind_name, value)? {
            let converted = convert_default(kinds, kind, dir, field, value)?;
            defaults.set(kind, field, converted);
        }
    }
    Ok(defaults)
}

/// Sets `field` for every kind that has it; a field no kind has is an error.
fn set_for_all_kinds(
    defaults: &mut Defaults,
    kinds: &KindTable,
    dir: &str,
    field: &str,
    value: Value,
) -> Result<(), Problem> {
    let mut found = false;
    for (index, kind) in kinds.iter() {
        if kind.field(field).is_some() {
            found = true;
            let converted = convert_default(kinds, index, dir, field, value)?;
            defaults.set(index, field, converted);
        }
    }
    if found {
        return Ok(());
    }
    let known = kinds.iter().flat_map(|(_, kind)| kind.field_names());
    Err(Problem::UnknownField {
        field: field.to_owned(),
        kind: ALL_KINDS.to_owned(),
        suggestion: closest(field, known),
    })
}

/// Checks one default against the kind's field and converts it.
fn convert_default(
    kinds: &KindTable,
    kind: usize,
    dir: &str,
    field: &str,
    value: Value,
) -> Result<Option<FieldValue>, Problem> {
    let kind = kinds.get(kind);
    let spec = kind.field(field).ok_or_else(|| Problem::UnknownField {
        field: field.to_owned(),
        kind: kind.name.clone(),
        suggestion: closest(field, kind.field_names()),
    })?;
    if spec.name == "name" {
        return Err(Problem::Defaults {
            message: "`name` cannot have a default".to_owned(),
        });
    }
    if value.is_none() {
        return Ok(None);
    }
    let converted = convert(value, spec.ty).map_err(|given| Problem::WrongType {
        field: field.to_owned(),
        kind: kind.name.clone(),
        expected: spec.ty,
        given,
    })?;
    if field == "dependencies" {
        return absolute_addresses(converted, dir).map(Some);
    }
    Ok(Some(converted))
}

/// Rewrites `:x` as `//dir:x`, so a default means the same in every directory below `dir`.
fn absolute_addresses(value: FieldValue, dir: &str) -> Result<FieldValue, Problem> {
    let Some(texts) = value.as_text_list() else {
        return Ok(value);
    };
    let absolute = texts
        .iter()
        .map(|text| Address::parse(text, dir).map(|address| address.to_string()))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(FieldValue::TextList(absolute))
}

/// The string-keyed entries of a `dict` argument.
fn entries<'v>(argument: &str, value: Value<'v>) -> Result<Vec<(&'v str, Value<'v>)>, Problem> {
    let not_dict = || Problem::Defaults {
        message: format!(
            "`__defaults__` argument `{argument}` must be a `dict`, got `{}`",
            value.get_type()
        ),
    };
    let dict = DictRef::from_value(value).ok_or_else(not_dict)?;
    dict.iter()
        .map(|(key, value)| {
            let key = key.unpack_str().ok_or_else(|| Problem::Defaults {
                message: format!("`__defaults__` argument `{argument}` must have `str` keys"),
            })?;
            Ok((key, value))
        })
        .collect()
}

fn unknown_kind(kinds: &KindTable, name: &str) -> Problem {
    let known = kinds.sorted_names();
    Problem::UnknownKind {
        name: name.to_owned(),
        suggestion: closest(name, known.iter().map(String::as_str).chain([ALL_KINDS])),
        known,
    }
}
