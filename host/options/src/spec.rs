//! What an option is: its scope and name, its type, its default and its help. The parser, the
//! help text and the environment target fields are all derived from these specs.

use std::collections::BTreeMap;
use std::fmt;

use remex_model::{FieldType, FieldValue};

/// The scope of options written under `[GLOBAL]`, whose flags and variables carry no scope.
pub const GLOBAL_SCOPE: &str = "GLOBAL";

/// An option's identity: `[scope].name`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OptionKey {
    pub scope: String,
    pub name: String,
}

impl OptionKey {
    pub fn new(scope: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            scope: scope.into(),
            name: name.into(),
        }
    }

    /// The `REMEX_*` variable that sets the option: `REMEX_<OPTION>` in `[GLOBAL]`,
    /// `REMEX_<SCOPE>_<OPTION>` elsewhere, upper-cased with `-` as `_`.
    pub fn variable(&self) -> String {
        let name = if self.scope == GLOBAL_SCOPE {
            self.name.clone()
        } else {
            format!("{}_{}", self.scope, self.name)
        };
        format!("REMEX_{}", name.replace('-', "_").to_ascii_uppercase())
    }

    /// The flag that sets the option: `--<option>` in `[GLOBAL]`, `--<scope>-<option>`
    /// elsewhere, with `_` as `-`.
    pub fn flag(&self) -> String {
        let name = if self.scope == GLOBAL_SCOPE {
            self.name.clone()
        } else {
            format!("{}-{}", self.scope, self.name)
        };
        format!("--{}", name.replace('_', "-"))
    }

    /// The field that overrides an environment-aware option on an environment target:
    /// `<scope>_<option>`, with `-` as `_`.
    pub fn field_name(&self) -> String {
        format!("{}_{}", self.scope, self.name).replace('-', "_")
    }
}

impl fmt::Display for OptionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}].{}", self.scope, self.name)
    }
}

/// What values an option takes, and how text from a variable or a flag is read as one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OptionType {
    /// `true` or `false`; a bare flag means `true` and `--no-<flag>` means `false`.
    Bool,
    /// A whole number no smaller than `min`.
    Integer { min: i64 },
    /// Any string.
    Text,
    /// A filesystem path: relative to the repository root in `remex.toml`, to the working
    /// directory in a variable or a flag.
    Path,
    /// A string never shown by help or logs; `@path` reads it from a file.
    Secret,
    /// A server address, `grpc://host:port` or `grpcs://host:port`.
    Address,
    /// One of a fixed set of strings.
    Choice(Vec<String>),
    /// A list of strings.
    TextList,
    /// A list of `key=value` strings.
    KeyValueList,
    /// A table from strings to strings.
    Dict,
}

impl OptionType {
    /// The field type of an environment target field overriding an option of this type, if
    /// the type can be a field.
    pub fn field_type(&self) -> Option<FieldType> {
        match self {
            Self::Bool => Some(FieldType::Boolean),
            Self::Integer { .. } => Some(FieldType::Integer),
            Self::Text | Self::Path | Self::Address | Self::Choice(_) => Some(FieldType::Text),
            Self::TextList | Self::KeyValueList => Some(FieldType::TextList),
            Self::Secret | Self::Dict => None,
        }
    }

    /// Which kind of value the type holds.
    pub(crate) fn value_shape(&self) -> ValueShape {
        match self {
            Self::Bool => ValueShape::Bool,
            Self::Integer { .. } => ValueShape::Integer,
            Self::Text | Self::Path | Self::Secret | Self::Address | Self::Choice(_) => {
                ValueShape::Text
            }
            Self::TextList | Self::KeyValueList => ValueShape::List,
            Self::Dict => ValueShape::Dict,
        }
    }

    /// What a valid value looks like, for error messages.
    pub fn expected(&self) -> String {
        match self {
            Self::Bool => "`true` or `false`".into(),
            Self::Integer { min } => format!("a whole number of at least {min}"),
            Self::Text => "a string".into(),
            Self::Path => "a path".into(),
            Self::Secret => "a string, or `@path` to read it from a file".into(),
            Self::Address => "`grpc://host:port` (plaintext) or `grpcs://host:port` (TLS)".into(),
            Self::Choice(choices) => format!("one of {}", quoted_list(choices)),
            Self::TextList => "a list of strings".into(),
            Self::KeyValueList => "a list of `key=value` strings".into(),
            Self::Dict => "a table of strings, such as `{ name = \"value\" }`".into(),
        }
    }
}

