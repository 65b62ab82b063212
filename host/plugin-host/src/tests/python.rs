//! The bundled `python` and `protobuf` plugins, planned through the real host with probes
//! answered by the fake services.

use std::path::Path;
use std::sync::LazyLock;

use remex_model::{Environment, FieldValue};

use super::{FakeServices, list, load, services, target, text};
use crate::{Plugin, PluginError, PluginHost, PluginLimits};

static PYTHON: LazyLock<Plugin> = LazyLock::new(|| {
    let host = PluginHost::new(PluginLimits::default(), None).expect("host starts");
    load(&host, "bundled:python", remex_bundled::PYTHON)
});

static PROTOBUF: LazyLock<Plugin> = LazyLock::new(|| {
    let host = PluginHost::new(PluginLimits::default(), None).expect("host starts");
    load(&host, "bundled:protobuf", remex_bundled::PROTOBUF)
});

const VERSION_SCRIPT: &str = "import sys; print('%d.%d.%d' % sys.version_info[:3])";

#[test]
fn python_tests_find_and_probe_the_interpreter() {
    let fake = FakeServices::with_probes(
        &[("python3", "/usr/bin/python3")],
        &[(&["/usr/bin/python3", "-c", VERSION_SCRIPT], 0, "3.11.2\n")],
    );
    let mut target = target(
        "//app:tests",
        "python_tests",
        &[
            ("sources", list(&["app/test_a.py"])),
            ("runner", text("unittest")),
        ],
    );
    target.dependency_inputs = vec!["lib/b.py".to_owned()];
    let processes = PYTHON
        .plan(
            &target,
            &Environment::local(),
            Path::new("/"),
            &services(&fake),
        )
        .expect("plans");

    assert_eq!(
        processes[0].argv,
        ["/usr/bin/python3", "-m", "unittest", "test_a"]
    );
    assert_eq!(processes[0].input_files, ["app/test_a.py", "lib/b.py"]);
    assert_eq!(
        processes[0].env.get("PATH").map(String::as_str),
        Some("/usr/bin")
    );
    assert_eq!(fake.probes().len(), 1);
    assert_eq!(fake.asked()[0].2, ["<PATH>"]);
}

#[test]
fn a_failed_probe_is_a_plan_error_naming_the_environment() {
    let fake = FakeServices::with_probes(&[("python3", "/usr/bin/python3")], &[]);
    let target = target(
        "//app:tests",
        "python_tests",
        &[("sources", list(&["app/test_a.py"]))],
    );
    let result = PYTHON.plan(
        &target,
        &Environment::local(),
        Path::new("/"),
        &services(&fake),
    );
    match result {
        Err(PluginError::Plan { message, site }) => {
            assert!(message.contains("environment `__local__`"), "{message}");
            assert!(site.plugin.starts_with("python@"), "{site:?}");
        }
        other => panic!("expected a plan error, got {other:?}"),
    }
}

#[test]
fn protobuf_without_unzip_fails_naming_the_environment() {
    let fake = FakeServices::with(&[("sh", "/bin/sh"), ("sha256sum", "/usr/bin/sha256sum")]);
    let target = target(
        "//proto:p",
        "protobuf_sources",
        &[("sources", list(&["proto/a.proto"]))],
    );
    let mut environment = Environment {
        name: "linux_ci".to_owned(),
        ..Environment::local()
    };
    let paths = FieldValue::TextList(vec!["/opt/empty".to_owned()]);
    let key = (
        "system-binaries".to_owned(),
        "system_binary_paths".to_owned(),
    );
    environment.options.insert(key, paths);
    let result = PROTOBUF.plan(&target, &environment, Path::new("/"), &services(&fake));
    let message = result.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(
        message.contains("cannot find `unzip` in environment `linux_ci`"),
        "{message}"
    );
    assert_eq!(fake.asked()[0].2, ["/opt/empty"]);
}
