//! Which environment each target runs in, and the options as resolved there.
//!
//! A target's `environment` field names an entry of `[environments-preview].names`, or
//! `__local__`. A `remote_environment` is used when `[GLOBAL].remote_execution` is on and a
//! `local_environment` when this machine is one of its `compatible_platforms`; otherwise its
//! `fallback_environment` is tried, and so on. With no names at all, every target runs in one
//! implicit environment: remote when `remote_execution` is on, with the platform properties of
//! `remote_execution_extra_platform_properties`.
//!
//! Environment-aware options resolve per environment: the environment target's
//! `<scope>_<option>` field wins over the option's value from `remex.toml`, variables or flags,
//! which wins over its default. `<PATH>` entries stay as written: they stand for the `PATH` of
//! the environment where the process runs, never this machine's.

use std::collections::BTreeMap;

use remex_model::{Address, Environment, FieldValue, LOCAL_ENVIRONMENT, Location, Target};

use crate::builtin::{ENVIRONMENTS_SCOPE, is_host_scope};
use crate::environment_kinds::{
    LOCAL_ENVIRONMENT_KIND, PLATFORMS, REMOTE_ENVIRONMENT_KIND, is_environment_kind,
};
use crate::error::Source;
use crate::options::Options;
use crate::parse::{self, split_key_value};
use crate::registry::OptionRegistry;
use crate::spec::{GLOBAL_SCOPE, OptionSpec, OptionValue, quoted_list};
use crate::suggest::closest;

/// An environment as resolved for the targets that run in it.
#[derive(Clone, Debug, PartialEq)]
pub struct ResolvedEnvironment {
    /// What plugins and execution see. Its name is the one finally used, after any fallback.
    pub environment: Environment,
    /// The environment target; `None` for the implicit local environment.
    pub target: Option<Address>,
    /// The remote workers' platform, such as `linux_x86_64`; `None` when local.
    pub platform: Option<String>,
    /// Whether binary discovery may be cached across runs (`remote_environment` only).
    pub cache_binary_discovery: bool,
    /// The names tried, the one asked for first and the one used last.
    pub chain: Vec<String>,
}

/// Why a target has no environment to run in. The user's to fix.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct EnvironmentError(Box<EnvironmentProblem>);

impl EnvironmentError {
    /// What exactly is wrong.
    pub fn problem(&self) -> &EnvironmentProblem {
        &self.0
    }
}

impl From<EnvironmentProblem> for EnvironmentError {
    fn from(problem: EnvironmentProblem) -> Self {
        Self(Box::new(problem))
    }
}

/// The kinds of [`EnvironmentError`], each naming the file and line to fix.
#[derive(Debug, thiserror::Error)]
pub enum EnvironmentProblem {
    #[error("{location}: `{target}` sets `{field} = \"{name}\"`, but {why}")]
    UnknownName {
        location: Location,
        target: Address,
        field: &'static str,
        name: String,
        why: String,
    },
    #[error("{at}: `[{ENVIRONMENTS_SCOPE}].names` maps `{name}` to `{address}`, {why}")]
    BadTarget {
        at: Source,
        name: String,
        address: Address,
        why: String,
    },
    #[error("{location}: field `{field}` of `{target}` must be {expected}, not {found}")]
    InvalidField {
        location: Location,
        target: Address,
        field: String,
        expected: String,
        found: String,
    },
    #[error("{location}: no usable environment for `{target}`: {chain}")]
    NoUsable {
        location: Location,
        target: Address,
        chain: String,
    },
    #[error("{location}: the fallbacks of `{target}`'s environment form a cycle: {chain}")]
    Cycle {
        location: Location,
        target: Address,
        chain: String,
    },
}

/// The environment of every target, resolved once before any work starts.
#[derive(Clone, Debug, PartialEq)]
pub struct Environments {
    /// By the name targets ask for.
    by_name: BTreeMap<String, ResolvedEnvironment>,
}

impl Environments {
    /// Resolves the environment of every target in `targets` that is not itself an
    /// environment. `host_platform` is this machine's, as [`crate::host_platform`] gives it.
    pub fn resolve(
        options: &Options,
        registry: &OptionRegistry,
        targets: &[Target],
        host_platform: &str,
    ) -> Result<Self, EnvironmentError> {
        let resolver = Resolver::new(options, registry, targets, host_platform)?;
        let mut by_name = BTreeMap::new();
        for target in targets.iter().filter(|t| !is_environment_kind(&t.kind)) {
            if !by_name.contains_key(&target.environment) {
                let resolved = resolver.for_target(target)?;
                by_name.insert(target.environment.clone(), resolved);
            }
        }
        Ok(Self { by_name })
    }

