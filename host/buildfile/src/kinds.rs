//! The target kinds callable from BUILD files, each with the fields every target has.

use std::collections::HashMap;

use remex_model::{COMMON_FIELDS, FieldSpec, FieldType, FieldValue, KindSpec, LOCAL_ENVIRONMENT};

/// A target kind with its full field list: the common fields first, then the kind's own.
pub(crate) struct Kind {
    pub(crate) name: String,
    pub(crate) fields: Vec<FieldSpec>,
}

impl Kind {
    /// A field by name.
    pub(crate) fn field(&self, name: &str) -> Option<&FieldSpec> {
        self.fields.iter().find(|field| field.name == name)
    }

    /// The names of all fields, for suggestions.
    pub(crate) fn field_names(&self) -> impl Iterator<Item = &str> {
        self.fields.iter().map(|field| field.name.as_str())
    }
}

/// The kinds known to one evaluation, looked up by name or by index.
pub(crate) struct KindTable {
    kinds: Vec<Kind>,
    by_name: HashMap<String, usize>,
}

impl KindTable {
    /// A kind's own field named like a common field is ignored: the common field's meaning
    /// is fixed, whatever a plugin declares.
    pub(crate) fn new(specs: &[KindSpec]) -> Self {
        let kinds: Vec<Kind> = specs.iter().map(kind_with_common_fields).collect();
        let by_name = kinds
            .iter()
            .enumerate()
            .map(|(index, kind)| (kind.name.clone(), index))
            .collect();
        Self { kinds, by_name }
    }

    pub(crate) fn get(&self, index: usize) -> &Kind {
        &self.kinds[index]
    }

    pub(crate) fn index_of(&self, name: &str) -> Option<usize> {
        self.by_name.get(name).copied()
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (usize, &Kind)> {
        self.kinds.iter().enumerate()
    }

    /// All kind names, sorted, for error messages.
    pub(crate) fn sorted_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.kinds.iter().map(|kind| kind.name.clone()).collect();
        names.sort();
        names
    }
}

fn kind_with_common_fields(spec: &KindSpec) -> Kind {
    let own = spec
        .fields
        .iter()
        .filter(|field| !COMMON_FIELDS.contains(&field.name.as_str()))
        .cloned();
    Kind {
        name: spec.name.clone(),
        fields: common_fields().into_iter().chain(own).collect(),
    }
}

/// The fields of [`COMMON_FIELDS`], typed.
fn common_fields() -> Vec<FieldSpec> {
    let field = |name: &str, ty, required, default, help: &str| FieldSpec {
        name: name.to_owned(),
        ty,
        required,
        default,
        help: help.to_owned(),
    };
    vec![
        field("name", FieldType::Text, true, None, "the target's name"),
        field(
            "dependencies",
            FieldType::TextList,
            false,
            Some(FieldValue::TextList(Vec::new())),
            "addresses of the targets this one depends on",
        ),
        field(
            "environment",
            FieldType::Text,
            false,
            Some(FieldValue::Text(LOCAL_ENVIRONMENT.to_owned())),
            "the environment the target's processes run in",
        ),
        field("description", FieldType::Text, false, None, "a description"),
    ]
}
