//! The table of every known option: built in, or declared by plugins at run time.

use std::collections::BTreeMap;

use remex_model::COMMON_FIELDS;

use crate::builtin;
use crate::environment_kinds::OWN_FIELDS;
use crate::error::RegistryError;
use crate::parse;
use crate::spec::{GLOBAL_SCOPE, OptionKey, OptionSpec, ScopeSpec};

/// Every option remex reads. The parser, `remex help-advanced` and the fields of environment
/// targets are all derived from it, so none of them can know an option the others do not.
#[derive(Clone, Debug)]
pub struct OptionRegistry {
    scopes: Vec<ScopeSpec>,
    /// How many of `scopes` are built in; plugins may not add options to those.
    builtin_scopes: usize,
    specs: Vec<OptionSpec>,
    by_key: BTreeMap<OptionKey, usize>,
    by_flag: BTreeMap<String, usize>,
    by_variable: BTreeMap<String, usize>,
    by_field: BTreeMap<String, usize>,
}

impl OptionRegistry {
    /// The built-in scopes and options.
    pub fn builtin() -> Self {
        let mut registry = Self {
            scopes: Vec::new(),
            builtin_scopes: 0,
            specs: Vec::new(),
            by_key: BTreeMap::new(),
            by_flag: BTreeMap::new(),
            by_variable: BTreeMap::new(),
            by_field: BTreeMap::new(),
        };
        for scope in builtin::scopes() {
            registry.scopes.push(scope);
        }
        for spec in builtin::specs() {
            // The built-in table is checked by this crate's tests; a spec that fails here
            // would fail them, so skipping it cannot reach a user.
            if let Err(error) = registry.insert(spec) {
                debug_assert!(false, "built-in option spec rejected: {error}");
            }
        }
        registry.builtin_scopes = registry.scopes.len();
        registry
    }

    /// Adds a scope for options declared at run time, such as a plugin's.
    pub fn register_scope(&mut self, name: &str, help: &str) -> Result<(), RegistryError> {
        if self.scopes[..self.builtin_scopes]
            .iter()
            .any(|s| s.name == name)
        {
            return Err(RegistryError::BuiltinScope {
                scope: name.to_owned(),
            });
        }
        if self.scope(name).is_some() {
            return Err(RegistryError::DuplicateScope {
                scope: name.to_owned(),
            });
        }
        if !valid_scope_name(name) {
            return Err(RegistryError::InvalidName {
                key: OptionKey::new(name, ""),
            });
        }
        self.scopes.push(ScopeSpec {
            name: name.to_owned(),
            help: help.to_owned(),
        });
        Ok(())
    }

    /// Adds an option declared at run time, in a scope added by [`Self::register_scope`].
    pub fn register(&mut self, spec: OptionSpec) -> Result<(), RegistryError> {
        let builtin = &self.scopes[..self.builtin_scopes];
        if builtin.iter().any(|s| s.name == spec.scope) {
            return Err(RegistryError::BuiltinScope { scope: spec.scope });
        }
        self.insert(spec)
    }

    fn insert(&mut self, spec: OptionSpec) -> Result<(), RegistryError> {
        let key = spec.key();
        check_spec(&spec)?;
        if self.scope(&spec.scope).is_none() {
            return Err(RegistryError::UnknownScope { key });
        }
        if self.by_key.contains_key(&key) {
            return Err(RegistryError::Duplicate { key });
        }
        let flag = key.flag();
        let variable = key.variable();
        let field = spec.environment_aware.then(|| key.field_name());
        self.check_free(&self.by_flag, &flag, &key, "flag")?;
        self.check_free(&self.by_variable, &variable, &key, "variable")?;
        if let Some(field) = &field {
            self.check_free(&self.by_field, field, &key, "field")?;
            check_not_reserved(field, &key)?;
        }

        let index = self.specs.len();
        self.by_flag.insert(flag, index);
        self.by_variable.insert(variable, index);
        if let Some(field) = field {
            self.by_field.insert(field, index);
        }
        self.by_key.insert(key, index);
        self.specs.push(spec);
        Ok(())
    }