    /// The environment `target` runs in, if `target` was among those resolved.
    pub fn for_target(&self, target: &Target) -> Option<&ResolvedEnvironment> {
        self.by_name.get(&target.environment)
    }

    /// The environment used when a target asks for `name`.
    pub fn get(&self, name: &str) -> Option<&ResolvedEnvironment> {
        self.by_name.get(name)
    }
}

/// One step of a fallback chain that could not be used, and why.
struct Unusable {
    name: String,
    why: String,
    fallback: Option<String>,
    target: Address,
    location: Location,
}

struct Resolver<'a> {
    options: &'a Options,
    registry: &'a OptionRegistry,
    host_platform: &'a str,
    /// Short name → environment target.
    named: BTreeMap<&'a str, &'a Target>,
}

impl<'a> Resolver<'a> {
    /// Checks that each name maps to an environment target.
    fn new(
        options: &'a Options,
        registry: &'a OptionRegistry,
        targets: &'a [Target],
        host_platform: &'a str,
    ) -> Result<Self, EnvironmentError> {
        let by_address: BTreeMap<&Address, &Target> =
            targets.iter().map(|t| (&t.address, t)).collect();
        let mut named = BTreeMap::new();
        for (name, address) in &options.environments.names {
            let bad = |why: String| {
                EnvironmentError::from(EnvironmentProblem::BadTarget {
                    at: options.resolved.source(ENVIRONMENTS_SCOPE, "names"),
                    name: name.clone(),
                    address: address.clone(),
                    why,
                })
            };
            let target = *by_address
                .get(address)
                .ok_or_else(|| bad("but no BUILD file defines that target".into()))?;
            if !is_environment_kind(&target.kind) {
                return Err(bad(format!(
                    "a `{}` ({}), not a `{LOCAL_ENVIRONMENT_KIND}` or `{REMOTE_ENVIRONMENT_KIND}`",
                    target.kind, target.location
                )));
            }
            named.insert(name.as_str(), target);
        }
        Ok(Self {
            options,
            registry,
            host_platform,
            named,
        })
    }

    fn for_target(&self, target: &Target) -> Result<ResolvedEnvironment, EnvironmentError> {
        if self.named.is_empty() {
            return self.implicit(target);
        }
        let mut chain: Vec<String> = Vec::new();
        let mut unusable: Vec<Unusable> = Vec::new();
        let mut current = target.environment.clone();
        loop {
            if chain.contains(&current) {
                chain.push(current);
                return Err(EnvironmentProblem::Cycle {
                    location: target.location.clone(),
                    target: target.address.clone(),
                    chain: render_chain(&chain),
                }
                .into());
            }
            chain.push(current.clone());
            let step = match self.try_name(&current, target, unusable.last())? {
                Ok(mut resolved) => {
                    resolved.chain = chain;
                    return Ok(resolved);
                }
                Err(step) => step,
            };
            match step.fallback.clone() {
                Some(next) => current = next,
                None => {
                    unusable.push(step);
                    return Err(no_usable(target, &unusable));
                }
            }
            unusable.push(step);
        }
    }

    /// The environment `name` if it can be used; otherwise why not and its fallback. `asker`
    /// is the environment whose fallback `name` is, for messages.
    fn try_name(
        &self,
        name: &str,
        target: &Target,
        asker: Option<&Unusable>,
    ) -> Result<Result<ResolvedEnvironment, Unusable>, EnvironmentError> {
        if name == LOCAL_ENVIRONMENT {
            return Ok(Ok(self.local_default()));
        }
        let Some(&environment) = self.named.get(name) else {
            return Err(self.unknown_name(name, target, asker));
        };
        let fallback = text_field(environment, "fallback_environment");
        let unusable = |why: String| Unusable {
            name: name.to_owned(),
            why,
            fallback: fallback.clone(),
            target: environment.address.clone(),
            location: environment.location.clone(),
        };
        if environment.kind == REMOTE_ENVIRONMENT_KIND {
            if !self.options.global.remote_execution {
                let at = self
                    .options
                    .resolved
                    .source(GLOBAL_SCOPE, "remote_execution");
                return Ok(Err(unusable(format!(
                    "`{name}` is remote and `[GLOBAL].remote_execution` is off ({at})"
                ))));
            }
            return self.remote(name, environment).map(Ok);
        }
        let platforms = self.compatible_platforms(environment)?;
        if !platforms.iter().any(|p| p == self.host_platform) {
            return Ok(Err(unusable(format!(
                "`{name}` is local for {} only, and this machine is `{}`",
                quoted_list(&platforms),
                self.host_platform
            ))));
        }
        self.local(name, environment).map(Ok)
    }

