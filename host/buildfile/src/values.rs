//! Starlark values checked against field types and turned into [`FieldValue`]s.

use remex_model::{FieldType, FieldValue};
use starlark::values::list::ListRef;
use starlark::values::tuple::TupleRef;
use starlark::values::{UnpackValue, Value};

/// How many characters of a value's repr an error message shows.
const REPR_LIMIT: usize = 40;

/// Converts `value` to a value of type `ty`, or returns a description of what was given
/// instead, for an error message. `Sources` values are the globs, not yet resolved.
pub(crate) fn convert(value: Value, ty: FieldType) -> Result<FieldValue, String> {
    match ty {
        FieldType::Text => value
            .unpack_str()
            .map(|text| FieldValue::Text(text.to_owned()))
            .ok_or_else(|| describe(value)),
        FieldType::Integer => integer(value).map(FieldValue::Integer),
        FieldType::Boolean => value
            .unpack_bool()
            .map(FieldValue::Boolean)
            .ok_or_else(|| describe(value)),
        FieldType::TextList | FieldType::Sources => text_list(value).map(FieldValue::TextList),
    }
}

fn integer(value: Value) -> Result<i64, String> {
    match i64::unpack_value(value) {
        Ok(Some(number)) => Ok(number),
        // Starlark integers are unbounded; fields hold 64 bits.
        _ if value.get_type() == "int" => Err(format!("`int` {} (too large)", repr(value))),
        _ => Err(describe(value)),
    }
}

/// A list or tuple of strings.
fn text_list(value: Value) -> Result<Vec<String>, String> {
    let items = ListRef::from_value(value)
        .map(|list| list.content())
        .or_else(|| TupleRef::from_value(value).map(|tuple| tuple.content()))
        .ok_or_else(|| describe(value))?;
    items
        .iter()
        .map(|item| {
            item.unpack_str().map(str::to_owned).ok_or_else(|| {
                let container = value.get_type();
                format!("`{container}` containing {}", describe(*item))
            })
        })
        .collect()
}

/// The value's type in backticks, then its repr, shortened.
fn describe(value: Value) -> String {
    format!("`{}` {}", value.get_type(), repr(value))
}

fn repr(value: Value) -> String {
    let full = value.to_repr();
    match full.char_indices().nth(REPR_LIMIT) {
        Some((cut, _)) => format!("{}...", &full[..cut]),
        None => full,
    }
}
