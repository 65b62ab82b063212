//! Constructors for what a plugin says about itself.

use crate::{Description, FieldSpec, FieldType, FieldValue, KindSpec};

impl Description {
    /// A plugin named `name` at `version` (usually `env!("CARGO_PKG_VERSION")`).
    pub fn new(name: impl Into<String>, version: impl Into<String>, kinds: Vec<KindSpec>) -> Self {
        Self {
            name: name.into(),
            version: version.into(),
            kinds,
        }
    }
}

impl KindSpec {
    /// A target kind, such as `shell_command`, with its own fields.
    pub fn new(name: impl Into<String>, help: impl Into<String>, fields: Vec<FieldSpec>) -> Self {
        Self {
            name: name.into(),
            help: help.into(),
            fields,
        }
    }
}

impl FieldSpec {
    /// A field every target of the kind must set.
    pub fn required(name: impl Into<String>, type_: FieldType, help: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            type_,
            required: true,
            default: None,
            help: help.into(),
        }
    }

    /// A field a target may leave out; it is then absent from the target's fields.
    pub fn optional(name: impl Into<String>, type_: FieldType, help: impl Into<String>) -> Self {
        Self {
            required: false,
            ..Self::required(name, type_, help)
        }
    }

    /// The value the field takes when a target leaves it out.
    pub fn with_default(self, default: FieldValue) -> Self {
        Self {
            default: Some(default),
            ..self
        }
    }
}
