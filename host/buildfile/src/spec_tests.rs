use std::collections::BTreeMap;
use std::path::PathBuf;

use proptest::prelude::*;
use remex_model::{Address, Location, Target};

use super::*;

fn target(dir: &str, name: &str) -> Target {
    Target {
        address: Address::new(dir, name),
        kind: "shell_command".to_owned(),
        fields: BTreeMap::new(),
        dependencies: Vec::new(),
        environment: "__local__".to_owned(),
        location: Location {
            file: PathBuf::from(format!("{dir}/BUILD")),
            line: 1,
        },
        dependency_inputs: Vec::new(),
    }
}

/// Unsorted on purpose: `select` must order by address itself.
fn repository() -> Vec<Target> {
    vec![
        target("src/app", "tests"),
        target("", "root"),
        target("src", "lib"),
        target("src/app", "bin"),
        target("src-other", "x"),
        target("tools", "zip"),
    ]
}

fn parse(text: &str) -> TargetSpec {
    TargetSpec::parse(text).unwrap_or_else(|err| panic!("`{text}` did not parse: {err}"))
}

fn selected(specs: &[&str]) -> Vec<String> {
    let targets = repository();
    let specs: Vec<TargetSpec> = specs.iter().map(|text| parse(text)).collect();
    let chosen = select(&targets, &specs).unwrap_or_else(|err| panic!("{err}"));
    chosen
        .iter()
        .map(|target| target.address.to_string())
        .collect()
}

#[test]
fn parses_each_form() {
    let address = TargetSpec::Address(Address::new("src/app", "tests"));
    assert_eq!(parse("//src/app:tests"), address);
    assert_eq!(parse("src/app:tests"), address);
    assert_eq!(
        parse("//:root"),
        TargetSpec::Address(Address::new("", "root"))
    );
    assert_eq!(
        parse("src/app"),
        TargetSpec::Directory("src/app".to_owned())
    );
    assert_eq!(
        parse("./src/app/"),
        TargetSpec::Directory("src/app".to_owned())
    );
    assert_eq!(parse("//"), TargetSpec::Directory(String::new()));
    assert_eq!(parse("src::"), TargetSpec::Recursive("src".to_owned()));
    assert_eq!(parse("//src/::"), TargetSpec::Recursive("src".to_owned()));
    assert_eq!(parse("::"), TargetSpec::Recursive(String::new()));
}

#[test]
fn rejects_malformed_specs() {
    for text in [
        "", "src:", ":::", "a:b::", "../x", "a//b", "/abs:x", "a/./b::", "a:b/c",
    ] {
        let result = TargetSpec::parse(text);
        assert!(result.is_err(), "`{text}` parsed as {result:?}");
    }
}

#[test]
fn display_round_trips() {
    for text in ["//src/app:tests", "src/app", "//", "src::", "::", "//:root"] {
        let spec = parse(text);
        assert_eq!(parse(&spec.to_string()), spec, "through `{spec}`");
    }
}

#[test]
fn selects_one_address_in_both_forms() {
    assert_eq!(selected(&["//src/app:tests"]), ["//src/app:tests"]);
    assert_eq!(selected(&["src/app:tests"]), ["//src/app:tests"]);
}

#[test]
fn directory_selects_only_its_own_targets() {
    assert_eq!(selected(&["src/app"]), ["//src/app:bin", "//src/app:tests"]);
    assert_eq!(selected(&["src"]), ["//src:lib"]);
}

#[test]
fn recursive_selects_the_directory_and_below_but_not_siblings_with_a_common_prefix() {
    let expected = ["//src:lib", "//src/app:bin", "//src/app:tests"];
    assert_eq!(selected(&["src::"]), expected);
}

#[test]
fn double_colon_selects_everything_in_address_order() {
    let all = selected(&["::"]);
    let expected = [
        "//:root",
        "//src:lib",
        "//src-other:x",
        "//src/app:bin",
        "//src/app:tests",
        "//tools:zip",
    ];
    assert_eq!(all, expected);
}

#[test]
fn overlapping_specs_select_each_target_once() {
    let chosen = selected(&["src::", "src/app:bin", "src/app", "tools:zip"]);
    let expected = [
        "//src:lib",
        "//src/app:bin",
        "//src/app:tests",
        "//tools:zip",
    ];
    assert_eq!(chosen, expected);
}

#[test]
fn a_spec_that_matches_nothing_is_an_error_naming_it() {
    let targets = repository();
    for text in ["src/app:nope", "nowhere", "nowhere::", "src/app/deeper::"] {
        let specs = [parse("::"), parse(text)];
        match select(&targets, &specs) {
            Err(err @ SpecError::NoMatch { .. }) => {
                let message = err.to_string();
                assert!(message.starts_with("no targets match `"), "{message}");
            }
            other => panic!("`{text}` gave {other:?}"),
        }
    }
    let err = select(&targets, &[parse("nowhere::")]).expect_err("no match");
    assert_eq!(err.to_string(), "no targets match `nowhere::`");
}

proptest! {
    #[test]
    fn parse_never_panics(text in any::<String>()) {
        let _ = TargetSpec::parse(&text);
    }

    #[test]
    fn parsed_specs_round_trip_through_display(text in "[a-z/:.]{0,12}") {
        if let Ok(spec) = TargetSpec::parse(&text) {
            let again = TargetSpec::parse(&spec.to_string());
            prop_assert_eq!(again.ok(), Some(spec));
        }
    }
}
