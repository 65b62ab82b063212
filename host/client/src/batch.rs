//! Splitting blobs into batch requests that stay under the server's
//! `max_batch_total_size_bytes`, counting every byte of protobuf framing, and sending what
//! cannot fit in any batch through ByteStream instead.

use bytes::Bytes;
use prost::Message;
use prost::encoding::encoded_len_varint;
use remex_proto::reapi;
use remex_store::Digest;

/// The size used when a server advertises no limit (`0`): gRPC's default largest message.
pub const DEFAULT_BATCH_LIMIT: u64 = 4 * 1024 * 1024;

/// What to send how.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct BatchPlan {
    /// Each inner list is one batch request.
    pub batches: Vec<Vec<Digest>>,
    /// Blobs too large for any batch.
    pub streamed: Vec<Digest>,
}

/// Plans `BatchUpdateBlobs` requests: each request's encoded size is at most `limit`.
pub fn plan_uploads(instance_name: &str, blobs: &[Digest], limit: u64) -> BatchPlan {
    let empty = reapi::BatchUpdateBlobsRequest {
        instance_name: instance_name.to_owned(),
        ..Default::default()
    };
    plan(empty.encoded_len() as u64, blobs, limit, upload_entry_len)
}

/// Plans `BatchReadBlobs` calls: each response's encoded size is at most `limit`.
pub fn plan_downloads(blobs: &[Digest], limit: u64) -> BatchPlan {
    plan(0, blobs, limit, download_entry_len)
}

fn plan(overhead: u64, blobs: &[Digest], limit: u64, entry_len: fn(&Digest) -> u64) -> BatchPlan {
    let mut result = BatchPlan::default();
    let mut batch = Vec::new();
    let mut batch_len = overhead;
    for digest in blobs {
        let len = entry_len(digest);
        if overhead + len > limit {
            result.streamed.push(*digest);
            continue;
        }
        if batch_len + len > limit {
            result.batches.push(std::mem::take(&mut batch));
            batch_len = overhead;
        }
        batch.push(*digest);
        batch_len += len;
    }
    if !batch.is_empty() {
        result.batches.push(batch);
    }
    result
}

/// Bytes one blob adds to a `BatchUpdateBlobsRequest`: its `Request` entry with tag and length.
fn upload_entry_len(digest: &Digest) -> u64 {
    let entry = reapi::batch_update_blobs_request::Request {
        digest: Some(digest.to_proto()),
        ..Default::default()
    };
    framed(entry.encoded_len() as u64 + bytes_field_len(digest.size_bytes))
}

/// Bytes one blob adds to a `BatchReadBlobsResponse`: digest, data, and an `OK` status.
fn download_entry_len(digest: &Digest) -> u64 {
    let entry = reapi::batch_read_blobs_response::Response {
        digest: Some(digest.to_proto()),
        status: Some(Default::default()),
        ..Default::default()
    };
    framed(entry.encoded_len() as u64 + bytes_field_len(digest.size_bytes))
}

/// A `bytes` field of `n` bytes: key, length, data; proto3 leaves empty ones out.
fn bytes_field_len(n: u64) -> u64 {
    if n == 0 {
        0
    } else {
        1 + encoded_len_varint(n) as u64 + n
    }
}

/// A length-delimited field with a one-byte key (field numbers below 16).
fn framed(len: u64) -> u64 {
    1 + encoded_len_varint(len) as u64 + len
}

/// A `BatchUpdateBlobsRequest` entry.
pub(crate) fn upload_entry(
    digest: &Digest,
    data: Bytes,
) -> reapi::batch_update_blobs_request::Request {
    reapi::batch_update_blobs_request::Request {
        digest: Some(digest.to_proto()),
        data,
        compressor: reapi::compressor::Value::Identity as i32,
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const MIB: u64 = 1024 * 1024;

    /// A digest naming a blob of `size` bytes; the planner only looks at sizes.
    fn blob(size: u64, n: u8) -> Digest {
        Digest {
            hash: [n; 32],
            size_bytes: size,
        }
    }

    fn encoded_request(instance_name: &str, batch: &[Digest]) -> u64 {
        let request = reapi::BatchUpdateBlobsRequest {
            instance_name: instance_name.to_owned(),
            requests: batch
                .iter()
                .map(|d| upload_entry(d, Bytes::from(vec![0u8; d.size_bytes as usize])))
                .collect(),
            ..Default::default()
        };
        request.encoded_len() as u64
    }

    fn encoded_response(batch: &[Digest]) -> u64 {
        let response = reapi::BatchReadBlobsResponse {
            responses: batch
                .iter()
                .map(|d| reapi::batch_read_blobs_response::Response {
                    digest: Some(d.to_proto()),
                    data: Bytes::from(vec![0u8; d.size_bytes as usize]),
                    status: Some(Default::default()),
                    compressor: 0,
                })
                .collect(),
        };
        response.encoded_len() as u64
    }

    #[test]
    fn a_one_mib_server_gets_no_request_over_one_mib() {
        // Two blobs whose data alone fits in 1 MiB, but not with their framing.
        let half = MIB / 2;
        let blobs = [
            blob(half, 1),
            blob(half, 2),
            blob(MIB - 200, 3),
            blob(MIB, 4),
        ];
        let plan = plan_uploads("main", &blobs, MIB);
        for batch in &plan.batches {
            let len = encoded_request("main", batch);
            assert!(len <= MIB, "request of {len} bytes for {batch:?}");
        }
        assert_eq!(plan.batches.len(), 3, "{plan:?}");
        assert_eq!(plan.streamed, vec![blob(MIB, 4)]);
    }

    #[test]
    fn the_limit_is_exact_when_framing_is_counted() {
        let entry = upload_entry_len(&blob(1000, 1));
        let limit = 2 * entry;
        let plan = plan_uploads("", &[blob(1000, 1), blob(1000, 2)], limit);
        assert_eq!(plan.batches.len(), 1, "{plan:?}");
        assert_eq!(encoded_request("", &plan.batches[0]), limit);
        let plan = plan_uploads("", &[blob(1000, 1), blob(1000, 2)], limit - 1);
        assert_eq!(plan.batches.len(), 2, "{plan:?}");
    }

    proptest! {
        #[test]
        fn batches_never_exceed_the_limit(
            sizes in prop::collection::vec(0u64..300_000, 1..40),
            limit in 2_000u64..1_500_000,
            instance in "[a-z/]{0,20}",
        ) {
            let blobs: Vec<Digest> =
                sizes.iter().enumerate().map(|(i, &s)| blob(s, i as u8)).collect();

            let plan = plan_uploads(&instance, &blobs, limit);
            for batch in &plan.batches {
                let len = encoded_request(&instance, batch);
                prop_assert!(len <= limit, "request of {} > {}", len, limit);
            }
            let planned = plan.batches.iter().map(Vec::len).sum::<usize>() + plan.streamed.len();
            prop_assert_eq!(planned, blobs.len());
            for streamed in &plan.streamed {
                let alone = encoded_request(&instance, std::slice::from_ref(streamed));
                prop_assert!(alone > limit, "{} could have been batched", streamed);
            }

            let plan = plan_downloads(&blobs, limit);
            for batch in &plan.batches {
                let len = encoded_response(batch);
                prop_assert!(len <= limit, "response of {} > {}", len, limit);
            }
        }
    }
}
