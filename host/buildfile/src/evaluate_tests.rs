//! Tests of [`evaluate_repository`] against small repositories written to temporary directories.

use std::fs;
use std::path::Path;

use remex_model::{Address, FieldSpec, FieldType, FieldValue, KindSpec, Target};
use tempfile::TempDir;

use super::*;

fn field(name: &str, ty: FieldType, required: bool, default: Option<FieldValue>) -> FieldSpec {
    FieldSpec {
        name: name.to_owned(),
        ty,
        required,
        default,
        help: String::new(),
    }
}

fn texts(items: &[&str]) -> FieldValue {
    FieldValue::TextList(items.iter().map(|s| (*s).to_owned()).collect())
}

/// Kinds shaped like the bundled plugins'.
fn kinds() -> Vec<KindSpec> {
    let shell_command = KindSpec {
        name: "shell_command".to_owned(),
        help: String::new(),
        fields: vec![
            field("command", FieldType::Text, true, None),
            field("tools", FieldType::TextList, false, Some(texts(&[]))),
            field(
                "timeout",
                FieldType::Integer,
                false,
                Some(FieldValue::Integer(60)),
            ),
            field(
                "cache",
                FieldType::Boolean,
                false,
                Some(FieldValue::Boolean(true)),
            ),
            field("sources", FieldType::Sources, false, None),
        ],
    };
    let python_sources = KindSpec {
        name: "python_sources".to_owned(),
        help: String::new(),
        fields: vec![field(
            "sources",
            FieldType::Sources,
            false,
            Some(texts(&["*.py"])),
        )],
    };
    let python_tests = KindSpec {
        name: "python_tests".to_owned(),
        help: String::new(),
        fields: vec![
            field(
                "sources",
                FieldType::Sources,
                false,
                Some(texts(&["test_*.py"])),
            ),
            field("timeout", FieldType::Integer, false, None),
        ],
    };
    vec![shell_command, python_sources, python_tests]
}

fn write_repo(files: &[(&str, &str)]) -> TempDir {
    let dir = tempfile::tempdir().expect("temporary directory");
    for (path, content) in files {
        let path = dir.path().join(path);
        fs::create_dir_all(path.parent().expect("a parent")).expect("create directories");
        fs::write(path, content).expect("write file");
    }
    dir
}

fn evaluate(files: &[(&str, &str)]) -> Result<Vec<Target>, BuildFileError> {
    let repo = write_repo(files);
    evaluate_repository(repo.path(), &kinds())
}

fn targets(files: &[(&str, &str)]) -> Vec<Target> {
    evaluate(files).unwrap_or_else(|err| panic!("evaluation failed: {err}"))
}

/// Evaluates, expects an error at `file:line`, and returns its message.
fn error_at(files: &[(&str, &str)], file: &str, line: u32) -> String {
    let err = match evaluate(files) {
        Ok(targets) => panic!("expected an error, got {} targets", targets.len()),
        Err(err) => err,
    };
    assert_eq!(err.file(), Path::new(file), "wrong file in `{err}`");
    assert_eq!(err.line(), Some(line), "wrong line in `{err}`");
    let message = err.to_string();
    let prefix = format!("{file}:{line}: ");
    assert!(
        message.starts_with(&prefix),
        "no `{prefix}` prefix: {message}"
    );
    message
}

fn assert_contains(message: &str, expected: &str) {
    assert!(message.contains(expected), "`{expected}` not in: {message}");
}

fn find<'a>(targets: &'a [Target], address: &str) -> &'a Target {
    let address = Address::parse(address, "").expect("valid address");
    targets
        .iter()
        .find(|target| target.address == address)
        .unwrap_or_else(|| panic!("no {address} among {} targets", targets.len()))
}

fn text_list(target: &Target, name: &str) -> Vec<String> {
    match target.fields.get(name) {
        Some(FieldValue::TextList(items)) => items.clone(),
        other => panic!("field `{name}` of {} is {other:?}", target.address),
    }
}