    /// Fails when another option already uses `name` in `names`.
    fn check_free(
        &self,
        names: &BTreeMap<String, usize>,
        name: &str,
        key: &OptionKey,
        what: &'static str,
    ) -> Result<(), RegistryError> {
        match names.get(name) {
            Some(&other) => Err(RegistryError::Collision {
                key: key.clone(),
                other: self.specs[other].key().to_string(),
                what,
                name: name.to_owned(),
            }),
            None => Ok(()),
        }
    }

    /// Every option, built-in ones first, in registration order.
    pub fn specs(&self) -> &[OptionSpec] {
        &self.specs
    }

    /// Every scope, built-in ones first.
    pub fn scopes(&self) -> &[ScopeSpec] {
        &self.scopes
    }

    pub fn scope(&self, name: &str) -> Option<&ScopeSpec> {
        self.scopes.iter().find(|s| s.name == name)
    }

    /// Whether `scope` is built into remex rather than declared at run time.
    pub fn is_builtin_scope(&self, scope: &str) -> bool {
        self.scopes[..self.builtin_scopes]
            .iter()
            .any(|s| s.name == scope)
    }

    /// The options of one scope.
    pub fn scope_specs<'a>(&'a self, scope: &'a str) -> impl Iterator<Item = &'a OptionSpec> {
        self.specs.iter().filter(move |s| s.scope == scope)
    }

    pub fn get(&self, scope: &str, name: &str) -> Option<&OptionSpec> {
        let key = OptionKey::new(scope, name);
        self.by_key.get(&key).map(|&i| &self.specs[i])
    }

    /// The option a flag such as `--remote-execution` sets.
    pub fn by_flag(&self, flag: &str) -> Option<&OptionSpec> {
        self.by_flag.get(flag).map(|&i| &self.specs[i])
    }

    /// The option a variable such as `REMEX_REMOTE_EXECUTION` sets.
    pub fn by_variable(&self, variable: &str) -> Option<&OptionSpec> {
        self.by_variable.get(variable).map(|&i| &self.specs[i])
    }

    /// The options environment targets may override, in registration order.
    pub fn environment_aware(&self) -> impl Iterator<Item = &OptionSpec> {
        self.specs.iter().filter(|s| s.environment_aware)
    }

    /// Every flag name, for suggestions.
    pub(crate) fn flags(&self) -> impl Iterator<Item = &str> {
        self.by_flag.keys().map(String::as_str)
    }

    /// Every variable name, for suggestions.
    pub(crate) fn variables(&self) -> impl Iterator<Item = &str> {
        self.by_variable.keys().map(String::as_str)
    }
}

/// Fails when an environment-aware option's field would shadow a field environment targets
/// already have.
fn check_not_reserved(field: &str, key: &OptionKey) -> Result<(), RegistryError> {
    if OWN_FIELDS.contains(&field) || COMMON_FIELDS.contains(&field) {
        return Err(RegistryError::ReservedField {
            key: key.clone(),
            field: field.to_owned(),
        });
    }
    Ok(())
}

/// Checks a spec on its own: its names, its default, and whether it can be a field.
fn check_spec(spec: &OptionSpec) -> Result<(), RegistryError> {
    let key = spec.key();
    if !valid_scope_name(&spec.scope) || !valid_option_name(&spec.name) {
        return Err(RegistryError::InvalidName { key });
    }
    if spec.environment_aware && (spec.scope == GLOBAL_SCOPE || spec.ty.field_type().is_none()) {
        return Err(RegistryError::NotAField {
            key,
            ty: spec.ty.to_string(),
        });
    }
    if let Some(default) = &spec.default {
        parse::check(&spec.ty, default).map_err(|_| RegistryError::BadDefault {
            key,
            default: default.to_string(),
            expected: spec.ty.expected(),
        })?;
    }
    Ok(())
}

/// `GLOBAL`, or lowercase words joined by `-`.
fn valid_scope_name(name: &str) -> bool {
    name == GLOBAL_SCOPE
        || (!name.is_empty()
            && name.split('-').all(|word| {
                word.starts_with(|c: char| c.is_ascii_lowercase())
                    && word
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
            }))
}

/// Lowercase words joined by `_`.
fn valid_option_name(name: &str) -> bool {
    name.starts_with(|c: char| c.is_ascii_lowercase())
        && !name.ends_with('_')
        && !name.contains("__")
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}
