//! The fake's make-believe execution: inputs checked like a real server's, a result made up
//! from the command's arguments.

use prost::Message;
use prost_types::Any;
use remex_proto::{reapi, rpc};
use remex_store::Digest;
use tonic::{Code, Status};

use super::{FakeState, lock};
use crate::convert;

impl FakeState {
    /// Answers an `Execute` of `action`: from the action cache unless told to skip it, else by
    /// "running" it once its `Action`, `Command` and every input are present.
    pub(super) fn run(
        &self,
        action: Digest,
        skip_cache_lookup: bool,
    ) -> Result<reapi::ExecuteResponse, Status> {
        if !skip_cache_lookup && let Some(result) = lock(&self.action_results).get(&action) {
            return Ok(reapi::ExecuteResponse {
                result: Some(result.clone()),
                cached_result: true,
                status: Some(rpc::Status::default()),
                ..Default::default()
            });
        }
        let (action_message, command) = self.check_inputs(action)?;
        *lock(&self.executions).entry(action).or_default() += 1;
        let (result, status) = self.made_up_result(action, &command);
        if status.code == 0 && !action_message.do_not_cache {
            lock(&self.action_results).insert(action, result.clone());
        }
        Ok(reapi::ExecuteResponse {
            result: Some(result),
            status: Some(status),
            ..Default::default()
        })
    }

    fn check_inputs(&self, action: Digest) -> Result<(reapi::Action, reapi::Command), Status> {
        let Some(action_message) = self.message::<reapi::Action>(&action) else {
            return Err(missing_inputs(&[action]));
        };
        let mut missing = Vec::new();
        let command_digest = Digest::from_proto_field(action_message.command_digest.as_ref())
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        let command = self.message::<reapi::Command>(&command_digest);
        if command.is_none() {
            missing.push(command_digest);
        }
        let root = Digest::from_proto_field(action_message.input_root_digest.as_ref())
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        self.missing_in_tree(root, &mut missing);
        match command {
            Some(command) if missing.is_empty() => Ok((action_message, command)),
            _ => Err(missing_inputs(&missing)),
        }
    }

    fn missing_in_tree(&self, root: Digest, missing: &mut Vec<Digest>) {
        let mut queue = vec![root];
        while let Some(digest) = queue.pop() {
            let Some(directory) = self.message::<reapi::Directory>(&digest) else {
                missing.push(digest);
                continue;
            };
            for file in &directory.files {
                match Digest::from_proto_field(file.digest.as_ref()) {
                    Ok(d) if !self.has_blob(&d) => missing.push(d),
                    _ => {}
                }
            }
            let children = directory.directories.iter();
            queue.extend(children.filter_map(|d| Digest::from_proto_field(d.digest.as_ref()).ok()));
        }
    }

    fn message<M: Message + Default>(&self, digest: &Digest) -> Option<M> {
        M::decode(self.blob(digest)?).ok()
    }

    fn made_up_result(
        &self,
        action: Digest,
        command: &reapi::Command,
    ) -> (reapi::ActionResult, rpc::Status) {
        let arguments = &command.arguments;
        let exit_code = match arguments.as_slice() {
            [word, code] if word == "exit" => code.parse().unwrap_or(1),
            _ => 0,
        };
        let stdout = self.insert_blob(format!("ran {}\n", arguments.join(" ")));
        let output_files = command
            .output_paths
            .iter()
            .chain(&command.output_files)
            .map(|path| reapi::OutputFile {
                path: path.clone(),
                digest: Some(self.insert_blob(format!("{path} of {action}")).to_proto()),
                ..Default::default()
            })
            .collect();
        let result = reapi::ActionResult {
            output_files,
            exit_code,
            stdout_digest: Some(stdout.to_proto()),
            ..Default::default()
        };
        let status = if arguments.first().is_some_and(|a| a == "timeout") {
            rpc::Status {
                code: Code::DeadlineExceeded as i32,
                message: "the action timed out".into(),
                details: Vec::new(),
            }
        } else {
            rpc::Status::default()
        };
        (result, status)
    }

    /// Stage metadata for an operation, unless the fake plays Bazel's server, which sends none.
    pub(super) fn operation_metadata(&self, action: Digest) -> Option<Any> {
        self.config.operation_metadata.then(|| {
            let metadata = reapi::ExecuteOperationMetadata {
                stage: reapi::execution_stage::Value::Executing as i32,
                action_digest: Some(action.to_proto()),
                ..Default::default()
            };
            convert::execute_metadata_any(&metadata)
        })
    }
}

pub(super) fn missing_inputs(missing: &[Digest]) -> Status {
    let details = convert::missing_blobs_details(missing);
    Status::with_details(Code::FailedPrecondition, "missing inputs", details.into())
}
