//! The example policies: each allows an ordinary action and denies what it exists to deny,
//! with a reason that names the culprit.

use std::time::Duration;

use super::{action, assert_allows, denied_reason, example};
use crate::policy::{Decision, PolicySet};

fn with_platform(name: &str, value: &str) -> crate::ActionDescription {
    let mut action = action();
    action.platform.retain(|(n, _)| n != name);
    action.platform.push((name.to_owned(), value.to_owned()));
    action.platform.sort();
    action
}

fn with_env(name: &str, value: &str) -> crate::ActionDescription {
    let mut action = action();
    action.env.push((name.to_owned(), value.to_owned()));
    action.env.sort();
    action
}

#[test]
fn every_example_names_itself_and_its_version() {
    for name in [
        "no-network",
        "container-images",
        "max-timeout",
        "no-secrets",
    ] {
        assert_eq!(example(name).id(), format!("{name}@0.1.0"));
    }
}

#[test]
fn every_example_allows_an_ordinary_action() {
    for name in [
        "no-network",
        "container-images",
        "max-timeout",
        "no-secrets",
    ] {
        assert_allows(&example(name), &action());
    }
}

#[test]
fn no_network_allows_network_turned_off_or_absent() {
    let policy = example("no-network");
    assert_allows(&policy, &with_platform("dockerNetwork", "none"));
    assert_allows(&policy, &with_platform("network", "OFF"));
    let mut no_property = action();
    no_property
        .platform
        .retain(|(name, _)| name != "dockerNetwork");
    assert_allows(&policy, &no_property);
}

#[test]
fn no_network_denies_properties_asking_for_network() {
    let policy = example("no-network");
    let reason = denied_reason(&policy, &with_platform("dockerNetwork", "standard"));
    assert!(reason.contains("`dockerNetwork=standard`"), "{reason}");
    let reason = denied_reason(&policy, &with_platform("network", "host"));
    assert!(reason.contains("`network=host`"), "{reason}");
    denied_reason(&policy, &with_platform("network-access", "true"));
}

#[test]
fn container_images_allows_listed_repositories_at_any_tag_or_digest() {
    let policy = example("container-images");
    assert_allows(
        &policy,
        &with_platform("container-image", "docker://python:3.12"),
    );
    let pinned = "docker://gcr.io/distroless/cc-debian12@sha256:0123abcd";
    assert_allows(&policy, &with_platform("container-image", pinned));
    let mut no_image = action();
    no_image
        .platform
        .retain(|(name, _)| name != "container-image");
    assert_allows(&policy, &no_image);
}

#[test]
fn container_images_denies_other_images() {
    let policy = example("container-images");
    let image = "docker://evil.example.com:5000/ubuntu:24.04";
    let reason = denied_reason(&policy, &with_platform("container-image", image));
    assert!(reason.contains(&format!("`{image}`")), "{reason}");
    denied_reason(
        &policy,
        &with_platform("container-image", "docker://ubuntu-evil"),
    );
}

#[test]
fn max_timeout_allows_up_to_15_minutes() {
    let mut action = action();
    action.timeout = Some(Duration::from_secs(15 * 60));
    assert_allows(&example("max-timeout"), &action);
}

#[test]
fn max_timeout_denies_a_missing_or_longer_timeout() {
    let policy = example("max-timeout");
    let mut action = action();
    action.timeout = None;
    let reason = denied_reason(&policy, &action);
    assert!(reason.contains("sets no timeout"), "{reason}");
    action.timeout = Some(Duration::from_secs(15 * 60 + 1));
    let reason = denied_reason(&policy, &action);
    assert!(reason.contains("901 s"), "{reason}");
}

#[test]
fn no_secrets_allows_ordinary_variables() {
    let policy = example("no-secrets");
    assert_allows(&policy, &with_env("TOKENIZER_MODEL", "small"));
    assert_allows(&policy, &with_env("PYTHONPATH", "src"));
}

#[test]
fn no_secrets_denies_secret_names_without_showing_values() {
    let policy = example("no-secrets");
    for name in [
        "NPM_TOKEN",
        "db_password",
        "MY_SECRET_FILE",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "GOOGLE_APPLICATION_CREDENTIALS",
        "AZURE_CLIENT_SECRET",
        "STRIPE_API_KEY",
    ] {
        let reason = denied_reason(&policy, &with_env(name, "hunter2"));
        assert!(reason.contains(&format!("`{name}`")), "{reason}");
        assert!(!reason.contains("hunter2"), "the value leaked: {reason}");
    }
}

#[test]
fn a_set_stops_at_the_first_denial_and_lists_every_decision() {
    let set = PolicySet::new(vec![
        example("no-network"),
        example("max-timeout"),
        example("no-secrets"),
    ]);
    let mut action = with_env("GITHUB_TOKEN", "x");
    action.timeout = None;

    let denial = set.first_denial(&action).expect("denied");
    assert_eq!(denial.policy, "max-timeout@0.1.0");

    let decisions: Vec<bool> = set
        .decisions(&action)
        .iter()
        .map(|(_, decision)| *decision == Decision::Allow)
        .collect();
    assert_eq!(decisions, [true, false, false]);
}
