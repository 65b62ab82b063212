//! Generated REAPI v2 and Google API types.
//!
//! The `.proto` sources live in `protos/`; `bytes` fields are `bytes::Bytes`, so blobs move
//! between the store, the network and the executor without copies. Conversions between these
//! wire types and remex's own domain types live with the domain types, never here.

#![allow(clippy::all, reason = "generated code")]
#![allow(clippy::unwrap_used, reason = "generated code")]
#![allow(clippy::allow_attributes_without_reason, reason = "generated code")]

pub mod build {
    pub mod bazel {
        pub mod remote {
            pub mod execution {
                pub mod v2 {
                    tonic::include_proto!("build.bazel.remote.execution.v2");
                }
            }
        }
        pub mod semver {
            tonic::include_proto!("build.bazel.semver");
        }
    }
}

pub mod google {
    pub mod bytestream {
        tonic::include_proto!("google.bytestream");
    }
    pub mod longrunning {
        tonic::include_proto!("google.longrunning");
    }
    pub mod rpc {
        tonic::include_proto!("google.rpc");
    }
}

/// Short paths to the REAPI v2 types, which every other crate uses.
pub use build::bazel::remote::execution::v2 as reapi;
pub use google::bytestream;
pub use google::longrunning;
pub use google::rpc;

/// The metadata header under which `RequestMetadata` travels, binary-encoded.
pub const REQUEST_METADATA_HEADER: &str = "build.bazel.remote.execution.v2.requestmetadata-bin";
