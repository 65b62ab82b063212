//! The `shell_command` target kind: one shell command, run in the BUILD file's directory with
//! the target's sources as inputs, the tools it names on `PATH`, and the outputs it declares.

use remex_plugin_sdk::host::find_binary;
use remex_plugin_sdk::{
    Description, EnvVar, Environment, FieldSpec, FieldType, KindSpec, PlanError, Process, Target,
    Toolchain,
};

/// Where tools are looked for when the environment does not set
/// `[system-binaries].system_binary_paths`.
const DEFAULT_SEARCH_PATH: &[&str] = &["/usr/bin", "/bin"];

struct Shell;

impl Toolchain for Shell {
    fn describe() -> Description {
        Description::new("shell", env!("CARGO_PKG_VERSION"), vec![shell_command()])
    }

    fn plan(target: Target, environment: Environment) -> Result<Vec<Process>, PlanError> {
        let command = target.required_text("command")?;
        let mut process = Process::new(
            format!("run shell_command {}", target.address),
            ["/bin/sh", "-c", command],
        );
        process.working_directory = target.directory.clone();
        process.inputs = target.text_list("sources").to_vec();

        let (files, directories) = outputs(&target)?;
        process.output_files = files;
        process.output_directories = directories;

        process.env = extra_env_vars(&target)?;
        if let Some(path) = tools_path(&target, &environment)? {
            process.env.push(EnvVar::new("PATH", path));
        }
        process.timeout_ms = timeout_ms(&target)?;
        Ok(vec![process])
    }
}

remex_plugin_sdk::export_toolchain!(Shell);

fn shell_command() -> KindSpec {
    use FieldType::{Integer, Sources, Text, TextList};

    KindSpec::new(
        "shell_command",
        "Run a shell command with the tools it names and collect the outputs it declares.",
        vec![
            FieldSpec::required("command", Text, "The command, run with `/bin/sh -c`."),
            FieldSpec::optional(
                "outputs",
                TextList,
                "Files the command writes, relative to the BUILD file's directory; \
                 a trailing `/` means a directory.",
            ),
            FieldSpec::optional(
                "tools",
                TextList,
                "Binaries the command runs; their directories make up `PATH`.",
            ),
            FieldSpec::optional("sources", Sources, "Files the command reads."),
            FieldSpec::optional(
                "timeout",
                Integer,
                "How long the command may run, in seconds.",
            ),
            FieldSpec::optional(
                "extra_env_vars",
                TextList,
                "Environment variables for the command, each `NAME=value`.",
            ),
        ],
    )
}

/// Splits the `outputs` field into files and directories (written with a trailing `/`).
fn outputs(target: &Target) -> Result<(Vec<String>, Vec<String>), PlanError> {
    let mut files = Vec::new();
    let mut directories = Vec::new();
    for output in target.text_list("outputs") {
        check_relative(target, output)?;
        match output.strip_suffix('/') {
            Some(directory) => directories.push(directory.to_owned()),
            None => files.push(output.clone()),
        }
    }
    Ok((files, directories))
}

/// Rejects an output path that would land outside the working directory.
fn check_relative(target: &Target, output: &str) -> Result<(), PlanError> {
    let escapes = output.starts_with('/') || output.split('/').any(|part| part == "..");
    if output.is_empty() || output == "/" || escapes {
        return Err(PlanError::new(format!(
            "target `{}` declares the output `{output}`; outputs must be paths relative to \
             the BUILD file's directory, without `..`",
            target.address
        )));
    }
    Ok(())
}

/// The `extra_env_vars` field as environment variables.
fn extra_env_vars(target: &Target) -> Result<Vec<EnvVar>, PlanError> {
    let parse = |entry: &String| match entry.split_once('=') {
        Some((name, value)) if !name.is_empty() => Ok(EnvVar::new(name, value)),
        _ => Err(PlanError::new(format!(
            "target `{}` has `{entry}` in `extra_env_vars`; each entry must be `NAME=value`",
            target.address
        ))),
    };
    target
        .text_list("extra_env_vars")
        .iter()
        .map(parse)
        .collect()
}

/// `PATH` made of the directories the target's tools were found in, in the order of `tools`;
/// `None` when the target names no tools.
fn tools_path(target: &Target, environment: &Environment) -> Result<Option<String>, PlanError> {
    let tools = target.text_list("tools");
    if tools.is_empty() {
        return Ok(None);
    }
    let sets_path = target
        .text_list("extra_env_vars")
        .iter()
        .any(|entry| entry.starts_with("PATH="));
    if sets_path {
        return Err(PlanError::new(format!(
            "target `{}` sets `PATH` in `extra_env_vars` and also names `tools`, which make up \
             `PATH`; remove one of them",
            target.address
        )));
    }

    let search_path = search_path(environment);
    let mut directories: Vec<String> = Vec::new();
    for tool in tools {
        let found = find_binary(tool, &search_path)
            .ok_or_else(|| tool_not_found(target, environment, tool, &search_path))?;
        let directory = parent_directory(&found);
        if !directories.iter().any(|d| d == directory) {
            directories.push(directory.to_owned());
        }
    }
    Ok(Some(directories.join(":")))
}

fn search_path(environment: &Environment) -> Vec<String> {
    match environment.text_list_option("system-binaries", "system_binary_paths") {
        Some(paths) => paths.to_vec(),
        None => DEFAULT_SEARCH_PATH
            .iter()
            .map(|p| (*p).to_owned())
            .collect(),
    }
}

fn tool_not_found(
    target: &Target,
    environment: &Environment,
    tool: &str,
    search_path: &[String],
) -> PlanError {
    PlanError::new(format!(
        "cannot find the tool `{tool}` of target `{}` in environment `{}`: looked in `{}`; \
         install it or add its directory to `[system-binaries].system_binary_paths`",
        target.address,
        environment.name,
        search_path.join(":"),
    ))
}

/// The directory of an absolute file path: `/usr/bin` for `/usr/bin/zip`, `/` for `/zip`.
fn parent_directory(path: &str) -> &str {
    match path.rsplit_once('/') {
        Some(("", _)) | None => "/",
        Some((directory, _)) => directory,
    }
}

/// The `timeout` field (seconds) in milliseconds.
fn timeout_ms(target: &Target) -> Result<Option<u64>, PlanError> {
    let Some(seconds) = target.integer("timeout") else {
        return Ok(None);
    };
    match u64::try_from(seconds) {
        Ok(seconds) if seconds > 0 => Ok(Some(seconds.saturating_mul(1000))),
        _ => Err(PlanError::new(format!(
            "target `{}` has `timeout = {seconds}`; it must be a positive number of seconds",
            target.address
        ))),
    }
}
