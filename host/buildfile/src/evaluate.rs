//! One BUILD file evaluated with Starlark, and Starlark's errors turned into ours.

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::PathBuf;
use std::rc::Rc;

use remex_model::{Location, Target};
use starlark::ErrorKind;
use starlark::environment::{Globals, GlobalsBuilder, Module};
use starlark::eval::Evaluator;
use starlark::syntax::{AstModule, Dialect};

use crate::builtin::{Builtin, DEFAULTS_FUNCTION, FileContext};
use crate::defaults::Defaults;
use crate::error::{BuildFileError, Problem};
use crate::files::RepoFiles;
use crate::kinds::KindTable;
use crate::sources::SourceResolver;
use crate::suggest::closest;

/// What every BUILD file of one repository is evaluated with.
pub(crate) struct Evaluation<'r> {
    pub(crate) kinds: KindTable,
    pub(crate) sources: SourceResolver<'r>,
    globals: Globals,
}

/// What the BUILD files of one directory have declared so far.
pub(crate) struct DirectoryState {
    pub(crate) dir: String,
    /// The parents' defaults, with this directory's own laid over them once it sets some.
    pub(crate) defaults: Rc<Defaults>,
    /// Where this directory called `__defaults__`, if it did.
    pub(crate) defaults_call: Option<Location>,
    pub(crate) targets: Vec<Target>,
    /// Where each target name was first declared.
    pub(crate) names: HashMap<String, Location>,
}

impl DirectoryState {
    /// A directory with no targets yet, under the defaults of its parents.
    pub(crate) fn new(dir: &str, inherited: Rc<Defaults>) -> Self {
        Self {
            dir: dir.to_owned(),
            defaults: inherited,
            defaults_call: None,
            targets: Vec::new(),
            names: HashMap::new(),
        }
    }

    /// The targets declared, and the defaults for the directories below.
    pub(crate) fn finish(self) -> (Vec<Target>, Rc<Defaults>) {
        (self.targets, self.defaults)
    }
}

impl<'r> Evaluation<'r> {
    pub(crate) fn new(kinds: KindTable, files: &'r RepoFiles) -> Self {
        let globals = globals(&kinds);
        Self {
            kinds,
            sources: SourceResolver::new(files),
            globals,
        }
    }

    /// Evaluates one BUILD file, at `path` relative to the repository root, recording its
    /// targets into `state`.
    pub(crate) fn evaluate_file(
        &self,
        path: &str,
        source: String,
        state: &RefCell<DirectoryState>,
    ) -> Result<(), BuildFileError> {
        let ast = AstModule::parse(path, source, &Dialect::Extended)
            .map_err(|err| self.starlark_error(path, err))?;
        reject_loads(path, &ast)?;
        let module = Module::new();
        let context = FileContext {
            evaluation: self,
            file: path,
            state,
            error: RefCell::new(None),
        };
        let result = {
            let mut eval = Evaluator::new(&module);
            eval.extra = Some(&context);
            eval.eval_module(ast, &self.globals).map(|_| ())
        };
        // A failed call stored the precise error; what Starlark carried up is a stand-in.
        if let Some(err) = context.error.take() {
            return Err(err);
        }
        result.map_err(|err| self.starlark_error(path, err))
    }

    /// Turns an error Starlark raised into one with file and line.
    fn starlark_error(&self, file: &str, err: starlark::Error) -> BuildFileError {
        let line = error_line(&err);
        let problem = match err.kind() {
            ErrorKind::Parser(inner) => {
                let message = lowercase_first(&inner.to_string());
                // Our prefix already says so.
                let message = message.strip_prefix("parse error: ").unwrap_or(&message);
                Problem::Syntax {
                    message: message.to_owned(),
                }
            }
            ErrorKind::Scope(_) => self.unknown_kind(&err).unwrap_or_else(|| plain(&err)),
            _ => plain(&err),
        };
        BuildFileError::at(location(file, line), problem)
    }

    /// An undefined name that is called, as in `pyhton_sources(...)`, is taken for a
    /// misspelled or missing target kind.
    fn unknown_kind(&self, err: &starlark::Error) -> Option<Problem> {
        let span = err.span()?;
        let name = span.source_span();
        let end = span.span.end().get() as usize;
        let after = span.file.source().get(end..).unwrap_or_default();
        let is_identifier =
            !name.is_empty() && name.chars().all(|c| c.is_alphanumeric() || c == '_');
        if !is_identifier || !after.trim_start().starts_with('(') {
            return None;
        }
        let known = self.kinds.sorted_names();
        Some(Problem::UnknownKind {
            name: name.to_owned(),
            suggestion: closest(name, known.iter().map(String::as_str)),
            known,
        })
    }
}

/// BUILD files are self-contained; Starlark's own message for `load()` would name its
/// internals.
fn reject_loads(path: &str, ast: &AstModule) -> Result<(), BuildFileError> {
    match ast.loads().first() {
        Some(load) => {
            let line = one_based(load.span.resolve_span().begin.line);
            let problem = Problem::Load {
                module: load.module_id.to_owned(),
            };
            Err(BuildFileError::at(location(path, line), problem))
        }
        None => Ok(()),
    }
}

/// The standard Starlark globals, each kind, and `__defaults__`.
fn globals(kinds: &KindTable) -> Globals {
    let mut builder = GlobalsBuilder::standard();
    for (index, kind) in kinds.iter() {
        let function = Builtin::Kind {
            index,
            name: kind.name.clone(),
        };
        builder.set(&kind.name, function);
    }
    builder.set(DEFAULTS_FUNCTION, Builtin::Defaults);
    builder.build()
}

/// The 1-based line Starlark blames for an error: the error's own span, else the innermost
/// frame that has a location.
fn error_line(err: &starlark::Error) -> u32 {
    let span = err.span().cloned().or_else(|| {
        let frames = &err.call_stack().frames;
        frames.iter().rev().find_map(|frame| frame.location.clone())
    });
    span.map_or(1, |span| one_based(span.resolve_span().begin.line))
}

pub(crate) fn one_based(line: usize) -> u32 {
    u32::try_from(line + 1).unwrap_or(u32::MAX)
}

pub(crate) fn location(file: &str, line: u32) -> Location {
    Location {
        file: PathBuf::from(file),
        line,
    }
}

/// A Starlark error without its source excerpt, which the file and line replace.
fn plain(err: &starlark::Error) -> Problem {
    Problem::Starlark {
        message: lowercase_first(&err.without_diagnostic().to_string()),
    }
}

/// Starlark capitalizes its messages; the house style does not.
pub(crate) fn lowercase_first(message: &str) -> String {
    let mut chars = message.chars();
    match (chars.next(), chars.next()) {
        (Some(first), Some(second)) if first.is_uppercase() && !second.is_uppercase() => {
            first.to_lowercase().chain([second]).chain(chars).collect()
        }
        _ => message.to_owned(),
    }
}
