//! Testing a plugin's `plan` natively, without remex: install a [`FakeHost`] on the test's
//! thread, build a [`Target`] and an [`Environment`] with the helpers here, and call the
//! plugin's [`crate::Toolchain::plan`] directly.
//!
//! ```ignore
//! use remex_plugin_sdk::testing::{FakeHost, environment, target};
//!
//! #[test]
//! fn plans_one_process() {
//!     let _host = FakeHost::new().binary("python3", "/usr/bin/python3").install();
//!     let target = target("//app:tests", "python_tests").text("runner", "unittest");
//!     let processes = MyPlugin::plan(target.build(), environment("__local__")).unwrap();
//!     assert_eq!(processes.len(), 1);
//! }
//! ```
//!
//! Only built for targets other than WebAssembly: inside remex the real host answers.
#![cfg(not(target_family = "wasm"))]

use std::cell::RefCell;
use std::collections::BTreeMap;

use crate::host::{LogLevel, ProbeResult};
use crate::{EnvVar, Environment, Field, FieldValue, OptionValue, Target};

thread_local! {
    static HOST: RefCell<Option<FakeHost>> = const { RefCell::new(None) };
}

/// Answers for the host calls of plans made on this thread.
#[derive(Clone, Debug, Default)]
pub struct FakeHost {
    /// `name` → absolute path, found whatever the search path.
    binaries: BTreeMap<String, String>,
    /// argv → result; any other probe fails.
    probes: Vec<(Vec<String>, ProbeResult)>,
    /// path → contents.
    sources: BTreeMap<String, Vec<u8>>,
    /// Everything logged, and every probe asked for.
    log: Vec<String>,
    probed: Vec<Vec<String>>,
}

/// Uninstalls the [`FakeHost`] when dropped.
pub struct Installed(());

impl Drop for Installed {
    fn drop(&mut self) {
        HOST.with(|host| host.borrow_mut().take());
    }
}

impl FakeHost {
    /// A host that finds nothing and runs no probe.
    pub fn new() -> Self {
        Self::default()
    }

    /// Finds `name` at `path`.
    pub fn binary(mut self, name: &str, path: &str) -> Self {
        self.binaries.insert(name.to_owned(), path.to_owned());
        self
    }

    /// Answers the probe `argv` with `exit_code` and `stdout`.
    pub fn probe(mut self, argv: &[&str], exit_code: i32, stdout: &str) -> Self {
        let argv = argv.iter().map(|a| (*a).to_owned()).collect();
        let result = ProbeResult {
            exit_code,
            stdout: stdout.as_bytes().to_vec(),
            stderr: Vec::new(),
        };
        self.probes.push((argv, result));
        self
    }

    /// Serves `contents` for the source `path`.
    pub fn source(mut self, path: &str, contents: &str) -> Self {
        self.sources
            .insert(path.to_owned(), contents.as_bytes().to_vec());
        self
    }

    /// Makes this the host of the calling thread until the returned guard is dropped.
    pub fn install(self) -> Installed {
        HOST.with(|host| *host.borrow_mut() = Some(self));
        Installed(())
    }

    /// The argv of every probe run so far on this thread.
    pub fn probed() -> Vec<Vec<String>> {
        with_host(|host| host.probed.clone())
    }

    /// Every message logged so far on this thread.
    pub fn logged() -> Vec<String> {
        with_host(|host| host.log.clone())
    }
}

fn with_host<T>(f: impl FnOnce(&mut FakeHost) -> T) -> T {
    HOST.with(|host| {
        let mut host = host.borrow_mut();
        let host = host.get_or_insert_with(FakeHost::default);
        f(host)
    })
}

/// The host functions of [`crate::host`], answered by the installed [`FakeHost`].
pub(crate) mod fake {
    use super::*;

    pub(crate) fn log(level: LogLevel, message: &str) {
        with_host(|host| host.log.push(format!("{level:?}: {message}")));
    }

    pub(crate) fn find_binary(name: &str, _search_path: &[String]) -> Option<String> {
        with_host(|host| host.binaries.get(name).cloned())
    }

    pub(crate) fn run_probe(argv: &[String], _env: &[EnvVar]) -> Result<ProbeResult, String> {
        with_host(|host| {
            host.probed.push(argv.to_vec());
            let answer = host.probes.iter().find(|(a, _)| a == argv);
            answer
                .map(|(_, result)| result.clone())
                .ok_or_else(|| format!("the fake host has no answer for the probe {argv:?}"))
        })
    }

    pub(crate) fn read_source(path: &str) -> Result<Vec<u8>, String> {
        with_host(|host| host.sources.get(path).cloned())
            .ok_or_else(|| format!("the fake host has no source `{path}`"))
    }
}

/// A target being built for a test, of `kind` at `address` (`//dir:name`).
pub fn target(address: &str, kind: &str) -> TargetBuilder {
    let directory = address
        .trim_start_matches("//")
        .split_once(':')
        .map(|(dir, _)| dir.to_owned())
        .unwrap_or_default();
    TargetBuilder(Target {
        address: address.to_owned(),
        kind: kind.to_owned(),
        directory,
        fields: Vec::new(),
        dependencies: Vec::new(),
        dependency_inputs: Vec::new(),
    })
}

/// Sets a test target's fields; [`TargetBuilder::build`] gives the target.
pub struct TargetBuilder(Target);

impl TargetBuilder {
    /// Sets the field `name` to `value`.
    pub fn field(mut self, name: &str, value: FieldValue) -> Self {
        self.0.fields.retain(|f| f.name != name);
        self.0.fields.push(Field {
            name: name.to_owned(),
            value,
        });
        self.0.fields.sort_by(|a, b| a.name.cmp(&b.name));
        self
    }

    /// Sets the text field `name`.
    pub fn text(self, name: &str, value: &str) -> Self {
        self.field(name, FieldValue::Text(value.to_owned()))
    }

    /// Sets the list (or sources) field `name`.
    pub fn list(self, name: &str, values: &[&str]) -> Self {
        let values = values.iter().map(|v| (*v).to_owned()).collect();
        self.field(name, FieldValue::TextList(values))
    }

    /// Adds the dependency `address` providing `inputs`.
    pub fn dependency(mut self, address: &str, inputs: &[&str]) -> Self {
        self.0.dependencies.push(address.to_owned());
        let inputs = inputs.iter().map(|i| (*i).to_owned());
        self.0.dependency_inputs.extend(inputs);
        self.0.dependency_inputs.sort();
        self.0.dependency_inputs.dedup();
        self
    }

    /// The target.
    pub fn build(self) -> Target {
        self.0
    }
}

/// A local environment named `name`, with no options set.
pub fn environment(name: &str) -> Environment {
    Environment {
        name: name.to_owned(),
        remote: false,
        platform: Vec::new(),
        options: Vec::new(),
    }
}

/// Sets the option `[scope].name` of `environment`.
pub fn with_option(
    mut environment: Environment,
    scope: &str,
    name: &str,
    value: FieldValue,
) -> Environment {
    environment.options.push(OptionValue {
        scope: scope.to_owned(),
        name: name.to_owned(),
        value,
    });
    environment
}
