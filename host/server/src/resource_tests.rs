use proptest::prelude::*;

use super::*;

fn digest() -> Digest {
    Digest::of_bytes(b"resource")
}

fn blob(digest: &Digest) -> String {
    format!("{}/{}", digest.hex(), digest.size_bytes)
}

#[test]
fn reads_without_an_instance_name() {
    let parsed = parse_read(&format!("blobs/{}", blob(&digest()))).expect("parses");
    assert_eq!(parsed.instance_name, "");
    assert_eq!(parsed.digest, digest());
    assert_eq!(parsed.encoding, Encoding::Identity);
}

#[test]
fn reads_with_an_instance_name_of_several_segments() {
    let name = format!("team/linux/x86/compressed-blobs/zstd/{}", blob(&digest()));
    let parsed = parse_read(&name).expect("parses");
    assert_eq!(parsed.instance_name, "team/linux/x86");
    assert_eq!(parsed.encoding, Encoding::Zstd);
}

#[test]
fn writes_keep_the_upload_id_and_ignore_metadata() {
    let name = format!(
        "main/uploads/1234-abcd/blobs/{}/some/metadata",
        blob(&digest())
    );
    let parsed = parse_write(&name).expect("parses");
    assert_eq!(parsed.instance_name, "main");
    assert_eq!(parsed.uuid, "1234-abcd");
    assert_eq!(parsed.digest, digest());
}

#[test]
fn sha256_digest_function_segment_is_accepted_and_others_refused() {
    let name = format!("blobs/sha256/{}", blob(&digest()));
    assert_eq!(parse_read(&name).expect("parses").digest, digest());
    let name = format!("blobs/blake3/{}", blob(&digest()));
    let err = parse_read(&name).expect_err("unsupported");
    assert!(matches!(err, ResourceError::DigestFunction { .. }), "{err}");
}

#[test]
fn malformed_names_are_refused_with_a_reason() {
    let hash = digest().hex();
    let cases = [
        format!("blobs/{hash}"),
        format!("blobs/{hash}/ten"),
        format!("blobs/{}/5", hash.to_uppercase()),
        format!("compressed-blobs/brotli/{hash}/5"),
        format!("stuff/{hash}/5"),
        format!("blobs/{hash}/5/extra"),
    ];
    for name in cases {
        let err = parse_read(&name).expect_err(&name);
        assert!(err.to_string().contains(&name), "{err}");
    }
    let err = parse_write(&format!("uploads//blobs/{hash}/5")).expect_err("no uuid");
    assert!(matches!(err, ResourceError::Short { .. }), "{err}");
}

fn instance_segment() -> impl Strategy<Value = String> {
    "[a-z0-9_.-]{1,8}".prop_filter("not a keyword", |s| {
        !["blobs", "uploads", "compressed-blobs", "sha256"].contains(&s.as_str())
    })
}

proptest! {
    #[test]
    fn any_valid_read_name_round_trips(
        instance in prop::collection::vec(instance_segment(), 0..4),
        content in prop::collection::vec(any::<u8>(), 0..64),
        compressed in any::<bool>(),
    ) {
        let digest = Digest::of_bytes(&content);
        let instance_name = instance.join("/");
        let kind = if compressed { "compressed-blobs/zstd" } else { "blobs" };
        let tail = format!("{kind}/{}", blob(&digest));
        let name = if instance_name.is_empty() { tail } else { format!("{instance_name}/{tail}") };
        let parsed = parse_read(&name).expect("valid name parses");
        prop_assert_eq!(parsed.instance_name, instance_name);
        prop_assert_eq!(parsed.digest, digest);
        let encoding = if compressed { Encoding::Zstd } else { Encoding::Identity };
        prop_assert_eq!(parsed.encoding, encoding);
    }

    #[test]
    fn any_valid_write_name_round_trips(
        instance in prop::collection::vec(instance_segment(), 0..4),
        uuid in "[0-9a-f-]{1,36}",
        metadata in prop::collection::vec("[a-z]{1,5}", 0..3),
    ) {
        let digest = digest();
        let instance_name = instance.join("/");
        let mut name = format!("uploads/{uuid}/blobs/{}", blob(&digest));
        if !instance_name.is_empty() {
            name = format!("{instance_name}/{name}");
        }
        for segment in &metadata {
            name = format!("{name}/{segment}");
        }
        let parsed = parse_write(&name).expect("valid name parses");
        prop_assert_eq!(parsed.instance_name, instance_name);
        prop_assert_eq!(parsed.uuid, uuid);
        prop_assert_eq!(parsed.digest, digest);
    }

    #[test]
    fn parsing_never_panics(name in ".{0,200}") {
        let _ = parse_read(&name);
        let _ = parse_write(&name);
    }
}
