//! The embedded server's Capabilities and CAS batch RPCs, over a real socket.

use bytes::Bytes;
use futures::StreamExt;
use prost::Message;
use remex_proto::reapi;
use remex_proto::reapi::capabilities_client::CapabilitiesClient;
use remex_store::Digest;
use tonic::Code;

use crate::server_fixture::{TestServer, upload};

fn blob_request(data: &[u8], digest: Digest) -> reapi::batch_update_blobs_request::Request {
    reapi::batch_update_blobs_request::Request {
        digest: Some(digest.to_proto()),
        data: Bytes::copy_from_slice(data),
        compressor: 0,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capabilities_advertise_sha256_zstd_and_execution() {
    let server = TestServer::start().await;
    let mut client = CapabilitiesClient::new(server.channel().await);
    let capabilities = client
        .get_capabilities(reapi::GetCapabilitiesRequest::default())
        .await
        .expect("capabilities")
        .into_inner();

    let cache = capabilities.cache_capabilities.expect("cache capabilities");
    let sha256 = reapi::digest_function::Value::Sha256 as i32;
    let zstd = reapi::compressor::Value::Zstd as i32;
    assert_eq!(cache.digest_functions, [sha256]);
    assert_eq!(cache.max_batch_total_size_bytes, 4 << 20);
    assert_eq!(cache.supported_compressors, [zstd]);
    assert_eq!(cache.supported_batch_update_compressors, [zstd]);
    let disallowed = reapi::symlink_absolute_path_strategy::Value::Disallowed as i32;
    assert_eq!(cache.symlink_absolute_path_strategy, disallowed);
    assert!(
        cache
            .action_cache_update_capabilities
            .expect("ac")
            .update_enabled
    );

    let execution = capabilities.execution_capabilities.expect("execution");
    assert!(execution.exec_enabled);
    assert_eq!(execution.digest_function, sha256);
    let low = capabilities.low_api_version.expect("low");
    let high = capabilities.high_api_version.expect("high");
    assert_eq!((low.major, low.minor, high.major, high.minor), (2, 0, 2, 3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn find_missing_reports_only_absent_blobs_and_never_the_empty_one() {
    let server = TestServer::start().await;
    let mut cas = server.cas().await;
    upload(&mut cas, &[b"present".to_vec()]).await;

    let present = Digest::of_bytes(b"present");
    let absent = Digest::of_bytes(b"absent");
    let request = reapi::FindMissingBlobsRequest {
        instance_name: "any/instance".into(),
        blob_digests: vec![
            present.to_proto(),
            absent.to_proto(),
            Digest::EMPTY.to_proto(),
        ],
        digest_function: 0,
    };
    let missing = cas
        .find_missing_blobs(request)
        .await
        .expect("find")
        .into_inner();
    assert_eq!(missing.missing_blob_digests, [absent.to_proto()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_update_verifies_each_blob_and_reports_each_status() {
    let server = TestServer::start().await;
    let mut cas = server.cas().await;
    let good = Digest::of_bytes(b"good");
    let lying = Digest::of_bytes(b"what it claims");
    let request = reapi::BatchUpdateBlobsRequest {
        requests: vec![
            blob_request(b"good", good),
            blob_request(b"other bytes", lying),
        ],
        ..Default::default()
    };
    let responses = cas
        .batch_update_blobs(request)
        .await
        .expect("batch")
        .into_inner()
        .responses;

    let codes: Vec<_> = responses
        .iter()
        .map(|r| r.status.as_ref().map(|s| s.code))
        .collect();
    assert_eq!(codes, [Some(0), Some(Code::InvalidArgument as i32)]);
    let message = &responses[1].status.as_ref().expect("status").message;
    assert!(
        message.contains(&lying.hex()),
        "names the digest: {message}"
    );
    assert!(server.store.contains(&good));
    assert!(!server.store.contains(&lying));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_update_and_read_speak_zstd() {
    let server = TestServer::start().await;
    let mut cas = server.cas().await;
    let data = b"squeeze me ".repeat(500);
    let digest = Digest::of_bytes(&data);
    let compressed = zstd::bulk::compress(&data, 3).expect("compress");
    let request = reapi::BatchUpdateBlobsRequest {
        requests: vec![reapi::batch_update_blobs_request::Request {
            digest: Some(digest.to_proto()),
            data: Bytes::from(compressed),
            compressor: reapi::compressor::Value::Zstd as i32,
        }],
        ..Default::default()
    };
    let responses = cas
        .batch_update_blobs(request)
        .await
        .expect("batch")
        .into_inner();
    assert_eq!(
        responses.responses[0].status.as_ref().map(|s| s.code),
        Some(0)
    );

    let request = reapi::BatchReadBlobsRequest {
        digests: vec![digest.to_proto()],
        acceptable_compressors: vec![reapi::compressor::Value::Zstd as i32],
        ..Default::default()
    };
    let read = cas
        .batch_read_blobs(request)
        .await
        .expect("read")
        .into_inner();
    let blob = &read.responses[0];
    assert_eq!(blob.compressor, reapi::compressor::Value::Zstd as i32);
    let decompressed = zstd::bulk::decompress(&blob.data, data.len()).expect("zstd");
    assert_eq!(decompressed, data);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_read_reports_missing_blobs_one_by_one() {
    let server = TestServer::start().await;
    let mut cas = server.cas().await;
    upload(&mut cas, &[b"here".to_vec()]).await;
    let request = reapi::BatchReadBlobsRequest {
        instance_name: "a/b/c".into(),
        digests: vec![
            Digest::of_bytes(b"here").to_proto(),
            Digest::of_bytes(b"gone").to_proto(),
        ],
        ..Default::default()
    };
    let read = cas
        .batch_read_blobs(request)
        .await
        .expect("read")
        .into_inner();
    let codes: Vec<_> = read
        .responses
        .iter()
        .map(|r| r.status.as_ref().map(|s| s.code))
        .collect();
    assert_eq!(codes, [Some(0), Some(Code::NotFound as i32)]);
    assert_eq!(read.responses[0].data.as_ref(), b"here");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_over_the_limit_are_refused() {
    let server = TestServer::start_with(|b| b.max_batch_total_size_bytes(1000)).await;
    let mut cas = server.cas().await;
    let data = vec![1u8; 1001];
    let request = reapi::BatchUpdateBlobsRequest {
        requests: vec![blob_request(&data, Digest::of_bytes(&data))],
        ..Default::default()
    };
    let status = cas.batch_update_blobs(request).await.expect_err("too big");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");

    let request = reapi::BatchReadBlobsRequest {
        digests: vec![Digest::of_bytes(&data).to_proto()],
        ..Default::default()
    };
    let status = cas.batch_read_blobs(request).await.expect_err("too big");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
}

/// A root with `fanout` subdirectories, each with one file: `fanout + 1` directories.
fn wide_tree(fanout: usize) -> (Digest, Vec<Vec<u8>>) {
    let mut blobs = Vec::new();
    let mut root = reapi::Directory::default();
    for i in 0..fanout {
        let child = reapi::Directory {
            files: vec![reapi::FileNode {
                name: "f".into(),
                digest: Some(Digest::of_bytes(format!("{i}").as_bytes()).to_proto()),
                ..Default::default()
            }],
            ..Default::default()
        };
        let bytes = child.encode_to_vec();
        root.directories.push(reapi::DirectoryNode {
            name: format!("d{i:03}"),
            digest: Some(Digest::of_bytes(&bytes).to_proto()),
        });
        blobs.push(bytes);
    }
    let bytes = root.encode_to_vec();
    let digest = Digest::of_bytes(&bytes);
    blobs.push(bytes);
    (digest, blobs)
}

async fn get_tree_pages(
    server: &TestServer,
    root: &Digest,
    page_size: i32,
    page_token: &str,
) -> Vec<reapi::GetTreeResponse> {
    let mut cas = server.cas().await;
    let request = reapi::GetTreeRequest {
        root_digest: Some(root.to_proto()),
        page_size,
        page_token: page_token.into(),
        ..Default::default()
    };
    let stream = cas.get_tree(request).await.expect("get tree").into_inner();
    stream.map(|page| page.expect("page")).collect().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_tree_pages_through_the_whole_tree_and_resumes_from_a_token() {
    let server = TestServer::start().await;
    let (root, blobs) = wide_tree(10);
    upload(&mut server.cas().await, &blobs).await;

    let pages = get_tree_pages(&server, &root, 4, "").await;
    let sizes: Vec<_> = pages.iter().map(|p| p.directories.len()).collect();
    assert_eq!(sizes, [4, 4, 3]);
    assert_eq!(pages[0].directories[0].directories.len(), 10, "root first");
    assert!(pages.last().expect("last").next_page_token.is_empty());

    let resumed = get_tree_pages(&server, &root, 4, &pages[0].next_page_token).await;
    let rest: Vec<_> = pages[1..]
        .iter()
        .flat_map(|p| p.directories.clone())
        .collect();
    let again: Vec<_> = resumed.iter().flat_map(|p| p.directories.clone()).collect();
    assert_eq!(again, rest);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_tree_of_an_absent_root_is_not_found() {
    let server = TestServer::start().await;
    let mut cas = server.cas().await;
    let request = reapi::GetTreeRequest {
        root_digest: Some(Digest::of_bytes(b"no such directory").to_proto()),
        ..Default::default()
    };
    let status = match cas.get_tree(request).await {
        Ok(response) => {
            let mut stream = response.into_inner();
            stream
                .next()
                .await
                .expect("an item")
                .expect_err("not found")
        }
        Err(status) => status,
    };
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_instance_names_are_refused_when_instances_are_configured() {
    let server = TestServer::start_with(|b| b.instance_names(["team/linux".to_owned()])).await;
    let mut cas = server.cas().await;
    let request = |instance_name: &str| reapi::FindMissingBlobsRequest {
        instance_name: instance_name.into(),
        blob_digests: vec![Digest::of_bytes(b"x").to_proto()],
        digest_function: 0,
    };
    cas.find_missing_blobs(request("team/linux"))
        .await
        .expect("served instance");
    let status = cas
        .find_missing_blobs(request("team/mac"))
        .await
        .expect_err("other instance");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().contains("team/mac"),
        "{}",
        status.message()
    );
}