#[test]
fn records_targets_with_common_fields_and_kind_defaults() {
    let build = r#"
shell_command(
    name = "pack",
    command = "tar cf out.tar .",
    description = "packs things",
    dependencies = [":lib", "//tools:zip"],
)
shell_command(name = "lib", command = "true", environment = "remote", timeout = 5)
"#;
    let targets = targets(&[
        ("app/BUILD", build),
        (
            "tools/BUILD",
            r#"shell_command(name = "zip", command = "zip")"#,
        ),
    ]);

    let addresses: Vec<String> = targets.iter().map(|t| t.address.to_string()).collect();
    assert_eq!(addresses, ["//app:lib", "//app:pack", "//tools:zip"]);
    let pack = find(&targets, "//app:pack");
    assert_eq!(pack.kind, "shell_command");
    assert_eq!(pack.environment, "__local__");
    assert_eq!(pack.location.to_string(), "app/BUILD:2");
    let expected = [Address::new("app", "lib"), Address::new("tools", "zip")];
    assert_eq!(pack.dependencies, expected);
    let description = pack.fields.get("description").and_then(FieldValue::as_text);
    assert_eq!(description, Some("packs things"));
    assert_eq!(pack.fields.get("timeout"), Some(&FieldValue::Integer(60)));
    assert_eq!(pack.fields.get("cache"), Some(&FieldValue::Boolean(true)));
    assert!(
        !pack.fields.contains_key("name"),
        "fields: {:?}",
        pack.fields
    );
    assert!(
        !pack.fields.contains_key("sources"),
        "fields: {:?}",
        pack.fields
    );

    let lib = find(&targets, "//app:lib");
    assert_eq!(lib.environment, "remote");
    assert_eq!(lib.fields.get("timeout"), Some(&FieldValue::Integer(5)));
    assert_eq!(lib.location.line, 8);
}

#[test]
fn none_means_not_given_so_macros_can_pass_options_through() {
    let build = r#"
def command(name, timeout = None):
    shell_command(name = name, command = "run " + name, timeout = timeout)

command("a")
command("b", timeout = 3)
shell_command(**{"name": "c", "command": "true"})
"#;
    let targets = targets(&[("BUILD", build)]);

    assert_eq!(
        find(&targets, "//:a").fields.get("timeout"),
        Some(&FieldValue::Integer(60))
    );
    assert_eq!(
        find(&targets, "//:b").fields.get("timeout"),
        Some(&FieldValue::Integer(3))
    );
    // The location is the call of the kind, inside the macro.
    assert_eq!(find(&targets, "//:a").location.line, 3);
    assert_eq!(find(&targets, "//:c").location.line, 7);
}

#[test]
fn unknown_field_suggests_the_closest_field() {
    let build = "\n\n\n\n\n\nshell_command(name = \"x\", comand = \"true\")\n";
    let message = error_at(&[("examples/BUILD", build)], "examples/BUILD", 7);
    assert_eq!(
        message,
        "examples/BUILD:7: unknown field `comand` for `shell_command` (did you mean `command`?)"
    );
}

#[test]
fn unknown_field_without_a_close_name_has_no_suggestion() {
    let build = r#"shell_command(name = "x", command = "true", flavour = "mint")"#;
    let message = error_at(&[("BUILD", build)], "BUILD", 1);
    assert_eq!(
        message,
        "BUILD:1: unknown field `flavour` for `shell_command`"
    );
}

#[test]
fn wrong_type_names_the_field_the_expected_type_and_the_value() {
    let build =
        "shell_command(\n    name = \"x\",\n    command = \"true\",\n    timeout = \"10\",\n)";
    let message = error_at(&[("a/BUILD", build)], "a/BUILD", 1);
    assert_eq!(
        message,
        "a/BUILD:1: wrong type for field `timeout` of `shell_command`: \
         expected `int`, got `string` \"10\""
    );
}

