//! Plans remembered across runs, so that a second `remex test ::` of an unchanged repository
//! does not call its plugins again.
//!
//! A `plan` call is a function of what it is given and of what its host calls answer: it runs
//! in a fresh instance with no files, fixed clocks and fixed randomness. So the memo keys a plan
//! by everything the plugin is given (the component's SHA-256, the limits it ran under, the
//! target and the environment as the plugin sees them, this host's version) and keeps with it
//! the host calls the plan made, in order, with their answers. Recalling an entry asks each of
//! those calls again: the plugin would have made the same first call; given the same answer it
//! would have made the same second one; and so on, so when every answer matches, the plan would
//! return what it returned before. `log` changes nothing a plan returns and is not recorded.
//! Only successful plans are kept: a failure is planned again, and reported fresh, every time.
//!
//! Answers are compared whole for `find-binary` and by SHA-256 for `read-source` (the file's
//! bytes, or the error) and `run-probe` (its exit code and output, or the error). Asking a probe
//! again costs nothing within a run, whose probe results are cached; a new run runs it once.
//!
//! Entries are filed by slot, the target's address and environment name, and a new plan of a
//! slot replaces the old one: a target edited a hundred times has one entry, not a hundred.
//! An entry no run has used in [`MAX_UNUSED_SAVES`] saves (a deleted target's) is dropped, and
//! a save removes other repositories' memo files untouched for [`STALE_FILE_AGE`] (checkouts
//! that are gone). The key leaves the deadline out: a plugin cannot see time, so a plan that
//! finished within it is the same plan under any deadline; asking the calls again is bounded by
//! the probes' own timeout and the cap on a source's size.
//! One file holds one repository's memo (see [`PlanMemo::open`]); like the file-digest cache,
//! a missing, damaged or other-version file reads as empty, and [`PlanMemo::save`] writes a
//! temporary file and renames it into place. Of two processes saving at once, the last rename
//! wins and the other's plans are made again when next needed.

use std::collections::HashMap;
use std::fs;
use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use remex_model::Process;
use sha2::{Digest, Sha256};
use tempfile::NamedTempFile;

/// The file starts with this, a little-endian `u32` format version, the SHA-256 of the rest,
/// then the number of saves so far and its entries, each a slot, a key, the save that last used
/// it and a body (see [`Encoder`] for how each is written).
const MAGIC: &[u8; 8] = b"remexPM\n";
/// Bumped whenever the layout changes, or what a key or a body holds.
const VERSION: u32 = 2;

/// An entry unused by this many saves in a row is dropped.
const MAX_UNUSED_SAVES: u64 = 32;

/// Another repository's memo file not written for this long is removed by a save.
const STALE_FILE_AGE: Duration = Duration::from_secs(30 * 24 * 3600);

/// What one call is charged, besides its text, against the cap on what a plan's recorded calls
/// may hold: about what it takes in memory and in the file.
const CALL_OVERHEAD_BYTES: usize = 64;

/// At most this many entries, and about this many bytes of them, are saved; entries used in
/// this run are kept first. The bytes bound what every run reads back.
const MAX_SAVED_ENTRIES: usize = 200_000;
const MAX_SAVED_BYTES: usize = 128 << 20;
/// A file larger than what a save writes is not read at all.
const MAX_FILE_BYTES: u64 = (MAX_SAVED_BYTES + MAX_SAVED_ENTRIES * 64 + 1024) as u64;

/// A SHA-256, as the memo keys plans and compares answers.
pub(crate) type Hash = [u8; 32];

/// One host call a plan made, with what it was answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum HostCall {
    FindBinary {
        name: String,
        search_path: Vec<String>,
        found: Option<String>,
    },
    RunProbe {
        argv: Vec<String>,
        env: Vec<(String, String)>,
        answer: Hash,
    },
    ReadSource {
        path: String,
        answer: Hash,
    },
}

