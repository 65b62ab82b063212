//! Reading a target's fields and an environment's options.

use crate::{Environment, FieldValue, PlanError, Target};

impl Target {
    /// The value of the field `name`, if the target has it.
    pub fn field(&self, name: &str) -> Option<&FieldValue> {
        self.fields
            .iter()
            .find(|f| f.name == name)
            .map(|f| &f.value)
    }

    /// The text field `name`, if the target has it.
    pub fn text(&self, name: &str) -> Option<&str> {
        match self.field(name) {
            Some(FieldValue::Text(text)) => Some(text),
            _ => None,
        }
    }

    /// The text field `name`, or a plan error naming the target and the field.
    pub fn required_text(&self, name: &str) -> Result<&str, PlanError> {
        self.text(name).ok_or_else(|| {
            PlanError::new(format!(
                "target `{}` has no `{name}` field; set it in its BUILD file",
                self.address
            ))
        })
    }

    /// The integer field `name`, if the target has it.
    pub fn integer(&self, name: &str) -> Option<i64> {
        match self.field(name) {
            Some(FieldValue::Integer(value)) => Some(*value),
            _ => None,
        }
    }

    /// The boolean field `name`, if the target has it.
    pub fn boolean(&self, name: &str) -> Option<bool> {
        match self.field(name) {
            Some(FieldValue::Boolean(value)) => Some(*value),
            _ => None,
        }
    }

    /// The list field `name` (a text list, or the resolved paths of a sources field); empty when
    /// the target does not have it.
    pub fn text_list(&self, name: &str) -> &[String] {
        match self.field(name) {
            Some(FieldValue::TextList(list)) => list,
            _ => &[],
        }
    }
}

impl Environment {
    /// The option `[scope].name` as resolved for this environment, if it is set.
    pub fn option(&self, scope: &str, name: &str) -> Option<&FieldValue> {
        self.options
            .iter()
            .find(|o| o.scope == scope && o.name == name)
            .map(|o| &o.value)
    }

    /// The list option `[scope].name`, if it is set and is a list.
    pub fn text_list_option(&self, scope: &str, name: &str) -> Option<&[String]> {
        match self.option(scope, name) {
            Some(FieldValue::TextList(list)) => Some(list),
            _ => None,
        }
    }
}
