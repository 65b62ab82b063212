//! ByteStream resource names, as REAPI defines them:
//!
//! - read: `{instance_name}/blobs/{hash}/{size}` or
//!   `{instance_name}/compressed-blobs/{compressor}/{hash}/{size}`;
//! - write: `{instance_name}/uploads/{uuid}/blobs/{hash}/{size}{/optional_metadata}` or
//!   `{instance_name}/uploads/{uuid}/compressed-blobs/{compressor}/{hash}/{size}{/...}`.
//!
//! The instance name may be empty (no leading `/` then) or span several segments; REAPI keeps
//! the keywords `blobs`, `uploads`, `compressed-blobs` (and a few more) out of instance names,
//! so the first keyword segment ends it. A `digest_function` segment before the hash is
//! accepted when it names SHA-256, the only function this server offers.

use remex_proto::reapi;
use remex_store::Digest;

/// How a blob's bytes travel in a ByteStream call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Encoding {
    Identity,
    Zstd,
}

/// A parsed `ReadRequest.resource_name`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ReadResource {
    pub instance_name: String,
    pub digest: Digest,
    pub encoding: Encoding,
}

/// A parsed `WriteRequest.resource_name`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct WriteResource {
    pub instance_name: String,
    pub uuid: String,
    pub digest: Digest,
    pub encoding: Encoding,
}

/// A resource name that does not follow REAPI's forms.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum ResourceError {
    #[error("resource name `{0}` has no `blobs` or `compressed-blobs` segment")]
    NoBlobs(String),
    #[error("resource name `{0}` has no `uploads/{{uuid}}` part")]
    NoUploads(String),
    #[error("resource name `{name}` ends early: expected {expected}")]
    Short {
        name: String,
        expected: &'static str,
    },
    #[error("resource name `{name}` has unexpected segments after the size")]
    Trailing { name: String },
    #[error("resource name `{name}`: compressor `{compressor}` is not supported; use `zstd`")]
    Compressor { name: String, compressor: String },
    #[error("resource name `{name}`: digest function `{function}` is not supported; use SHA-256")]
    DigestFunction { name: String, function: String },
    #[error("resource name `{name}`: invalid digest: {problem}")]
    Digest { name: String, problem: String },
}

const DIGEST_FUNCTIONS: &[&str] = &[
    "sha256",
    "sha1",
    "md5",
    "vso",
    "sha384",
    "sha512",
    "murmur3",
    "sha256tree",
    "blake3",
];

/// Parses a `ReadRequest.resource_name`.
pub(crate) fn parse_read(name: &str) -> Result<ReadResource, ResourceError> {
    let segments: Vec<&str> = name.split('/').collect();
    let start = segments
        .iter()
        .position(|s| *s == "blobs" || *s == "compressed-blobs")
        .ok_or_else(|| ResourceError::NoBlobs(name.to_owned()))?;
    let (digest, encoding, rest) = parse_blob(name, &segments[start..])?;
    if !rest.is_empty() {
        return Err(ResourceError::Trailing {
            name: name.to_owned(),
        });
    }
    Ok(ReadResource {
        instance_name: segments[..start].join("/"),
        digest,
        encoding,
    })
}

/// Parses a `WriteRequest.resource_name`; anything after the size is optional metadata and
/// ignored, as REAPI allows.
pub(crate) fn parse_write(name: &str) -> Result<WriteResource, ResourceError> {
    let segments: Vec<&str> = name.split('/').collect();
    let start = segments
        .iter()
        .position(|s| *s == "uploads")
        .ok_or_else(|| ResourceError::NoUploads(name.to_owned()))?;
    let uuid = segments
        .get(start + 1)
        .filter(|uuid| !uuid.is_empty())
        .ok_or_else(|| short(name, "an upload id after `uploads`"))?;
    let (digest, encoding, _metadata) = parse_blob(name, &segments[start + 2..])?;
    Ok(WriteResource {
        instance_name: segments[..start].join("/"),
        uuid: (*uuid).to_owned(),
        digest,
        encoding,
    })
}

/// Parses `blobs/[fn/]hash/size` or `compressed-blobs/comp/[fn/]hash/size`, returning what
/// follows.
fn parse_blob<'a>(
    name: &str,
    segments: &'a [&'a str],
) -> Result<(Digest, Encoding, &'a [&'a str]), ResourceError> {
    let (encoding, rest) = match segments {
        ["blobs", rest @ ..] => (Encoding::Identity, rest),
        ["compressed-blobs", compressor, rest @ ..] => (parse_compressor(name, compressor)?, rest),
        ["compressed-blobs"] => return Err(short(name, "a compressor")),
        _ => return Err(short(name, "`blobs` or `compressed-blobs`")),
    };
    let rest = match rest {
        // A hash is hexadecimal, so it never equals a function's name.
        [function, ..] if DIGEST_FUNCTIONS.contains(function) => {
            if *function != "sha256" {
                return Err(ResourceError::DigestFunction {
                    name: name.to_owned(),
                    function: (*function).to_owned(),
                });
            }
            &rest[1..]
        }
        _ => rest,
    };
    let [hash, size, after @ ..] = rest else {
        return Err(short(name, "`{hash}/{size}`"));
    };
    Ok((parse_digest(name, hash, size)?, encoding, after))
}

fn parse_compressor(name: &str, compressor: &str) -> Result<Encoding, ResourceError> {
    match compressor {
        "zstd" => Ok(Encoding::Zstd),
        other => Err(ResourceError::Compressor {
            name: name.to_owned(),
            compressor: other.to_owned(),
        }),
    }
}

fn parse_digest(name: &str, hash: &str, size: &str) -> Result<Digest, ResourceError> {
    let invalid = |problem: String| ResourceError::Digest {
        name: name.to_owned(),
        problem,
    };
    let size_bytes: i64 = size
        .parse()
        .map_err(|_| invalid(format!("size `{size}` is not a number")))?;
    let proto = reapi::Digest {
        hash: hash.to_owned(),
        size_bytes,
    };
    Digest::from_proto(&proto).map_err(|e| invalid(e.to_string()))
}

fn short(name: &str, expected: &'static str) -> ResourceError {
    ResourceError::Short {
        name: name.to_owned(),
        expected,
    }
}

#[cfg(test)]
#[path = "resource_tests.rs"]
mod tests;
