//! The `remex:plugin/policy` bindings, and the conversion of an [`ActionDescription`] into
//! their types. The only module that sees the generated types' shapes.

use super::description::ActionDescription;

mod generated {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "policy",
    });
}

pub(crate) use generated::{Decision, PolicyPre};

use generated as wit;

pub(crate) fn action_description(action: &ActionDescription) -> wit::ActionDescription {
    wit::ActionDescription {
        target: action.target.clone(),
        environment: wit::ActionEnvironment {
            name: action.environment.name.clone(),
            remote: action.environment.remote,
            platform: properties(&action.environment.platform),
        },
        argv: action.argv.clone(),
        env: action
            .env
            .iter()
            .map(|(name, value)| wit::EnvironmentVariable {
                name: name.clone(),
                value: value.clone(),
            })
            .collect(),
        platform: properties(&action.platform),
        working_directory: action.working_directory.clone(),
        input_files: action.input_files,
        input_bytes: action.input_bytes,
        output_paths: action.output_paths.clone(),
        timeout_ms: action
            .timeout
            .map(|t| u64::try_from(t.as_millis()).unwrap_or(u64::MAX)),
        action_digest: wit::Digest {
            hash: action.action_hash.clone(),
            size_bytes: action.action_size_bytes,
        },
    }
}

fn properties(properties: &[(String, String)]) -> Vec<wit::PlatformProperty> {
    properties
        .iter()
        .map(|(name, value)| wit::PlatformProperty {
            name: name.clone(),
            value: value.clone(),
        })
        .collect()
}
