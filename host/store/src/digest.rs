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
        // Through a fixed buffer: `hex::encode` goes character by character, which shows when
        // a tree of many files turns every digest into a `FileNode`.
        let mut text = [0u8; 64];
        match hex::encode_to_slice(self.hash, &mut text) {
            Ok(()) => String::from_utf8(text.to_vec()).unwrap_or_else(|_| hex::encode(self.hash)),
            Err(_) => hex::encode(self.hash),
        }
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

/// The most a hash reads at once. Big enough that a large file costs few `read` calls, small
/// enough that each piece is still in the core's cache when it is hashed.
pub(crate) const READ_BUFFER_BYTES: usize = 256 * 1024;

/// Hashes a file by streaming it, never holding it whole in memory.
pub fn hash_file(path: &Path) -> io::Result<Digest> {
    let mut file = File::open(path)?;
    let mut buffer = buffer_for(&file);
    hash_with_buffer(&mut file, &mut buffer)
}

/// A read buffer no bigger than the file needs: zeroing a full-size buffer for every small
/// file costs more than hashing it. A file that grows meanwhile is still read whole, in more
/// pieces.
pub(crate) fn buffer_for(file: &File) -> Vec<u8> {
    let size = file.metadata().map_or(u64::MAX, |m| m.len());
    // One byte more than the file, so that its end is found by the second read.
    let wanted = usize::try_from(size.saturating_add(1)).unwrap_or(usize::MAX);
    vec![0u8; wanted.clamp(4096, READ_BUFFER_BYTES)]
}

/// Hashes the first `size` bytes of a file whose size was just taken as `size`, reading into
/// `buffer` (which must not be empty). Like Git hashing a file it has just stat'ed, it stops
/// after `size` bytes instead of making one more `read` to find the end, which for a small file
/// is a fifth of its system calls: a file that grew meanwhile is hashed as it was, one that
/// shrank is hashed to its end, and the digest's size tells which.
pub(crate) fn hash_known_size(
    reader: &mut impl Read,
    buffer: &mut [u8],
    size: u64,
) -> io::Result<Digest> {
    let mut hasher = Sha256::new();
    let mut size_bytes = 0u64;
    while size_bytes < size {
        let wanted =
            usize::try_from(size - size_bytes).map_or(buffer.len(), |left| left.min(buffer.len()));
        let n = match reader.read(&mut buffer[..wanted]) {
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

/// Hashes everything `reader` yields, reading into `buffer` (which must not be empty). The
/// caller keeps the buffer, so a thread hashing many files allocates it once.
pub(crate) fn hash_with_buffer(reader: &mut impl Read, buffer: &mut [u8]) -> io::Result<Digest> {
    let mut hasher = Sha256::new();
    let mut size_bytes = 0u64;
    loop {
        let n = match reader.read(buffer) {
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
        // A buffer much smaller than the data, so that it is read in many pieces.
        let mut buffer = vec![0u8; 4096];
        let streamed = hash_with_buffer(&mut data.as_slice(), &mut buffer).expect("reads");
        assert_eq!(streamed, Digest::of_bytes(&data));
    }

    #[test]
    fn hashing_a_known_size_stops_there_or_at_the_end() {
        let data: Vec<u8> = (0..100_000u32).map(|i| i as u8).collect();
        let mut buffer = vec![0u8; 4096];
        for size in [0, 1, 4096, 50_000, 100_000] {
            let digest = hash_known_size(&mut data.as_slice(), &mut buffer, size).expect("reads");
            assert_eq!(digest, Digest::of_bytes(&data[..size as usize]), "{size}");
        }
        // The file shrank since its size was taken: hashed to its end.
        let digest = hash_known_size(&mut data.as_slice(), &mut buffer, 200_000).expect("reads");
        assert_eq!(digest, Digest::of_bytes(&data));
    }

    #[test]
    fn hash_file_matches_one_shot_hash_around_buffer_sizes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let sizes = [
            0,
            1,
            4095,
            4096,
            4097,
            READ_BUFFER_BYTES,
            READ_BUFFER_BYTES + 1,
            600_000,
        ];
        for size in sizes {
            let data: Vec<u8> = (0..size).map(|i| (i % 253) as u8).collect();
            let path = dir.path().join(format!("f{size}"));
            std::fs::write(&path, &data).expect("write");
            assert_eq!(
                hash_file(&path).expect("hash"),
                Digest::of_bytes(&data),
                "{size}"
            );
        }
    }
}