impl HostCall {
    /// About how much memory the call holds, and so what it is charged.
    pub(crate) fn size_bytes(&self) -> usize {
        let texts = |list: &[String]| list.iter().map(|t| t.len() + 24).sum::<usize>();
        let text = match self {
            Self::FindBinary {
                name,
                search_path,
                found,
            } => name.len() + texts(search_path) + found.as_ref().map_or(0, String::len),
            Self::RunProbe { argv, env, .. } => {
                texts(argv)
                    + env
                        .iter()
                        .map(|(n, v)| n.len() + v.len() + 48)
                        .sum::<usize>()
            }
            Self::ReadSource { path, .. } => path.len(),
        };
        CALL_OVERHEAD_BYTES + text
    }
}

/// Remembered plans of one repository. Share it between threads by reference or in an `Arc`.
pub struct PlanMemo {
    file: PathBuf,
    temp_dir: PathBuf,
    /// How many times the file was saved before it was read.
    saves: u64,
    entries: Mutex<HashMap<Vec<u8>, Entry>>,
    /// Whether a plan was remembered since the file was read or written.
    changed: AtomicBool,
    recalled: AtomicUsize,
    /// Held through a whole save, so that an older snapshot never replaces a newer one.
    saving: Mutex<()>,
}

struct Entry {
    key: Hash,
    /// The save that last used it, counted as [`PlanMemo::saves`] is.
    last_used: u64,
    /// The host calls and processes, encoded; decoded only when recalled.
    body: Vec<u8>,
    /// Recalled or remembered by this process.
    used: bool,
}

impl PlanMemo {
    /// The memo saved in `file`, or an empty one when there is none or it cannot be used.
    /// `temp_dir` is where [`PlanMemo::save`] writes before renaming; it must be on the same
    /// file system as `file`.
    pub fn open(file: PathBuf, temp_dir: PathBuf) -> Self {
        let (saves, entries) = match read_bounded(&file) {
            Ok(bytes) => decode_file(&bytes).unwrap_or_else(|why| {
                tracing::debug!(file = %file.display(), why, "ignoring the plan memo");
                (0, HashMap::new())
            }),
            Err(err) if err.kind() == io::ErrorKind::NotFound => (0, HashMap::new()),
            Err(err) => {
                tracing::debug!(file = %file.display(), %err, "cannot read the plan memo");
                (0, HashMap::new())
            }
        };
        Self {
            file,
            temp_dir,
            saves,
            entries: Mutex::new(entries),
            changed: AtomicBool::new(false),
            recalled: AtomicUsize::new(0),
            saving: Mutex::new(()),
        }
    }

    /// How many plans this memo has given back since it was opened.
    pub fn recalled(&self) -> usize {
        self.recalled.load(Ordering::Relaxed)
    }

    /// How many plans it holds.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether it holds no plan.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The processes remembered for `key` in `slot`, if every host call the plan made gets the
    /// same answer from `answers_again` now.
    pub(crate) fn recall(
        &self,
        slot: &[u8],
        key: &Hash,
        answers_again: impl Fn(&HostCall) -> bool,
    ) -> Option<Vec<Process>> {
        let body = {
            let mut entries = self.lock();
            let entry = entries.get_mut(slot).filter(|entry| entry.key == *key)?;
            entry.used = true;
            entry.body.clone()
        };
        let (calls, processes) = decode_body(&body)?;
        if !calls.iter().all(answers_again) {
            return None;
        }
        self.recalled.fetch_add(1, Ordering::Relaxed);
        Some(processes)
    }

    /// Remembers that the plan `key` in `slot` made `calls` and returned `processes`.
    pub(crate) fn remember(
        &self,
        slot: Vec<u8>,
        key: Hash,
        calls: &[HostCall],
        processes: &[Process],
    ) {
        let body = encode_body(calls, processes);
        let entry = Entry {
            key,
            last_used: self.saves + 1,
            body,
            used: true,
        };
        self.lock().insert(slot, entry);
        self.changed.store(true, Ordering::Relaxed);
    }

