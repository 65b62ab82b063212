//! Tests against real components: the bundled `shell` plugin and the `hostile` test plugin,
//! both built from `plugins/` by `remex-bundled`.

mod cache;
mod hostile;
mod memo;
mod python;
mod shell;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use remex_model::{Address, Environment, FieldValue, Location, Target};

use crate::{HostServices, Plugin, PluginHost, PluginLimits, Probe, ProbeError, ProbeResult};

/// A target of `kind` at `//dir:name` with `fields`.
fn target(address: &str, kind: &str, fields: &[(&str, FieldValue)]) -> Target {
    let address = Address::parse(address, "").expect("test address parses");
    let fields: BTreeMap<String, FieldValue> = fields
        .iter()
        .map(|(name, value)| ((*name).to_owned(), value.clone()))
        .collect();
    Target {
        location: Location {
            file: PathBuf::from(format!("{}/BUILD", address.dir)),
            line: 1,
        },
        address,
        kind: kind.to_owned(),
        fields,
        dependencies: Vec::new(),
        environment: remex_model::LOCAL_ENVIRONMENT.to_owned(),
        dependency_inputs: Vec::new(),
    }
}

fn text(value: &str) -> FieldValue {
    FieldValue::Text(value.to_owned())
}

fn list(values: &[&str]) -> FieldValue {
    FieldValue::TextList(values.iter().map(|v| (*v).to_owned()).collect())
}

fn load(host: &PluginHost, origin: &str, bytes: &[u8]) -> Plugin {
    host.load(origin, bytes)
        .unwrap_or_else(|err| panic!("loading `{origin}` failed: {err:?}"))
}

fn hostile_component() -> Vec<u8> {
    let path = Path::new(remex_bundled::TEST_PLUGINS_DIR).join("remex_plugin_testing_hostile.wasm");
    std::fs::read(&path).unwrap_or_else(|err| panic!("cannot read {}: {err}", path.display()))
}

/// Host services that answer `find_binary` from a table and record what they were asked.
#[derive(Default)]
struct FakeServices {
    binaries: BTreeMap<String, String>,
    asked: Mutex<Vec<(String, String, Vec<String>)>>,
    /// Answers to probes, by argv; any other probe fails.
    probe_answers: Vec<(Vec<String>, ProbeResult)>,
    probes: Mutex<Vec<Vec<String>>>,
}

impl FakeServices {
    fn with(binaries: &[(&str, &str)]) -> Arc<Self> {
        let binaries = binaries
            .iter()
            .map(|(name, path)| ((*name).to_owned(), (*path).to_owned()))
            .collect();
        Arc::new(Self {
            binaries,
            ..Self::default()
        })
    }

    /// Like [`FakeServices::with`], answering the probes `answers` (argv, exit code, stdout).
    fn with_probes(binaries: &[(&str, &str)], answers: &[(&[&str], i32, &str)]) -> Arc<Self> {
        let binaries = binaries
            .iter()
            .map(|(name, path)| ((*name).to_owned(), (*path).to_owned()))
            .collect();
        let answer = |(argv, exit_code, stdout): &(&[&str], i32, &str)| {
            let argv = argv.iter().map(|a| (*a).to_owned()).collect();
            let result = ProbeResult {
                exit_code: *exit_code,
                stdout: stdout.as_bytes().to_vec(),
                stderr: Vec::new(),
            };
            (argv, result)
        };
        Arc::new(Self {
            binaries,
            probe_answers: answers.iter().map(answer).collect(),
            ..Self::default()
        })
    }

    /// The argv of every probe so far.
    fn probes(&self) -> Vec<Vec<String>> {
        self.probes.lock().expect("lock is not poisoned").clone()
    }

    /// (environment, binary, search path) of every call so far.
    fn asked(&self) -> Vec<(String, String, Vec<String>)> {
        self.asked.lock().expect("lock is not poisoned").clone()
    }
}

impl HostServices for FakeServices {
    fn find_binary(
        &self,
        environment: &Environment,
        name: &str,
        search_path: &[String],
    ) -> Option<String> {
        let call = (
            environment.name.clone(),
            name.to_owned(),
            search_path.to_vec(),
        );
        self.asked.lock().expect("lock is not poisoned").push(call);
        self.binaries.get(name).cloned()
    }

