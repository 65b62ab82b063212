//! The embedded server's ByteStream service: reads with offsets and limits, resumable and
//! compressed writes, early completion, resource names with and without instance names.

use bytes::Bytes;
use futures::StreamExt;
use remex_proto::bytestream::byte_stream_client::ByteStreamClient;
use remex_proto::bytestream::{QueryWriteStatusRequest, ReadRequest, WriteRequest};
use remex_store::Digest;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Code;
use tonic::transport::Channel;

use crate::server_fixture::{TestServer, upload};

fn data(size: usize) -> Vec<u8> {
    (0..size).map(|i| (i * 7 % 251) as u8).collect()
}

fn upload_name(instance: &str, uuid: &str, digest: &Digest, compressed: bool) -> String {
    let kind = if compressed {
        "compressed-blobs/zstd"
    } else {
        "blobs"
    };
    let tail = format!(
        "uploads/{uuid}/{kind}/{}/{}",
        digest.hex(),
        digest.size_bytes
    );
    if instance.is_empty() {
        tail
    } else {
        format!("{instance}/{tail}")
    }
}

fn read_name(instance: &str, digest: &Digest, compressed: bool) -> String {
    let kind = if compressed {
        "compressed-blobs/zstd"
    } else {
        "blobs"
    };
    let tail = format!("{kind}/{}/{}", digest.hex(), digest.size_bytes);
    if instance.is_empty() {
        tail
    } else {
        format!("{instance}/{tail}")
    }
}

/// The write requests for `data` from `offset`, in `chunk`-sized pieces, the last finishing.
fn pieces(name: &str, data: &[u8], offset: usize, chunk: usize) -> Vec<WriteRequest> {
    let mut requests = Vec::new();
    let mut at = offset;
    for piece in data[offset..].chunks(chunk) {
        requests.push(WriteRequest {
            resource_name: if at == offset {
                name.to_owned()
            } else {
                String::new()
            },
            write_offset: at as i64,
            finish_write: at + piece.len() == data.len(),
            data: Bytes::copy_from_slice(piece),
        });
        at += piece.len();
    }
    requests
}

async fn write_all(
    client: &mut ByteStreamClient<Channel>,
    requests: Vec<WriteRequest>,
) -> Result<i64, tonic::Status> {
    let response = client.write(futures::stream::iter(requests)).await?;
    Ok(response.into_inner().committed_size)
}

