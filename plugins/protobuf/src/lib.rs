//! The `protobuf_sources` target kind: `.proto` files compiled to Python modules
//! (`--python_out`) by a protoc taken from a pinned release archive.
//!
//! The archive is a protoc release zip (`bin/protoc`, `include/`) kept in the repository and
//! named by `[protoc].archive`, with its SHA-256 in `[protoc].sha256`. It is an input of the
//! process, which checks its digest, unpacks it with `unzip` and runs protoc, all where the
//! process runs. `unzip` and `sha256sum` are looked for on `[system-binaries].system_binary_paths`
//! in the target's environment before anything else, so a missing one is a plan error naming
//! the environment. The generated `*_pb2.py` files are the process's outputs, beside the
//! `.proto` files under the source root, where dependent `python_tests` find them.

use remex_plugin_sdk::host::find_binary;
use remex_plugin_sdk::{
    Description, EnvVar, Environment, FieldSpec, FieldType, FieldValue, KindSpec, PlanError,
    Process, Target, Toolchain,
};

/// Where tools are looked for when the environment does not set
/// `[system-binaries].system_binary_paths`.
const DEFAULT_SEARCH_PATH: &[&str] = &["/usr/bin", "/bin"];

/// Checks the archive, unpacks it (into `_remex_protoc` in the working directory) and runs
/// protoc. Arguments: sha256sum, unzip, the archive,
/// its SHA-256, the source root, then the `.proto` files.
const SCRIPT: &str = r#"set -eu
sha256sum=$1 unzip=$2 archive=$3 sha256=$4 root=$5
shift 5
echo "$sha256  $archive" | "$sha256sum" -c --status - || {
    echo "the protoc archive \`$archive\` does not have the SHA-256 in \`[protoc].sha256\`" >&2
    exit 1
}
"$unzip" -q -o "$archive" -d _remex_protoc
_remex_protoc/bin/protoc -I_remex_protoc/include -I"$root" --python_out="$root" "$@"
"#;

/// The plugin, exported as the component's `describe` and `plan`.
pub struct Protobuf;

impl Toolchain for Protobuf {
    fn describe() -> Description {
        let kinds = vec![protobuf_sources()];
        Description::new("protobuf", env!("CARGO_PKG_VERSION"), kinds)
    }

    fn plan(target: Target, environment: Environment) -> Result<Vec<Process>, PlanError> {
        let tools = Tools::find(&environment)?;
        let archive = Archive::from_options(&target, &environment)?;
        let source_root = target.text("source_root").unwrap_or(&target.directory);
        let protos = target.text_list("sources");
        let outputs = protos
            .iter()
            .map(|proto| generated_module(&target, source_root, proto))
            .collect::<Result<Vec<_>, _>>()?;
        if protos.is_empty() {
            return Ok(Vec::new());
        }

        let mut argv = vec![tools.sh.clone(), "-c".to_owned(), SCRIPT.to_owned()];
        argv.extend(["protoc".to_owned(), tools.sha256sum, tools.unzip]);
        argv.extend([archive.path.clone(), archive.sha256, root_dir(source_root)]);
        argv.extend(protos.iter().cloned());

        let mut process = Process::new(
            format!("generate protobuf_sources {}", target.address),
            argv,
        );
        process.inputs = inputs(&target, &archive.path);
        process.output_files = outputs;
        process.env = vec![EnvVar::new("PATH", tools.path)];
        Ok(vec![process])
    }
}

remex_plugin_sdk::export_toolchain!(Protobuf);

fn protobuf_sources() -> KindSpec {
    KindSpec::new(
        "protobuf_sources",
        "Protocol Buffers files, compiled to Python modules for the targets that depend on them.",
        vec![
            FieldSpec::optional("sources", FieldType::Sources, "The `.proto` files.")
                .with_default(FieldValue::TextList(vec!["*.proto".to_owned()])),
            FieldSpec::optional(
                "source_root",
                FieldType::Text,
                "The directory imports are relative to, from the repository root; the BUILD \
                 file's directory by default. Generated modules go beside the `.proto` files.",
            ),
        ],
    )
}

/// The binaries the process runs, found in the target's environment.
struct Tools {
    sh: String,
    unzip: String,
    sha256sum: String,
    /// Their directories, as the process's `PATH`.
    path: String,
}

