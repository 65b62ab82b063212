//! The embedded server refuses malformed actions with `INVALID_ARGUMENT` naming the offending
//! entry, before running anything, and writes nothing outside the store and the sandbox.

use bytes::Bytes;
use prost::Message;
use remex_proto::reapi;
use remex_store::Digest;
use tonic::Code;

use crate::server_fixture::{ActionSpec, TestServer, execute, execute_request, upload};

fn file(name: &str) -> reapi::FileNode {
    reapi::FileNode {
        name: name.into(),
        digest: Some(Digest::of_bytes(b"content").to_proto()),
        ..Default::default()
    }
}

fn link(name: &str, target: &str) -> reapi::SymlinkNode {
    reapi::SymlinkNode {
        name: name.into(),
        target: target.into(),
        ..Default::default()
    }
}

/// Executes `spec` over the input root `root` (with `children` beside it in the CAS) and
/// returns the error, which must be `INVALID_ARGUMENT`.
async fn refused(
    server: &TestServer,
    spec: &ActionSpec,
    root: &reapi::Directory,
    children: &[reapi::Directory],
) -> String {
    let root_bytes = root.encode_to_vec();
    let mut blobs = vec![b"content".to_vec(), root_bytes.clone()];
    blobs.extend(children.iter().map(Message::encode_to_vec));
    let built = spec.finish(Digest::of_bytes(&root_bytes), blobs);
    upload(&mut server.cas().await, &built.blobs).await;

    let mut client = server.execution().await;
    let status = execute(&mut client, execute_request(&built.digest))
        .await
        .err()
        .expect("refused");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    status.message().to_owned()
}

fn with_files(names: &[&str]) -> reapi::Directory {
    reapi::Directory {
        files: names.iter().map(|n| file(n)).collect(),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_that_are_not_one_path_segment_are_refused() {
    let server = TestServer::start().await;
    let spec = ActionSpec::shell("true");
    for name in ["a/b", ".", "..", "nul\0byte"] {
        let message = refused(&server, &spec, &with_files(&[name]), &[]).await;
        assert!(
            message.contains(&format!("`{name}`")),
            "{name:?}: {message}"
        );
    }
    let message = refused(&server, &spec, &with_files(&[""]), &[]).await;
    assert!(message.contains("empty name"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsorted_and_duplicate_entries_are_refused() {
    let server = TestServer::start().await;
    let spec = ActionSpec::shell("true");
    let message = refused(&server, &spec, &with_files(&["b", "a"]), &[]).await;
    assert!(
        message.contains("`a`") && message.contains("sorted"),
        "{message}"
    );

    let message = refused(&server, &spec, &with_files(&["a", "a"]), &[]).await;
    assert!(
        message.contains("`a`") && message.contains("twice"),
        "{message}"
    );

    let child = reapi::Directory::default();
    let root = reapi::Directory {
        files: vec![file("x")],
        directories: vec![reapi::DirectoryNode {
            name: "x".into(),
            digest: Some(Digest::of_message(&child).0.to_proto()),
        }],
        ..Default::default()
    };
    let message = refused(&server, &spec, &root, &[child]).await;
    assert!(
        message.contains("`x`") && message.contains("twice"),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_entries_deep_in_the_tree_are_named_by_path() {
    let server = TestServer::start().await;
    let spec = ActionSpec::shell("true");
    let inner = with_files(&[".."]);
    let root = reapi::Directory {
        directories: vec![reapi::DirectoryNode {
            name: "src".into(),
            digest: Some(Digest::of_message(&inner).0.to_proto()),
        }],
        ..Default::default()
    };
    let message = refused(&server, &spec, &root, &[inner]).await;
    assert!(message.contains("`src/..`"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn symlinks_escaping_the_input_root_are_refused() {
    let server = TestServer::start().await;
    let spec = ActionSpec::shell("true");
    let cases = [
        vec![link("up", "../outside")],
        vec![link("abs", "/etc/passwd")],
        vec![link("here", "."), link("sneaky", "here/..")],
    ];
    for links in cases {
        let name = links.last().expect("a link").name.clone();
        let root = reapi::Directory {
            symlinks: links,
            ..Default::default()
        };
        let message = refused(&server, &spec, &root, &[]).await;
        assert!(message.contains(&format!("`{name}`")), "{name}: {message}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_paths_and_working_directories_outside_the_sandbox_are_refused() {
    let server = TestServer::start().await;
    let escape = server.dir.path().join("escape");
    let script = format!("echo x > {}", escape.display());
    let root = reapi::Directory::default();

    let spec = ActionSpec::shell(&script).outputs(&["../../escape"]);
    let message = refused(&server, &spec, &root, &[]).await;
    assert!(message.contains("`../../escape`"), "{message}");

    let mut spec = ActionSpec::shell(&script);
    spec.working_directory = "../..".into();
    let message = refused(&server, &spec, &root, &[]).await;
    assert!(message.contains("working directory `../..`"), "{message}");

    let spec = ActionSpec::shell(&script).outputs(&["/tmp/absolute"]);
    let message = refused(&server, &spec, &root, &[]).await;
    assert!(message.contains("`/tmp/absolute`"), "{message}");
    assert!(!escape.exists(), "nothing ran");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blobs_that_are_not_directories_are_refused() {
    let server = TestServer::start().await;
    let spec = ActionSpec::shell("true");
    let garbage = vec![0xffu8; 16];
    upload(&mut server.cas().await, std::slice::from_ref(&garbage)).await;
    let built = spec.finish(Digest::of_bytes(&garbage), Vec::new());
    upload(&mut server.cas().await, &built.blobs).await;
    let mut client = server.execution().await;
    let status = execute(&mut client, execute_request(&built.digest))
        .await
        .err()
        .expect("refused");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(
        status.message().contains("`Directory`"),
        "{}",
        status.message()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blobs_whose_bytes_do_not_match_their_digest_are_refused() {
    let server = TestServer::start().await;
    let mut cas = server.cas().await;
    let claimed = Digest::of_bytes(b"claimed");
    let request = reapi::BatchUpdateBlobsRequest {
        requests: vec![reapi::batch_update_blobs_request::Request {
            digest: Some(claimed.to_proto()),
            data: Bytes::from_static(b"actual"),
            compressor: 0,
        }],
        ..Default::default()
    };
    let response = cas
        .batch_update_blobs(request)
        .await
        .expect("batch")
        .into_inner();
    let status = response.responses[0].status.as_ref().expect("status");
    assert_eq!(status.code, Code::InvalidArgument as i32);
    assert!(
        status.message.contains(&claimed.to_string()),
        "{}",
        status.message
    );
    assert!(!server.store.contains(&claimed));
}