impl fmt::Display for OptionType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Bool => f.write_str("bool"),
            Self::Integer { .. } => f.write_str("int"),
            Self::Text | Self::Secret => f.write_str("str"),
            Self::Path => f.write_str("path"),
            Self::Address => f.write_str("address"),
            Self::Choice(choices) => write!(f, "one of {}", choices.join(", ")),
            Self::TextList => f.write_str("list[str]"),
            Self::KeyValueList => f.write_str("list[key=value]"),
            Self::Dict => f.write_str("dict[str, str]"),
        }
    }
}

/// The kinds of value an [`OptionValue`] can hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ValueShape {
    Bool,
    Integer,
    Text,
    List,
    Dict,
}

/// An option's value, checked against its [`OptionType`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OptionValue {
    Bool(bool),
    Integer(i64),
    Text(String),
    List(Vec<String>),
    Dict(BTreeMap<String, String>),
}

impl OptionValue {
    pub(crate) fn shape(&self) -> ValueShape {
        match self {
            Self::Bool(_) => ValueShape::Bool,
            Self::Integer(_) => ValueShape::Integer,
            Self::Text(_) => ValueShape::Text,
            Self::List(_) => ValueShape::List,
            Self::Dict(_) => ValueShape::Dict,
        }
    }

    /// The value as a target field or plugin option value; a table has none.
    pub fn to_field_value(&self) -> Option<FieldValue> {
        match self {
            Self::Bool(b) => Some(FieldValue::Boolean(*b)),
            Self::Integer(i) => Some(FieldValue::Integer(*i)),
            Self::Text(s) => Some(FieldValue::Text(s.clone())),
            Self::List(v) => Some(FieldValue::TextList(v.clone())),
            Self::Dict(_) => None,
        }
    }

    /// The option value of a target field.
    pub fn from_field_value(value: &FieldValue) -> Self {
        match value {
            FieldValue::Boolean(b) => Self::Bool(*b),
            FieldValue::Integer(i) => Self::Integer(*i),
            FieldValue::Text(s) => Self::Text(s.clone()),
            FieldValue::TextList(v) => Self::List(v.clone()),
        }
    }
}

/// Written as in `remex.toml`.
impl fmt::Display for OptionValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Bool(b) => write!(f, "{b}"),
            Self::Integer(i) => write!(f, "{i}"),
            Self::Text(s) => write!(f, "{s:?}"),
            Self::List(items) => {
                let items: Vec<String> = items.iter().map(|s| format!("{s:?}")).collect();
                write!(f, "[{}]", items.join(", "))
            }
            Self::Dict(entries) if entries.is_empty() => f.write_str("{}"),
            Self::Dict(entries) => {
                let entries: Vec<String> = entries
                    .iter()
                    .map(|(k, v)| format!("{k:?} = {v:?}"))
                    .collect();
                write!(f, "{{ {} }}", entries.join(", "))
            }
        }
    }
}

/// One option: where it lives, what it takes, what it is without a setting, and what it does.
#[derive(Clone, Debug, PartialEq)]
pub struct OptionSpec {
    /// The scope, such as `GLOBAL` or `python-bootstrap`.
    pub scope: String,
    /// The name within the scope, in `snake_case`.
    pub name: String,
    pub ty: OptionType,
    /// The value when nothing sets the option; `None` for an option that is unset by default.
    pub default: Option<OptionValue>,
    /// One line of help.
    pub help: String,
    /// Whether environment targets may override the option with a `<scope>_<option>` field.
    pub environment_aware: bool,
}

impl OptionSpec {
    /// A spec with no default that no environment overrides.
    pub fn new(scope: &str, name: &str, ty: OptionType, help: &str) -> Self {
        Self {
            scope: scope.to_owned(),
            name: name.to_owned(),
            ty,
            default: None,
            help: help.to_owned(),
            environment_aware: false,
        }
    }

    /// The same spec with `default`.
    pub fn with_default(mut self, default: OptionValue) -> Self {
        self.default = Some(default);
        self
    }

    /// The same spec, overridable by environment targets.
    pub fn environment_aware(mut self) -> Self {
        self.environment_aware = true;
        self
    }

    pub fn key(&self) -> OptionKey {
        OptionKey::new(&self.scope, &self.name)
    }
}

/// A scope of options, such as `[python-bootstrap]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScopeSpec {
    pub name: String,
    /// One line of help.
    pub help: String,
}

/// `a`, `b` and `c`, each in backticks, for messages.
pub(crate) fn quoted_list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| format!("`{s}`")).collect();
    match quoted.as_slice() {
        [] => "nothing".into(),
        [one] => one.clone(),
        [rest @ .., last] => format!("{} or {last}", rest.join(", ")),
    }
}
