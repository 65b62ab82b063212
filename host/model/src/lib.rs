//! The plain data that flows between BUILD evaluation, plugins and execution: addresses,
//! targets with typed fields, target kinds as plugins describe them, environments, and the
//! processes a plugin asks for. Nothing here does I/O.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// The name of the environment a target runs in when it names none.
pub const LOCAL_ENVIRONMENT: &str = "__local__";

/// A target's address, `//dir:name`, where `dir` is relative to the repository root (empty for
/// the root itself) and uses `/` as separator.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Address {
    pub dir: String,
    pub name: String,
}

impl Address {
    pub fn new(dir: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            dir: dir.into(),
            name: name.into(),
        }
    }

    /// Parses `//dir:name`, `dir:name`, or `:name` (relative to `current_dir`).
    pub fn parse(text: &str, current_dir: &str) -> Result<Self, AddressError> {
        let bad = |why: &'static str| AddressError {
            text: text.to_owned(),
            why,
        };
        let body = text.strip_prefix("//").unwrap_or(text);
        let (dir, name) = body.split_once(':').ok_or(bad("expected `dir:name`"))?;
        if name.is_empty() || name.contains(['/', ':']) {
            return Err(bad(
                "the name after `:` must be non-empty and contain no `/` or `:`",
            ));
        }
        let dir = if dir.is_empty() && !text.starts_with("//") {
            current_dir
        } else {
            dir.trim_end_matches('/')
        };
        if dir.starts_with('/') || dir.split('/').any(|s| s == ".." || s == ".") {
            return Err(bad("the directory must be relative to the repository root"));
        }
        Ok(Self::new(dir, name))
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "//{}:{}", self.dir, self.name)
    }
}

/// A malformed address.
#[derive(Debug, thiserror::Error)]
#[error("invalid address `{text}`: {why}")]
pub struct AddressError {
    pub text: String,
    pub why: &'static str,
}

/// The value of one field of a target, or of an option.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FieldValue {
    Text(String),
    Integer(i64),
    Boolean(bool),
    TextList(Vec<String>),
}

impl FieldValue {
    pub fn as_text(&self) -> Option<&str> {
        match self {
            Self::Text(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_text_list(&self) -> Option<&[String]> {
        match self {
            Self::TextList(v) => Some(v),
            _ => None,
        }
    }
}

/// The type of a field, as a plugin declares it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldType {
    Text,
    Integer,
    Boolean,
    TextList,
    /// A list of globs relative to the BUILD file's directory, resolved by the host into the
    /// matching files' paths relative to the repository root (a `TextList` value).
    Sources,
}

impl fmt::Display for FieldType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Text => "str",
            Self::Integer => "int",
            Self::Boolean => "bool",
            Self::TextList => "list[str]",
            Self::Sources => "list[glob]",
        })
    }
}

/// One field of a target kind.
#[derive(Clone, Debug, PartialEq)]
pub struct FieldSpec {
    pub name: String,
    pub ty: FieldType,
    pub required: bool,
    pub default: Option<FieldValue>,
    pub help: String,
}

/// A target kind a plugin provides, such as `shell_command`.
#[derive(Clone, Debug, PartialEq)]
pub struct KindSpec {
    pub name: String,
    pub help: String,
    pub fields: Vec<FieldSpec>,
}

/// Fields every target has, whatever its kind; a plugin never declares them.
pub const COMMON_FIELDS: &[&str] = &["name", "dependencies", "environment", "description"];

/// Where something was written: a file relative to the repository root, and a 1-based line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Location {
    pub file: PathBuf,
    pub line: u32,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file.display(), self.line)
    }
}

/// A target recorded from a BUILD file, with its kind's fields checked and defaulted, and
/// `Sources` fields resolved to file paths relative to the repository root.
#[derive(Clone, Debug, PartialEq)]
pub struct Target {
    pub address: Address,
    pub kind: String,
    pub fields: BTreeMap<String, FieldValue>,
    pub dependencies: Vec<Address>,
    pub environment: String,
    pub location: Location,
    /// Files the dependencies (direct and transitive) provide to this target's processes,
    /// relative to the repository root, sorted and unique: their sources, and the output files
    /// their processes declare. Empty as BUILD evaluation records the target; the runner fills
    /// it in before planning.
    pub dependency_inputs: Vec<String>,
}

/// The environment a target is planned and run in, with the options resolved for it.
#[derive(Clone, Debug, PartialEq)]
pub struct Environment {
    pub name: String,
    pub remote: bool,
    pub platform: Vec<(String, String)>,
    /// Options as resolved for this environment, keyed by `(scope, option)`.
    pub options: BTreeMap<(String, String), FieldValue>,
}

impl Environment {
    /// The environment of this machine, with no options resolved.
    pub fn local() -> Self {
        Self {
            name: LOCAL_ENVIRONMENT.to_owned(),
            remote: false,
            platform: Vec::new(),
            options: BTreeMap::new(),
        }
    }
}

/// A process a plugin asks the host to run. It is data: the plugin never runs anything.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Process {
    /// A short human description, such as `run shell_command //app:pack`.
    pub description: String,
    pub argv: Vec<String>,
    pub env: BTreeMap<String, String>,
    /// Files of the repository, relative to its root, placed at the same paths in the input root.
    pub input_files: Vec<String>,
    /// Paths relative to the working directory.
    pub output_files: Vec<String>,
    pub output_directories: Vec<String>,
    /// Relative to the input root; empty for the root itself.
    pub working_directory: String,
    pub timeout: Option<Duration>,
    pub platform: Vec<(String, String)>,
}
