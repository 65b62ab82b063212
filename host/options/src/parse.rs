//! Reading one raw value, from TOML or from the text of a variable or a flag, as a value of an
//! option's type.

use std::collections::BTreeMap;

use crate::remote::RemoteAddress;
use crate::spec::{OptionType, OptionValue, ValueShape};

/// A value as found, before it is checked against its option's type.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum RawValue {
    /// From `remex.toml`.
    Toml(toml::Value),
    /// From a variable or a `--flag=value`.
    Text(String),
    /// A bare `--flag` (`true`) or `--no-flag` (`false`).
    Switch(bool),
}

/// Converts `raw` to a value of type `ty`, or describes what was found instead.
pub(crate) fn convert(ty: &OptionType, raw: &RawValue) -> Result<OptionValue, String> {
    let value = match ty.value_shape() {
        ValueShape::Bool => to_bool(raw),
        ValueShape::Integer => to_integer(raw),
        ValueShape::Text => to_text(raw),
        ValueShape::List => to_list(raw),
        ValueShape::Dict => to_dict(raw),
    }
    .ok_or_else(|| describe(raw))?;
    check(ty, &value)?;
    Ok(value)
}

/// Checks the constraints of `ty` beyond the shape of `value`.
pub(crate) fn check(ty: &OptionType, value: &OptionValue) -> Result<(), String> {
    let found = || match value {
        OptionValue::Text(text) => format!("`{text}`"),
        other => format!("`{other}`"),
    };
    if value.shape() != ty.value_shape() {
        return Err(found());
    }
    let valid = match (ty, value) {
        (OptionType::Integer { min }, OptionValue::Integer(i)) => i >= min,
        (OptionType::Address, OptionValue::Text(s)) => RemoteAddress::parse(s).is_some(),
        (OptionType::Choice(choices), OptionValue::Text(s)) => choices.contains(s),
        (OptionType::Path, OptionValue::Text(s)) => !s.is_empty(),
        (OptionType::KeyValueList, OptionValue::List(items)) => {
            items.iter().all(|item| split_key_value(item).is_some())
        }
        _ => true,
    };
    if valid { Ok(()) } else { Err(found()) }
}

/// Splits `key=value` at the first `=`; the key must not be empty.
pub(crate) fn split_key_value(item: &str) -> Option<(&str, &str)> {
    item.split_once('=')
        .filter(|(key, _)| !key.trim().is_empty())
}

fn to_bool(raw: &RawValue) -> Option<OptionValue> {
    match raw {
        RawValue::Toml(toml::Value::Boolean(b)) | RawValue::Switch(b) => {
            Some(OptionValue::Bool(*b))
        }
        RawValue::Text(text) => match text.to_ascii_lowercase().as_str() {
            "true" | "1" => Some(OptionValue::Bool(true)),
            "false" | "0" => Some(OptionValue::Bool(false)),
            _ => None,
        },
        RawValue::Toml(_) => None,
    }
}

fn to_integer(raw: &RawValue) -> Option<OptionValue> {
    match raw {
        RawValue::Toml(toml::Value::Integer(i)) => Some(OptionValue::Integer(*i)),
        RawValue::Text(text) => text.trim().parse().ok().map(OptionValue::Integer),
        _ => None,
    }
}

fn to_text(raw: &RawValue) -> Option<OptionValue> {
    match raw {
        RawValue::Toml(toml::Value::String(s)) | RawValue::Text(s) => {
            Some(OptionValue::Text(s.clone()))
        }
        _ => None,
    }
}

/// A TOML array of strings; as text, a TOML array (`["a", "b"]`) or items separated by commas.
fn to_list(raw: &RawValue) -> Option<OptionValue> {
    match raw {
        RawValue::Toml(toml::Value::Array(items)) => items
            .iter()
            .map(|item| item.as_str().map(str::to_owned))
            .collect::<Option<Vec<_>>>()
            .map(OptionValue::List),
        RawValue::Text(text) if text.trim_start().starts_with('[') => {
            to_list(&RawValue::Toml(parse_toml_value(text)?))
        }
        RawValue::Text(text) => Some(OptionValue::List(
            text.split(',')
                .map(str::trim)
                .filter(|item| !item.is_empty())
                .map(str::to_owned)
                .collect(),
        )),
        _ => None,
    }
}

/// A TOML table of strings; as text, a TOML inline table (`{ a = "b" }`) or `key=value` items
/// separated by commas.
fn to_dict(raw: &RawValue) -> Option<OptionValue> {
    match raw {
        RawValue::Toml(toml::Value::Table(table)) => table
            .iter()
            .map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_owned())))
            .collect::<Option<BTreeMap<_, _>>>()
            .map(OptionValue::Dict),
        RawValue::Text(text) if text.trim_start().starts_with('{') => {
            to_dict(&RawValue::Toml(parse_toml_value(text)?))
        }
        RawValue::Text(text) => text
            .split(',')
            .map(str::trim)
            .filter(|item| !item.is_empty())
            .map(|item| split_key_value(item).map(|(k, v)| (k.trim().into(), v.trim().into())))
            .collect::<Option<BTreeMap<_, _>>>()
            .map(OptionValue::Dict),
        _ => None,
    }
}

/// One TOML value written on its own, such as `["a", "b"]`.
fn parse_toml_value(text: &str) -> Option<toml::Value> {
    let document: toml::Table = toml::from_str(&format!("value = {text}")).ok()?;
    document.get("value").cloned()
}

/// What was found, for "must be X, not Y" messages.
fn describe(raw: &RawValue) -> String {
    match raw {
        RawValue::Toml(value) => format!("the {} `{value}`", value.type_str()),
        RawValue::Text(text) => format!("`{text}`"),
        RawValue::Switch(_) => "a flag without a value".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(s: &str) -> RawValue {
        RawValue::Text(s.into())
    }

    #[test]
    fn reads_lists_and_tables_from_text_both_ways() {
        let list = |s| convert(&OptionType::TextList, &text(s));
        let expected = OptionValue::List(vec!["<PATH>".into(), "/usr/bin".into()]);
        assert_eq!(list("<PATH>, /usr/bin"), Ok(expected.clone()));
        assert_eq!(list(r#"["<PATH>", "/usr/bin"]"#), Ok(expected));
        assert_eq!(list(""), Ok(OptionValue::List(vec![])));

        let dict = |s| convert(&OptionType::Dict, &text(s));
        let expected = OptionValue::Dict(BTreeMap::from([
            ("a".into(), "1".into()),
            ("b".into(), "x=y".into()),
        ]));
        assert_eq!(dict("a=1, b=x=y"), Ok(expected.clone()));
        assert_eq!(dict(r#"{ a = "1", b = "x=y" }"#), Ok(expected));
        assert!(dict("novalue").is_err());
    }

    #[test]
    fn reports_what_was_found() {
        let integer = OptionType::Integer { min: 1 };
        let found = convert(&integer, &RawValue::Toml(toml::Value::String("5".into())));
        assert_eq!(found, Err("the string `\"5\"`".into()));
        assert_eq!(convert(&integer, &text("0")), Err("`0`".into()));
        assert_eq!(
            convert(&OptionType::Bool, &text("yes")),
            Err("`yes`".into())
        );
        assert_eq!(
            convert(&OptionType::Text, &RawValue::Switch(true)),
            Err("a flag without a value".into())
        );
        assert!(convert(&OptionType::KeyValueList, &text("OSFamily")).is_err());
        assert!(convert(&OptionType::KeyValueList, &text("=linux")).is_err());
    }
}
