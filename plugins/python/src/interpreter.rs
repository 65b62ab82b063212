//! Finding the interpreter in the target's environment and asking it what it is.

use remex_plugin_sdk::host::{find_binary, run_probe};
use remex_plugin_sdk::{Environment, FieldValue, PlanError, Target};

use crate::constraints::{Constraints, Version};

/// The options scope the interpreter is looked up with.
const SCOPE: &str = "python-bootstrap";

/// Prints the interpreter's version as `major.minor.micro`.
const VERSION_SCRIPT: &str = "import sys; print('%d.%d.%d' % sys.version_info[:3])";

#[cfg(test)]
pub(crate) const VERSION_SCRIPT_FOR_TESTS: &str = VERSION_SCRIPT;

/// An interpreter found in the environment, with the version it reported.
#[derive(Debug)]
pub(crate) struct Interpreter {
    /// Its absolute path in the environment.
    pub(crate) path: String,
}

impl Interpreter {
    /// The first interpreter of `[python-bootstrap].names` on `[python-bootstrap].search_path`
    /// whose version meets the target's `interpreter_constraints`.
    pub(crate) fn find(target: &Target, environment: &Environment) -> Result<Self, PlanError> {
        let constraints = constraints(target)?;
        let search_path = option_list(environment, "search_path", &["<PATH>"]);
        let names = option_list(environment, "names", &["python3"]);

        let mut rejected = Vec::new();
        for name in &names {
            let Some(path) = find_binary(name, &search_path) else {
                continue;
            };
            let version = version(&path, environment)?;
            if constraints.matches(version) {
                return Ok(Self { path });
            }
            rejected.push(format!("`{path}` is {version}"));
        }
        Err(not_found(
            target,
            environment,
            &names,
            &search_path,
            &rejected,
        ))
    }

    /// A plan error unless `pytest` can be imported by this interpreter.
    pub(crate) fn require_pytest(
        &self,
        target: &Target,
        environment: &Environment,
    ) -> Result<(), PlanError> {
        let argv = [
            self.path.clone(),
            "-c".to_owned(),
            "import pytest".to_owned(),
        ];
        let result = run_probe(&argv, &[]).map_err(|why| probe_failed(environment, &why))?;
        if result.exit_code == 0 {
            return Ok(());
        }
        Err(PlanError::new(format!(
            "target `{}` asks for `runner = \"pytest\"`, but `pytest` is not installed for \
             `{}` in environment `{}`; install it there or use `runner = \"unittest\"`",
            target.address, self.path, environment.name
        )))
    }

    /// The directory holding the interpreter, the only entry of the tests' `PATH`.
    pub(crate) fn directory(&self) -> &str {
        match self.path.rsplit_once('/') {
            Some(("", _)) | None => "/",
            Some((directory, _)) => directory,
        }
    }
}

fn constraints(target: &Target) -> Result<Constraints, PlanError> {
    Constraints::parse(target.text_list("interpreter_constraints")).map_err(|entry| {
        PlanError::new(format!(
            "target `{}` has the interpreter constraint `{entry}`, which does not parse; \
             write clauses such as `>=3.8,<4` or `==3.11.*`",
            target.address
        ))
    })
}

/// The list option `[python-bootstrap].name`, or `default`.
fn option_list(environment: &Environment, name: &str, default: &[&str]) -> Vec<String> {
    match environment.option(SCOPE, name) {
        Some(FieldValue::TextList(list)) => list.clone(),
        _ => default.iter().map(|d| (*d).to_owned()).collect(),
    }
}

/// The version `path` reports, asked with a probe in the environment.
fn version(path: &str, environment: &Environment) -> Result<Version, PlanError> {
    let argv = [path.to_owned(), "-c".to_owned(), VERSION_SCRIPT.to_owned()];
    let result = run_probe(&argv, &[]).map_err(|why| probe_failed(environment, &why))?;
    let stdout = String::from_utf8_lossy(&result.stdout);
    match Version::parse(&stdout) {
        Some(version) if result.exit_code == 0 => Ok(version),
        _ => Err(PlanError::new(format!(
            "the interpreter `{path}` in environment `{}` did not report its version \
             (exit code {}, stdout `{}`); check that it runs",
            environment.name,
            result.exit_code,
            stdout.trim()
        ))),
    }
}

fn probe_failed(environment: &Environment, why: &str) -> PlanError {
    PlanError::new(format!(
        "cannot ask the Python interpreter in environment `{}` about itself: {why}",
        environment.name
    ))
}

fn not_found(
    target: &Target,
    environment: &Environment,
    names: &[String],
    search_path: &[String],
    rejected: &[String],
) -> PlanError {
    let constraints = target.text_list("interpreter_constraints").join("` or `");
    let mut message = format!(
        "no Python interpreter for target `{}` in environment `{}`: looked for `{}` in `{}`",
        target.address,
        environment.name,
        names.join("`, `"),
        search_path.join(":")
    );
    if !rejected.is_empty() {
        message.push_str(&format!(
            "; found {}, which do not meet `{constraints}`",
            rejected.join(", ")
        ));
    }
    message.push_str(
        "; install one, or change `[python-bootstrap].search_path` and `names`, or the \
         target's `interpreter_constraints`",
    );
    PlanError::new(message)
}
