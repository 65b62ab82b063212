//! SHA-256 digests as REAPI uses them: a hash and a size in bytes.

use std::fmt;
use std::fs::File;
use std::io::{self, Read};
use std::path::Path;
use std::str::FromStr;

use remex_proto::reapi;
use sha2::{Digest as _, Sha256};

/// The digest of a blob: its SHA-256 and its size in bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    pub hash: [u8; 32],
    pub size_bytes: u64,
}

/// The digest of an `Action` message: the cache key. Kept apart from blob digests so that the
/// two are never mixed up.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct ActionDigest(pub Digest);

impl fmt::Display for ActionDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A digest that could not be parsed or does not match its blob.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DigestError {
    #[error("digest is missing")]
    Missing,
    #[error("invalid digest hash `{0}`: expected 64 lowercase hex characters")]
    BadHash(String),
    #[error("invalid digest size {0}")]
    BadSize(i64),
    #[error("invalid digest `{0}`: expected `HASH/SIZE`")]
    BadText(String),
    #[error("blob does not match its digest: expected {expected}, got {actual}")]
    Mismatch { expected: Digest, actual: Digest },
}

impl Digest {
    /// The digest of the empty blob.
    pub const EMPTY: Digest = Digest {
        hash: [
            0xe3, 0xb0, 0xc4, 0x42, 0x98, 0xfc, 0x1c, 0x14, 0x9a, 0xfb, 0xf4, 0xc8, 0x99, 0x6f,
            0xb9, 0x24, 0x27, 0xae, 0x41, 0xe4, 0x64, 0x9b, 0x93, 0x4c, 0xa4, 0x95, 0x99, 0x1b,
            0x78, 0x52, 0xb8, 0x55,
        ],
        size_bytes: 0,
    };

    pub fn of_bytes(bytes: &[u8]) -> Self {
        Self {
            hash: Sha256::digest(bytes).into(),
            size_bytes: bytes.len() as u64,
        }
    }

    /// The digest of a protobuf message in its canonical (prost) encoding.
    pub fn of_message(message: &impl prost::Message) -> (Self, Vec<u8>) {
        let bytes = message.encode_to_vec();
        (Self::of_bytes(&bytes), bytes)
    }

    pub fn hex(&self) -> String {
        hex::encode(self.hash)
    }

    pub fn is_empty_blob(&self) -> bool {
        self.size_bytes == 0
    }

    /// Checks that `bytes` are the blob this digest names.
    pub fn verify(&self, bytes: &[u8]) -> Result<(), DigestError> {
        let actual = Self::of_bytes(bytes);
        if actual == *self {
            Ok(())
        } else {
            Err(DigestError::Mismatch {
                expected: *self,
                actual,
            })
        }
    }

    pub fn from_proto(digest: &reapi::Digest) -> Result<Self, DigestError> {
        let size_bytes = u64::try_from(digest.size_bytes)
            .map_err(|_| DigestError::BadSize(digest.size_bytes))?;
        Ok(Self {
            hash: parse_hash(&digest.hash)?,
            size_bytes,
        })
    }

    /// Converts an optional protobuf digest field, where absence is an error.
    pub fn from_proto_field(digest: Option<&reapi::Digest>) -> Result<Self, DigestError> {
        Self::from_proto(digest.ok_or(DigestError::Missing)?)
    }

    pub fn to_proto(&self) -> reapi::Digest {
        reapi::Digest {
            hash: self.hex(),
            size_bytes: self.size_bytes as i64,
        }
    }
}

fn parse_hash(text: &str) -> Result<[u8; 32], DigestError> {
    let bad = || DigestError::BadHash(text.to_owned());
    if text.len() != 64 || text.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(bad());
    }
    let mut hash = [0u8; 32];
    hex::decode_to_slice(text, &mut hash).map_err(|_| bad())?;
    Ok(hash)
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.hex(), self.size_bytes)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for Digest {
    type Err = DigestError;

    /// Parses `HASH/SIZE`, the form `Display` prints.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (hash, size) = text
            .split_once('/')
            .ok_or_else(|| DigestError::BadText(text.to_owned()))?;
        let size_bytes = size
            .parse()
            .map_err(|_| DigestError::BadText(text.to_owned()))?;
        Ok(Self {
            hash: parse_hash(hash)?,
            size_bytes,
        })
    }
}

/// Hashes a file by streaming it, never holding it whole in memory.
pub fn hash_file(path: &Path) -> io::Result<Digest> {
    let mut file = File::open(path)?;
    hash_reader(&mut file)
}

pub(crate) fn hash_reader(reader: &mut impl Read) -> io::Result<Digest> {
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 256 * 1024];
    let mut size_bytes = 0u64;
    loop {
        let n = match reader.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.update(&buffer[..n]);
        size_bytes += n as u64;
    }
    Ok(Digest {
        hash: hasher.finalize().into(),
        size_bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_constant_matches_hash_of_nothing() {
        assert_eq!(Digest::of_bytes(b""), Digest::EMPTY);
    }

    #[test]
    fn text_round_trips() {
        let digest = Digest::of_bytes(b"hello\n");
        let parsed: Digest = digest.to_string().parse().expect("parses");
        assert_eq!(parsed, digest);
    }

    #[test]
    fn proto_rejects_uppercase_and_negative_sizes() {
        let mut proto = Digest::of_bytes(b"x").to_proto();
        proto.hash = proto.hash.to_uppercase();
        assert!(matches!(
            Digest::from_proto(&proto),
            Err(DigestError::BadHash(_))
        ));
        let proto = reapi::Digest {
            hash: Digest::EMPTY.hex(),
            size_bytes: -1,
        };
        assert_eq!(Digest::from_proto(&proto), Err(DigestError::BadSize(-1)));
    }

    #[test]
    fn streaming_hash_equals_one_shot_hash() {
        let data: Vec<u8> = (0..1_000_000u32).map(|i| i as u8).collect();
        let streamed = hash_reader(&mut data.as_slice()).expect("reads");
        assert_eq!(streamed, Digest::of_bytes(&data));
    }
}
