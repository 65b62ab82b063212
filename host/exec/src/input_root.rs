//! Checking an input root before anything of it is written to disk: every `Directory` in the
//! tree decodes, names one path segment per entry, lists its entries sorted and once; no
//! symlink leads out of the root; and every blob the tree names is in the store. Missing blobs
//! are all collected, so a client can upload them in one round instead of one per attempt.

use std::collections::{HashMap, HashSet, VecDeque};

use prost::Message;
use remex_proto::reapi;
use remex_store::{Digest, LocalStore, StoreError};

use crate::run::ExecError;

/// More entries than this (counting a directory once for every place it appears) and the input
/// root is refused: a small Merkle DAG can describe an exponentially large tree.
const MAX_ENTRIES: usize = 4_000_000;

/// How many symlinks one path may pass through, as Linux allows.
const MAX_SYMLINK_HOPS: usize = 40;

/// Checks the input root `root` and everything under it.
pub(crate) fn check_input_root(store: &LocalStore, root: &Digest) -> Result<(), ExecError> {
    let mut tree = Tree::default();
    tree.load(store, root)?;
    if !tree.missing.is_empty() {
        return Err(ExecError::MissingInputs(tree.missing));
    }
    check_symlinks(&tree.directories, root)
}

/// The directories of an input root, each decoded and checked once, and the blobs it lacks.
#[derive(Default)]
struct Tree {
    directories: HashMap<Digest, reapi::Directory>,
    missing: Vec<Digest>,
    seen_missing: HashSet<Digest>,
}

impl Tree {
    /// Walks the tree breadth-first from `root`, which is named by the empty path.
    fn load(&mut self, store: &LocalStore, root: &Digest) -> Result<(), ExecError> {
        let mut queue = VecDeque::from([(String::new(), *root)]);
        while let Some((path, digest)) = queue.pop_front() {
            if self.directories.contains_key(&digest) {
                continue;
            }
            let Some(directory) = self.read_directory(store, &path, &digest)? else {
                continue;
            };
            check_entries(&path, &directory)?;
            for file in &directory.files {
                let digest = entry_digest(&path, &file.name, file.digest.as_ref())?;
                if !store.contains(&digest) {
                    self.note_missing(digest);
                }
            }
            for child in &directory.directories {
                let digest = entry_digest(&path, &child.name, child.digest.as_ref())?;
                queue.push_back((join(&path, &child.name), digest));
            }
            self.directories.insert(digest, directory);
        }
        Ok(())
    }

    fn read_directory(
        &mut self,
        store: &LocalStore,
        path: &str,
        digest: &Digest,
    ) -> Result<Option<reapi::Directory>, ExecError> {
        let bytes = match store.read(digest) {
            Ok(bytes) => bytes,
            Err(StoreError::Missing(_)) => {
                self.note_missing(*digest);
                return Ok(None);
            }
            Err(e) => return Err(e.into()),
        };
        let directory = reapi::Directory::decode(bytes.as_slice()).map_err(|e| {
            invalid(
                path,
                format!("blob {digest} is not a `Directory` message: {e}"),
            )
        })?;
        Ok(Some(directory))
    }

    fn note_missing(&mut self, digest: Digest) {
        if self.seen_missing.insert(digest) {
            self.missing.push(digest);
        }
    }
}

/// One directory's own rules: valid names, each kind sorted, no name twice across kinds.
fn check_entries(path: &str, directory: &reapi::Directory) -> Result<(), ExecError> {
    let files = directory.files.iter().map(|f| f.name.as_str());
    let dirs = directory.directories.iter().map(|d| d.name.as_str());
    let links = directory.symlinks.iter().map(|s| s.name.as_str());
    for names in [files.collect::<Vec<_>>(), dirs.collect(), links.collect()] {
        check_sorted(path, &names)?;
    }

    let mut all: Vec<&str> = Vec::new();
    all.extend(directory.files.iter().map(|f| f.name.as_str()));
    all.extend(directory.directories.iter().map(|d| d.name.as_str()));
    all.extend(directory.symlinks.iter().map(|s| s.name.as_str()));
    all.sort_unstable();
    if let Some(pair) = all.windows(2).find(|pair| pair[0] == pair[1]) {
        return Err(invalid(
            &join(path, pair[0]),
            "the name is used twice in its directory",
        ));
    }

    for link in &directory.symlinks {
        check_symlink_target(&join(path, &link.name), &link.target)?;
    }
    Ok(())
}

fn check_sorted(path: &str, names: &[&str]) -> Result<(), ExecError> {
    for name in names {
        check_name(path, name)?;
    }
    for pair in names.windows(2) {
        if pair[0] == pair[1] {
            return Err(invalid(&join(path, pair[1]), "the name is listed twice"));
        }
        if pair[0] > pair[1] {
            let problem = format!("entries are not sorted: `{}` comes after it", pair[0]);
            return Err(invalid(&join(path, pair[1]), problem));
        }
    }
    Ok(())
}