    fn run_probe(
        &self,
        environment: &Environment,
        probe: &Probe,
    ) -> Result<ProbeResult, ProbeError> {
        self.probes
            .lock()
            .expect("lock is not poisoned")
            .push(probe.argv.clone());
        let answer = self
            .probe_answers
            .iter()
            .find(|(argv, _)| *argv == probe.argv);
        match answer {
            Some((_, result)) => Ok(result.clone()),
            None => Err(ProbeError::NoRemoteRunner {
                environment: environment.name.clone(),
            }),
        }
    }
}

fn services(fake: &Arc<FakeServices>) -> Arc<dyn HostServices> {
    Arc::clone(fake) as Arc<dyn HostServices>
}

/// Limits small enough that each hostile behaviour fails fast.
fn quick_limits() -> PluginLimits {
    PluginLimits {
        deadline: std::time::Duration::from_millis(500),
        memory_bytes: 128 << 20,
        max_host_calls: 10_000,
        ..PluginLimits::default()
    }
}

#[test]
fn defaults_match_the_documented_limits() {
    let limits = PluginLimits::default();
    assert_eq!(limits.deadline, std::time::Duration::from_secs(5));
    assert_eq!(limits.memory_bytes, 256 * 1024 * 1024);
    assert_eq!(limits.max_result_bytes, 16 * 1024 * 1024);
    assert_eq!(limits.max_host_calls, 100_000);
}

#[test]
fn plugins_can_be_shared_between_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Plugin>();
    assert_send_sync::<PluginHost>();
}

#[test]
fn deadline_covers_at_least_the_requested_time() {
    use crate::plugin_host::deadline_ticks;
    use std::time::Duration;

    assert_eq!(deadline_ticks(Duration::from_millis(500)), 51);
    assert_eq!(deadline_ticks(Duration::from_millis(1)), 2);
    assert_eq!(deadline_ticks(Duration::ZERO), 1);
}

#[test]
fn rejects_bytes_that_are_not_a_component() {
    let host = PluginHost::new(PluginLimits::default(), None).expect("host starts");
    let core_module = b"\0asm\x01\0\0\0";
    let err = host.load("broken.wasm", core_module).err();
    assert!(
        matches!(
            err,
            Some(crate::PluginError::Compile { ref origin, .. }) if origin == "broken.wasm"
        ),
        "{err:?}"
    );
}

#[test]
fn rejects_a_component_of_another_world() {
    let host = PluginHost::new(PluginLimits::default(), None).expect("host starts");
    // The smallest valid component: no imports, no exports.
    let empty_component = b"\0asm\x0d\0\x01\0";
    let err = host.load("empty.wasm", empty_component).err();
    assert!(
        matches!(err, Some(crate::PluginError::IncompatibleWorld { .. })),
        "{err:?}"
    );
    let message = err.map(|e| e.to_string()).unwrap_or_default();
    assert_eq!(
        message,
        "plugin `empty.wasm` is not a `remex:plugin/toolchain@0.1.0` component"
    );
}

#[test]
fn refuses_a_component_of_another_wit_version_naming_both() {
    let host = PluginHost::new(PluginLimits::default(), None).expect("host starts");
    let path =
        Path::new(remex_bundled::TEST_PLUGINS_DIR).join("remex_plugin_testing_future_wit.wasm");
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let err = host.load("future.wasm", &bytes).err();
    assert!(
        matches!(err, Some(crate::PluginError::IncompatibleVersion { .. })),
        "{err:?}"
    );
    let message = err.map(|e| e.to_string()).unwrap_or_default();
    assert_eq!(
        message,
        "plugin `future.wasm` was built for `remex:plugin@9.0.0`, but this remex supports \
         `remex:plugin@0.1.0`; rebuild it against that version"
    );
}

#[test]
fn wit_versions_follow_semver_compatibility() {
    use crate::plugin_host::compatible;

    assert!(compatible("0.1.0", "0.1.0"));
    assert!(compatible("0.1.3", "0.1.0"));
    assert!(!compatible("0.2.0", "0.1.0"));
    assert!(!compatible("9.0.0", "0.1.0"));
    assert!(compatible("1.4.0", "1.0.0"));
}