    /// With no names defined: one environment for every target, remote when
    /// `remote_execution` is on.
    fn implicit(&self, target: &Target) -> Result<ResolvedEnvironment, EnvironmentError> {
        if target.environment != LOCAL_ENVIRONMENT {
            return Err(self.unknown_name(&target.environment, target, None));
        }
        let global = &self.options.global;
        let mut resolved = self.local_default();
        if global.remote_execution {
            resolved.environment.remote = true;
            resolved.environment.platform =
                global.remote_execution_extra_platform_properties.clone();
        }
        Ok(resolved)
    }

    /// `__local__`: the first named `local_environment` this machine is compatible with, or
    /// else this machine with the options as set.
    fn local_default(&self) -> ResolvedEnvironment {
        let compatible = self.named.iter().find(|(_, t)| {
            t.kind == LOCAL_ENVIRONMENT_KIND
                && self
                    .compatible_platforms(t)
                    .is_ok_and(|p| p.iter().any(|p| p == self.host_platform))
        });
        if let Some((name, target)) = compatible
            && let Ok(resolved) = self.local(name, target)
        {
            return resolved;
        }
        ResolvedEnvironment {
            environment: Environment {
                options: self.option_values(None),
                ..Environment::local()
            },
            target: None,
            platform: None,
            cache_binary_discovery: false,
            chain: vec![LOCAL_ENVIRONMENT.to_owned()],
        }
    }

    fn local(&self, name: &str, target: &Target) -> Result<ResolvedEnvironment, EnvironmentError> {
        Ok(ResolvedEnvironment {
            environment: Environment {
                name: name.to_owned(),
                remote: false,
                platform: Vec::new(),
                options: self.overridden_options(target)?,
            },
            target: Some(target.address.clone()),
            platform: None,
            cache_binary_discovery: false,
            chain: vec![name.to_owned()],
        })
    }

    fn remote(&self, name: &str, target: &Target) -> Result<ResolvedEnvironment, EnvironmentError> {
        let platform = text_field(target, "platform").unwrap_or_else(|| "linux_x86_64".into());
        if !PLATFORMS.contains(&platform.as_str()) {
            return Err(invalid_field(
                target,
                "platform",
                &platforms_expected(),
                &platform,
            ));
        }
        let properties = platform_properties(target)?;
        let cache_binary_discovery = matches!(
            target.fields.get("cache_binary_discovery"),
            Some(FieldValue::Boolean(true))
        );
        Ok(ResolvedEnvironment {
            environment: Environment {
                name: name.to_owned(),
                remote: true,
                platform: properties,
                options: self.overridden_options(target)?,
            },
            target: Some(target.address.clone()),
            platform: Some(platform),
            cache_binary_discovery,
            chain: vec![name.to_owned()],
        })
    }

    fn compatible_platforms(&self, target: &Target) -> Result<Vec<String>, EnvironmentError> {
        let platforms = match target.fields.get("compatible_platforms") {
            Some(FieldValue::TextList(list)) => list.clone(),
            _ => PLATFORMS.map(str::to_owned).to_vec(),
        };
        match platforms.iter().find(|p| !PLATFORMS.contains(&p.as_str())) {
            Some(bad) => Err(invalid_field(
                target,
                "compatible_platforms",
                &platforms_expected(),
                bad,
            )),
            None => Ok(platforms),
        }
    }

    /// The options passed to plugins, with the environment target's overrides checked against
    /// their options' types.
    fn overridden_options(
        &self,
        target: &Target,
    ) -> Result<BTreeMap<(String, String), FieldValue>, EnvironmentError> {
        for spec in self.registry.environment_aware() {
            let field = spec.key().field_name();
            if let Some(value) = target.fields.get(&field) {
                parse::check(&spec.ty, &OptionValue::from_field_value(value))
                    .map_err(|found| invalid_field(target, &field, &spec.ty.expected(), &found))?;
            }
        }
        Ok(self.option_values(Some(target)))
    }

