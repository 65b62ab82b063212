//! The Capabilities service: what this server speaks, so clients can configure themselves.

use std::sync::Arc;

use remex_proto::build::bazel::semver::SemVer;
use remex_proto::reapi;
use remex_proto::reapi::capabilities_server::Capabilities;
use tonic::{Request, Response, Status};

use crate::state::Shared;

pub(crate) struct CapabilitiesService {
    shared: Arc<Shared>,
}

impl CapabilitiesService {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }
}

#[tonic::async_trait]
impl Capabilities for CapabilitiesService {
    async fn get_capabilities(
        &self,
        request: Request<reapi::GetCapabilitiesRequest>,
    ) -> Result<Response<reapi::ServerCapabilities>, Status> {
        self.shared
            .check_instance(&request.get_ref().instance_name)?;
        let max_batch = self.shared.settings.max_batch_total_size_bytes;
        Ok(Response::new(server_capabilities(max_batch)))
    }
}

/// REAPI 2.0 to 2.3, SHA-256 only, zstd for ByteStream and batch updates, no absolute symlinks.
pub(crate) fn server_capabilities(max_batch_total_size_bytes: u64) -> reapi::ServerCapabilities {
    let sha256 = reapi::digest_function::Value::Sha256 as i32;
    let zstd = reapi::compressor::Value::Zstd as i32;
    let cache = reapi::CacheCapabilities {
        digest_functions: vec![sha256],
        action_cache_update_capabilities: Some(reapi::ActionCacheUpdateCapabilities {
            update_enabled: true,
        }),
        cache_priority_capabilities: None,
        max_batch_total_size_bytes: i64::try_from(max_batch_total_size_bytes).unwrap_or(i64::MAX),
        symlink_absolute_path_strategy: reapi::symlink_absolute_path_strategy::Value::Disallowed
            as i32,
        supported_compressors: vec![zstd],
        supported_batch_update_compressors: vec![zstd],
        max_cas_blob_size_bytes: 0,
    };
    let execution = reapi::ExecutionCapabilities {
        digest_function: sha256,
        exec_enabled: true,
        execution_priority_capabilities: None,
        supported_node_properties: Vec::new(),
        digest_functions: vec![sha256],
    };
    reapi::ServerCapabilities {
        cache_capabilities: Some(cache),
        execution_capabilities: Some(execution),
        deprecated_api_version: None,
        low_api_version: Some(version(2, 0)),
        high_api_version: Some(version(2, 3)),
    }
}

fn version(major: i32, minor: i32) -> SemVer {
    SemVer {
        major,
        minor,
        ..Default::default()
    }
}
