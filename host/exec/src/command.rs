//! The rules a `Command` must follow before it runs, and the directories made for it: its
//! working directory and every output path stay inside the action's sandbox, even where the
//! input root has symlinks.

use std::collections::HashSet;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use remex_proto::reapi;

use crate::run::ExecError;

/// Which field of the `Command` declared an output. Older clients use `output_files` and
/// `output_directories`, and read symlinks back from the matching older result fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum OutputField {
    Paths,
    Files,
    Directories,
}

/// One declared output, relative to the working directory.
#[derive(Clone, Debug)]
pub(crate) struct OutputPath {
    pub path: String,
    pub field: OutputField,
}

/// Checks the command and returns its outputs: `output_paths` (REAPI 2.1 and later) when set,
/// else the older `output_files` and `output_directories`.
pub(crate) fn check_command(command: &reapi::Command) -> Result<Vec<OutputPath>, ExecError> {
    if command.arguments.is_empty() {
        return Err(ExecError::BadAction("the command has no arguments".into()));
    }
    check_relative("working directory", &command.working_directory)?;

    let outputs = declared_outputs(command);
    let mut seen = HashSet::new();
    for output in &outputs {
        check_relative("output path", &output.path)?;
        if !seen.insert(output.path.as_str()) {
            return Err(invalid("output path", &output.path, "it is declared twice"));
        }
    }
    Ok(outputs)
}

fn declared_outputs(command: &reapi::Command) -> Vec<OutputPath> {
    let with = |field| {
        move |path: &String| OutputPath {
            path: path.clone(),
            field,
        }
    };
    if !command.output_paths.is_empty() {
        return command
            .output_paths
            .iter()
            .map(with(OutputField::Paths))
            .collect();
    }
    let files = command.output_files.iter().map(with(OutputField::Files));
    let dirs = command
        .output_directories
        .iter()
        .map(with(OutputField::Directories));
    files.chain(dirs).collect()
}

/// A path below the working directory or the input root: relative, `/`-separated, with no
/// empty, `.` or `..` segment. The empty path is the directory itself.
fn check_relative(what: &'static str, path: &str) -> Result<(), ExecError> {
    if path.is_empty() {
        return Ok(());
    }
    let problem = if path.starts_with('/') {
        "it is absolute"
    } else if path.contains('\0') {
        "it contains a NUL byte"
    } else if path.split('/').any(|s| s == "..") {
        "it leaves the working directory through `..`"
    } else if path.split('/').any(|s| s.is_empty() || s == ".") {
        "it has an empty or `.` segment"
    } else {
        return Ok(());
    };
    Err(invalid(what, path, problem))
}

/// Creates `relative` (checked by [`check_relative`]) under `root`, refusing to follow a
/// symlink that leads out of `root`. Returns the full path.
pub(crate) fn create_dir_inside(
    root: &Path,
    relative: &str,
    what: &'static str,
) -> Result<PathBuf, ExecError> {
    let real_root = root
        .canonicalize()
        .map_err(ExecError::io("resolve", root))?;
    let mut current = root.to_path_buf();
    for segment in relative.split('/').filter(|s| !s.is_empty()) {
        current.push(segment);
        match fs::symlink_metadata(&current) {
            Ok(m) if m.is_dir() => {}
            Ok(m) if m.is_symlink() => check_link_inside(&current, &real_root, relative, what)?,
            Ok(_) => {
                let problem = format!("`{segment}` is a file, not a directory");
                return Err(invalid(what, relative, problem));
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                fs::create_dir(&current).map_err(ExecError::io("create", &current))?;
            }
            Err(e) => return Err(ExecError::io("inspect", &current)(e)),
        }
    }
    Ok(current)
}

fn check_link_inside(
    link: &Path,
    real_root: &Path,
    relative: &str,
    what: &'static str,
) -> Result<(), ExecError> {
    let real = link
        .canonicalize()
        .map_err(|_| invalid(what, relative, "it passes through a dangling symlink"))?;
    if !real.starts_with(real_root) {
        return Err(invalid(
            what,
            relative,
            "it leads out of the sandbox through a symlink",
        ));
    }
    if !real.is_dir() {
        return Err(invalid(
            what,
            relative,
            "it passes through a symlink to a file",
        ));
    }
    Ok(())
}

/// Whether `path`'s parent directory, with every symlink resolved, is inside `real_root`.
/// `None` when the parent does not exist.
pub(crate) fn parent_is_inside(path: &Path, real_root: &Path) -> Option<bool> {
    let parent = path.parent()?;
    let real = parent.canonicalize().ok()?;
    Some(real.starts_with(real_root))
}

pub(crate) fn invalid(what: &'static str, path: &str, problem: impl Into<String>) -> ExecError {
    ExecError::InvalidPath {
        what,
        path: path.to_owned(),
        problem: problem.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn command(working_directory: &str, output_paths: &[&str]) -> reapi::Command {
        reapi::Command {
            arguments: vec!["true".into()],
            working_directory: working_directory.into(),
            output_paths: output_paths.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn output_paths_that_leave_the_working_directory_are_refused() {
        for bad in ["../x", "a/../../x", "/etc/passwd", "a//b", "a/./b", "a/"] {
            let err = check_command(&command("", &[bad])).expect_err(bad);
            assert!(err.to_string().contains(bad), "{bad}: {err}");
        }
        check_command(&command("sub", &["a/b", "c"])).expect("fine");
    }

    #[test]
    fn working_directory_must_stay_inside_the_input_root() {
        let err = check_command(&command("../up", &[])).expect_err("escape");
        assert!(
            err.to_string().contains("working directory `../up`"),
            "{err}"
        );
    }

    #[test]
    fn duplicate_outputs_are_refused() {
        let err = check_command(&command("", &["a", "a"])).expect_err("twice");
        assert!(err.to_string().contains("declared twice"), "{err}");
    }

    #[test]
    fn legacy_fields_are_used_without_output_paths() {
        let command = reapi::Command {
            arguments: vec!["true".into()],
            output_files: vec!["f".into()],
            output_directories: vec!["d".into()],
            ..Default::default()
        };
        let outputs = check_command(&command).expect("valid");
        let fields: Vec<_> = outputs.iter().map(|o| (o.path.as_str(), o.field)).collect();
        let expected = [("f", OutputField::Files), ("d", OutputField::Directories)];
        assert_eq!(fields, expected);
    }

    #[test]
    fn directories_are_not_created_through_escaping_symlinks() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("root");
        let outside = dir.path().join("outside");
        fs::create_dir_all(&root).expect("mkdir");
        fs::create_dir_all(&outside).expect("mkdir");
        std::os::unix::fs::symlink(&outside, root.join("link")).expect("symlink");

        let err = create_dir_inside(&root, "link/made", "output path").expect_err("escape");
        assert!(
            err.to_string().contains("leads out of the sandbox"),
            "{err}"
        );
        assert!(!outside.join("made").exists());
        create_dir_inside(&root, "a/b", "output path").expect("inside");
        assert!(root.join("a/b").is_dir());
    }
}
