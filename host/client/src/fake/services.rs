//! The fake's gRPC services over [`FakeState`].

use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use futures::Stream;
use prost::Message;
use remex_proto::bytestream::byte_stream_server::{ByteStream, ByteStreamServer};
use remex_proto::bytestream::{
    QueryWriteStatusRequest, QueryWriteStatusResponse, ReadRequest, ReadResponse, WriteRequest,
    WriteResponse,
};
use remex_proto::longrunning::{Operation, operation};
use remex_proto::reapi::action_cache_server::{ActionCache, ActionCacheServer};
use remex_proto::reapi::capabilities_server::{Capabilities, CapabilitiesServer};
use remex_proto::reapi::content_addressable_storage_server::{
    ContentAddressableStorage, ContentAddressableStorageServer,
};
use remex_proto::reapi::execution_server::{Execution, ExecutionServer};
use remex_proto::{reapi, rpc};
use remex_store::Digest;
use tonic::transport::server::Router;
use tonic::transport::{Certificate, Identity, Server, ServerTlsConfig};
use tonic::{Code, Request, Response, Status, Streaming};

use super::{FakeState, Fault, Rpc, lock};
use crate::convert;
use crate::resource::{BlobEncoding, parse_name};

type ResponseStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

/// Bytes per `ReadResponse`.
const READ_CHUNK: usize = 64 * 1024;

#[derive(Clone)]
struct FakeService {
    state: Arc<FakeState>,
}

pub(super) fn router(state: Arc<FakeState>) -> Result<Router, Box<dyn std::error::Error>> {
    let mut builder = Server::builder();
    if let Some(tls) = &state.config.tls {
        let mut config =
            ServerTlsConfig::new().identity(Identity::from_pem(&tls.cert_pem, &tls.key_pem));
        if let Some(ca) = &tls.client_ca_pem {
            config = config.client_ca_root(Certificate::from_pem(ca));
        }
        builder = builder.tls_config(config)?;
    }
    let service = FakeService { state };
    let unlimited = usize::MAX;
    Ok(builder
        .add_service(CapabilitiesServer::new(service.clone()))
        .add_service(
            ContentAddressableStorageServer::new(service.clone())
                .max_decoding_message_size(unlimited)
                .max_encoding_message_size(unlimited),
        )
        .add_service(
            ByteStreamServer::new(service.clone())
                .max_decoding_message_size(unlimited)
                .max_encoding_message_size(unlimited),
        )
        .add_service(ActionCacheServer::new(service.clone()))
        .add_service(ExecutionServer::new(service)))
}

fn digest_of(digest: Option<&reapi::Digest>) -> Result<Digest, Status> {
    Digest::from_proto_field(digest).map_err(|e| Status::invalid_argument(e.to_string()))
}

fn ok_status() -> Option<rpc::Status> {
    Some(rpc::Status::default())
}

fn code_status(code: Code, message: &str) -> Option<rpc::Status> {
    Some(rpc::Status {
        code: code as i32,
        message: message.to_owned(),
        details: Vec::new(),
    })
}

#[tonic::async_trait]
impl Capabilities for FakeService {
    async fn get_capabilities(
        &self,
        request: Request<reapi::GetCapabilitiesRequest>,
    ) -> Result<Response<reapi::ServerCapabilities>, Status> {
        let _call = self.state.begin(Rpc::GetCapabilities, &request).await?;
        self.state
            .check_instance(&request.get_ref().instance_name)?;
        Ok(Response::new(self.state.config.capabilities()))
    }
}

#[tonic::async_trait]
impl ContentAddressableStorage for FakeService {
    async fn find_missing_blobs(
        &self,
        request: Request<reapi::FindMissingBlobsRequest>,
    ) -> Result<Response<reapi::FindMissingBlobsResponse>, Status> {
        let _call = self.state.begin(Rpc::FindMissingBlobs, &request).await?;
        let request = request.into_inner();
        self.state.check_instance(&request.instance_name)?;
        let mut missing = Vec::new();
        for digest in &request.blob_digests {
            if !self.state.has_blob(&digest_of(Some(digest))?) {
                missing.push(digest.clone());
            }
        }
        Ok(Response::new(reapi::FindMissingBlobsResponse {
            missing_blob_digests: missing,
        }))
    }

