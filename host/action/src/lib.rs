//! From a planned [`Process`] to the REAPI messages that describe it, encoded canonically.
//!
//! The canonical rules: environment variables sorted by name, platform properties sorted by
//! name then value, output paths sorted and unique, the input root built by the Merkle builder
//! (which sorts entries). Only the process itself goes in: nothing of the host (no `PATH`,
//! `HOME`, `USER`, `TMPDIR`, nor the checkout's absolute path), so the same process gives the same
//! action digest on every machine and in every mode.

mod outputs;

pub use outputs::output_entries;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread;

use bytes::Bytes;

use remex_model::Process;
use remex_proto::reapi;
use remex_store::{
    ActionDigest, Digest, InputEntry, InputTreeBuilder, LocalStore, MerkleError, StoreError,
};

/// Why a process could not become an action.
#[derive(Debug, thiserror::Error)]
pub enum ActionError {
    #[error("input `{path}` cannot be read: {source}")]
    Input {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(transparent)]
    Tree(#[from] MerkleError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("output path `{0}` must be relative to the working directory, without `..`")]
    BadOutput(String),
    #[error("invalid action result: {0}")]
    BadResult(String),
}

/// An action ready to run. Its input files are in the local store; its `Action`, `Command`
/// and input-root `Directory` messages are in [`PreparedAction::messages`], and in the local
/// store too once [`PreparedAction::store_messages`] has run.
#[derive(Clone, Debug)]
pub struct PreparedAction {
    pub digest: ActionDigest,
    pub action: reapi::Action,
    pub command: reapi::Command,
    pub input_root: Digest,
    /// How many files the input root holds, and their total size.
    pub input_files: usize,
    pub input_bytes: u64,
    /// The encoded `Action`, `Command` and every `Directory` of the input root, by digest.
    /// Writing a small blob to the local store costs a file creation and a rename, far more
    /// than everything else in preparing an action; a remote cache hit needs none of them and
    /// a remote execution uploads them from here, so only running locally writes them.
    pub messages: Arc<BTreeMap<Digest, Bytes>>,
}

impl PreparedAction {
    /// One of the action's own messages, by digest.
    pub fn message(&self, digest: &Digest) -> Option<&Bytes> {
        self.messages.get(digest)
    }

    /// Writes the action's messages to `store` (those it lacks), as running the action from
    /// the store needs.
    pub fn store_messages(&self, store: &LocalStore) -> Result<(), StoreError> {
        for (digest, bytes) in self.messages.iter() {
            store.put_with_digest(digest, bytes)?;
        }
        Ok(())
    }

    /// The digests of the input root's directories and files, each once.
    pub fn input_blobs(&self, store: &LocalStore) -> Result<Vec<Digest>, ActionError> {
        let mut blobs = vec![self.input_root];
        let mut seen = BTreeSet::from([self.input_root]);
        let mut queue = vec![self.input_root];
        while let Some(digest) = queue.pop() {
            let directory: reapi::Directory = match self.message(&digest) {
                Some(bytes) => prost::Message::decode(bytes.as_ref())
                    .map_err(|e| ActionError::BadResult(format!("directory {digest}: {e}")))?,
                None => store.read_message(&digest)?,
            };
            for file in &directory.files {
                let file = Digest::from_proto_field(file.digest.as_ref())
                    .map_err(|e| ActionError::BadResult(format!("directory {digest}: {e}")))?;
                if seen.insert(file) {
                    blobs.push(file);
                }
            }
            for child in &directory.directories {
                let child = Digest::from_proto_field(child.digest.as_ref())
                    .map_err(|e| ActionError::BadResult(format!("directory {digest}: {e}")))?;
                if seen.insert(child) {
                    blobs.push(child);
                    queue.push(child);
                }
            }
        }
        Ok(blobs)
    }
}

/// Which output fields the `Command` carries: `output_paths` for REAPI 2.1 and later, the
/// older `output_files` and `output_directories` for 2.0 servers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum OutputFields {
    #[default]
    Paths,
    FilesAndDirectories,
}

/// Builds the `Command`, input root and `Action` of `process`, storing every blob in `store`.
/// Input files are read from `repo_root`.
pub fn prepare(
    process: &Process,
    repo_root: &Path,
    store: &LocalStore,
    fields: OutputFields,
) -> Result<PreparedAction, ActionError> {
    prepare_with_inputs(process, repo_root, store, fields, &BTreeMap::new())
}

/// Like [`prepare`], with more inputs already in the store, such as the outputs of the
/// target's dependencies, keyed by their path from the input root. An input file of the
/// process found there is taken from there rather than from the repository.
pub fn prepare_with_inputs(
    process: &Process,
    repo_root: &Path,
    store: &LocalStore,
    fields: OutputFields,
    stored_inputs: &BTreeMap<String, InputEntry>,
) -> Result<PreparedAction, ActionError> {
    let prepared = prepare_in_memory(process, repo_root, store, fields, stored_inputs)?;
    prepared.store_messages(store)?;
    Ok(prepared)
}