#[test]
fn wrong_type_inside_a_list_names_the_item() {
    let build = r#"shell_command(name = "x", command = "true", tools = ["sh", 3])"#;
    let message = error_at(&[("BUILD", build)], "BUILD", 1);
    assert_contains(
        &message,
        "field `tools` of `shell_command`: expected `list[str]`",
    );
    assert_contains(&message, "got `list` containing `int` 3");
}

#[test]
fn a_string_is_not_a_list_of_globs() {
    let build = r#"python_sources(name = "x", sources = "*.py")"#;
    let message = error_at(&[("BUILD", build), ("a.py", "")], "BUILD", 1);
    assert_contains(&message, "expected `list[glob]`, got `string` \"*.py\"");
}

#[test]
fn missing_required_field_is_an_error() {
    let build = "\nshell_command(name = \"x\")\n";
    let message = error_at(&[("BUILD", build)], "BUILD", 2);
    assert_eq!(
        message,
        "BUILD:2: missing required field `command` for `shell_command`"
    );
}

#[test]
fn missing_name_is_an_error() {
    let message = error_at(
        &[("BUILD", "shell_command(command = \"true\")")],
        "BUILD",
        1,
    );
    assert_contains(
        &message,
        "missing required field `name` for `shell_command`",
    );
}

#[test]
fn invalid_target_name_is_an_error() {
    let message = error_at(
        &[("BUILD", "shell_command(name = \"a:b\", command = \"x\")")],
        "BUILD",
        1,
    );
    assert_contains(&message, "invalid target name `a:b`");
}

#[test]
fn duplicate_target_name_points_at_the_second_declaration() {
    let build = r#"
shell_command(name = "x", command = "true")
shell_command(name = "x", command = "false")
"#;
    let message = error_at(&[("d/BUILD", build)], "d/BUILD", 3);
    assert_eq!(
        message,
        "d/BUILD:3: duplicate target name `x`, first declared at d/BUILD:2"
    );
}