    /// Writes the memo back if a plan was remembered since it was read or last saved.
    pub fn save(&self) -> io::Result<()> {
        let _saving = self.saving.lock().unwrap_or_else(PoisonError::into_inner);
        if !self.changed.swap(false, Ordering::Relaxed) {
            return Ok(());
        }
        let result = self.write_file();
        if result.is_err() {
            self.changed.store(true, Ordering::Relaxed);
        } else {
            self.remove_stale_files();
        }
        result
    }

    /// Removes the memo files beside this one that no run has written for [`STALE_FILE_AGE`].
    /// Best effort: a file that cannot be looked at is left alone.
    fn remove_stale_files(&self) {
        let Some(dir) = self.file.parent() else {
            return;
        };
        let Ok(entries) = fs::read_dir(dir) else {
            return;
        };
        let now = SystemTime::now();
        for entry in entries.flatten() {
            let path = entry.path();
            let modified = entry.metadata().and_then(|m| m.modified());
            let age = modified.ok().and_then(|m| now.duration_since(m).ok());
            if path != self.file && age.is_some_and(|age| age > STALE_FILE_AGE) {
                let _ = fs::remove_file(&path);
            }
        }
    }

    fn write_file(&self) -> io::Result<()> {
        let bytes = self.encode();
        if let Some(dir) = self.file.parent() {
            fs::create_dir_all(dir)?;
        }
        fs::create_dir_all(&self.temp_dir)?;
        let mut temp = NamedTempFile::new_in(&self.temp_dir)?;
        temp.write_all(&bytes)?;
        temp.persist(&self.file).map_err(|e| e.error)?;
        Ok(())
    }

    /// The file's bytes: every used entry, then unused ones not yet too old, while under the
    /// caps.
    fn encode(&self) -> Vec<u8> {
        let saves = self.saves + 1;
        let entries = self.lock();
        let recent = |entry: &Entry| entry.last_used + MAX_UNUSED_SAVES >= saves;
        let (used, unused): (Vec<_>, Vec<_>) = entries
            .iter()
            .filter(|(_, entry)| entry.used || recent(entry))
            .partition(|(_, entry)| entry.used);
        let mut body = Encoder::default();
        body.u64(saves);
        let mut count = 0;
        for (slot, entry) in used.into_iter().chain(unused) {
            if count == MAX_SAVED_ENTRIES {
                break;
            }
            if body.0.len() + slot.len() + entry.body.len() > MAX_SAVED_BYTES {
                continue;
            }
            body.bytes(slot);
            body.raw(&entry.key);
            body.u64(if entry.used { saves } else { entry.last_used });
            body.bytes(&entry.body);
            count += 1;
        }
        let mut bytes = Vec::with_capacity(MAGIC.len() + 4 + 32 + body.0.len());
        bytes.extend_from_slice(MAGIC);
        bytes.extend_from_slice(&VERSION.to_le_bytes());
        bytes.extend_from_slice(&Sha256::digest(&body.0));
        bytes.extend_from_slice(&body.0);
        bytes
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<Vec<u8>, Entry>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl std::fmt::Debug for PlanMemo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlanMemo")
            .field("file", &self.file)
            .field("entries", &self.len())
            .field("recalled", &self.recalled())
            .finish()
    }
}

/// The file's bytes, unless it is larger than any save writes.
fn read_bounded(file: &std::path::Path) -> io::Result<Vec<u8>> {
    let mut opened = fs::File::open(file)?;
    if opened.metadata()?.len() > MAX_FILE_BYTES {
        return Err(io::Error::other("larger than a plan memo can be"));
    }
    let mut bytes = Vec::new();
    io::Read::read_to_end(&mut opened, &mut bytes)?;
    Ok(bytes)
}

