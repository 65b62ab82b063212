//! ByteStream resource names, as the REAPI defines them:
//! `{instance_name}/blobs/{hash}/{size}` to read, `{instance_name}/uploads/{uuid}/blobs/...`
//! to write, with `compressed-blobs/zstd` in place of `blobs` for zstd. An empty instance name
//! drops its slash; an instance name may itself contain slashes.

use remex_store::Digest;
use uuid::Uuid;

/// How a blob's bytes travel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BlobEncoding {
    Identity,
    Zstd,
}

impl BlobEncoding {
    fn segments(self) -> &'static str {
        match self {
            Self::Identity => "blobs",
            Self::Zstd => "compressed-blobs/zstd",
        }
    }
}

/// The name to `Read` a blob under.
pub fn read_name(instance_name: &str, digest: &Digest, encoding: BlobEncoding) -> String {
    let blob = format!(
        "{}/{}/{}",
        encoding.segments(),
        digest.hex(),
        digest.size_bytes
    );
    prefixed(instance_name, &blob)
}

/// The name to `Write` a blob under, with the upload's own UUID.
pub fn write_name(
    instance_name: &str,
    upload: Uuid,
    digest: &Digest,
    encoding: BlobEncoding,
) -> String {
    let blob = format!(
        "uploads/{upload}/{}/{}/{}",
        encoding.segments(),
        digest.hex(),
        digest.size_bytes
    );
    prefixed(instance_name, &blob)
}

fn prefixed(instance_name: &str, rest: &str) -> String {
    if instance_name.is_empty() {
        rest.to_owned()
    } else {
        format!("{instance_name}/{rest}")
    }
}

/// A resource name taken apart.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParsedName {
    pub instance_name: String,
    /// The upload's UUID, for write names.
    pub upload: Option<Uuid>,
    pub encoding: BlobEncoding,
    pub digest: Digest,
}

/// Parses a read or write name. Instance names never contain the keyword segments (`blobs`,
/// `uploads`, `compressed-blobs`, ...), so the first keyword ends the instance name.
pub fn parse_name(name: &str) -> Option<ParsedName> {
    let segments: Vec<&str> = name.split('/').collect();
    let start = segments
        .iter()
        .position(|s| matches!(*s, "blobs" | "uploads" | "compressed-blobs"))?;
    let instance_name = segments[..start].join("/");
    let mut rest = &segments[start..];
    let mut upload = None;
    if rest.first() == Some(&"uploads") {
        upload = Some(Uuid::parse_str(rest.get(1)?).ok()?);
        rest = &rest[2..];
    }
    let (encoding, rest) = match rest {
        ["blobs", rest @ ..] => (BlobEncoding::Identity, rest),
        ["compressed-blobs", "zstd", rest @ ..] => (BlobEncoding::Zstd, rest),
        _ => return None,
    };
    // Anything after `{hash}/{size}` is optional metadata, which servers may ignore.
    let [hash, size, ..] = rest else {
        return None;
    };
    Some(ParsedName {
        instance_name,
        upload,
        encoding,
        digest: format!("{hash}/{size}").parse().ok()?,
    })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn digest() -> Digest {
        Digest::of_bytes(b"blob")
    }

    #[test]
    fn empty_instance_has_no_leading_slash() {
        let name = read_name("", &digest(), BlobEncoding::Identity);
        assert_eq!(name, format!("blobs/{}/4", digest().hex()));
        let upload = Uuid::new_v4();
        let name = write_name("", upload, &digest(), BlobEncoding::Identity);
        assert_eq!(name, format!("uploads/{upload}/blobs/{}/4", digest().hex()));
    }

    #[test]
    fn instance_with_slashes_is_kept_whole() {
        let name = read_name("main/linux", &digest(), BlobEncoding::Identity);
        assert_eq!(name, format!("main/linux/blobs/{}/4", digest().hex()));
        let parsed = parse_name(&name).expect("parses");
        assert_eq!(parsed.instance_name, "main/linux");
        assert_eq!(parsed.digest, digest());
    }

    #[test]
    fn compressed_names_use_compressed_blobs_zstd() {
        let name = read_name("ci", &digest(), BlobEncoding::Zstd);
        assert_eq!(
            name,
            format!("ci/compressed-blobs/zstd/{}/4", digest().hex())
        );
        let upload = Uuid::new_v4();
        let name = write_name("ci", upload, &digest(), BlobEncoding::Zstd);
        let expected = format!(
            "ci/uploads/{upload}/compressed-blobs/zstd/{}/4",
            digest().hex()
        );
        assert_eq!(name, expected);
    }

    #[test]
    fn uploads_use_the_uuid_given() {
        let (first, second) = (Uuid::new_v4(), Uuid::new_v4());
        let a = write_name("", first, &digest(), BlobEncoding::Identity);
        let b = write_name("", second, &digest(), BlobEncoding::Identity);
        assert_ne!(a, b);
        assert_eq!(parse_name(&a).expect("parses").upload, Some(first));
    }

    #[test]
    fn malformed_names_are_refused() {
        for name in [
            "",
            "blobs",
            "blobs/abc/1",
            "uploads/not-a-uuid/blobs/x/1",
            "x/y",
        ] {
            assert_eq!(parse_name(name), None, "{name}");
        }
    }

    fn instance_name() -> impl Strategy<Value = String> {
        let segment = "[a-z0-9_.-]{1,8}".prop_filter("keyword", |s| {
            !matches!(s.as_str(), "blobs" | "uploads" | "compressed-blobs")
        });
        prop::collection::vec(segment, 0..4).prop_map(|segments| segments.join("/"))
    }

    proptest! {
        #[test]
        fn names_round_trip(
            instance in instance_name(),
            bytes in prop::collection::vec(any::<u8>(), 0..64),
            zstd in any::<bool>(),
            upload in any::<u128>(),
        ) {
            let digest = Digest::of_bytes(&bytes);
            let encoding = if zstd { BlobEncoding::Zstd } else { BlobEncoding::Identity };
            let read = read_name(&instance, &digest, encoding);
            prop_assert!(!read.starts_with('/') && !read.contains("//"), "{}", read);
            let parsed = parse_name(&read).expect("read name parses");
            prop_assert_eq!(&parsed.instance_name, &instance);
            prop_assert_eq!(parsed.digest, digest);
            prop_assert_eq!(parsed.encoding, encoding);

            let upload = Uuid::from_u128(upload);
            let write = write_name(&instance, upload, &digest, encoding);
            let parsed = parse_name(&write).expect("write name parses");
            prop_assert_eq!(parsed.upload, Some(upload));
            prop_assert_eq!(&parsed.instance_name, &instance);
        }
    }
}
