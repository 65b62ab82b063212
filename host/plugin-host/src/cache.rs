//! Compiling components, once: the compiled artifact is kept in a cache directory under a key
//! made of the component's SHA-256 and the engine's precompile compatibility hash, so a new
//! wasmtime or a different engine configuration never loads an old artifact.

use std::hash::Hasher;
use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

use crate::error::{PluginError, boxed};

/// Bumped when the layout of the cache changes.
const CACHE_VERSION: &[u8] = b"remex-plugin-cache-v1";

/// Where a component came from, for tests and timings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Compiled {
    /// Compiled now, and not cached (no cache directory, or writing to it failed).
    Fresh,
    /// Compiled now and written to the cache.
    Stored,
    /// Loaded from the cache without compiling.
    Cached,
}

/// The compile cache of one engine.
pub(crate) struct CompileCache {
    dir: Option<PathBuf>,
    engine_key: [u8; 32],
}

impl CompileCache {
    pub(crate) fn new(engine: &Engine, dir: Option<PathBuf>) -> Self {
        let mut hasher = Sha256Hasher(Sha256::new());
        std::hash::Hash::hash(&engine.precompile_compatibility_hash(), &mut hasher);
        Self {
            dir,
            engine_key: hasher.0.finalize().into(),
        }
    }

    /// A SHA-256 naming the engine's configuration and the machine features its code is
    /// compiled for.
    pub(crate) fn engine_key(&self) -> &[u8; 32] {
        &self.engine_key
    }

    /// The component for `bytes`, from the cache when it is there, and the SHA-256 of `bytes`.
    pub(crate) fn component(
        &self,
        engine: &Engine,
        origin: &str,
        bytes: &[u8],
    ) -> Result<(Component, Compiled, [u8; 32]), PluginError> {
        let digest: [u8; 32] = Sha256::digest(bytes).into();
        let (component, compiled) = self.compiled(engine, origin, bytes, &digest)?;
        Ok((component, compiled, digest))
    }

    fn compiled(
        &self,
        engine: &Engine,
        origin: &str,
        bytes: &[u8],
        digest: &[u8; 32],
    ) -> Result<(Component, Compiled), PluginError> {
        let compile_error = |err| PluginError::Compile {
            origin: origin.to_owned(),
            source: boxed(err),
        };
        let Some(dir) = &self.dir else {
            let component = Component::new(engine, bytes).map_err(compile_error)?;
            return Ok((component, Compiled::Fresh));
        };

        let path = dir.join(self.file_name(digest));
        if path.is_file() {
            match load(engine, &path) {
                Ok(component) => return Ok((component, Compiled::Cached)),
                Err(err) => tracing::debug!(path = %path.display(), %err, "recompiling plugin"),
            }
        }

        let serialized = engine.precompile_component(bytes).map_err(compile_error)?;
        if let Err(err) = store(dir, &path, &serialized) {
            // A cache that cannot be written costs a second compile, not a failure.
            tracing::debug!(path = %path.display(), %err, "cannot cache compiled plugin");
            let component = Component::new(engine, bytes).map_err(compile_error)?;
            return Ok((component, Compiled::Fresh));
        }
        let component = load(engine, &path).map_err(compile_error)?;
        Ok((component, Compiled::Stored))
    }

    fn file_name(&self, component_digest: &[u8; 32]) -> String {
        let digest = Sha256::new()
            .chain_update(CACHE_VERSION)
            .chain_update(self.engine_key)
            .chain_update(component_digest)
            .finalize();
        format!("{}.cwasm", hex::encode(digest))
    }
}

/// Writes the artifact beside its final name and renames it into place, so a reader never
/// sees a partial file and concurrent writers of the same key leave one whole artifact.
fn store(dir: &Path, path: &Path, serialized: &[u8]) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let mut file = tempfile::NamedTempFile::new_in(dir)?;
    file.write_all(serialized)?;
    file.persist(path).map_err(|err| err.error)?;
    Ok(())
}

#[allow(
    unsafe_code,
    reason = "loading precompiled code is unsafe in wasmtime's API"
)]
fn load(engine: &Engine, path: &Path) -> wasmtime::Result<Component> {
    // SAFETY: wasmtime requires the file to be an artifact it produced, for a compatible
    // engine, left unmodified. Only `store` writes into the cache directory, atomically and
    // under a name that includes the engine's compatibility hash, and wasmtime checks the
    // artifact's header against this engine again before use. The directory belongs to the
    // user running remex, who could as well replace the remex binary.
    unsafe { Component::deserialize_file(engine, path) }
}

/// Feeds `Hash` output into SHA-256, so the engine key is stable across processes and Rust
/// releases (unlike `DefaultHasher`).
struct Sha256Hasher(Sha256);

impl Hasher for Sha256Hasher {
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    fn finish(&self) -> u64 {
        // Never called: the digest is read from the inner `Sha256` instead.
        0
    }
}
