//! What the server offers, read once from `GetCapabilities`, and the choices it decides:
//! batch size, compression, digest function, and which output fields a `Command` carries.

use remex_action::OutputFields;
use remex_proto::reapi::{self, compressor, digest_function};

use crate::batch::DEFAULT_BATCH_LIMIT;
use crate::convert;
use crate::error::ReapiError;

/// The server's offer, as far as the client's choices go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerFeatures {
    /// The most one batch request or response may hold, protobuf framing counted: the
    /// server's `max_batch_total_size_bytes` (4 MiB when it says 0), lowered to
    /// `remote_store_batch_api_size_limit`.
    pub batch_limit: u64,
    /// ByteStream transfers go as `compressed-blobs/zstd`.
    pub zstd: bool,
    /// `output_paths` for REAPI 2.1 and later, the older fields before.
    pub output_fields: OutputFields,
    /// The execution address offers `Execute`.
    pub execution: bool,
    /// The action cache accepts `UpdateActionResult`.
    pub action_cache_update: bool,
}

/// Reads the store's capabilities, and the execution endpoint's when it has its own.
pub(crate) fn features(
    store_address: &str,
    store: &reapi::ServerCapabilities,
    execution: Option<(&str, &reapi::ServerCapabilities)>,
    batch_size_limit: u64,
) -> Result<ServerFeatures, ReapiError> {
    let cache = store
        .cache_capabilities
        .as_ref()
        .ok_or_else(|| unsupported(store_address, "a content-addressable store"))?;
    require_sha256(store_address, &cache.digest_functions)?;

    let execution_capabilities = match execution {
        Some((address, capabilities)) => execution_capabilities(address, capabilities)?,
        None => None,
    };
    let api = execution
        .map_or(store, |(_, c)| c)
        .high_api_version
        .as_ref();
    let output_fields = if convert::version_at_least(api, 2, 1) {
        OutputFields::Paths
    } else {
        OutputFields::FilesAndDirectories
    };
    Ok(ServerFeatures {
        batch_limit: batch_limit(cache.max_batch_total_size_bytes, batch_size_limit),
        zstd: cache
            .supported_compressors
            .contains(&(compressor::Value::Zstd as i32)),
        output_fields,
        execution: execution_capabilities.is_some_and(|c| c.exec_enabled),
        action_cache_update: cache
            .action_cache_update_capabilities
            .as_ref()
            .is_some_and(|c| c.update_enabled),
    })
}

fn batch_limit(server: i64, configured: u64) -> u64 {
    let server = match u64::try_from(server) {
        Ok(0) | Err(_) => DEFAULT_BATCH_LIMIT,
        Ok(limit) => limit,
    };
    server.min(configured)
}

fn execution_capabilities<'a>(
    address: &str,
    capabilities: &'a reapi::ServerCapabilities,
) -> Result<Option<&'a reapi::ExecutionCapabilities>, ReapiError> {
    let Some(execution) = capabilities.execution_capabilities.as_ref() else {
        return Ok(None);
    };
    let single = execution.digest_function;
    let unknown = digest_function::Value::Unknown as i32;
    if single != unknown && single != digest_function::Value::Sha256 as i32 {
        return Err(unsupported(address, &sha256_wanted(&[single])));
    }
    require_sha256(address, &execution.digest_functions)?;
    Ok(Some(execution))
}

/// An empty list comes from servers older than the field; they all use SHA-256.
fn require_sha256(address: &str, offered: &[i32]) -> Result<(), ReapiError> {
    let sha256 = digest_function::Value::Sha256 as i32;
    if offered.is_empty() || offered.contains(&sha256) {
        Ok(())
    } else {
        Err(unsupported(address, &sha256_wanted(offered)))
    }
}

fn sha256_wanted(offered: &[i32]) -> String {
    let names: Vec<_> = offered
        .iter()
        .map(|&value| match digest_function::Value::try_from(value) {
            Ok(known) => known.as_str_name().to_owned(),
            Err(_) => value.to_string(),
        })
        .collect();
    format!(
        "the SHA256 digest function (it offers {}), which remex needs",
        names.join(", ")
    )
}

fn unsupported(address: &str, what: &str) -> ReapiError {
    ReapiError::Unsupported {
        address: address.to_owned(),
        what: what.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use remex_proto::build::bazel::semver::SemVer;

    use super::*;

    fn capabilities(max_batch: i64, digest_functions: Vec<i32>) -> reapi::ServerCapabilities {
        reapi::ServerCapabilities {
            cache_capabilities: Some(reapi::CacheCapabilities {
                digest_functions,
                max_batch_total_size_bytes: max_batch,
                supported_compressors: vec![compressor::Value::Zstd as i32],
                ..Default::default()
            }),
            high_api_version: Some(SemVer {
                major: 2,
                minor: 3,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn zero_batch_limit_means_the_default_and_the_option_lowers_it() {
        let sha256 = vec![digest_function::Value::Sha256 as i32];
        let features = features("a", &capabilities(0, sha256.clone()), None, u64::MAX).expect("ok");
        assert_eq!(features.batch_limit, DEFAULT_BATCH_LIMIT);
        assert!(features.zstd);
        assert_eq!(features.output_fields, OutputFields::Paths);
        let features = features_with_limit(&capabilities(10 << 20, sha256), 1 << 20);
        assert_eq!(features.batch_limit, 1 << 20);
    }

    fn features_with_limit(c: &reapi::ServerCapabilities, limit: u64) -> ServerFeatures {
        features("a", c, None, limit).expect("ok")
    }

    #[test]
    fn a_server_without_sha256_is_a_clear_error() {
        let sha1 = vec![digest_function::Value::Sha1 as i32];
        let error = features("grpc://h:1", &capabilities(0, sha1), None, 1 << 20).expect_err("no");
        let message = error.to_string();
        assert!(
            message.contains("SHA256") && message.contains("SHA1"),
            "{message}"
        );
    }

    #[test]
    fn old_servers_get_the_old_output_fields() {
        let mut old = capabilities(0, Vec::new());
        old.high_api_version = Some(SemVer {
            major: 2,
            minor: 0,
            ..Default::default()
        });
        let features = features_with_limit(&old, 1 << 20);
        assert_eq!(features.output_fields, OutputFields::FilesAndDirectories);
    }
}