    /// Every option plugins may read, each from the environment target's field when it
    /// overrides the option there, else from the options. Host-only scopes are left out.
    fn option_values(&self, target: Option<&Target>) -> BTreeMap<(String, String), FieldValue> {
        let passed = self
            .registry
            .specs()
            .iter()
            .filter(|s| passed_to_plugins(s));
        passed
            .filter_map(|spec| {
                let key = spec.key();
                let field = spec.environment_aware.then(|| key.field_name());
                let overridden = target
                    .zip(field)
                    .and_then(|(t, f)| t.fields.get(&f).cloned());
                let value = overridden.or_else(|| {
                    let value = self.options.resolved.value(&key.scope, &key.name)?;
                    value.to_field_value()
                })?;
                Some(((key.scope, key.name), value))
            })
            .collect()
    }

    fn unknown_name(
        &self,
        name: &str,
        target: &Target,
        asker: Option<&Unusable>,
    ) -> EnvironmentError {
        let names = self.named.keys().copied();
        let why = if self.named.is_empty() {
            format!(
                "`[{ENVIRONMENTS_SCOPE}].names` in remex.toml defines no environments: add \
                 `{name}` there, or remove the field to use `{LOCAL_ENVIRONMENT}`"
            )
        } else {
            let hint = match closest(name, names.clone().chain([LOCAL_ENVIRONMENT])) {
                Some(near) => format!("did you mean `{near}`?"),
                None => {
                    let all: Vec<String> = names.map(str::to_owned).collect();
                    format!("it defines {} and `{LOCAL_ENVIRONMENT}`", quoted_list(&all))
                }
            };
            format!("`[{ENVIRONMENTS_SCOPE}].names` does not define it; {hint}")
        };
        let (location, address, field) = match asker {
            Some(step) => (
                step.location.clone(),
                step.target.clone(),
                "fallback_environment",
            ),
            None => (
                target.location.clone(),
                target.address.clone(),
                "environment",
            ),
        };
        EnvironmentProblem::UnknownName {
            location,
            target: address,
            field,
            name: name.to_owned(),
            why,
        }
        .into()
    }
}

/// Options of the scopes only the host reads stay out of what plugins see.
fn passed_to_plugins(spec: &OptionSpec) -> bool {
    !is_host_scope(&spec.scope)
}

fn text_field(target: &Target, name: &str) -> Option<String> {
    target
        .fields
        .get(name)
        .and_then(|v| v.as_text())
        .map(str::to_owned)
}

fn platform_properties(target: &Target) -> Result<Vec<(String, String)>, EnvironmentError> {
    let field = "extra_platform_properties";
    let items = target
        .fields
        .get(field)
        .and_then(|v| v.as_text_list())
        .unwrap_or_default();
    items
        .iter()
        .map(|item| {
            let (key, value) = split_key_value(item).ok_or_else(|| {
                invalid_field(
                    target,
                    field,
                    "a list of `key=value` strings",
                    &format!("`{item}`"),
                )
            })?;
            Ok((key.trim().to_owned(), value.trim().to_owned()))
        })
        .collect()
}

fn platforms_expected() -> String {
    let all = PLATFORMS.map(str::to_owned);
    format!("one of {}", quoted_list(&all))
}

fn invalid_field(target: &Target, field: &str, expected: &str, found: &str) -> EnvironmentError {
    let found = if found.starts_with('`') {
        found.to_owned()
    } else {
        format!("`{found}`")
    };
    EnvironmentProblem::InvalidField {
        location: target.location.clone(),
        target: target.address.clone(),
        field: field.to_owned(),
        expected: expected.to_owned(),
        found,
    }
    .into()
}

fn render_chain(chain: &[String]) -> String {
    let quoted: Vec<String> = chain.iter().map(|n| format!("`{n}`")).collect();
    quoted.join(" → ")
}

/// Every step tried and why it could not be used, ending with what to change.
fn no_usable(target: &Target, steps: &[Unusable]) -> EnvironmentError {
    let reasons: Vec<&str> = steps.iter().map(|s| s.why.as_str()).collect();
    let last = steps.last().map_or(String::new(), |s| {
        format!(
            "; give `{}` ({}) a `fallback_environment` that can be used here",
            s.name, s.location
        )
    });
    EnvironmentProblem::NoUsable {
        location: target.location.clone(),
        target: target.address.clone(),
        chain: format!("{}{last}", reasons.join(", then ")),
    }
    .into()
}
