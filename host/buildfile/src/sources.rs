//! `Sources` fields: globs relative to a BUILD file's directory, resolved to existing files.

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};
use std::rc::Rc;

use globset::{GlobBuilder, GlobMatcher};

use crate::error::Problem;
use crate::files::{RepoFiles, is_build_file, join};

/// Resolves globs against a repository's files, compiling each distinct glob once.
pub(crate) struct SourceResolver<'f> {
    files: &'f RepoFiles,
    /// Shared, not cloned: a cloned matcher starts with a cold regex cache.
    matchers: RefCell<HashMap<String, Rc<GlobMatcher>>>,
}

/// Whether a glob that matches nothing is an error: it is when a BUILD file wrote the glob for
/// this target, but not for a default, which is meant to fit many targets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum EmptyGlobs {
    Fail,
    Allow,
}

impl<'f> SourceResolver<'f> {
    pub(crate) fn new(files: &'f RepoFiles) -> Self {
        Self {
            files,
            matchers: RefCell::new(HashMap::new()),
        }
    }

    /// The files matched by `globs` in `dir`, as sorted paths relative to the repository root.
    ///
    /// `*` stays within one directory and `**/` crosses any number of them; a glob starting
    /// with `!` removes what it matches. BUILD files are never sources. Files in
    /// subdirectories that have their own BUILD files can still be matched.
    pub(crate) fn resolve(
        &self,
        dir: &str,
        field: &str,
        globs: &[String],
        empty: EmptyGlobs,
    ) -> Result<Vec<String>, Problem> {
        let (excludes, includes): (Vec<&String>, Vec<&String>) =
            globs.iter().partition(|glob| glob.starts_with('!'));
        let mut matched = BTreeSet::new();
        for glob in includes {
            let mut found = BTreeSet::new();
            self.add_matches(dir, field, glob, &mut found)?;
            if found.is_empty() && empty == EmptyGlobs::Fail {
                return Err(Problem::NoMatchingFiles {
                    glob: glob.clone(),
                    field: field.to_owned(),
                });
            }
            matched.append(&mut found);
        }
        for glob in excludes {
            let mut removed = BTreeSet::new();
            self.add_matches(dir, field, &glob[1..], &mut removed)?;
            matched.retain(|path| !removed.contains(path));
        }
        Ok(matched.into_iter().collect())
    }

    /// Adds the files `glob` matches in `dir` to `out`.
    fn add_matches(
        &self,
        dir: &str,
        field: &str,
        glob: &str,
        out: &mut BTreeSet<String>,
    ) -> Result<(), Problem> {
        check_glob(glob).map_err(|why| invalid(glob, field, why))?;
        if is_literal(glob) {
            let path = join(dir, glob);
            if self.files.contains(&path) && !is_build_file(&path) {
                out.insert(path);
            }
            return Ok(());
        }
        let matcher = self
            .matcher(glob)
            .map_err(|why| invalid(glob, field, why))?;
        let skip = if dir.is_empty() { 0 } else { dir.len() + 1 };
        for path in self.files.under(dir) {
            if matcher.is_match(&path[skip..]) && !is_build_file(path) {
                out.insert(path.clone());
            }
        }
        Ok(())
    }

    fn matcher(&self, glob: &str) -> Result<Rc<GlobMatcher>, String> {
        if let Some(matcher) = self.matchers.borrow().get(glob) {
            return Ok(Rc::clone(matcher));
        }
        let matcher = GlobBuilder::new(glob)
            .literal_separator(true)
            .backslash_escape(true)
            .build()
            .map_err(|err| err.kind().to_string())?
            .compile_matcher();
        let matcher = Rc::new(matcher);
        self.matchers
            .borrow_mut()
            .insert(glob.to_owned(), Rc::clone(&matcher));
        Ok(matcher)
    }
}

/// Rejects globs that could match outside the BUILD file's directory.
fn check_glob(glob: &str) -> Result<(), String> {
    if glob.is_empty() {
        return Err("it is empty".to_owned());
    }
    if glob.starts_with('/') {
        return Err("it must be relative to the BUILD file's directory".to_owned());
    }
    if glob.split('/').any(|part| part == ".." || part == ".") {
        return Err("it must not contain `.` or `..` components".to_owned());
    }
    Ok(())
}

/// Whether a glob has no special characters, and so names one file.
fn is_literal(glob: &str) -> bool {
    !glob.contains(['*', '?', '[', ']', '{', '}', '\\'])
}

fn invalid(glob: &str, field: &str, why: String) -> Problem {
    Problem::InvalidGlob {
        glob: glob.to_owned(),
        field: field.to_owned(),
        why,
    }
}
