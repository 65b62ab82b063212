//! The embedded server's ActionCache: misses, updates checked against the CAS, and results
//! whose blobs have gone treated as misses.

use bytes::Bytes;
use remex_proto::reapi;
use remex_store::Digest;
use tonic::Code;

use crate::server_fixture::{TestServer, missing_subjects, subject, upload};

fn get(digest: &Digest) -> reapi::GetActionResultRequest {
    reapi::GetActionResultRequest {
        action_digest: Some(digest.to_proto()),
        ..Default::default()
    }
}

fn update(digest: &Digest, result: reapi::ActionResult) -> reapi::UpdateActionResultRequest {
    reapi::UpdateActionResultRequest {
        instance_name: "main".into(),
        action_digest: Some(digest.to_proto()),
        action_result: Some(result),
        ..Default::default()
    }
}

fn result_with_output(output: &Digest, stdout: &Digest) -> reapi::ActionResult {
    reapi::ActionResult {
        output_files: vec![reapi::OutputFile {
            path: "out.txt".into(),
            digest: Some(output.to_proto()),
            is_executable: false,
            ..Default::default()
        }],
        stdout_digest: Some(stdout.to_proto()),
        exit_code: 0,
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_miss_is_not_found() {
    let server = TestServer::start().await;
    let mut cache = server.action_cache().await;
    let status = cache
        .get_action_result(get(&Digest::of_bytes(b"never ran")))
        .await
        .expect_err("miss");
    assert_eq!(status.code(), Code::NotFound);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_with_its_blobs_present_is_served_back() {
    let server = TestServer::start().await;
    let mut cache = server.action_cache().await;
    upload(
        &mut server.cas().await,
        &[b"output".to_vec(), b"printed".to_vec()],
    )
    .await;
    let action = Digest::of_bytes(b"an action");
    let result = result_with_output(&Digest::of_bytes(b"output"), &Digest::of_bytes(b"printed"));

    cache
        .update_action_result(update(&action, result.clone()))
        .await
        .expect("update");
    let served = cache
        .get_action_result(get(&action))
        .await
        .expect("hit")
        .into_inner();
    assert_eq!(served, result);

    let mut request = get(&action);
    request.inline_stdout = true;
    request.inline_output_files = vec!["out.txt".into()];
    let inlined = cache
        .get_action_result(request)
        .await
        .expect("hit")
        .into_inner();
    assert_eq!(inlined.stdout_raw.as_ref(), b"printed");
    assert_eq!(inlined.output_files[0].contents.as_ref(), b"output");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_naming_absent_blobs_is_refused_with_each_of_them() {
    let server = TestServer::start().await;
    let mut cache = server.action_cache().await;
    let output = Digest::of_bytes(b"never uploaded");
    let stdout = Digest::of_bytes(b"nor this");
    let action = Digest::of_bytes(b"action");
    let status = cache
        .update_action_result(update(&action, result_with_output(&output, &stdout)))
        .await
        .expect_err("missing blobs");
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert_eq!(
        missing_subjects(&status),
        [subject(&output), subject(&stdout)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_with_bad_digests_is_invalid() {
    let server = TestServer::start().await;
    let mut cache = server.action_cache().await;
    let mut result = reapi::ActionResult::default();
    result.output_files.push(reapi::OutputFile {
        path: "bad".into(),
        digest: Some(reapi::Digest {
            hash: "not-a-hash".into(),
            size_bytes: 1,
        }),
        ..Default::default()
    });
    let status = cache
        .update_action_result(update(&Digest::of_bytes(b"a"), result))
        .await
        .expect_err("invalid");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().contains("bad"), "{}", status.message());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inlined_contents_are_stored_as_blobs() {
    let server = TestServer::start().await;
    let mut cache = server.action_cache().await;
    let action = Digest::of_bytes(b"inline action");
    let result = reapi::ActionResult {
        stdout_raw: Bytes::from_static(b"inline stdout"),
        ..Default::default()
    };
    let stored = cache
        .update_action_result(update(&action, result))
        .await
        .expect("update")
        .into_inner();
    let stdout = Digest::from_proto_field(stored.stdout_digest.as_ref()).expect("digest");
    assert_eq!(server.store.read(&stdout).expect("blob"), b"inline stdout");
    assert!(stored.stdout_raw.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_result_whose_blob_is_gone_is_a_miss() {
    let server = TestServer::start().await;
    let mut cache = server.action_cache().await;
    upload(
        &mut server.cas().await,
        &[b"output".to_vec(), b"printed".to_vec()],
    )
    .await;
    let action = Digest::of_bytes(b"doomed action");
    let output = Digest::of_bytes(b"output");
    let result = result_with_output(&output, &Digest::of_bytes(b"printed"));
    cache
        .update_action_result(update(&action, result))
        .await
        .expect("update");

    std::fs::remove_file(server.store.blob_path(&output)).expect("evict the output");
    let status = cache
        .get_action_result(get(&action))
        .await
        .expect_err("gone");
    assert_eq!(status.code(), Code::NotFound);
}
