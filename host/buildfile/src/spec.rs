//! Target specs from the command line: `//dir:name`, `dir:name`, `dir`, `dir::` and `::`.

use std::collections::BTreeMap;
use std::fmt;

use remex_model::{Address, Target};

/// Which targets a command-line argument means.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum TargetSpec {
    /// One target: `//dir:name` or `dir:name`.
    Address(Address),
    /// The targets declared in one directory, not below it: `dir` (empty for the root).
    Directory(String),
    /// The targets in a directory and every directory below it: `dir::`, or `::` for all.
    Recursive(String),
}

/// A spec that cannot be parsed, or that matches no target.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("invalid target spec `{text}`: {why}")]
    Invalid { text: String, why: String },
    #[error("no targets match `{spec}`")]
    NoMatch { spec: TargetSpec },
}

impl TargetSpec {
    /// Parses a spec. A leading `//` is allowed on every form, and so is a leading `./` or a
    /// trailing `/` on a directory, as a shell's completion writes them.
    pub fn parse(text: &str) -> Result<Self, SpecError> {
        let invalid = |why: &str| SpecError::Invalid {
            text: text.to_owned(),
            why: why.to_owned(),
        };
        let body = text.strip_prefix("//").unwrap_or(text);
        let body = body.strip_prefix("./").unwrap_or(body);
        if text.is_empty() {
            return Err(invalid("it is empty"));
        }
        if let Some(dir) = body.strip_suffix("::") {
            return check_dir(dir).map(Self::Recursive).map_err(invalid);
        }
        if body.contains(':') {
            let address = Address::parse(body, "").map_err(|err| invalid(err.why))?;
            check_dir(&address.dir).map_err(invalid)?;
            return Ok(Self::Address(address));
        }
        check_dir(body).map(Self::Directory).map_err(invalid)
    }

    fn matches(&self, target: &Target) -> bool {
        let dir = target.address.dir.as_str();
        match self {
            Self::Address(address) => target.address == *address,
            Self::Directory(spec_dir) => dir == spec_dir,
            Self::Recursive(spec_dir) => is_within(dir, spec_dir),
        }
    }
}

impl fmt::Display for TargetSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Address(address) => write!(f, "{address}"),
            Self::Directory(dir) if dir.is_empty() => f.write_str("//"),
            Self::Directory(dir) => f.write_str(dir),
            Self::Recursive(dir) => write!(f, "{dir}::"),
        }
    }
}

/// The targets matched by `specs`, in address order, each once. A spec that matches nothing
/// is an error naming it, so that a typo never silently selects less.
pub fn select<'a>(
    targets: &'a [Target],
    specs: &[TargetSpec],
) -> Result<Vec<&'a Target>, SpecError> {
    let mut selected = BTreeMap::new();
    for spec in specs {
        let mut matched = false;
        for target in targets.iter().filter(|target| spec.matches(target)) {
            matched = true;
            selected.entry(&target.address).or_insert(target);
        }
        if !matched {
            return Err(SpecError::NoMatch { spec: spec.clone() });
        }
    }
    Ok(selected.into_values().collect())
}

/// Normalizes a spec's directory: no trailing `/`, nothing that leaves the repository.
fn check_dir(dir: &str) -> Result<String, &'static str> {
    let dir = dir.strip_suffix('/').unwrap_or(dir);
    if dir.is_empty() {
        return Ok(String::new());
    }
    if dir.starts_with('/') {
        return Err("the directory must be relative to the repository root");
    }
    if dir.contains(':') {
        return Err("expected `dir:name`, `dir` or `dir::`");
    }
    if dir
        .split('/')
        .any(|part| part.is_empty() || part == "." || part == "..")
    {
        return Err("the directory must not contain empty, `.` or `..` components");
    }
    Ok(dir.to_owned())
}

/// Whether `dir` is `ancestor` or below it.
fn is_within(dir: &str, ancestor: &str) -> bool {
    ancestor.is_empty()
        || dir
            .strip_prefix(ancestor)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

#[cfg(test)]
#[path = "spec_tests.rs"]
mod tests;
