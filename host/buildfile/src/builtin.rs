//! The functions BUILD files call: one per target kind, and `__defaults__`. Each records into
//! the state of the directory whose file is being evaluated, reached through
//! [`Evaluator::extra`].

use std::cell::RefCell;
use std::fmt;
use std::rc::Rc;

use allocative::Allocative;
use remex_model::Location;
use starlark::eval::{Arguments, Evaluator};
use starlark::starlark_simple_value;
use starlark::values::{NoSerialize, ProvidesStaticType, StarlarkValue, Value, starlark_value};

use crate::defaults::parse_defaults;
use crate::error::{BuildFileError, Problem};
use crate::evaluate::{DirectoryState, Evaluation, location, lowercase_first, one_based};
use crate::target::{Declaration, build_target};

/// The name under which `__defaults__` is callable.
pub(crate) const DEFAULTS_FUNCTION: &str = "__defaults__";

/// The state a builtin reaches through [`Evaluator::extra`] while one file is evaluated.
#[derive(ProvidesStaticType)]
pub(crate) struct FileContext<'a> {
    pub(crate) evaluation: &'a Evaluation<'a>,
    pub(crate) file: &'a str,
    pub(crate) state: &'a RefCell<DirectoryState>,
    /// The first failure of a builtin, kept whole because Starlark would flatten it.
    pub(crate) error: RefCell<Option<BuildFileError>>,
}

impl FileContext<'_> {
    /// Records the target declared by a call of kind `kind`.
    fn declare_target(
        &self,
        kind: usize,
        arguments: &[(&str, Value)],
        location: Location,
    ) -> Result<(), Problem> {
        let mut state = self.state.borrow_mut();
        let declaration = Declaration {
            kinds: &self.evaluation.kinds,
            sources: &self.evaluation.sources,
            defaults: &state.defaults,
            dir: &state.dir,
            location: location.clone(),
        };
        let target = build_target(declaration, kind, arguments)?;
        let name = target.address.name.clone();
        if let Some(first) = state.names.get(&name) {
            let first = first.clone();
            return Err(Problem::DuplicateTarget { name, first });
        }
        state.names.insert(name, location);
        state.targets.push(target);
        Ok(())
    }

    /// Applies a `__defaults__` call to this directory.
    fn set_defaults(&self, arguments: &[(&str, Value)], location: Location) -> Result<(), Problem> {
        let mut state = self.state.borrow_mut();
        let misplaced = |why: &str| Problem::Defaults {
            message: format!("`{DEFAULTS_FUNCTION}` {why}"),
        };
        if let Some(first) = &state.defaults_call {
            return Err(misplaced(&format!(
                "may be called once per directory, and was already called at {first}"
            )));
        }
        if !state.targets.is_empty() {
            return Err(misplaced(
                "must be called before the directory's first target",
            ));
        }
        let own = parse_defaults(arguments, &self.evaluation.kinds, &state.dir)?;
        state.defaults = Rc::new(state.defaults.overlay(own));
        state.defaults_call = Some(location);
        Ok(())
    }

    /// Keeps `problem` as the evaluation's error and returns a stand-in for Starlark to unwind
    /// with.
    fn fail(&self, location: Location, problem: Problem) -> starlark::Error {
        let stand_in = starlark::Error::new_other(anyhow::Error::msg(problem.to_string()));
        self.error
            .borrow_mut()
            .get_or_insert(BuildFileError::at(location, problem));
        stand_in
    }
}

/// A function of the BUILD file language that Rust implements.
#[derive(Debug, ProvidesStaticType, NoSerialize, Allocative)]
pub(crate) enum Builtin {
    /// A target kind; calling it declares a target.
    Kind { index: usize, name: String },
    /// `__defaults__`.
    Defaults,
}

starlark_simple_value!(Builtin);

impl fmt::Display for Builtin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Kind { name, .. } => write!(f, "<target kind {name}>"),
            Self::Defaults => write!(f, "<function {DEFAULTS_FUNCTION}>"),
        }
    }
}

#[starlark_value(type = "builtin_function")]
impl<'v> StarlarkValue<'v> for Builtin {
    fn invoke(
        &self,
        _me: Value<'v>,
        args: &Arguments<'v, '_>,
        eval: &mut Evaluator<'v, '_, '_>,
    ) -> starlark::Result<Value<'v>> {
        let Some(context) = eval
            .extra
            .and_then(|extra| extra.downcast_ref::<FileContext>())
        else {
            return Err(starlark::Error::new_other(anyhow::Error::msg(
                "target kinds can only be called while a BUILD file is evaluated",
            )));
        };
        let location = location(context.file, call_line(eval));
        let outcome = keyword_arguments(self.name(), args).and_then(|arguments| match self {
            Self::Kind { index, .. } => {
                context.declare_target(*index, &arguments, location.clone())
            }
            Self::Defaults => context.set_defaults(&arguments, location.clone()),
        });
        match outcome {
            Ok(()) => Ok(Value::new_none()),
            Err(problem) => Err(context.fail(location, problem)),
        }
    }
}

impl Builtin {
    fn name(&self) -> &str {
        match self {
            Self::Kind { name, .. } => name,
            Self::Defaults => DEFAULTS_FUNCTION,
        }
    }
}

/// The keyword arguments of a call, refusing positional ones.
fn keyword_arguments<'v>(
    function: &str,
    args: &Arguments<'v, '_>,
) -> Result<Vec<(&'v str, Value<'v>)>, Problem> {
    let starlark_problem = |err: starlark::Error| Problem::Starlark {
        message: lowercase_first(&err.without_diagnostic().to_string()),
    };
    let named = args.names_map().map_err(starlark_problem)?;
    let count = args.len().map_err(starlark_problem)?;
    if count > named.len() {
        return Err(Problem::PositionalArguments {
            kind: function.to_owned(),
            count: count - named.len(),
        });
    }
    Ok(named
        .into_iter()
        .map(|(key, value)| (key.as_str(), value))
        .collect())
}

/// The 1-based line of the call being evaluated.
fn call_line(eval: &Evaluator) -> u32 {
    // Builtins are only reachable from Starlark code, whose calls always carry a location;
    // the first line is a fallback that still names the right file.
    eval.call_stack_top_location()
        .map_or(1, |span| one_based(span.resolve_span().begin.line))
}
