//! Where a value came from, and what can be wrong with options and their specs.

use std::fmt;
use std::path::PathBuf;

use crate::spec::OptionKey;

/// Where an option's value came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// Nothing set it.
    Default,
    /// A line of `remex.toml`, named relative to the repository root.
    File { path: PathBuf, line: usize },
    /// A `REMEX_*` environment variable.
    Variable(String),
    /// A command-line flag.
    Flag(String),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Default => f.write_str("default"),
            Self::File { path, line } => write!(f, "{}:{line}", path.display()),
            Self::Variable(name) => write!(f, "environment variable `{name}`"),
            Self::Flag(name) => write!(f, "flag `{name}`"),
        }
    }
}

/// An option that cannot be used as given: the user's to fix, before any work starts.
///
/// Every variant names where the bad value came from, and the message says what would be valid.
#[derive(Debug, thiserror::Error)]
pub enum OptionsError {
    #[error("cannot read `{path}`: {error}")]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{at}: invalid TOML: {message}")]
    Syntax { at: Source, message: String },
    #[error("{at}: `{key}` must be inside a scope table, such as `[GLOBAL]`")]
    OutsideScope { at: Source, key: String },
    #[error("{at}: unknown scope `[{scope}]`{hint}")]
    UnknownScope {
        at: Source,
        scope: String,
        /// `; did you mean ...` or the list of known scopes.
        hint: String,
    },
    #[error("{at}: unknown option `{option}`{hint}")]
    UnknownOption {
        at: Source,
        /// As written: `[scope].name`, `REMEX_NAME` or `--name`.
        option: String,
        hint: String,
    },
    #[error("{at}: `{key}` must be {wanted}")]
    InvalidValue {
        at: Source,
        key: OptionKey,
        /// What a valid value is, and what was found instead.
        wanted: String,
    },
    #[error("{at}: `{key}` names the file `{path}`, which cannot be read: {error}")]
    ReadSecret {
        at: Source,
        key: OptionKey,
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{at}: {message}")]
    Conflict { at: Source, message: String },
}

impl OptionsError {
    /// `key`, from `at`, must be `expected` but is `found`.
    pub(crate) fn invalid(at: Source, key: OptionKey, expected: &str, found: &str) -> Self {
        Self::InvalidValue {
            at,
            key,
            wanted: format!("{expected}, not {found}"),
        }
    }
}

/// An option spec that cannot be registered: two options that would share a name, or a spec
/// that contradicts itself. Plugin specs fail here, naming the option.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error(
        "option `{key}` has an invalid name: scopes are lowercase words joined by `-`, options \
         lowercase words joined by `_`"
    )]
    InvalidName { key: OptionKey },
    #[error("scope `[{scope}]` is built into remex; plugins declare options in their own scopes")]
    BuiltinScope { scope: String },
    #[error("option `{key}` is in scope `[{}]`, which is not registered", key.scope)]
    UnknownScope { key: OptionKey },
    #[error("scope `[{scope}]` is registered twice")]
    DuplicateScope { scope: String },
    #[error("option `{key}` is registered twice")]
    Duplicate { key: OptionKey },
    #[error("options `{key}` and `{other}` would both be set by {what} `{name}`")]
    Collision {
        key: OptionKey,
        /// The option that has the name already, as `[scope].name`.
        other: String,
        what: &'static str,
        name: String,
    },
    #[error("option `{key}` would add field `{field}`, which environment targets already have")]
    ReservedField { key: OptionKey, field: String },
    #[error(
        "option `{key}` cannot be environment-aware: a `{ty}` cannot be an environment target \
         field"
    )]
    NotAField { key: OptionKey, ty: String },
    #[error("option `{key}` has default `{default}`, which is not {expected}")]
    BadDefault {
        key: OptionKey,
        default: String,
        expected: String,
    },
}
