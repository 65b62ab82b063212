//! The `python_sources` and `python_tests` target kinds.
//!
//! `python_tests` runs a target's test files with `unittest` or `pytest`, under an interpreter
//! found in the target's environment: each name of `[python-bootstrap].names` is looked for on
//! `[python-bootstrap].search_path`, and the first whose version (asked with a probe) meets the
//! target's `interpreter_constraints` runs the tests. The process sees its own sources and
//! those of its dependencies, `PYTHONPATH` set to its source root, and `PATH` set to the
//! interpreter's directory only. `python_sources` only groups files for its dependents.

mod constraints;
mod interpreter;

use remex_plugin_sdk::{
    Description, EnvVar, Environment, FieldSpec, FieldType, FieldValue, KindSpec, PlanError,
    Process, Target, Toolchain,
};

use crate::interpreter::Interpreter;

/// The plugin, exported as the component's `describe` and `plan`.
pub struct Python;

impl Toolchain for Python {
    fn describe() -> Description {
        let kinds = vec![python_sources(), python_tests()];
        Description::new("python", env!("CARGO_PKG_VERSION"), kinds)
    }

    fn plan(target: Target, environment: Environment) -> Result<Vec<Process>, PlanError> {
        match target.kind.as_str() {
            "python_sources" => Ok(Vec::new()),
            "python_tests" => plan_tests(&target, &environment).map(|p| vec![p]),
            other => Err(PlanError::new(format!(
                "plugin `python@{}` has no target kind `{other}`",
                env!("CARGO_PKG_VERSION")
            ))),
        }
    }
}

remex_plugin_sdk::export_toolchain!(Python);

/// Which test runner a `python_tests` target uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Runner {
    Unittest,
    Pytest,
}

fn python_sources() -> KindSpec {
    KindSpec::new(
        "python_sources",
        "Python files that other targets import.",
        vec![
            FieldSpec::optional("sources", FieldType::Sources, "The Python files.")
                .with_default(list(&["*.py", "!test_*.py", "!*_test.py"])),
        ],
    )
}

fn python_tests() -> KindSpec {
    use FieldType::{Integer, Sources, Text, TextList};

    KindSpec::new(
        "python_tests",
        "Python test files, run with `unittest` or `pytest`.",
        vec![
            FieldSpec::optional("sources", Sources, "The test files.")
                .with_default(list(&["test_*.py", "*_test.py"])),
            FieldSpec::optional("runner", Text, "`unittest` or `pytest`.")
                .with_default(FieldValue::Text("unittest".to_owned())),
            FieldSpec::optional(
                "interpreter_constraints",
                TextList,
                "Python versions the tests run on, such as `>=3.8,<4`; any entry may match.",
            ),
            FieldSpec::optional(
                "timeout",
                Integer,
                "How long the tests may run, in seconds.",
            ),
            FieldSpec::optional(
                "source_root",
                Text,
                "The directory imports are relative to (`PYTHONPATH`), from the repository \
                 root; the BUILD file's directory by default.",
            ),
        ],
    )
}

fn list(items: &[&str]) -> FieldValue {
    FieldValue::TextList(items.iter().map(|i| (*i).to_owned()).collect())
}

fn plan_tests(target: &Target, environment: &Environment) -> Result<Process, PlanError> {
    let runner = runner(target)?;
    let source_root = target.text("source_root").unwrap_or(&target.directory);
    let tests = test_arguments(target, runner, source_root)?;
    let timeout_ms = timeout_ms(target)?;

    let interpreter = Interpreter::find(target, environment)?;
    if runner == Runner::Pytest {
        interpreter.require_pytest(target, environment)?;
    }

    let module = match runner {
        Runner::Unittest => "unittest",
        Runner::Pytest => "pytest",
    };
    let mut argv = vec![interpreter.path.clone(), "-m".to_owned(), module.to_owned()];
    argv.extend(tests);

    let mut process = Process::new(format!("run python_tests {}", target.address), argv);
    process.inputs = inputs(target);
    process.env = vec![
        EnvVar::new("PATH", interpreter.directory()),
        EnvVar::new("PYTHONDONTWRITEBYTECODE", "1"),
        EnvVar::new("PYTHONPATH", python_path(source_root)),
    ];
    process.timeout_ms = timeout_ms;
    Ok(process)
}

fn runner(target: &Target) -> Result<Runner, PlanError> {
    match target.text("runner").unwrap_or("unittest") {
        "unittest" => Ok(Runner::Unittest),
        "pytest" => Ok(Runner::Pytest),
        other => Err(PlanError::new(format!(
            "target `{}` has `runner = \"{other}\"`; use `unittest` or `pytest`",
            target.address
        ))),
    }
}

/// What follows `-m unittest` or `-m pytest`: the test modules (dotted names under the source
/// root) for unittest, the test files for pytest.
fn test_arguments(
    target: &Target,
    runner: Runner,
    source_root: &str,
) -> Result<Vec<String>, PlanError> {
    let files = target.text_list("sources");
    if files.is_empty() {
        return Err(PlanError::new(format!(
            "target `{}` has no test files; its `sources` matched nothing",
            target.address
        )));
    }
    if runner == Runner::Pytest {
        return Ok(files.to_vec());
    }
    files
        .iter()
        .map(|file| module_name(target, source_root, file))
        .collect()
}

/// `app/test_greet` for `src/app/test_greet.py` under the source root `src`, dotted.
fn module_name(target: &Target, source_root: &str, file: &str) -> Result<String, PlanError> {
    let relative = match source_root {
        "" => Some(file),
        root => file
            .strip_prefix(root)
            .and_then(|rest| rest.strip_prefix('/')),
    };
    let module = relative.and_then(|r| r.strip_suffix(".py"));
    module.map(|m| m.replace('/', ".")).ok_or_else(|| {
        PlanError::new(format!(
            "the test file `{file}` of target `{}` is not a `.py` file under its source root \
             `{source_root}`; move it or set `source_root`",
            target.address
        ))
    })
}

fn python_path(source_root: &str) -> String {
    if source_root.is_empty() {
        ".".to_owned()
    } else {
        source_root.to_owned()
    }
}

/// The target's own sources, then what its dependencies provide, without repeats.
fn inputs(target: &Target) -> Vec<String> {
    let mut inputs = target.text_list("sources").to_vec();
    inputs.extend(target.dependency_inputs.iter().cloned());
    inputs.sort();
    inputs.dedup();
    inputs
}

/// The `timeout` field (seconds) in milliseconds.
fn timeout_ms(target: &Target) -> Result<Option<u64>, PlanError> {
    let Some(seconds) = target.integer("timeout") else {
        return Ok(None);
    };
    match u64::try_from(seconds) {
        Ok(seconds) if seconds > 0 => Ok(Some(seconds.saturating_mul(1000))),
        _ => Err(PlanError::new(format!(
            "target `{}` has `timeout = {seconds}`; it must be a positive number of seconds",
            target.address
        ))),
    }
}

#[cfg(test)]
mod tests;