impl Tools {
    fn find(environment: &Environment) -> Result<Self, PlanError> {
        let search_path = search_path(environment);
        let find = |name: &str| {
            find_binary(name, &search_path)
                .ok_or_else(|| tool_not_found(environment, name, &search_path))
        };
        let unzip = find("unzip")?;
        let sha256sum = find("sha256sum")?;
        let sh = find("sh")?;

        let mut directories: Vec<&str> = Vec::new();
        for tool in [&unzip, &sha256sum, &sh] {
            let directory = parent_directory(tool);
            if !directories.contains(&directory) {
                directories.push(directory);
            }
        }
        let path = directories.join(":");
        Ok(Self {
            sh,
            unzip,
            sha256sum,
            path,
        })
    }
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

fn tool_not_found(environment: &Environment, tool: &str, search_path: &[String]) -> PlanError {
    PlanError::new(format!(
        "cannot find `{tool}` in environment `{}`, which `protobuf_sources` needs to unpack \
         protoc: looked in `{}`; install it there or add its directory to \
         `[system-binaries].system_binary_paths`",
        environment.name,
        search_path.join(":"),
    ))
}

/// `[protoc].archive` and `[protoc].sha256` as resolved for the environment.
struct Archive {
    path: String,
    sha256: String,
}

impl Archive {
    fn from_options(target: &Target, environment: &Environment) -> Result<Self, PlanError> {
        let option = |name: &str| match environment.option("protoc", name) {
            Some(FieldValue::Text(value)) if !value.is_empty() => Ok(value.clone()),
            _ => Err(missing_option(target, environment, name)),
        };
        let path = option("archive")?;
        let sha256 = option("sha256")?.to_ascii_lowercase();
        if !is_repo_relative(&path) {
            return Err(PlanError::new(format!(
                "`[protoc].archive` is `{path}` in environment `{}`; it must be a path \
                 relative to the repository root, without `..`",
                environment.name
            )));
        }
        if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(PlanError::new(format!(
                "`[protoc].sha256` is `{sha256}` in environment `{}`; it must be 64 hex digits",
                environment.name
            )));
        }
        Ok(Self { path, sha256 })
    }
}

fn missing_option(target: &Target, environment: &Environment, name: &str) -> PlanError {
    PlanError::new(format!(
        "target `{}` needs protoc, but `[protoc].{name}` is not set for environment `{}`; \
         set `[protoc].archive` to a protoc release zip in the repository and \
         `[protoc].sha256` to its SHA-256",
        target.address, environment.name
    ))
}

fn is_repo_relative(path: &str) -> bool {
    !path.starts_with('/') && path.split('/').all(|part| !matches!(part, "" | "." | ".."))
}

/// `src/proto/greeting_pb2.py` for `src/proto/greeting.proto` under any source root: protoc
/// writes each module at the `.proto` file's path relative to the root, under `--python_out`,
/// which is the root itself.
fn generated_module(target: &Target, source_root: &str, proto: &str) -> Result<String, PlanError> {
    let under_root = match source_root {
        "" => true,
        root => proto
            .strip_prefix(root)
            .is_some_and(|rest| rest.starts_with('/')),
    };
    match proto.strip_suffix(".proto") {
        Some(stem) if under_root => Ok(format!("{stem}_pb2.py").replace('-', "_")),
        _ => Err(PlanError::new(format!(
            "the source `{proto}` of target `{}` is not a `.proto` file under its source root \
             `{source_root}`; move it or set `source_root`",
            target.address
        ))),
    }
}

fn root_dir(source_root: &str) -> String {
    if source_root.is_empty() {
        ".".to_owned()
    } else {
        source_root.to_owned()
    }
}

/// The `.proto` files, those of dependencies (which they may import), and the archive.
fn inputs(target: &Target, archive: &str) -> Vec<String> {
    let mut inputs = target.text_list("sources").to_vec();
    inputs.extend(target.dependency_inputs.iter().cloned());
    inputs.push(archive.to_owned());
    inputs.sort();
    inputs.dedup();
    inputs
}

/// The directory of an absolute file path: `/usr/bin` for `/usr/bin/unzip`, `/` for `/unzip`.
fn parent_directory(path: &str) -> &str {
    match path.rsplit_once('/') {
        Some(("", _)) | None => "/",
        Some((directory, _)) => directory,
    }
}

#[cfg(test)]
mod tests;
