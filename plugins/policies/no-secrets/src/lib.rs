//! Denies actions whose environment variables have names that look like secrets, such as
//! `NPM_TOKEN` or `AWS_SECRET_ACCESS_KEY`. A secret in an action's environment ends up in its
//! `Command`, which is stored in caches and sent to executors, and changes its cache key.
//!
//! Only names are looked at, never values, and the reason names the variable but not its value.

#![no_std]

extern crate alloc;

use alloc::format;
use alloc::string::String;

use remex_policy_sdk::{ActionDescription, Decision, Policy};

/// Names that are secrets whatever their form, compared after uppercasing.
const SECRET_NAMES: &[&str] = &[
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AZURE_CLIENT_SECRET",
    "GOOGLE_APPLICATION_CREDENTIALS",
    "PASSWORD",
    "SECRET",
    "TOKEN",
];

/// Endings of names that hold secrets, after uppercasing.
const SECRET_SUFFIXES: &[&str] = &[
    "_TOKEN",
    "_PASSWORD",
    "_PASSWD",
    "_API_KEY",
    "_APIKEY",
    "_PRIVATE_KEY",
    "_ACCESS_KEY",
    "_CREDENTIALS",
];

/// Parts of names that hold secrets wherever they appear, after uppercasing.
const SECRET_PARTS: &[&str] = &["_SECRET", "SECRET_"];

struct NoSecrets;

impl Policy for NoSecrets {
    fn evaluate(action: ActionDescription) -> Decision {
        match action.env.iter().find(|v| looks_secret(&v.name)) {
            Some(variable) => Decision::Deny(format!(
                "environment variable `{}` looks like a secret, and an action's environment is \
                 stored in caches and sent to executors; pass secrets another way",
                variable.name
            )),
            None => Decision::Allow,
        }
    }
}

fn looks_secret(name: &str) -> bool {
    let name: String = name.chars().map(|c| c.to_ascii_uppercase()).collect();
    SECRET_NAMES.contains(&name.as_str())
        || SECRET_SUFFIXES.iter().any(|suffix| name.ends_with(suffix))
        || SECRET_PARTS.iter().any(|part| name.contains(part))
}

remex_policy_sdk::export_policy!(NoSecrets, "no-secrets");
