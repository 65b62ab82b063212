//! Rules between options, checked once every value is resolved: settings that are each valid
//! but cannot work together.

use remex_model::{Address, LOCAL_ENVIRONMENT};

use crate::builtin::{ENVIRONMENTS_SCOPE, PROTOC_SCOPE};
use crate::error::{OptionsError, Source};
use crate::resolve::ResolvedOptions;
use crate::spec::{GLOBAL_SCOPE, OptionKey};

const ADDRESS_FORMS: &str = "`grpc://host:port` or `grpcs://host:port`";

/// Fails on the first rule broken; returns warnings about settings that are ignored.
pub(crate) fn check(resolved: &ResolvedOptions) -> Result<Vec<String>, OptionsError> {
    check_cache_needs_store(resolved)?;
    check_execution_needs_addresses(resolved)?;
    check_client_certificate_pair(resolved)?;
    for name in ["remote_store_headers", "remote_execution_headers"] {
        check_headers(resolved, name)?;
    }
    check_token_and_authorization(resolved)?;
    check_protoc_archive(resolved)?;
    check_environment_names(resolved)?;
    Ok(ignored_platform_properties(resolved).into_iter().collect())
}

fn global_key(name: &str) -> OptionKey {
    OptionKey::new(GLOBAL_SCOPE, name)
}

fn is_set(resolved: &ResolvedOptions, name: &str) -> bool {
    resolved.value(GLOBAL_SCOPE, name).is_some()
}

fn conflict(resolved: &ResolvedOptions, name: &str, message: String) -> OptionsError {
    OptionsError::Conflict {
        at: resolved.source(GLOBAL_SCOPE, name),
        message,
    }
}

/// Remote caching reads and writes the action cache and CAS at `remote_store_address`.
fn check_cache_needs_store(resolved: &ResolvedOptions) -> Result<(), OptionsError> {
    if is_set(resolved, "remote_store_address") {
        return Ok(());
    }
    for name in ["remote_cache_read", "remote_cache_write"] {
        if resolved.bool(GLOBAL_SCOPE, name) {
            let message = format!(
                "`{}` is on, but `{}` is not set: set it to {ADDRESS_FORMS}, or turn `{name}` off",
                global_key(name),
                global_key("remote_store_address"),
            );
            return Err(conflict(resolved, name, message));
        }
    }
    Ok(())
}

/// Remote execution sends inputs to the store and actions to the execution server.
fn check_execution_needs_addresses(resolved: &ResolvedOptions) -> Result<(), OptionsError> {
    if !resolved.bool(GLOBAL_SCOPE, "remote_execution") {
        return Ok(());
    }
    let missing: Vec<String> = ["remote_execution_address", "remote_store_address"]
        .into_iter()
        .filter(|name| !is_set(resolved, name))
        .map(|name| format!("`{}`", global_key(name)))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let (verb, each) = if missing.len() == 1 {
        ("is", "it")
    } else {
        ("are", "each")
    };
    let message = format!(
        "`{}` is on, but {} {verb} not set: set {each} to {ADDRESS_FORMS}, or turn remote \
         execution off",
        global_key("remote_execution"),
        missing.join(" and "),
    );
    Err(conflict(resolved, "remote_execution", message))
}

/// Mutual TLS needs the certificate chain and its private key together.
fn check_client_certificate_pair(resolved: &ResolvedOptions) -> Result<(), OptionsError> {
    let pair = [
        ("remote_client_certs_path", "remote_client_key_path"),
        ("remote_client_key_path", "remote_client_certs_path"),
    ];
    for (given, missing) in pair {
        if is_set(resolved, given) && !is_set(resolved, missing) {
            let message = format!(
                "`{}` is set, but `{}` is not: mutual TLS needs both the client certificate \
                 chain and its private key",
                global_key(given),
                global_key(missing),
            );
            return Err(conflict(resolved, given, message));
        }
    }
    Ok(())
}

/// gRPC metadata is ASCII. Values are never shown: they may be credentials.
fn check_headers(resolved: &ResolvedOptions, option: &str) -> Result<(), OptionsError> {
    let printable = |c: char| c == ' ' || c == '\t' || c.is_ascii_graphic();
    for (name, value) in resolved.dict(GLOBAL_SCOPE, option) {
        let bad_name = name.is_empty() || !name.chars().all(|c| c.is_ascii_graphic());
        let problem = if bad_name {
            format!("has the header name {name:?}, which is not printable ASCII without spaces")
        } else if !value.chars().all(printable) {
            format!("has a value for header `{name}` that is not printable ASCII")
        } else {
            continue;
        };
        let message = format!(
            "`{}` {problem}: gRPC sends headers as ASCII",
            global_key(option)
        );
        return Err(conflict(resolved, option, message));
    }
    Ok(())
}

