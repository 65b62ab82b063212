//! Digests, Merkle trees of input roots, and the local store: a content-addressable store (CAS)
//! and an action cache (AC) on disk, safe to share between concurrent remex processes.
//!
//! Everything that touches `Option<Digest>` from the generated protobuf types goes through
//! [`Digest::from_proto`] and [`Digest::to_proto`], so the rest of remex works with plain
//! validated digests.

mod digest;
mod file_digests;
mod local;
mod merkle;
mod walk;
mod writer;

pub use digest::{ActionDigest, Digest, DigestError, hash_file};
pub use file_digests::{FileDigests, RACY_WINDOW};
pub use local::{LocalStore, StoreError};
pub use merkle::{
    InputEntry, InputTree, InputTreeBuilder, MerkleError, digest_directory_on_disk,
    tree_of_directory,
};
pub use walk::digest_directory_cached;
pub use writer::BlobWriter;