    async fn batch_update_blobs(
        &self,
        request: Request<reapi::BatchUpdateBlobsRequest>,
    ) -> Result<Response<reapi::BatchUpdateBlobsResponse>, Status> {
        let _call = self.state.begin(Rpc::BatchUpdateBlobs, &request).await?;
        let request = request.into_inner();
        self.state.check_instance(&request.instance_name)?;
        self.check_batch_size(request.encoded_len())?;
        let mut responses = Vec::new();
        for entry in request.requests {
            let digest = digest_of(entry.digest.as_ref())?;
            let status = if digest.verify(&entry.data).is_ok() {
                lock(&self.state.blobs).insert(digest, entry.data);
                ok_status()
            } else {
                code_status(Code::InvalidArgument, "data does not match digest")
            };
            let digest =
                (!self.state.config.batch_update_without_digests).then(|| digest.to_proto());
            responses.push(reapi::batch_update_blobs_response::Response { digest, status });
        }
        Ok(Response::new(reapi::BatchUpdateBlobsResponse { responses }))
    }

    async fn batch_read_blobs(
        &self,
        request: Request<reapi::BatchReadBlobsRequest>,
    ) -> Result<Response<reapi::BatchReadBlobsResponse>, Status> {
        let call = self.state.begin(Rpc::BatchReadBlobs, &request).await?;
        if self.state.config.batch_read_unimplemented {
            return Err(Status::unimplemented("BatchReadBlobs"));
        }
        let request = request.into_inner();
        self.state.check_instance(&request.instance_name)?;
        let corrupt = call.fault == Some(Fault::Corrupt);
        let mut responses = Vec::new();
        for digest in &request.digests {
            let blob = self.state.blob(&digest_of(Some(digest))?);
            let (data, status) = match blob {
                Some(data) if corrupt => (flipped(&data), ok_status()),
                Some(data) => (data, ok_status()),
                None => (Bytes::new(), code_status(Code::NotFound, "no such blob")),
            };
            responses.push(reapi::batch_read_blobs_response::Response {
                digest: Some(digest.clone()),
                data,
                status,
                compressor: 0,
            });
        }
        let response = reapi::BatchReadBlobsResponse { responses };
        self.check_batch_size(response.encoded_len())?;
        Ok(Response::new(response))
    }

    type GetTreeStream = ResponseStream<reapi::GetTreeResponse>;

    async fn get_tree(
        &self,
        _request: Request<reapi::GetTreeRequest>,
    ) -> Result<Response<Self::GetTreeStream>, Status> {
        Err(Status::unimplemented("GetTree"))
    }
}

impl FakeService {
    /// Notes a batch's size, and refuses one over the advertised limit as a real server would.
    fn check_batch_size(&self, size: usize) -> Result<(), Status> {
        lock(&self.state.batch_sizes).push(size);
        let limit = self.state.config.max_batch_total_size_bytes;
        if limit > 0 && size as i64 > limit {
            let message = format!("batch of {size} bytes is over the {limit} byte limit");
            return Err(Status::invalid_argument(message));
        }
        Ok(())
    }
}

fn flipped(data: &Bytes) -> Bytes {
    let mut bytes = data.to_vec();
    if let Some(first) = bytes.first_mut() {
        *first ^= 0xff;
    } else {
        bytes.push(0);
    }
    Bytes::from(bytes)
}

#[tonic::async_trait]
impl ByteStream for FakeService {
    type ReadStream = ResponseStream<ReadResponse>;

    async fn read(
        &self,
        request: Request<ReadRequest>,
    ) -> Result<Response<Self::ReadStream>, Status> {
        let call = self.state.begin(Rpc::Read, &request).await?;
        let request = request.into_inner();
        lock(&self.state.read_offsets).push(request.read_offset);
        lock(&self.state.resource_names).push(request.resource_name.clone());
        let name = parse_name(&request.resource_name)
            .filter(|n| n.upload.is_none())
            .ok_or_else(|| Status::invalid_argument("bad resource name"))?;
        self.state.check_instance(&name.instance_name)?;
        let blob = self
            .state
            .blob(&name.digest)
            .ok_or_else(|| Status::not_found("no such blob"))?;
        let offset = usize::try_from(request.read_offset)
            .ok()
            .filter(|o| *o <= blob.len())
            .ok_or_else(|| Status::out_of_range("read_offset past the end"))?;

        let mut data = blob.slice(offset..);
        if call.fault == Some(Fault::Corrupt) {
            data = flipped(&data);
        }
        let mut payload = match name.encoding {
            BlobEncoding::Identity => data.to_vec(),
            BlobEncoding::Zstd => zstd::encode_all(&data[..], 3)?,
        };
        if let Some(Fault::Truncate(n)) = call.fault {
            payload.truncate(n);
        }
        let chunks: Vec<Result<ReadResponse, Status>> = payload
            .chunks(READ_CHUNK)
            .map(|c| {
                Ok(ReadResponse {
                    data: Bytes::copy_from_slice(c),
                })
            })
            .collect();
        Ok(Response::new(Box::pin(futures::stream::iter(chunks))))
    }