/// The number of saves and the entries a file holds.
fn decode_file(bytes: &[u8]) -> Result<(u64, HashMap<Vec<u8>, Entry>), &'static str> {
    let mut header = Decoder(bytes);
    if header.raw(MAGIC.len()) != Some(MAGIC.as_slice()) {
        return Err("not a plan memo");
    }
    if header.u32() != Some(VERSION) {
        return Err("another format version");
    }
    let checksum = header.raw(32).ok_or("truncated header")?;
    if Sha256::digest(header.0).as_slice() != checksum {
        return Err("checksum mismatch");
    }
    let mut entries = HashMap::new();
    let mut reader = header;
    let saves = reader.u64().ok_or("truncated header")?;
    while !reader.0.is_empty() {
        let mut entry = || {
            let slot = reader.bytes()?.to_vec();
            let key = reader.raw(32)?.try_into().ok()?;
            let last_used = reader.u64()?;
            let body = reader.bytes()?.to_vec();
            Some((
                slot,
                Entry {
                    key,
                    last_used,
                    body,
                    used: false,
                },
            ))
        };
        let (slot, entry) = entry().ok_or("truncated entry")?;
        entries.insert(slot, entry);
    }
    Ok((saves, entries))
}

fn encode_body(calls: &[HostCall], processes: &[Process]) -> Vec<u8> {
    let mut out = Encoder::default();
    out.len(calls.len());
    for call in calls {
        match call {
            HostCall::FindBinary {
                name,
                search_path,
                found,
            } => {
                out.u8(0);
                out.str(name);
                out.strs(search_path);
                match found {
                    Some(path) => {
                        out.u8(1);
                        out.str(path);
                    }
                    None => out.u8(0),
                }
            }
            HostCall::RunProbe { argv, env, answer } => {
                out.u8(1);
                out.strs(argv);
                out.pairs(env.iter().map(|(n, v)| (n.as_str(), v.as_str())), env.len());
                out.raw(answer);
            }
            HostCall::ReadSource { path, answer } => {
                out.u8(2);
                out.str(path);
                out.raw(answer);
            }
        }
    }
    out.len(processes.len());
    for process in processes {
        out.str(&process.description);
        out.strs(&process.argv);
        let env = process.env.iter().map(|(n, v)| (n.as_str(), v.as_str()));
        out.pairs(env, process.env.len());
        out.strs(&process.input_files);
        out.strs(&process.output_files);
        out.strs(&process.output_directories);
        out.str(&process.working_directory);
        match process.timeout {
            Some(timeout) => {
                out.u8(1);
                out.u64(timeout.as_secs());
                out.u64(u64::from(timeout.subsec_nanos()));
            }
            None => out.u8(0),
        }
        let platform = process
            .platform
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()));
        out.pairs(platform, process.platform.len());
    }
    out.0
}

fn decode_body(body: &[u8]) -> Option<(Vec<HostCall>, Vec<Process>)> {
    let mut input = Decoder(body);
    let calls = (0..input.len()?)
        .map(|_| {
            Some(match input.u8()? {
                0 => HostCall::FindBinary {
                    name: input.string()?,
                    search_path: input.strings()?,
                    found: match input.u8()? {
                        0 => None,
                        _ => Some(input.string()?),
                    },
                },
                1 => HostCall::RunProbe {
                    argv: input.strings()?,
                    env: input.pairs()?,
                    answer: input.raw(32)?.try_into().ok()?,
                },
                2 => HostCall::ReadSource {
                    path: input.string()?,
                    answer: input.raw(32)?.try_into().ok()?,
                },
                _ => return None,
            })
        })
        .collect::<Option<Vec<_>>>()?;
    let processes = (0..input.len()?)
        .map(|_| {
            Some(Process {
                description: input.string()?,
                argv: input.strings()?,
                env: input.pairs()?.into_iter().collect(),
                input_files: input.strings()?,
                output_files: input.strings()?,
                output_directories: input.strings()?,
                working_directory: input.string()?,
                timeout: match input.u8()? {
                    0 => None,
                    _ => Some(Duration::new(
                        input.u64()?,
                        u32::try_from(input.u64()?).ok()?,
                    )),
                },
                platform: input.pairs()?,
            })
        })
        .collect::<Option<Vec<_>>>()?;
    input.0.is_empty().then_some((calls, processes))
}

