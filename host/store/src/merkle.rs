//! Input roots as Merkle trees of REAPI `Directory` messages.
//!
//! The canonical rules: entries of a directory sorted by name (byte order), one name never used
//! twice across files, directories and symlinks, no node properties. Because the builder keeps
//! every directory's children in one ordered map, the same entries in any order give the same
//! messages and so the same root digest.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use remex_proto::reapi;

use crate::digest::Digest;

/// What stands at one path of an input root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InputEntry {
    File { digest: Digest, is_executable: bool },
    Symlink { target: String },
    EmptyDirectory,
}

/// An input path that cannot be placed in a tree.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MerkleError {
    #[error("input path `{path}` is absolute; input paths are relative to the input root")]
    Absolute { path: String },
    #[error("input path `{path}` has an empty segment")]
    EmptySegment { path: String },
    #[error("input path `{path}` has a `.` or `..` segment")]
    DotSegment { path: String },
    #[error("input path `{path}` is empty")]
    EmptyPath { path: String },
    #[error("input path `{path}` needs `{file}` to be a directory, but it is a file or symlink")]
    UnderFile { path: String, file: String },
    #[error("input path `{path}` is given as both a directory and a file or symlink")]
    FileAndDirectory { path: String },
    #[error("input path `{path}` is given twice with different contents")]
    Conflict { path: String },
}

#[derive(Default)]
struct DirNode {
    children: BTreeMap<String, Node>,
}

enum Node {
    File { digest: Digest, is_executable: bool },
    Symlink { target: String },
    Dir(DirNode),
}

/// Collects the entries of an input root and turns them into `Directory` messages.
#[derive(Default)]
pub struct InputTreeBuilder {
    root: DirNode,
}

/// A finished input root: its digest, and every `Directory` message in it with its encoding.
#[derive(Clone, Debug)]
pub struct InputTree {
    pub root_digest: Digest,
    /// Every distinct directory of the tree, root included, as `(digest, encoded bytes)`.
    pub directories: Vec<(Digest, Vec<u8>)>,
}

impl InputTree {
    /// The tree as a REAPI `Tree` message: the root and every other directory once.
    pub fn to_tree_message(&self) -> reapi::Tree {
        let decode = |bytes: &Vec<u8>| {
            <reapi::Directory as prost::Message>::decode(bytes.as_slice()).unwrap_or_default()
        };
        let mut tree = reapi::Tree::default();
        for (digest, bytes) in &self.directories {
            if *digest == self.root_digest {
                tree.root = Some(decode(bytes));
            } else {
                tree.children.push(decode(bytes));
            }
        }
        tree
    }
}

impl InputTreeBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Places `entry` at `path` (relative, `/`-separated). Parent directories are implied.
    pub fn add(&mut self, path: &str, entry: InputEntry) -> Result<(), MerkleError> {
        let segments = split_path(path)?;
        let (leaf, parents) = segments
            .split_last()
            .ok_or_else(|| MerkleError::EmptyPath {
                path: path.to_owned(),
            })?;

        let mut dir = &mut self.root;
        for (depth, segment) in parents.iter().enumerate() {
            // Most parents exist already: look before allocating a key.
            if !dir.children.contains_key(*segment) {
                let new = Node::Dir(DirNode::default());
                dir.children.insert((*segment).to_owned(), new);
            }
            let node = dir.children.get_mut(*segment).expect("inserted above");
            dir = match node {
                Node::Dir(d) => d,
                _ => {
                    return Err(MerkleError::UnderFile {
                        path: path.to_owned(),
                        file: parents[..=depth].join("/"),
                    });
                }
            };
        }
        insert_leaf(dir, leaf, entry, path)
    }

    /// Serializes the tree bottom-up and returns the root digest and every directory.
    pub fn build(&self) -> InputTree {
        let mut directories = BTreeMap::new();
        let root_digest = encode_dir(&self.root, &mut directories);
        InputTree {
            root_digest,
            directories: directories.into_iter().collect(),
        }
    }
}

fn insert_leaf(
    dir: &mut DirNode,
    leaf: &str,
    entry: InputEntry,
    path: &str,
) -> Result<(), MerkleError> {
    let new = match entry {
        InputEntry::File {
            digest,
            is_executable,
        } => Node::File {
            digest,
            is_executable,
        },
        InputEntry::Symlink { target } => Node::Symlink { target },
        InputEntry::EmptyDirectory => Node::Dir(DirNode::default()),
    };
    match (dir.children.get(leaf), &new) {
        (None, _) => {
            dir.children.insert(leaf.to_owned(), new);
            Ok(())
        }
        // An empty directory adds nothing to a directory that is already there.
        (Some(Node::Dir(_)), Node::Dir(_)) => Ok(()),
        (Some(Node::Dir(_)), _) | (Some(_), Node::Dir(_)) => Err(MerkleError::FileAndDirectory {
            path: path.to_owned(),
        }),
        (Some(old), _) if same_leaf(old, &new) => Ok(()),
        (Some(_), _) => Err(MerkleError::Conflict {
            path: path.to_owned(),
        }),
    }
}