    async fn write(
        &self,
        request: Request<Streaming<WriteRequest>>,
    ) -> Result<Response<WriteResponse>, Status> {
        let call = self.state.begin(Rpc::Write, &request).await?;
        let mut stream = request.into_inner();
        let first = stream
            .message()
            .await?
            .ok_or_else(|| Status::invalid_argument("empty Write"))?;
        let resource_name = first.resource_name.clone();
        lock(&self.state.resource_names).push(resource_name.clone());
        let name = parse_name(&resource_name)
            .filter(|n| n.upload.is_some())
            .ok_or_else(|| Status::invalid_argument("bad upload name"))?;
        self.state.check_instance(&name.instance_name)?;
        if self.state.has_blob(&name.digest) {
            // Early completion: the blob is there already.
            return Ok(Response::new(WriteResponse {
                committed_size: committed(&name.encoding, name.digest.size_bytes as i64),
            }));
        }
        let interrupt_at = match call.fault {
            Some(Fault::InterruptWrite(n)) => Some(n),
            _ => None,
        };
        let mut buffer = lock(&self.state.writes)
            .remove(&resource_name)
            .unwrap_or_default();
        let mut next = Some(first);
        while let Some(message) = next {
            if message.write_offset != buffer.len() as i64 {
                return Err(Status::invalid_argument(
                    "write_offset is not the committed size",
                ));
            }
            buffer.extend_from_slice(&message.data);
            if let Some(n) = interrupt_at.filter(|n| buffer.len() >= *n) {
                buffer.truncate(n);
                lock(&self.state.writes).insert(resource_name, buffer);
                return Err(Status::unavailable("injected: write interrupted"));
            }
            if message.finish_write {
                return self.finish_write(&name.encoding, name.digest, buffer);
            }
            next = stream.message().await?;
        }
        lock(&self.state.writes).insert(resource_name, buffer);
        Err(Status::invalid_argument("Write ended without finish_write"))
    }

    async fn query_write_status(
        &self,
        request: Request<QueryWriteStatusRequest>,
    ) -> Result<Response<QueryWriteStatusResponse>, Status> {
        let _call = self.state.begin(Rpc::QueryWriteStatus, &request).await?;
        let resource_name = request.into_inner().resource_name;
        let name =
            parse_name(&resource_name).ok_or_else(|| Status::invalid_argument("bad name"))?;
        if self.state.has_blob(&name.digest) {
            return Ok(Response::new(QueryWriteStatusResponse {
                committed_size: name.digest.size_bytes as i64,
                complete: true,
            }));
        }
        let writes = lock(&self.state.writes);
        let partial = writes
            .get(&resource_name)
            .ok_or_else(|| Status::not_found("no such upload"))?;
        Ok(Response::new(QueryWriteStatusResponse {
            committed_size: partial.len() as i64,
            complete: false,
        }))
    }
}

fn committed(encoding: &BlobEncoding, size: i64) -> i64 {
    match encoding {
        BlobEncoding::Identity => size,
        BlobEncoding::Zstd => -1,
    }
}

impl FakeService {
    fn finish_write(
        &self,
        encoding: &BlobEncoding,
        digest: Digest,
        buffer: Vec<u8>,
    ) -> Result<Response<WriteResponse>, Status> {
        let sent = buffer.len() as i64;
        let data = match encoding {
            BlobEncoding::Identity => buffer,
            BlobEncoding::Zstd => zstd::decode_all(buffer.as_slice())?,
        };
        digest
            .verify(&data)
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        lock(&self.state.blobs).insert(digest, Bytes::from(data));
        Ok(Response::new(WriteResponse {
            committed_size: sent,
        }))
    }
}