async fn read(
    client: &mut ByteStreamClient<Channel>,
    resource_name: String,
    read_offset: i64,
    read_limit: i64,
) -> Result<Vec<u8>, tonic::Status> {
    let request = ReadRequest {
        resource_name,
        read_offset,
        read_limit,
    };
    let mut stream = client.read(request).await?.into_inner();
    let mut out = Vec::new();
    while let Some(chunk) = stream.next().await {
        out.extend_from_slice(&chunk?.data);
    }
    Ok(out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_blob_written_in_pieces_reads_back_whole_and_in_ranges() {
    let server = TestServer::start().await;
    let mut client = server.bytestream().await;
    let blob = data(3_000_000);
    let digest = Digest::of_bytes(&blob);
    let name = upload_name("", "0b3b2a40-9d6a-4f1e-8a0c-3f5f5a6a7b8c", &digest, false);

    let committed = write_all(&mut client, pieces(&name, &blob, 0, 256 * 1024)).await;
    assert_eq!(committed.expect("write"), blob.len() as i64);
    assert!(server.store.contains(&digest));

    let whole = read(&mut client, read_name("", &digest, false), 0, 0).await;
    assert_eq!(whole.expect("read"), blob);
    let middle = read(
        &mut client,
        read_name("", &digest, false),
        1_000_000,
        12_345,
    )
    .await;
    assert_eq!(middle.expect("read"), &blob[1_000_000..1_012_345]);
    let tail = read(&mut client, read_name("", &digest, false), 2_999_990, 0).await;
    assert_eq!(tail.expect("read"), &blob[2_999_990..]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_outside_the_blob_or_of_absent_blobs_fail_with_the_right_code() {
    let server = TestServer::start().await;
    let mut client = server.bytestream().await;
    upload(&mut server.cas().await, &[b"short".to_vec()]).await;
    let digest = Digest::of_bytes(b"short");

    let past = read(&mut client, read_name("", &digest, false), 6, 0).await;
    assert_eq!(past.expect_err("past the end").code(), Code::OutOfRange);
    let negative = read(&mut client, read_name("", &digest, false), 0, -1).await;
    assert_eq!(
        negative.expect_err("negative").code(),
        Code::InvalidArgument
    );
    let absent = Digest::of_bytes(b"absent");
    let missing = read(&mut client, read_name("", &absent, false), 0, 0).await;
    assert_eq!(missing.expect_err("absent").code(), Code::NotFound);
    let garbled = read(&mut client, "blobs/nothex/5".into(), 0, 0).await;
    assert_eq!(garbled.expect_err("bad name").code(), Code::InvalidArgument);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_upload_resumes_from_the_committed_size() {
    let server = TestServer::start().await;
    let mut client = server.bytestream().await;
    let blob = data(1_000_000);
    let digest = Digest::of_bytes(&blob);
    let name = upload_name(
        "ci/linux",
        "6f1d2c3b-aaaa-4bbb-8ccc-123456789abc",
        &digest,
        false,
    );

    // The first stream sends 400 000 bytes and then breaks off without `finish_write`.
    let (sender, receiver) = mpsc::channel(8);
    let call = {
        let mut client = client.clone();
        tokio::spawn(async move { client.write(ReceiverStream::new(receiver)).await })
    };
    for request in pieces(&name, &blob, 0, 100_000).into_iter().take(4) {
        sender.send(request).await.expect("send");
    }
    let committed = wait_for_committed(&mut client, &name, 400_000).await;
    assert_eq!(committed, 400_000);
    drop(sender);
    let ended = call.await.expect("task");
    assert_eq!(
        ended.expect_err("no finish_write").code(),
        Code::InvalidArgument
    );

    // A new stream continues where the first stopped.
    let status = query(&mut client, &name).await.expect("status");
    assert_eq!((status.committed_size, status.complete), (400_000, false));
    let rest = pieces(&name, &blob, 400_000, 100_000);
    let committed = write_all(&mut client, rest).await.expect("resumed write");
    assert_eq!(committed, blob.len() as i64);
    assert_eq!(server.store.read(&digest).expect("stored"), blob);

    let status = query(&mut client, &name).await.expect("status");
    assert_eq!((status.committed_size, status.complete), (1_000_000, true));
}

async fn query(
    client: &mut ByteStreamClient<Channel>,
    name: &str,
) -> Result<remex_proto::bytestream::QueryWriteStatusResponse, tonic::Status> {
    let request = QueryWriteStatusRequest {
        resource_name: name.to_owned(),
    };
    Ok(client.query_write_status(request).await?.into_inner())
}

async fn wait_for_committed(client: &mut ByteStreamClient<Channel>, name: &str, want: i64) -> i64 {
    for _ in 0..200 {
        if let Ok(status) = query(client, name).await
            && status.committed_size >= want
        {
            return status.committed_size;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("upload `{name}` never reached {want} bytes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resuming_at_the_wrong_offset_is_refused_and_unknown_uploads_are_not_found() {
    let server = TestServer::start().await;
    let mut client = server.bytestream().await;
    let blob = data(10_000);
    let digest = Digest::of_bytes(&blob);
    let name = upload_name("", "wrong-offset", &digest, false);
    let status = write_all(&mut client, pieces(&name, &blob, 5_000, 1_000)).await;
    assert_eq!(
        status.expect_err("offset 5000 of nothing").code(),
        Code::InvalidArgument
    );

    let unknown = upload_name("", "never-started", &digest, false);
    let status = query(&mut client, &unknown).await.expect_err("unknown");
    assert_eq!(status.code(), Code::NotFound);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploading_a_blob_that_exists_completes_at_once() {
    let server = TestServer::start().await;
    let mut client = server.bytestream().await;
    let blob = data(50_000);
    let digest = Digest::of_bytes(&blob);
    upload(&mut server.cas().await, std::slice::from_ref(&blob)).await;

    // Only the first piece is sent; the server answers without waiting for the rest.
    let name = upload_name("", "again", &digest, false);
    let first = pieces(&name, &blob, 0, 1_000).remove(0);
    let (sender, receiver) = mpsc::channel(1);
    sender.send(first).await.expect("send");
    let response = client
        .write(ReceiverStream::new(receiver))
        .await
        .expect("write");
    assert_eq!(response.into_inner().committed_size, blob.len() as i64);

    let name = upload_name("", "again-compressed", &digest, true);
    let compressed = zstd::bulk::compress(&blob, 3).expect("zstd");
    let committed = write_all(&mut client, pieces(&name, &compressed, 0, 1_000)).await;
    assert_eq!(
        committed.expect("write"),
        -1,
        "REAPI's answer for compressed uploads"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compressed_blobs_go_both_ways_with_instance_names_of_several_segments() {
    let server = TestServer::start().await;
    let mut client = server.bytestream().await;
    let blob = b"compressible ".repeat(100_000);
    let digest = Digest::of_bytes(&blob);
    let compressed = zstd::bulk::compress(&blob, 3).expect("zstd");
    let instance = "team/linux/x86_64";
    let name = upload_name(
        instance,
        "c0ffee00-1111-4222-8333-444455556666",
        &digest,
        true,
    );

    let committed = write_all(&mut client, pieces(&name, &compressed, 0, 4096)).await;
    assert_eq!(committed.expect("write"), compressed.len() as i64);
    assert_eq!(server.store.read(&digest).expect("stored"), blob);

    let read_back = read(&mut client, read_name(instance, &digest, true), 0, 0).await;
    let read_back = read_back.expect("read");
    assert!(read_back.len() < blob.len() / 10, "compressed on the wire");
    let decompressed = zstd::stream::decode_all(read_back.as_slice()).expect("zstd");
    assert_eq!(decompressed, blob);

    let from_offset = read(&mut client, read_name(instance, &digest, true), 1_000, 0).await;
    let decompressed = zstd::stream::decode_all(from_offset.expect("read").as_slice());
    assert_eq!(decompressed.expect("zstd"), &blob[1_000..]);

    let limited = read(&mut client, read_name(instance, &digest, true), 0, 10).await;
    assert_eq!(
        limited.expect_err("limit with compression").code(),
        Code::InvalidArgument
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_whose_bytes_do_not_match_its_digest_is_refused() {
    let server = TestServer::start().await;
    let mut client = server.bytestream().await;
    let claimed = Digest::of_bytes(&data(1000));
    let mut wrong = data(1000);
    wrong[500] ^= 1;
    let name = upload_name("", "liar", &claimed, false);
    let status = write_all(&mut client, pieces(&name, &wrong, 0, 300)).await;
    let status = status.expect_err("mismatch");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().contains(&claimed.hex()),
        "{}",
        status.message()
    );
    assert!(!server.store.contains(&claimed));

    let too_long = data(1001);
    let name = upload_name("", "too-long", &claimed, false);
    let status = write_all(&mut client, pieces(&name, &too_long, 0, 300)).await;
    assert_eq!(status.expect_err("too long").code(), Code::InvalidArgument);

    let name = upload_name("", "bad-zstd", &claimed, true);
    let status = write_all(&mut client, pieces(&name, b"not zstd at all", 0, 300)).await;
    assert_eq!(status.expect_err("bad zstd").code(), Code::InvalidArgument);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_empty_blob_is_always_there() {
    let server = TestServer::start().await;
    let mut client = server.bytestream().await;
    let empty = read(&mut client, read_name("", &Digest::EMPTY, false), 0, 0).await;
    assert_eq!(empty.expect("read"), b"");
    let name = upload_name("", "empty", &Digest::EMPTY, false);
    let request = WriteRequest {
        resource_name: name,
        write_offset: 0,
        finish_write: true,
        data: Bytes::new(),
    };
    assert_eq!(
        write_all(&mut client, vec![request]).await.expect("write"),
        0
    );
}
