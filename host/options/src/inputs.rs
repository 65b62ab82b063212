//! The three places options come from, read but not yet checked against any spec: the entries
//! of `remex.toml` with their lines, the `REMEX_*` variables, and the option flags.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use toml::Spanned;

use crate::error::{OptionsError, Source};
use crate::registry::OptionRegistry;
use crate::resolve::{self, Strictness};
use crate::{CONFIG_FILE, Options, find_repo_root};

/// One `key = value` of `remex.toml`.
#[derive(Clone, Debug)]
pub(crate) struct FileEntry {
    pub(crate) scope: String,
    pub(crate) name: String,
    pub(crate) value: toml::Value,
    pub(crate) line: usize,
}

/// One `[scope]` table of `remex.toml`.
#[derive(Clone, Debug)]
pub(crate) struct FileScope {
    pub(crate) name: String,
    pub(crate) line: usize,
}

/// Everything that sets options for one run, read from `remex.toml`, the environment and the
/// command line, and not yet checked against the option specs.
///
/// Checking happens twice: [`Self::bootstrap`] checks the built-in scopes with the built-in
/// specs, so that the local store and plugins can be set up; once plugins have registered
/// their options, [`Self::resolve`] checks everything.
#[derive(Clone, Debug)]
pub struct OptionInputs {
    pub(crate) cwd: PathBuf,
    pub(crate) repo_root: PathBuf,
    pub(crate) config_file: Option<PathBuf>,
    pub(crate) scopes: Vec<FileScope>,
    pub(crate) entries: Vec<FileEntry>,
    pub(crate) variables: Vec<(String, String)>,
    pub(crate) flags: Vec<String>,
}

impl OptionInputs {
    /// Reads `remex.toml` from the repository root above `cwd`, keeps the `REMEX_*` variables
    /// of `variables`, and takes `flags` as given: each `--name`, `--no-name` or
    /// `--name=value`. Fails only when `remex.toml` cannot be read or is not valid TOML.
    pub fn read(
        cwd: &Path,
        variables: impl IntoIterator<Item = (String, String)>,
        flags: impl IntoIterator<Item = String>,
    ) -> Result<Self, OptionsError> {
        let (repo_root, config_file) = find_repo_root(cwd);
        let (scopes, entries) = match &config_file {
            Some(path) => read_file(path)?,
            None => (Vec::new(), Vec::new()),
        };
        let mut variables: Vec<(String, String)> = variables
            .into_iter()
            .filter(|(name, _)| name.starts_with("REMEX_"))
            .collect();
        variables.sort();
        Ok(Self {
            cwd: cwd.to_owned(),
            repo_root,
            config_file,
            scopes,
            entries,
            variables,
            flags: flags.into_iter().collect(),
        })
    }

    /// Inputs that set nothing, for a run in `cwd`: every option at its default. For showing
    /// help when `remex.toml` itself is broken.
    pub fn defaults(cwd: &Path) -> Self {
        let (repo_root, config_file) = find_repo_root(cwd);
        Self {
            cwd: cwd.to_owned(),
            repo_root,
            config_file,
            scopes: Vec::new(),
            entries: Vec::new(),
            variables: Vec::new(),
            flags: Vec::new(),
        }
    }

    /// The repository root: the directory of `remex.toml`, or the working directory.
    pub fn repo_root(&self) -> &Path {
        &self.repo_root
    }

    /// Checks and resolves the built-in options only, leaving any other scope, flag and
    /// variable for [`Self::resolve`]: enough to open the local store and load plugins.
    pub fn bootstrap(&self) -> Result<Options, OptionsError> {
        let registry = OptionRegistry::builtin();
        let (resolved, warnings) = resolve::resolve(self, &registry, Strictness::BuiltinScopes)?;
        Options::build(self, resolved, warnings)
    }

    /// Checks every input against `registry` and resolves the options of the run. Anything
    /// no spec declares is an error.
    pub fn resolve(&self, registry: &OptionRegistry) -> Result<Options, OptionsError> {
        let (resolved, warnings) = resolve::resolve(self, registry, Strictness::All)?;
        Options::build(self, resolved, warnings)
    }

    /// Where a line of `remex.toml` is, for messages.
    pub(crate) fn file_source(line: usize) -> Source {
        Source::File {
            path: PathBuf::from(CONFIG_FILE),
            line,
        }
    }
}

type SpannedTable = BTreeMap<Spanned<String>, Spanned<toml::Value>>;

/// The scope tables and entries of `path`, each with its line, in file order.
fn read_file(path: &Path) -> Result<(Vec<FileScope>, Vec<FileEntry>), OptionsError> {
    let text = std::fs::read_to_string(path).map_err(|error| OptionsError::Read {
        path: path.to_owned(),
        error,
    })?;
    let line_of = |offset: usize| text[..offset.min(text.len())].matches('\n').count() + 1;
    let syntax = |error: toml::de::Error| OptionsError::Syntax {
        at: OptionInputs::file_source(error.span().map_or(1, |span| line_of(span.start))),
        message: error.message().trim_end().to_owned(),
    };

    // Read the top level first: a key outside any table gets its own message.
    let top: SpannedTable = toml::from_str(&text).map_err(syntax)?;
    if let Some((key, value)) = top.iter().find(|(_, v)| !v.get_ref().is_table()) {
        return Err(OptionsError::OutsideScope {
            at: OptionInputs::file_source(line_of(value.span().start)),
            key: key.get_ref().clone(),
        });
    }

    let tables: BTreeMap<Spanned<String>, SpannedTable> = toml::from_str(&text).map_err(syntax)?;
    let mut scopes = Vec::new();
    let mut entries = Vec::new();
    for (scope, table) in tables {
        scopes.push(FileScope {
            name: scope.get_ref().clone(),
            line: line_of(scope.span().start),
        });
        for (name, value) in table {
            entries.push(FileEntry {
                scope: scope.get_ref().clone(),
                name: name.get_ref().clone(),
                line: line_of(name.span().start),
                value: value.into_inner(),
            });
        }
    }
    scopes.sort_by_key(|s| s.line);
    entries.sort_by_key(|e| e.line);
    Ok((scopes, entries))
}