/// A name inside a `Directory` must be exactly one path segment.
fn check_name(path: &str, name: &str) -> Result<(), ExecError> {
    if name.is_empty() {
        return Err(invalid(
            path,
            "an entry of this directory has an empty name",
        ));
    }
    let problem = if name == "." || name == ".." {
        "`.` and `..` are not names"
    } else if name.contains('/') {
        "the name contains `/`"
    } else if name.contains('\0') {
        "the name contains a NUL byte"
    } else {
        return Ok(());
    };
    Err(invalid(&join(path, name), problem))
}

fn check_symlink_target(path: &str, target: &str) -> Result<(), ExecError> {
    if target.is_empty() {
        return Err(invalid(path, "the symlink has an empty target"));
    }
    if target.starts_with('/') {
        return Err(invalid(path, "absolute symlink targets are not allowed"));
    }
    if target.contains('\0') {
        return Err(invalid(path, "the symlink target contains a NUL byte"));
    }
    Ok(())
}

fn entry_digest(
    path: &str,
    name: &str,
    digest: Option<&reapi::Digest>,
) -> Result<Digest, ExecError> {
    Digest::from_proto_field(digest).map_err(|e| invalid(&join(path, name), e.to_string()))
}

/// Follows every symlink of the tree, at every place its directory appears, as the kernel
/// would once the tree is on disk, and refuses any that climbs above the root.
fn check_symlinks(
    directories: &HashMap<Digest, reapi::Directory>,
    root: &Digest,
) -> Result<(), ExecError> {
    let mut visited = 0usize;
    let mut stack = vec![(String::new(), vec![*root])];
    while let Some((path, chain)) = stack.pop() {
        let Some(directory) = chain.last().and_then(|d| directories.get(d)) else {
            continue;
        };
        visited += 1 + directory.files.len() + directory.symlinks.len();
        if visited > MAX_ENTRIES {
            let problem = format!("the input root has more than {MAX_ENTRIES} entries");
            return Err(invalid("", problem));
        }
        for link in &directory.symlinks {
            if escapes(directories, &chain, &link.target) {
                let link_path = join(&path, &link.name);
                let problem = format!("symlink to `{}` leads out of the input root", link.target);
                return Err(invalid(&link_path, problem));
            }
        }
        for child in &directory.directories {
            if let Ok(digest) = Digest::from_proto_field(child.digest.as_ref()) {
                let mut child_chain = chain.clone();
                child_chain.push(digest);
                stack.push((join(&path, &child.name), child_chain));
            }
        }
    }
    Ok(())
}

/// Whether resolving `target` from the directory at the end of `chain` leaves the root. Parts
/// of the path that are not in the tree are taken literally, since the action may create them.
fn escapes(
    directories: &HashMap<Digest, reapi::Directory>,
    chain: &[Digest],
    target: &str,
) -> bool {
    let mut chain = chain.to_vec();
    // Segments below the last real directory that name nothing in the tree.
    let mut beyond = 0usize;
    let mut pending: VecDeque<String> = segments(target).collect();
    let mut hops = 0;
    while let Some(segment) = pending.pop_front() {
        if segment == ".." {
            if beyond > 0 {
                beyond -= 1;
            } else if chain.len() > 1 {
                chain.pop();
            } else {
                return true;
            }
            continue;
        }
        if beyond > 0 {
            beyond += 1;
            continue;
        }
        match lookup(directories, &chain, &segment) {
            Lookup::Directory(digest) => chain.push(digest),
            Lookup::Symlink(target) => {
                hops += 1;
                if hops > MAX_SYMLINK_HOPS || target.starts_with('/') {
                    // A loop fails to resolve rather than escaping; an absolute target escapes.
                    return target.starts_with('/');
                }
                for (i, inner) in segments(&target).enumerate() {
                    pending.insert(i, inner);
                }
            }
            Lookup::Other => beyond += 1,
        }
    }
    false
}

enum Lookup {
    Directory(Digest),
    Symlink(String),
    Other,
}

fn lookup(directories: &HashMap<Digest, reapi::Directory>, chain: &[Digest], name: &str) -> Lookup {
    let Some(directory) = chain.last().and_then(|d| directories.get(d)) else {
        return Lookup::Other;
    };
    if let Some(child) = directory.directories.iter().find(|d| d.name == name) {
        return match Digest::from_proto_field(child.digest.as_ref()) {
            Ok(digest) => Lookup::Directory(digest),
            Err(_) => Lookup::Other,
        };
    }
    match directory.symlinks.iter().find(|s| s.name == name) {
        Some(link) => Lookup::Symlink(link.target.clone()),
        None => Lookup::Other,
    }
}

fn segments(path: &str) -> impl Iterator<Item = String> + '_ {
    path.split('/')
        .filter(|s| !s.is_empty() && *s != ".")
        .map(str::to_owned)
}

fn join(parent: &str, name: &str) -> String {
    if parent.is_empty() {
        name.to_owned()
    } else {
        format!("{parent}/{name}")
    }
}

fn invalid(path: &str, problem: impl Into<String>) -> ExecError {
    let path = if path.is_empty() { "." } else { path };
    ExecError::InvalidPath {
        what: "input root entry",
        path: path.to_owned(),
        problem: problem.into(),
    }
}

#[cfg(test)]
#[path = "input_root_tests.rs"]
mod tests;