/// Like [`prepare_with_inputs`], storing the input files but keeping the action's messages in
/// memory only, for the caller to store when (and if) it needs them there.
pub fn prepare_in_memory(
    process: &Process,
    repo_root: &Path,
    store: &LocalStore,
    fields: OutputFields,
    stored_inputs: &BTreeMap<String, InputEntry>,
) -> Result<PreparedAction, ActionError> {
    let mut tree = InputTreeBuilder::new();
    let mut input_bytes = 0;
    let mut input_files = 0;
    let mut add = |path: &str, entry: InputEntry| -> Result<(), ActionError> {
        if let InputEntry::File { digest, .. } = &entry {
            input_bytes += digest.size_bytes;
            input_files += 1;
        }
        Ok(tree.add(path, entry)?)
    };
    for (path, entry) in stored_inputs {
        add(path, entry.clone())?;
    }
    let paths: Vec<&str> = unique_sorted(&process.input_files)
        .filter(|path| !stored_inputs.contains_key(*path))
        .collect();
    for (path, entry) in paths.iter().zip(store_inputs(store, repo_root, &paths)?) {
        add(path, entry)?;
    }
    let tree = tree.build();
    let mut messages: BTreeMap<Digest, Bytes> = tree
        .directories
        .into_iter()
        .map(|(digest, bytes)| (digest, Bytes::from(bytes)))
        .collect();
    let mut keep = |message: &dyn EncodeMessage| {
        let (digest, bytes) = message.encode_with_digest();
        messages.insert(digest, Bytes::from(bytes));
        digest
    };

    let command = command_of(process, fields)?;
    let platform = platform_of(&process.platform);
    let action = reapi::Action {
        command_digest: Some(keep(&command).to_proto()),
        input_root_digest: Some(tree.root_digest.to_proto()),
        timeout: process.timeout.and_then(|t| t.try_into().ok()),
        do_not_cache: false,
        salt: Default::default(),
        platform,
    };
    let digest = ActionDigest(keep(&action));
    Ok(PreparedAction {
        digest,
        action,
        command,
        input_root: tree.root_digest,
        input_files,
        input_bytes,
        messages: Arc::new(messages),
    })
}

/// A message encoded canonically, with its digest; object-safe, for the two message types an
/// action is made of.
trait EncodeMessage {
    fn encode_with_digest(&self) -> (Digest, Vec<u8>);
}

impl<M: prost::Message> EncodeMessage for M {
    fn encode_with_digest(&self) -> (Digest, Vec<u8>) {
        Digest::of_message(self)
    }
}

/// Threads storing input files at once: one per core, since storing a file is hashing it,
/// unless the store already knows the unchanged file. Asked once: on Linux the answer comes
/// from reading cgroup files, which cost more than preparing a small action.
fn store_threads() -> usize {
    static THREADS: OnceLock<usize> = OnceLock::new();
    *THREADS.get_or_init(|| thread::available_parallelism().map_or(2, |n| n.get()))
}

/// Stores the repository files at `paths`, several at a time; their entries in `paths` order.
fn store_inputs(
    store: &LocalStore,
    repo_root: &Path,
    paths: &[&str],
) -> Result<Vec<InputEntry>, ActionError> {
    let store_one = |path: &str| store_input(store, &repo_root.join(path));
    let threads = store_threads();
    if paths.len() < 2 * threads {
        return paths.iter().map(|path| store_one(path)).collect();
    }
    // Each thread takes the next path not yet taken, so one large file holds up only its own
    // thread; the results are put back in order afterwards.
    let next = AtomicUsize::new(0);
    let take_paths = || {
        let mut done = Vec::new();
        loop {
            let index = next.fetch_add(1, Ordering::Relaxed);
            let Some(path) = paths.get(index) else {
                return done;
            };
            done.push((index, store_one(path)));
        }
    };
    let mut stored: Vec<(usize, Result<InputEntry, ActionError>)> = thread::scope(|scope| {
        let workers: Vec<_> = (0..threads).map(|_| scope.spawn(take_paths)).collect();
        workers.into_iter().flat_map(join_worker).collect()
    });
    stored.sort_by_key(|(index, _)| *index);
    stored.into_iter().map(|(_, entry)| entry).collect()
}