#[test]
fn build_and_build_remex_share_one_namespace() {
    let files = [
        ("d/BUILD", r#"shell_command(name = "x", command = "true")"#),
        (
            "d/BUILD.remex",
            "\nshell_command(name = \"x\", command = \"true\")",
        ),
    ];
    let message = error_at(&files, "d/BUILD.remex", 2);
    assert_contains(&message, "first declared at d/BUILD:1");
}

#[test]
fn positional_arguments_are_an_error() {
    let build = "\nshell_command(\"x\", command = \"true\")";
    let message = error_at(&[("BUILD", build)], "BUILD", 2);
    assert_eq!(
        message,
        "BUILD:2: `shell_command` takes keyword arguments only, got 1 positional"
    );
}

#[test]
fn syntax_error_reports_starlark_line() {
    let build = "shell_command(name = \"x\", command = \"true\")\n\nx = = 1\n";
    let message = error_at(&[("a/b/BUILD", build)], "a/b/BUILD", 3);
    assert_contains(&message, "a/b/BUILD:3: syntax error: unexpected");
}

#[test]
fn unknown_kind_lists_the_known_kinds() {
    let build = "\n\npyhton_sources(name = \"x\")\n";
    let message = error_at(&[("src/BUILD", build)], "src/BUILD", 3);
    assert_eq!(
        message,
        "src/BUILD:3: unknown target kind `pyhton_sources` (did you mean `python_sources`?); \
         known kinds: `python_sources`, `python_tests`, `shell_command`"
    );
}

#[test]
fn undefined_variable_that_is_not_called_is_a_plain_error() {
    let message = error_at(&[("BUILD", "\nx = undefined_thing\n")], "BUILD", 2);
    assert_contains(&message, "`undefined_thing`");
    assert!(!message.contains("target kind"), "{message}");
}

#[test]
fn fail_reports_the_line_of_the_call() {
    let build = "def check():\n    fail(\"no good\")\n\ncheck()\n";
    let message = error_at(&[("BUILD", build)], "BUILD", 2);
    assert_contains(&message, "no good");
}

#[test]
fn error_in_a_macro_reports_the_kind_call_inside_it() {
    let build = "def cmd(name):\n    shell_command(name = name)\n\ncmd(\"a\")\n";
    let message = error_at(&[("BUILD", build)], "BUILD", 2);
    assert_contains(&message, "missing required field `command`");
}

#[test]
fn dependency_on_a_missing_target_points_at_the_declaring_target() {
    let build = r#"
shell_command(name = "lib", command = "true")

shell_command(name = "app", command = "true", dependencies = [":lbi"])
"#;
    let message = error_at(&[("app/BUILD", build)], "app/BUILD", 4);
    assert_eq!(
        message,
        "app/BUILD:4: `//app:app` depends on `//app:lbi`, which does not exist \
         (did you mean `//app:lib`?)"
    );
}

#[test]
fn invalid_dependency_address_is_an_error() {
    let build = r#"shell_command(name = "a", command = "x", dependencies = ["nocolon"])"#;
    let message = error_at(&[("BUILD", build)], "BUILD", 1);
    assert_contains(&message, "invalid address `nocolon`");
}

#[test]
fn dependency_cycle_points_at_the_target_that_closes_it() {
    let a = "\nshell_command(name = \"a\", command = \"x\", dependencies = [\"//b:b\"])\n";
    let b = "\n\nshell_command(name = \"b\", command = \"x\", dependencies = [\"//a:a\"])\n";
    let message = error_at(&[("a/BUILD", a), ("b/BUILD", b)], "b/BUILD", 3);
    assert_eq!(
        message,
        "b/BUILD:3: dependency cycle: `//b:b` -> `//a:a` -> `//b:b`"
    );
}

#[test]
fn self_dependency_is_a_cycle() {
    let build = r#"shell_command(name = "a", command = "x", dependencies = [":a"])"#;
    let message = error_at(&[("BUILD", build)], "BUILD", 1);
    assert_contains(&message, "dependency cycle: `//:a` -> `//:a`");
}

#[test]
fn long_dependency_chains_do_not_overflow() {
    let mut build = String::new();
    for i in 0..5_000 {
        let dependencies = if i > 0 {
            format!("[\":t{}\"]", i - 1)
        } else {
            "[]".into()
        };
        build.push_str(&format!(
            "shell_command(name = \"t{i}\", command = \"x\", dependencies = {dependencies})\n"
        ));
    }
    assert_eq!(targets(&[("BUILD", &build)]).len(), 5_000);
}

#[test]
fn globs_resolve_to_sorted_repository_relative_files() {
    let build = r#"
shell_command(name = "star", command = "x", sources = ["*.py"])
shell_command(name = "deep", command = "x", sources = ["**/*.txt"])
shell_command(name = "plain", command = "x", sources = ["b.py", "sub/c.txt"])
shell_command(name = "exclude", command = "x", sources = ["**/*", "!**/*.txt"])
"#;
    let targets = targets(&[
        ("src/BUILD", build),
        ("src/b.py", ""),
        ("src/a.py", ""),
        ("src/top.txt", ""),
        ("src/sub/c.txt", ""),
        ("src/sub/d.py", ""),
        ("src/sub/deeper/e.txt", ""),
        ("other/f.py", ""),
    ]);

    let star = text_list(find(&targets, "//src:star"), "sources");
    assert_eq!(star, ["src/a.py", "src/b.py"]);
    let deep = text_list(find(&targets, "//src:deep"), "sources");
    assert_eq!(
        deep,
        ["src/sub/c.txt", "src/sub/deeper/e.txt", "src/top.txt"]
    );
    let plain = text_list(find(&targets, "//src:plain"), "sources");
    assert_eq!(plain, ["src/b.py", "src/sub/c.txt"]);
    // BUILD files are never sources.
    let exclude = text_list(find(&targets, "//src:exclude"), "sources");
    assert_eq!(exclude, ["src/a.py", "src/b.py", "src/sub/d.py"]);
}

#[test]
fn root_globs_use_paths_without_a_leading_slash() {
    let build = r#"python_sources(name = "all")"#;
    let targets = targets(&[("BUILD", build), ("m.py", ""), ("pkg/n.py", "")]);
    assert_eq!(text_list(find(&targets, "//:all"), "sources"), ["m.py"]);
}

#[test]
fn glob_matching_nothing_is_an_error() {
    let build = "\nshell_command(name = \"x\", command = \"x\", sources = [\"a.py\", \"*.rs\"])\n";
    let message = error_at(&[("src/BUILD", build), ("src/a.py", "")], "src/BUILD", 2);
    assert_eq!(
        message,
        "src/BUILD:2: glob `*.rs` in field `sources` matches no files"
    );
}

#[test]
fn default_globs_may_match_nothing() {
    let targets = targets(&[("BUILD", r#"python_sources(name = "x")"#)]);
    assert_eq!(
        text_list(find(&targets, "//:x"), "sources"),
        Vec::<String>::new()
    );
}

#[test]
fn globs_cannot_leave_the_directory() {
    let build = r#"shell_command(name = "x", command = "x", sources = ["../*.py"])"#;
    let message = error_at(&[("src/BUILD", build), ("a.py", "")], "src/BUILD", 1);
    assert_contains(&message, "invalid glob `../*.py` in field `sources`");
}

#[test]
fn hidden_and_output_directories_are_skipped() {
    let bad = "this is not starlark (";
    let targets = targets(&[
        (
            "BUILD",
            r#"shell_command(name = "x", command = "x", sources = ["**/*.py"])"#,
        ),
        ("a.py", ""),
        (".git/BUILD", bad),
        (".hidden/b.py", ""),
        ("dist/BUILD", bad),
        ("dist/c.py", ""),
        ("sub/target/BUILD", bad),
    ]);
    assert_eq!(targets.len(), 1);
    assert_eq!(text_list(&targets[0], "sources"), ["a.py"]);
}

#[test]
fn defaults_apply_to_the_directory_and_below() {
    let root =
        r#"__defaults__(all = dict(environment = "remote"), shell_command = dict(timeout = 5))"#;
    let sub = r#"
__defaults__(shell_command = dict(timeout = 7, environment = None))
shell_command(name = "y", command = "x")
python_tests(name = "t")
"#;
    let targets = targets(&[
        ("BUILD", root),
        (
            "a/BUILD",
            r#"shell_command(name = "x", command = "x", timeout = 1)"#,
        ),
        ("a/b/BUILD", r#"shell_command(name = "z", command = "x")"#),
        ("c/BUILD", sub),
        ("c/d/BUILD", r#"shell_command(name = "w", command = "x")"#),
    ]);

    let x = find(&targets, "//a:x");
    assert_eq!(
        (x.environment.as_str(), x.fields.get("timeout")),
        ("remote", Some(&FieldValue::Integer(1)))
    );
    let z = find(&targets, "//a/b:z");
    assert_eq!(
        (z.environment.as_str(), z.fields.get("timeout")),
        ("remote", Some(&FieldValue::Integer(5)))
    );
    // `c` overrides the timeout and clears the environment for `shell_command` only.
    let y = find(&targets, "//c:y");
    assert_eq!(
        (y.environment.as_str(), y.fields.get("timeout")),
        ("__local__", Some(&FieldValue::Integer(7)))
    );
    assert_eq!(find(&targets, "//c:t").environment, "remote");
    let w = find(&targets, "//c/d:w");
    assert_eq!(
        (w.environment.as_str(), w.fields.get("timeout")),
        ("__local__", Some(&FieldValue::Integer(7)))
    );
}

#[test]
fn kind_defaults_win_over_all_whatever_the_order() {
    let build = r#"
__defaults__(shell_command = dict(timeout = 2), all = dict(timeout = 9))
shell_command(name = "s", command = "x")
python_tests(name = "t")
"#;
    let targets = targets(&[("BUILD", build)]);
    assert_eq!(
        find(&targets, "//:s").fields.get("timeout"),
        Some(&FieldValue::Integer(2))
    );
    assert_eq!(
        find(&targets, "//:t").fields.get("timeout"),
        Some(&FieldValue::Integer(9))
    );
}

#[test]
fn default_dependencies_are_relative_to_the_declaring_directory() {
    let root = r#"
__defaults__(shell_command = dict(dependencies = [":tool"]))
python_sources(name = "tool")
"#;
    let targets = targets(&[
        ("BUILD", root),
        ("a/BUILD", r#"shell_command(name = "x", command = "x")"#),
    ]);
    assert_eq!(
        find(&targets, "//a:x").dependencies,
        [Address::new("", "tool")]
    );
}

#[test]
fn defaults_are_checked_like_fields() {
    let unknown_kind = "\n__defaults__(shell_comand = dict(timeout = 1))";
    let message = error_at(&[("BUILD", unknown_kind)], "BUILD", 2);
    assert_contains(
        &message,
        "unknown target kind `shell_comand` (did you mean `shell_command`?)",
    );

    let unknown_field = "__defaults__(all = dict(timout = 1))";
    let message = error_at(&[("BUILD", unknown_field)], "BUILD", 1);
    assert_contains(
        &message,
        "unknown field `timout` for `all` (did you mean `timeout`?)",
    );

    let wrong_type = "__defaults__(shell_command = dict(timeout = \"1\"))";
    let message = error_at(&[("BUILD", wrong_type)], "BUILD", 1);
    assert_contains(
        &message,
        "wrong type for field `timeout` of `shell_command`",
    );

    let not_dict = "__defaults__(shell_command = [1])";
    let message = error_at(&[("BUILD", not_dict)], "BUILD", 1);
    assert_contains(
        &message,
        "`__defaults__` argument `shell_command` must be a `dict`, got `list`",
    );

    let name = "__defaults__(all = dict(name = \"x\"))";
    let message = error_at(&[("BUILD", name)], "BUILD", 1);
    assert_contains(&message, "`name` cannot have a default");
}

#[test]
fn defaults_must_come_first_and_once() {
    let after_target =
        "python_sources(name = \"x\")\n__defaults__(all = dict(description = \"d\"))";
    let message = error_at(&[("BUILD", after_target)], "BUILD", 2);
    assert_contains(
        &message,
        "must be called before the directory's first target",
    );

    let files = [
        ("d/BUILD", "__defaults__(all = dict(description = \"d\"))"),
        (
            "d/BUILD.remex",
            "\n__defaults__(all = dict(description = \"e\"))",
        ),
    ];
    let message = error_at(&files, "d/BUILD.remex", 2);
    assert_contains(&message, "was already called at d/BUILD:1");
}

#[test]
fn default_globs_are_resolved_in_each_directory() {
    let root = r#"__defaults__(python_sources = dict(sources = ["*.pyi"]))"#;
    let targets = targets(&[
        ("BUILD", root),
        ("a/BUILD", r#"python_sources(name = "x")"#),
        ("a/m.pyi", ""),
        ("b/BUILD", r#"python_sources(name = "y")"#),
    ]);
    assert_eq!(text_list(find(&targets, "//a:x"), "sources"), ["a/m.pyi"]);
    assert_eq!(
        text_list(find(&targets, "//b:y"), "sources"),
        Vec::<String>::new()
    );
}

#[test]
fn an_empty_repository_has_no_targets() {
    assert!(targets(&[("README", "hello")]).is_empty());
}

#[test]
fn load_is_not_supported() {
    let build = "\nload(\"//rules:defs.bzl\", \"macro\")\n";
    let message = error_at(&[("BUILD", build)], "BUILD", 2);
    assert_eq!(
        message,
        "BUILD:2: `load()` is not supported in BUILD files (loading `//rules:defs.bzl`)"
    );
}