fn same_leaf(a: &Node, b: &Node) -> bool {
    match (a, b) {
        (
            Node::File {
                digest: d1,
                is_executable: x1,
            },
            Node::File {
                digest: d2,
                is_executable: x2,
            },
        ) => d1 == d2 && x1 == x2,
        (Node::Symlink { target: t1 }, Node::Symlink { target: t2 }) => t1 == t2,
        _ => false,
    }
}

fn split_path(path: &str) -> Result<Vec<&str>, MerkleError> {
    let owned = || path.to_owned();
    if path.is_empty() {
        return Err(MerkleError::EmptyPath { path: owned() });
    }
    if path.starts_with('/') {
        return Err(MerkleError::Absolute { path: owned() });
    }
    let segments: Vec<&str> = path.split('/').collect();
    if segments.iter().any(|s| s.is_empty()) {
        return Err(MerkleError::EmptySegment { path: owned() });
    }
    if segments.iter().any(|s| *s == "." || *s == "..") {
        return Err(MerkleError::DotSegment { path: owned() });
    }
    Ok(segments)
}

fn encode_dir(dir: &DirNode, out: &mut BTreeMap<Digest, Vec<u8>>) -> Digest {
    let mut message = reapi::Directory::default();
    for (name, node) in &dir.children {
        match node {
            Node::File {
                digest,
                is_executable,
            } => message
                .files
                .push(file_node(name.clone(), digest, *is_executable)),
            Node::Symlink { target } => message
                .symlinks
                .push(symlink_node(name.clone(), target.clone())),
            Node::Dir(child) => {
                let digest = encode_dir(child, out);
                message
                    .directories
                    .push(directory_node(name.clone(), &digest));
            }
        }
    }
    let (digest, bytes) = Digest::of_message(&message);
    out.insert(digest, bytes);
    digest
}

// The three kinds of node as every tree of remex writes them: no node properties. A
// `Directory` lists each kind sorted by name, in byte order.

pub(crate) fn file_node(name: String, digest: &Digest, is_executable: bool) -> reapi::FileNode {
    reapi::FileNode {
        name,
        digest: Some(digest.to_proto()),
        is_executable,
        node_properties: None,
    }
}

pub(crate) fn symlink_node(name: String, target: String) -> reapi::SymlinkNode {
    reapi::SymlinkNode {
        name,
        target,
        node_properties: None,
    }
}

pub(crate) fn directory_node(name: String, digest: &Digest) -> reapi::DirectoryNode {
    reapi::DirectoryNode {
        name,
        digest: Some(digest.to_proto()),
    }
}

/// Builds the input root of a directory on disk, as remex would upload it: files hashed by
/// streaming, executable bits kept, symlinks kept as symlinks, empty directories kept. The
/// files are listed and hashed on one thread per core, each up to the size its listing saw (a
/// file that grows meanwhile is hashed as it was then).
pub fn digest_directory_on_disk(root: &Path) -> io::Result<InputTree> {
    crate::walk::digest_directory(root, None)
}

/// Like [`digest_directory_on_disk`], with `digest_file` deciding how each file is digested
/// (for example by storing it on the way). Runs on the calling thread only.
pub fn tree_of_directory(
    root: &Path,
    digest_file: &mut dyn FnMut(&Path) -> io::Result<Digest>,
) -> io::Result<InputTree> {
    let mut builder = InputTreeBuilder::new();
    add_directory(&mut builder, root, &PathBuf::new(), digest_file)?;
    Ok(builder.build())
}

fn add_directory(
    builder: &mut InputTreeBuilder,
    root: &Path,
    rel: &Path,
    digest_file: &mut dyn FnMut(&Path) -> io::Result<Digest>,
) -> io::Result<()> {
    let mut entries: Vec<_> = fs::read_dir(root.join(rel))?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    if entries.is_empty() && !rel.as_os_str().is_empty() {
        return add_or_invalid(builder, &utf8(rel)?, InputEntry::EmptyDirectory);
    }
    for entry in entries {
        let kind = entry.file_type()?;
        let path = utf8(&rel.join(entry.file_name()))?;
        if kind.is_symlink() {
            let target = fs::read_link(entry.path())?;
            let target = target.to_string_lossy().into_owned();
            add_or_invalid(builder, &path, InputEntry::Symlink { target })?;
        } else if kind.is_dir() {
            add_directory(builder, root, &rel.join(entry.file_name()), digest_file)?;
        } else {
            let digest = digest_file(&entry.path())?;
            let is_executable = entry.metadata()?.permissions().mode() & 0o111 != 0;
            let file = InputEntry::File {
                digest,
                is_executable,
            };
            add_or_invalid(builder, &path, file)?;
        }
    }
    Ok(())
}

fn utf8(path: &Path) -> io::Result<String> {
    path.to_str().map(str::to_owned).ok_or_else(|| {
        let message = format!("path `{}` is not UTF-8", path.display());
        io::Error::new(io::ErrorKind::InvalidData, message)
    })
}

fn add_or_invalid(builder: &mut InputTreeBuilder, path: &str, entry: InputEntry) -> io::Result<()> {
    builder
        .add(path, entry)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

#[cfg(test)]
#[path = "merkle_tests.rs"]
mod tests;