/// A worker's results; its panic goes on in the caller.
fn join_worker<T>(worker: thread::ScopedJoinHandle<'_, T>) -> T {
    worker
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

fn store_input(store: &LocalStore, full: &Path) -> Result<InputEntry, ActionError> {
    let input_error = |source| ActionError::Input {
        path: full.to_owned(),
        source,
    };
    let metadata = fs::symlink_metadata(full).map_err(input_error)?;
    if metadata.is_symlink() {
        let target = fs::read_link(full).map_err(input_error)?;
        return Ok(InputEntry::Symlink {
            target: target.to_string_lossy().into_owned(),
        });
    }
    if metadata.is_dir() {
        return Ok(InputEntry::EmptyDirectory);
    }
    Ok(InputEntry::File {
        digest: store.put_file_cached(full, &metadata)?,
        is_executable: metadata.permissions().mode() & 0o111 != 0,
    })
}

fn command_of(process: &Process, fields: OutputFields) -> Result<reapi::Command, ActionError> {
    for path in process
        .output_files
        .iter()
        .chain(&process.output_directories)
    {
        if path.is_empty() || path.starts_with('/') || path.split('/').any(|s| s == "..") {
            return Err(ActionError::BadOutput(path.clone()));
        }
    }
    let mut command = reapi::Command {
        arguments: process.argv.clone(),
        // A BTreeMap: already sorted by name, each name once.
        environment_variables: process
            .env
            .iter()
            .map(|(name, value)| reapi::command::EnvironmentVariable {
                name: name.clone(),
                value: value.clone(),
            })
            .collect(),
        platform: platform_of(&process.platform),
        working_directory: process.working_directory.clone(),
        ..Default::default()
    };
    match fields {
        OutputFields::Paths => {
            let all = process
                .output_files
                .iter()
                .chain(&process.output_directories);
            command.output_paths = all.collect::<BTreeSet<_>>().into_iter().cloned().collect();
        }
        OutputFields::FilesAndDirectories => {
            command.output_files = unique_sorted(&process.output_files)
                .map(str::to_owned)
                .collect();
            command.output_directories = unique_sorted(&process.output_directories)
                .map(str::to_owned)
                .collect();
        }
    }
    Ok(command)
}

fn unique_sorted(items: &[String]) -> impl Iterator<Item = &str> {
    items
        .iter()
        .map(String::as_str)
        .collect::<BTreeSet<_>>()
        .into_iter()
}

/// Platform properties sorted by name, then value; `None` when there are none.
pub fn platform_of(properties: &[(String, String)]) -> Option<reapi::Platform> {
    if properties.is_empty() {
        return None;
    }
    let sorted: BTreeSet<_> = properties.iter().collect();
    Some(reapi::Platform {
        properties: sorted
            .into_iter()
            .map(|(name, value)| reapi::platform::Property {
                name: name.clone(),
                value: value.clone(),
            })
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn process() -> Process {
        Process {
            argv: vec!["/bin/sh".into(), "-c".into(), "true".into()],
            env: BTreeMap::from([("B".into(), "2".into()), ("A".into(), "1".into())]),
            input_files: vec!["src/b.txt".into(), "src/a.txt".into()],
            output_files: vec!["z".into(), "a".into(), "a".into()],
            platform: vec![("os".into(), "linux".into()), ("arch".into(), "x86".into())],
            ..Default::default()
        }
    }

    #[test]
    fn order_of_inputs_outputs_and_properties_does_not_change_the_digest() {
        let repo = tempfile::tempdir().expect("tempdir");
        fs::create_dir(repo.path().join("src")).expect("mkdir");
        fs::write(repo.path().join("src/a.txt"), "a").expect("write");
        fs::write(repo.path().join("src/b.txt"), "b").expect("write");
        let store = LocalStore::open(repo.path().join(".store")).expect("store");

        let first = prepare(&process(), repo.path(), &store, OutputFields::Paths).expect("ok");
        let mut reordered = process();
        reordered.input_files.reverse();
        reordered.output_files.reverse();
        reordered.platform.reverse();
        let second = prepare(&reordered, repo.path(), &store, OutputFields::Paths).expect("ok");

        assert_eq!(first.digest, second.digest);
        assert_eq!(first.command.output_paths, vec!["a", "z"]);
        let names: Vec<_> = first
            .command
            .environment_variables
            .iter()
            .map(|v| &v.name)
            .collect();
        assert_eq!(names, ["A", "B"]);
        assert_eq!(first.action.platform, first.command.platform);
        assert_eq!(
            first.action.platform.as_ref().expect("platform").properties[0].name,
            "arch"
        );
    }

    #[test]
    fn messages_stay_in_memory_until_stored_and_list_the_input_blobs() {
        let repo = tempfile::tempdir().expect("tempdir");
        fs::create_dir(repo.path().join("src")).expect("mkdir");
        fs::write(repo.path().join("src/a.txt"), "a").expect("write");
        fs::write(repo.path().join("src/b.txt"), "b").expect("write");
        let store = LocalStore::open(repo.path().join(".store")).expect("store");
        let no_inputs = BTreeMap::new();
        let fields = OutputFields::Paths;

        let prepared = prepare_in_memory(&process(), repo.path(), &store, fields, &no_inputs)
            .expect("prepared");
        let command = Digest::from_proto_field(prepared.action.command_digest.as_ref())
            .expect("command digest");
        // Action, Command, the root and `src`: in memory, not in the store.
        assert_eq!(prepared.messages.len(), 4);
        for digest in [prepared.digest.0, command, prepared.input_root] {
            assert!(prepared.message(&digest).is_some(), "{digest} kept");
            assert!(!store.contains(&digest), "{digest} not stored yet");
        }
        let files = [Digest::of_bytes(b"a"), Digest::of_bytes(b"b")];
        let blobs = prepared.input_blobs(&store).expect("input blobs");
        assert_eq!(blobs.len(), 4, "root, src and two files: {blobs:?}");
        assert!(files.iter().all(|f| blobs.contains(f) && store.contains(f)));

        prepared.store_messages(&store).expect("stored");
        for (digest, bytes) in prepared.messages.iter() {
            assert_eq!(store.read(digest).expect("read"), bytes.as_ref());
        }
        let stored = prepare(&process(), repo.path(), &store, fields).expect("prepared");
        assert_eq!(stored.digest, prepared.digest);
        assert_eq!(stored.input_blobs(&store).expect("blobs"), blobs);
    }

    #[test]
    fn stored_inputs_join_the_input_root_and_win_over_repository_files() {
        let repo = tempfile::tempdir().expect("tempdir");
        fs::create_dir(repo.path().join("src")).expect("mkdir");
        fs::write(repo.path().join("src/a.txt"), "a").expect("write");
        let store = LocalStore::open(repo.path().join(".store")).expect("store");
        let generated = store.put_bytes(b"generated").expect("put");
        let entry = InputEntry::File {
            digest: generated,
            is_executable: false,
        };
        let stored = BTreeMap::from([
            ("gen/out.py".to_owned(), entry.clone()),
            ("src/b.txt".to_owned(), entry),
        ]);
        let prepared = prepare_with_inputs(
            &process(),
            repo.path(),
            &store,
            OutputFields::Paths,
            &stored,
        )
        .expect("src/b.txt comes from the stored inputs, not the repository");
        assert_eq!(prepared.input_files, 3);
    }

    #[test]
    fn many_inputs_stored_in_parallel_give_the_tree_of_the_files() {
        let repo = tempfile::tempdir().expect("tempdir");
        let store = LocalStore::open(repo.path().join(".store")).expect("store");
        fs::create_dir(repo.path().join("many")).expect("mkdir");
        let mut expected = InputTreeBuilder::new();
        let mut files = Vec::new();
        for index in 0..10 * store_threads() {
            let path = format!("many/{index:03}.txt");
            fs::write(repo.path().join(&path), format!("file {index}")).expect("write");
            let digest = Digest::of_bytes(format!("file {index}").as_bytes());
            let entry = InputEntry::File {
                digest,
                is_executable: false,
            };
            expected.add(&path, entry).expect("add");
            files.push(path);
        }
        files.reverse();
        let many = Process {
            input_files: files,
            ..Default::default()
        };

        let prepared = prepare(&many, repo.path(), &store, OutputFields::Paths).expect("ok");
        assert_eq!(prepared.input_root, expected.build().root_digest);
        assert_eq!(prepared.input_files, 10 * store_threads());
        assert!(
            store.contains(&Digest::of_bytes(b"file 7")),
            "file 7 is stored"
        );
    }

    #[test]
    fn a_missing_input_among_many_is_an_error_naming_it() {
        let repo = tempfile::tempdir().expect("tempdir");
        let store = LocalStore::open(repo.path().join(".store")).expect("store");
        let files: Vec<String> = (0..4 * store_threads())
            .map(|i| format!("{i:03}"))
            .collect();
        for path in files.iter().skip(1) {
            fs::write(repo.path().join(path), path).expect("write");
        }
        let many = Process {
            input_files: files,
            ..Default::default()
        };
        let err = prepare(&many, repo.path(), &store, OutputFields::Paths).expect_err("missing");
        assert!(
            err.to_string().contains("`") && err.to_string().contains("000"),
            "{err}"
        );
    }

    #[test]
    fn output_outside_the_working_directory_is_refused() {
        let repo = tempfile::tempdir().expect("tempdir");
        let store = LocalStore::open(repo.path().join(".store")).expect("store");
        let mut bad = process();
        bad.input_files.clear();
        bad.output_files = vec!["../escape".into()];
        let err = prepare(&bad, repo.path(), &store, OutputFields::Paths).expect_err("refused");
        assert!(matches!(err, ActionError::BadOutput(_)), "{err}");
    }
}
