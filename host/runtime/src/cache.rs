//! The on-disk compile cache.
//!
//! An artifact is keyed by the wasm's sha256 and the engine's compatibility
//! hash: a precompiled artifact only loads into an engine with the same
//! settings, and the hash changes with the wasmtime version and config. A hit
//! costs well under a millisecond instead of a Cranelift compile.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

/// Whether a load compiled the component or found it in the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CacheOutcome {
    Hit,
    Compiled,
}

pub(crate) struct CompileCache {
    dir: Option<PathBuf>,
    engine_hash: String,
}

/// Feeds `Hash` output into sha256, which, unlike `DefaultHasher`, is stable
/// across processes and Rust versions.
struct Sha256Hasher(Sha256);

impl Hasher for Sha256Hasher {
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
    fn finish(&self) -> u64 {
        unreachable!("only the digest is used")
    }
}

impl CompileCache {
    pub fn new(engine: &Engine, dir: Option<PathBuf>) -> Self {
        let mut h = Sha256Hasher(Sha256::new());
        engine.precompile_compatibility_hash().hash(&mut h);
        let engine_hash = hex::encode(&h.0.finalize()[..8]);
        CompileCache { dir, engine_hash }
    }

    fn path(&self, dir: &Path, sha256: &str) -> PathBuf {
        dir.join(format!("{sha256}-{}.cwasm", self.engine_hash))
    }

    /// Whether a load of this component would be a cache hit (so quick that
    /// it need not wait in the compile queue).
    pub fn has(&self, sha256: &str) -> bool {
        self.dir.as_ref().is_some_and(|dir| self.path(dir, sha256).exists())
    }

    pub fn load_or_compile(
        &self,
        engine: &Engine,
        wasm: &[u8],
        sha256: &str,
    ) -> wasmtime::Result<(Component, CacheOutcome)> {
        let Some(dir) = &self.dir else {
            let component = Component::new(engine, wasm);
            super::heap::release_freed();
            return Ok((component?, CacheOutcome::Compiled));
        };
        let path = self.path(dir, sha256);
        if path.exists() {
            // SAFETY: the file was written by `Component::serialize` of an
            // engine with this compatibility hash, into the daemon's own data
            // dir. A corrupt or foreign file is refused by wasmtime's header
            // checks and recompiled below.
            match unsafe { Component::deserialize_file(engine, &path) } {
                Ok(component) => return Ok((component, CacheOutcome::Hit)),
                Err(e) => tracing::warn!(path = %path.display(), error = %e, "ignoring unusable compile cache entry"),
            }
        }
        let served = Component::new(engine, wasm).map(|compiled| self.store_and_map(engine, dir, &path, compiled));
        // Once for all it freed: Cranelift's arenas, the serialized copy (as
        // large as the code), and the compiled copy once the file serves.
        super::heap::release_freed();
        Ok((served?, CacheOutcome::Compiled))
    }

    /// Store `compiled` at `path`, then serve it from that file, as a warm
    /// start does: mapped from the file, only the code that runs is
    /// resident, where the compiled copy keeps all of it in anonymous memory
    /// (a first start held about 100 MiB more than a warm one at rest, the
    /// 35 MB `doc` plugin's code among it). If the file cannot be written or
    /// mapped (a cache on a `noexec` mount), the compiled copy serves.
    fn store_and_map(&self, engine: &Engine, dir: &Path, path: &Path, compiled: Component) -> Component {
        if let Err(e) = self.store(dir, path, &compiled) {
            tracing::warn!(path = %path.display(), error = %e, "could not write compile cache entry");
            return compiled;
        }
        // SAFETY: as in `load_or_compile`; the file is the one `store` wrote a moment ago.
        match unsafe { Component::deserialize_file(engine, path) } {
            Ok(mapped) => mapped,
            Err(e) => {
                tracing::debug!(path = %path.display(), error = %e, "serving the compiled copy: the cache entry could not be mapped");
                compiled
            }
        }
    }

    /// Write to a temp file and rename, so a crash never leaves half an artifact.
    fn store(&self, dir: &Path, path: &Path, component: &Component) -> anyhow::Result<()> {
        std::fs::create_dir_all(dir)?;
        let bytes = component.serialize().map_err(|e| anyhow::anyhow!("{e}"))?;
        let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
        std::io::Write::write_all(&mut tmp, &bytes)?;
        tmp.persist(path)?;
        Ok(())
    }
}