#[tonic::async_trait]
impl ActionCache for FakeService {
    async fn get_action_result(
        &self,
        request: Request<reapi::GetActionResultRequest>,
    ) -> Result<Response<reapi::ActionResult>, Status> {
        let _call = self.state.begin(Rpc::GetActionResult, &request).await?;
        let request = request.into_inner();
        self.state.check_instance(&request.instance_name)?;
        let digest = digest_of(request.action_digest.as_ref())?;
        let results = lock(&self.state.action_results);
        let result = results
            .get(&digest)
            .cloned()
            .ok_or_else(|| Status::not_found("no cached result"))?;
        Ok(Response::new(result))
    }

    async fn update_action_result(
        &self,
        request: Request<reapi::UpdateActionResultRequest>,
    ) -> Result<Response<reapi::ActionResult>, Status> {
        let _call = self.state.begin(Rpc::UpdateActionResult, &request).await?;
        let request = request.into_inner();
        self.state.check_instance(&request.instance_name)?;
        let digest = digest_of(request.action_digest.as_ref())?;
        let result = request.action_result.unwrap_or_default();
        lock(&self.state.action_results).insert(digest, result.clone());
        Ok(Response::new(result))
    }
}

#[tonic::async_trait]
impl Execution for FakeService {
    type ExecuteStream = ResponseStream<Operation>;

    async fn execute(
        &self,
        request: Request<reapi::ExecuteRequest>,
    ) -> Result<Response<Self::ExecuteStream>, Status> {
        let call = self.state.begin(Rpc::Execute, &request).await?;
        let request = request.into_inner();
        self.state.check_instance(&request.instance_name)?;
        let action = digest_of(request.action_digest.as_ref())?;

        let response = match &call.fault {
            Some(Fault::Evict(digests)) => {
                self.state.evict(digests);
                self.state.run(action, request.skip_cache_lookup)?
            }
            Some(Fault::ReportMissing(digests)) => return Err(super::run::missing_inputs(digests)),
            Some(Fault::EvictInResponse(digests)) => {
                self.state.evict(digests);
                self.state
                    .run(action, request.skip_cache_lookup)
                    .unwrap_or_else(|status| failed_response(&status))
            }
            Some(Fault::OperationError(_)) => reapi::ExecuteResponse::default(),
            _ => self.state.run(action, request.skip_cache_lookup)?,
        };

        let name = format!("operations/{}", uuid::Uuid::new_v4());
        let first = Operation {
            name: name.clone(),
            metadata: self.state.operation_metadata(action),
            done: false,
            result: None,
        };
        let result = match &call.fault {
            Some(Fault::OperationError(code)) => operation::Result::Error(rpc::Status {
                code: *code as i32,
                message: "injected: the worker failed".into(),
                details: Vec::new(),
            }),
            _ => operation::Result::Response(convert::execute_response_any(&response)),
        };
        let last = Operation {
            name: name.clone(),
            metadata: None,
            done: true,
            result: Some(result),
        };
        lock(&self.state.operations).insert(name, last.clone());
        let messages = match call.fault {
            Some(Fault::DropAfterName) => {
                vec![
                    Ok(first),
                    Err(Status::unavailable("injected: stream dropped")),
                ]
            }
            _ => vec![Ok(first), Ok(last)],
        };
        Ok(Response::new(Box::pin(futures::stream::iter(messages))))
    }

    type WaitExecutionStream = ResponseStream<Operation>;

    async fn wait_execution(
        &self,
        request: Request<reapi::WaitExecutionRequest>,
    ) -> Result<Response<Self::WaitExecutionStream>, Status> {
        let _call = self.state.begin(Rpc::WaitExecution, &request).await?;
        let name = request.into_inner().name;
        let operation = lock(&self.state.operations)
            .get(&name)
            .cloned()
            .ok_or_else(|| Status::not_found("no such operation"))?;
        Ok(Response::new(Box::pin(futures::stream::iter([Ok(
            operation,
        )]))))
    }
}

/// An `ExecuteResponse` carrying a failure, as servers report problems found while running.
fn failed_response(status: &Status) -> reapi::ExecuteResponse {
    let details = rpc::Status::decode(status.details()).unwrap_or_default();
    reapi::ExecuteResponse {
        status: Some(rpc::Status {
            code: status.code() as i32,
            message: status.message().to_owned(),
            details: details.details,
        }),
        ..Default::default()
    }
}