/// The bearer token becomes the `authorization` header; a second one would be ambiguous.
fn check_token_and_authorization(resolved: &ResolvedOptions) -> Result<(), OptionsError> {
    if !is_set(resolved, "remote_oauth_bearer_token") {
        return Ok(());
    }
    for option in ["remote_store_headers", "remote_execution_headers"] {
        let headers = resolved.dict(GLOBAL_SCOPE, option);
        if headers
            .keys()
            .any(|k| k.eq_ignore_ascii_case("authorization"))
        {
            let message = format!(
                "`{}` is set, but `{}` already has an `authorization` header ({}): keep only \
                 one of them",
                global_key("remote_oauth_bearer_token"),
                global_key(option),
                resolved.source(GLOBAL_SCOPE, option),
            );
            return Err(conflict(resolved, "remote_oauth_bearer_token", message));
        }
    }
    Ok(())
}

/// An archive is only used once its digest is checked.
fn check_protoc_archive(resolved: &ResolvedOptions) -> Result<(), OptionsError> {
    let path = resolved.text(PROTOC_SCOPE, "archive");
    let sha256 = resolved.text(PROTOC_SCOPE, "sha256");
    let at = |name: &str| resolved.source(PROTOC_SCOPE, name);
    let key = |name: &str| OptionKey::new(PROTOC_SCOPE, name);
    match (path, sha256) {
        (Some(_), None) => Err(OptionsError::Conflict {
            at: at("archive"),
            message: format!(
                "`{}` is set, but `{}` is not: set it to the archive's SHA-256 (64 hex digits)",
                key("archive"),
                key("sha256"),
            ),
        }),
        (None, Some(_)) => Err(OptionsError::Conflict {
            at: at("sha256"),
            message: format!("`{}` is set without `{}`", key("sha256"), key("archive")),
        }),
        (Some(path), _) if path.starts_with('/') || path.split('/').any(|p| p == "..") => {
            Err(OptionsError::invalid(
                at("archive"),
                key("archive"),
                "a path relative to the repository root, without `..`",
                &format!("`{path}`"),
            ))
        }
        (_, Some(hash)) if hash.len() != 64 || !hash.chars().all(|c| c.is_ascii_hexdigit()) => {
            Err(OptionsError::invalid(
                at("sha256"),
                key("sha256"),
                "a SHA-256 of 64 hex digits",
                &format!("`{hash}`"),
            ))
        }
        _ => Ok(()),
    }
}

/// Each short name is a plain word other than `__local__`, mapped to a target address.
fn check_environment_names(resolved: &ResolvedOptions) -> Result<(), OptionsError> {
    let key = OptionKey::new(ENVIRONMENTS_SCOPE, "names");
    let at = resolved.source(ENVIRONMENTS_SCOPE, "names");
    for (name, address) in resolved.dict(ENVIRONMENTS_SCOPE, "names") {
        let word = name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if name.is_empty() || !word || name == LOCAL_ENVIRONMENT {
            return Err(invalid_name(&at, &key, &name));
        }
        if let Err(error) = Address::parse(&address, "") {
            return Err(OptionsError::invalid(
                at,
                key,
                &format!("a target address such as `//envs:{name}` for `{name}`"),
                &format!("`{address}` ({})", error.why),
            ));
        }
    }
    Ok(())
}

fn invalid_name(at: &Source, key: &OptionKey, name: &str) -> OptionsError {
    let expected = format!(
        "a table whose names are letters, digits, `_` and `-`, other than \
         `{LOCAL_ENVIRONMENT}`"
    );
    OptionsError::invalid(
        at.clone(),
        key.clone(),
        &expected,
        &format!("the name {name:?}"),
    )
}

/// With named environments, each `remote_environment` carries its own platform properties.
fn ignored_platform_properties(resolved: &ResolvedOptions) -> Option<String> {
    let option = "remote_execution_extra_platform_properties";
    let named = !resolved.dict(ENVIRONMENTS_SCOPE, "names").is_empty();
    if !named || resolved.list(GLOBAL_SCOPE, option).is_empty() {
        return None;
    }
    Some(format!(
        "`{}` ({}) is ignored because `[{ENVIRONMENTS_SCOPE}].names` is set: put these \
         properties in the `extra_platform_properties` field of each `remote_environment` target",
        global_key(option),
        resolved.source(GLOBAL_SCOPE, option),
    ))
}
