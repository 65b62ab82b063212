//! The errors of BUILD file evaluation.

use std::fmt;
use std::path::{Path, PathBuf};

use remex_model::{FieldType, Location};

/// A BUILD file that cannot be evaluated, or a repository that cannot be read.
///
/// Displays as `examples/BUILD:7: unknown field ...`: the file relative to the repository root,
/// the 1-based line, then the problem.
#[derive(Debug, thiserror::Error)]
pub enum BuildFileError {
    /// A problem written in a BUILD file, at a line of it.
    #[error("{location}: {problem}")]
    Build {
        location: Location,
        problem: Problem,
    },
    /// A file or directory of the repository that cannot be read.
    #[error("{}: cannot read: {source}", path.display())]
    Io {
        /// Relative to the repository root when it is inside it.
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl BuildFileError {
    pub(crate) fn at(location: Location, problem: Problem) -> Self {
        Self::Build { location, problem }
    }

    /// The file to fix, relative to the repository root.
    pub fn file(&self) -> &Path {
        match self {
            Self::Build { location, .. } => &location.file,
            Self::Io { path, .. } => path,
        }
    }

    /// The 1-based line to fix, or `None` when the file could not be read at all.
    pub fn line(&self) -> Option<u32> {
        match self {
            Self::Build { location, .. } => Some(location.line),
            Self::Io { .. } => None,
        }
    }

    /// What is wrong, when the error is in a BUILD file's content.
    pub fn problem(&self) -> Option<&Problem> {
        match self {
            Self::Build { problem, .. } => Some(problem),
            Self::Io { .. } => None,
        }
    }
}

/// What is wrong at a line of a BUILD file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Problem {
    /// The file is not valid Starlark.
    #[error("syntax error: {message}")]
    Syntax { message: String },
    /// A `load()` statement: BUILD files cannot load other files.
    #[error("`load()` is not supported in BUILD files (loading `{module}`)")]
    Load { module: String },
    /// Starlark code that failed while running, such as `fail()` or `1 + "a"`.
    #[error("{message}")]
    Starlark { message: String },
    /// A call of a function that is neither a target kind nor a Starlark builtin.
    #[error(
        "unknown target kind `{name}`{}; known kinds: {}",
        Suggestion(.suggestion),
        Names(.known)
    )]
    UnknownKind {
        name: String,
        suggestion: Option<String>,
        known: Vec<String>,
    },
    /// A keyword argument that is not a field of the kind.
    #[error("unknown field `{field}` for `{kind}`{}", Suggestion(.suggestion))]
    UnknownField {
        field: String,
        kind: String,
        suggestion: Option<String>,
    },
    /// A field whose value has the wrong type.
    #[error("wrong type for field `{field}` of `{kind}`: expected `{expected}`, got {given}")]
    WrongType {
        field: String,
        kind: String,
        expected: FieldType,
        /// The given value's type and a short rendering of it.
        given: String,
    },
    /// A required field that was neither given nor defaulted.
    #[error("missing required field `{field}` for `{kind}`")]
    MissingField { field: String, kind: String },
    /// Target kinds take keyword arguments only.
    #[error("`{kind}` takes keyword arguments only, got {count} positional")]
    PositionalArguments { kind: String, count: usize },
    /// A target name that cannot be part of an address.
    #[error("invalid target name `{name}`: it must be non-empty and contain no `/` or `:`")]
    InvalidName { name: String },
    /// Two targets of one directory with the same name.
    #[error("duplicate target name `{name}`, first declared at {first}")]
    DuplicateTarget { name: String, first: Location },
    /// A dependency that is not an address.
    #[error(transparent)]
    InvalidAddress(#[from] remex_model::AddressError),
    /// A source glob that is malformed or leaves the BUILD file's directory.
    #[error("invalid glob `{glob}` in field `{field}`: {why}")]
    InvalidGlob {
        glob: String,
        field: String,
        why: String,
    },
    /// A source glob that matches no file.
    #[error("glob `{glob}` in field `{field}` matches no files")]
    NoMatchingFiles { glob: String, field: String },
    /// A `__defaults__` call that cannot be applied.
    #[error("{message}")]
    Defaults { message: String },
    /// A dependency on an address no BUILD file declares.
    #[error(
        "`{target}` depends on `{dependency}`, which does not exist{}",
        Suggestion(.suggestion)
    )]
    MissingDependency {
        target: String,
        dependency: String,
        suggestion: Option<String>,
    },
    /// Targets that depend on each other in a loop.
    #[error("dependency cycle: `{}`", .cycle.join("` -> `"))]
    DependencyCycle {
        /// The addresses around the loop, the first repeated at the end.
        cycle: Vec<String>,
    },
}

/// Renders ` (did you mean `x`?)`, or nothing.
struct Suggestion<'a>(&'a Option<String>);

impl fmt::Display for Suggestion<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(name) => write!(f, " (did you mean `{name}`?)"),
            None => Ok(()),
        }
    }
}

/// Renders names as a comma-separated list, each in backticks.
struct Names<'a>(&'a [String]);

impl fmt::Display for Names<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("none");
        }
        for (i, name) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "`{name}`")?;
        }
        Ok(())
    }
}
