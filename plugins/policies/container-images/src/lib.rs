//! Allows only container images from a list compiled into the policy, named by the REAPI
//! platform property `container-image` (such as `docker://ubuntu:24.04`).
//!
//! The list is compiled in because a policy imports nothing: it reads no files, and taking the
//! list from the action itself would let an action approve its own image. To change the list,
//! edit [`ALLOWED_REPOSITORIES`] and rebuild; the new component has a new hash, so no decision
//! memoized for the old one is reused.
//!
//! An action without a `container-image` property is allowed: it runs on the executor's
//! default image, which the executor's operators chose.

#![no_std]

extern crate alloc;

use alloc::format;

use remex_policy_sdk::{ActionDescription, Decision, Policy};

/// The platform property naming the image, from the REAPI platform lexicon.
const IMAGE_PROPERTY: &str = "container-image";

/// Image repositories allowed, at any tag or digest, written the way they appear after
/// `docker://` in an image reference.
const ALLOWED_REPOSITORIES: &[&str] = &[
    "gcr.io/distroless/cc-debian12",
    "gcr.io/distroless/python3-debian12",
    "ubuntu",
    "docker.io/library/ubuntu",
    "python",
    "docker.io/library/python",
];

struct ContainerImages;

impl Policy for ContainerImages {
    fn evaluate(action: ActionDescription) -> Decision {
        let images = action.platform.iter().filter(|p| p.name == IMAGE_PROPERTY);
        for image in images {
            let repository = repository(&image.value);
            if !ALLOWED_REPOSITORIES.contains(&repository) {
                return Decision::Deny(format!(
                    "container image `{}` is not allowed; the allowed repositories are: {}",
                    image.value,
                    ALLOWED_REPOSITORIES.join(", ")
                ));
            }
        }
        Decision::Allow
    }
}

/// The repository of an image reference: without the `docker://` scheme, the `@digest` and
/// the `:tag` (a colon after the last `/`; one before it belongs to a registry's port).
fn repository(reference: &str) -> &str {
    let reference = reference.trim();
    let reference = reference.strip_prefix("docker://").unwrap_or(reference);
    let reference = reference.split('@').next().unwrap_or(reference);
    let name_start = reference.rfind('/').map_or(0, |slash| slash + 1);
    match reference[name_start..].find(':') {
        Some(colon) => &reference[..name_start + colon],
        None => reference,
    }
}

remex_policy_sdk::export_policy!(ContainerImages, "container-images");