/// Writes the memo's plain binary encoding: integers little-endian, a length as a `u64`, a
/// string or byte string as its length then its bytes, a list as its length then its items.
/// The same encoding, fed into SHA-256, makes the memo's keys, so that no two different inputs
/// can be written alike.
#[derive(Default)]
pub(crate) struct Encoder(pub(crate) Vec<u8>);

impl Encoder {
    pub(crate) fn u8(&mut self, value: u8) {
        self.0.push(value);
    }

    pub(crate) fn u64(&mut self, value: u64) {
        self.0.extend_from_slice(&value.to_le_bytes());
    }

    pub(crate) fn len(&mut self, len: usize) {
        self.u64(len as u64);
    }

    pub(crate) fn raw(&mut self, bytes: &[u8]) {
        self.0.extend_from_slice(bytes);
    }

    pub(crate) fn bytes(&mut self, bytes: &[u8]) {
        self.len(bytes.len());
        self.0.extend_from_slice(bytes);
    }

    pub(crate) fn str(&mut self, text: &str) {
        self.bytes(text.as_bytes());
    }

    pub(crate) fn strs(&mut self, texts: &[String]) {
        self.len(texts.len());
        for text in texts {
            self.str(text);
        }
    }

    pub(crate) fn pairs<'a>(&mut self, pairs: impl Iterator<Item = (&'a str, &'a str)>, n: usize) {
        self.len(n);
        for (name, value) in pairs {
            self.str(name);
            self.str(value);
        }
    }
}

/// Reads what [`Encoder`] wrote; `None` when the bytes end early or are not UTF-8 where text
/// was written.
struct Decoder<'a>(&'a [u8]);

impl<'a> Decoder<'a> {
    fn raw(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, rest) = self.0.split_at_checked(n)?;
        self.0 = rest;
        Some(head)
    }

    fn u8(&mut self) -> Option<u8> {
        Some(self.raw(1)?[0])
    }

    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.raw(4)?.try_into().ok()?))
    }

    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.raw(8)?.try_into().ok()?))
    }

    fn len(&mut self) -> Option<usize> {
        usize::try_from(self.u64()?).ok()
    }

    fn bytes(&mut self) -> Option<&'a [u8]> {
        let len = self.len()?;
        self.raw(len)
    }

    fn string(&mut self) -> Option<String> {
        String::from_utf8(self.bytes()?.to_vec()).ok()
    }

    fn strings(&mut self) -> Option<Vec<String>> {
        (0..self.len()?).map(|_| self.string()).collect()
    }

    fn pairs(&mut self) -> Option<Vec<(String, String)>> {
        (0..self.len()?)
            .map(|_| Some((self.string()?, self.string()?)))
            .collect()
    }
}

/// The digest `read-source` answers are compared by.
pub(crate) fn source_answer(answer: &Result<Vec<u8>, String>) -> Hash {
    let mut hasher = Sha256::new();
    match answer {
        Ok(content) => {
            hasher.update([0]);
            hasher.update(content);
        }
        Err(why) => {
            hasher.update([1]);
            hasher.update(why.as_bytes());
        }
    }
    hasher.finalize().into()
}

/// The digest `run-probe` answers are compared by.
pub(crate) fn probe_answer(answer: &Result<crate::ProbeResult, String>) -> Hash {
    let mut out = Encoder::default();
    match answer {
        Ok(result) => {
            out.u8(0);
            out.u64(u64::from(result.exit_code.cast_unsigned()));
            out.bytes(&result.stdout);
            out.bytes(&result.stderr);
        }
        Err(why) => {
            out.u8(1);
            out.str(why);
        }
    }
    Sha256::digest(&out.0).into()
}
