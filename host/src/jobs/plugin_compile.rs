//! Compiling uploaded plugins off the request path.
//!
//! Compiling a component with Cranelift takes from a fraction of a second (a
//! small Rust plugin) to tens of seconds (a 12 MB JavaScript one). An upload
//! is checked at once for everything that needs no compile (size, a
//! component, its imports, name, version, quotas), recorded in the store's
//! `plugin_uploads`, and compiled in the background, one compile at a time so
//! that a burst of uploads leaves the other cores to running tasks. The
//! request waits up to `plugin_upload_wait` for it: a quick compile answers
//! `201` with the plugin `ready`, a slow one `202` with it `compiling`. The
//! version it replaces (if any) serves jobs until the new one is ready, as a
//! function being updated keeps serving its previous code.
//!
//! At start, an uploaded plugin whose compiled artifact is in the compile
//! cache loads in milliseconds before the daemon listens; the others (a new
//! data dir, a cleared cache, a Kiln upgrade that changed the engine) compile
//! in the background, so the daemon serves at once, and jobs that were
//! running resume when their plugin is ready.

use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::plugins::{Plugins, UploadError};
use crate::model::{PluginRecord, PluginState, now};
use crate::runtime::{Plugin, PluginInfo, Runtime};
use crate::store::Store;

/// What an upload asks for: the component, and the caller's choices.
pub struct Upload<'a> {
    pub owner: Option<&'a str>,
    pub quotas: Option<&'a crate::auth::Quotas>,
    pub name: Option<String>,
    pub version: Option<String>,
    pub wasm: Vec<u8>,
}

/// What a compile in the background is for.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Purpose {
    /// A new upload: call `info()`, then move it from `plugin_uploads` to `plugins`.
    Upload,
    /// A stored plugin reloaded at start: its `info()` is recorded.
    Reload,
    /// A plugin bundled in the binary, on a start with a cold compile cache.
    Bundled,
}

impl Plugins {
    /// Take an upload: checked now, compiled in the background. The answer
    /// comes once it is compiled, or after `wait` with the record `compiling`.
    /// Without a name or a version the upload waits for the compile, as they
    /// come from the plugin's `info()`.
    pub async fn upload(
        &self,
        runtime: &Arc<Runtime>,
        store: &Store,
        up: Upload<'_>,
        wait: Duration,
    ) -> Result<PluginRecord, UploadError> {
        runtime.precheck(&up.wasm)?;
        let sha256 = hex::encode(Sha256::digest(&up.wasm));
        let (name, version) = match (up.name, up.version) {
            (Some(n), Some(v)) if !runtime.is_compiled(&sha256) => (n, v),
            (name, version) => {
                // Compiled already (milliseconds), or the name comes from info().
                let plugin = self.compile_now(runtime, &up.wasm, &sha256).await?;
                let name = name.unwrap_or_else(|| plugin.info.name.clone());
                let version = version.unwrap_or_else(|| plugin.info.version.clone());
                self.check_upload(up.owner, up.quotas, &name, &version, up.wasm.len())?;
                self.keep_blob(&sha256, &up.wasm)?;
                let record = PluginRecord {
                    info: plugin.info.clone(),
                    ..new_record(up.owner, &name, &version, &sha256, up.wasm.len(), PluginState::Ready)
                };
                let stored = record.clone();
                let _change = self.changes.lock().await;
                // An older upload of the name still compiling is replaced too.
                store.call(move |s| s.replace_plugin(&stored)).await.map_err(internal)?;
                self.remove_pending(up.owner, &name);
                self.insert(record.clone(), plugin);
                return Ok(record);
            }
        };
        self.check_upload(up.owner, up.quotas, &name, &version, up.wasm.len())?;
        self.keep_blob(&sha256, &up.wasm)?;
        let record = new_record(up.owner, &name, &version, &sha256, up.wasm.len(), PluginState::Compiling);
        let stored = record.clone();
        // The store's row and the entry shown change together, in upload order.
        let change = self.changes.lock().await;
        store.call(move |s| s.put_plugin_upload(&stored)).await.map_err(internal)?;
        let id = self.show_pending(record.clone());
        drop(change);
        let compiling =
            self.compile_in_background(runtime.clone(), store.clone(), id, record.clone(), up.wasm, Purpose::Upload);
        match tokio::time::timeout(wait, compiling).await {
            Ok(Ok(Ok(ready))) => Ok(ready),
            Ok(Ok(Err(e))) => {
                // The caller hears why; nothing is left to show for it.
                self.remove_pending_if(id);
                Err(e)
            }
            Ok(Err(join)) => Err(UploadError::Internal(format!("the compile stopped: {join}"))),
            Err(_) => Ok(record),
        }
    }

    /// Compile now, in the compile queue; or load from the cache, which
    /// takes milliseconds and need not wait for the queue.
    async fn compile_now(&self, runtime: &Runtime, wasm: &[u8], sha256: &str) -> Result<Plugin, UploadError> {
        let _slot = match runtime.is_compiled(sha256) {
            true => None,
            false => Some(self.compile_slot.acquire().await.map_err(internal)?),
        };
        Ok(runtime.load(wasm).await?)
    }

    /// Load the plugins bundled in the binary: from the compile cache now;
    /// on a first start (or a cleared cache) they compile in the background,
    /// `/readyz` answering 503 until they are ready.
    pub async fn load_bundled(&self, runtime: &Arc<Runtime>, store: &Store) -> anyhow::Result<()> {
        // Smallest first: compiles queue one at a time, and `doc` (35 MB,
        // about 20 s) must not hold back styles that compile in a second.
        let mut bundled = crate::bundled::BUNDLED.to_vec();
        bundled.sort_by_key(|(_, wasm)| wasm.len());
        for (name, wasm) in bundled {
            let sha256 = hex::encode(Sha256::digest(wasm));
            if runtime.is_compiled(&sha256) {
                let plugin = runtime.load(wasm).await.map_err(|e| anyhow::anyhow!("bundled plugin `{name}`: {e}"))?;
                self.insert(super::plugins::operator_record(name, &plugin, wasm.len(), true), plugin);
                continue;
            }
            let record = PluginRecord {
                public: true,
                bundled: true,
                created_at: 0,
                ..new_record(None, name, "", &sha256, wasm.len(), PluginState::Compiling)
            };
            let id = self.show_pending(record.clone());
            drop(self.compile_in_background(
                runtime.clone(),
                store.clone(),
                id,
                record,
                wasm.to_vec(),
                Purpose::Bundled,
            ));
        }
        let compiling = self.installed_compiling();
        if compiling > 0 {
            tracing::info!(
                compiling,
                "compiling the bundled plugins for this machine in the background (a first start on this compile cache; later starts load them in milliseconds)"
            );
        }
        Ok(())
    }

    /// Why a bundled plugin failed to compile, if one did (a broken build: `/readyz` says so).
    pub fn installed_failed(&self) -> Option<String> {
        let pending = self.pending.read().unwrap_or_else(|e| e.into_inner());
        pending.values().map(|p| &p.record).find(|r| r.bundled && r.state == PluginState::Failed).map(|r| {
            format!("bundled plugin `{}` failed to compile: {}", r.name, r.error.as_deref().unwrap_or("no reason"))
        })
    }

    /// How many plugins installed with the daemon are still compiling.
    pub fn installed_compiling(&self) -> usize {
        let pending = self.pending.read().unwrap_or_else(|e| e.into_inner());
        pending.values().filter(|p| p.record.bundled && p.record.state == PluginState::Compiling).count()
    }

    /// Load the uploaded plugins recorded in the store: from the compile
    /// cache now, the others (and uploads a stop interrupted) in the background.
    pub async fn load_uploaded(&self, runtime: &Arc<Runtime>, store: &Store) -> anyhow::Result<()> {
        let stored = store.list_plugins(None)?.into_iter().map(|r| (r, Purpose::Reload));
        let interrupted = store.list_plugin_uploads()?.into_iter().map(|r| (r, Purpose::Upload));
        for (record, purpose) in stored.chain(interrupted) {
            let path = self.blob_path(&record.sha256);
            let wasm = match std::fs::read(&path) {
                Ok(wasm) => wasm,
                Err(e) => {
                    tracing::error!(plugin = %record.name, owner = ?record.owner, path = %path.display(), error = %e, "an uploaded plugin's component is missing");
                    continue;
                }
            };
            if purpose == Purpose::Reload && runtime.is_compiled(&record.sha256) {
                match runtime.reload(&wasm, record.info.clone()).await {
                    Ok(plugin) => {
                        self.insert(PluginRecord { state: PluginState::Ready, error: None, ..record }, plugin);
                        continue;
                    }
                    Err(e) => tracing::warn!(plugin = %record.name, error = %e, "compiling again"),
                }
            }
            tracing::info!(plugin = %record.name, owner = ?record.owner, "compiling an uploaded plugin in the background");
            // An interrupted upload comes after the stored plugin it replaces: it is the one shown.
            let id = self.show_pending(PluginRecord { state: PluginState::Compiling, error: None, ..record.clone() });
            drop(self.compile_in_background(runtime.clone(), store.clone(), id, record, wasm, purpose));
        }
        Ok(())
    }

    /// Compile the upload shown as `id`; when done, it is ready (or failed,
    /// with the reason) and waiters are told.
    fn compile_in_background(
        &self,
        runtime: Arc<Runtime>,
        store: Store,
        id: u64,
        record: PluginRecord,
        wasm: Vec<u8>,
        purpose: Purpose,
    ) -> tokio::task::JoinHandle<Result<PluginRecord, UploadError>> {
        let plugins = self.clone();
        tokio::spawn(async move {
            let outcome = plugins.compile(&runtime, &store, id, &record, &wasm, purpose).await;
            match &outcome {
                Err(UploadError::Superseded) | Ok(_) => {}
                Err(e) => {
                    tracing::warn!(plugin = %record.name, owner = ?record.owner, error = %e, "plugin failed to compile");
                    let _change = plugins.changes.lock().await;
                    // A newer upload (or a deletion) owns the key now: leave its record alone.
                    if plugins.is_current(id) {
                        if purpose == Purpose::Upload {
                            let dropped = record.clone();
                            if let Err(e) = store.call(move |s| s.drop_plugin_upload(&dropped)).await {
                                tracing::error!(error = %e, "forgetting a failed upload");
                            }
                        }
                        let failed =
                            PluginRecord { state: PluginState::Failed, error: Some(e.to_string()), ..record.clone() };
                        plugins.replace_pending(id, failed);
                    }
                }
            }
            plugins.compiled.send_modify(|n| *n += 1);
            outcome
        })
    }

    async fn compile(
        &self,
        runtime: &Runtime,
        store: &Store,
        id: u64,
        record: &PluginRecord,
        wasm: &[u8],
        purpose: Purpose,
    ) -> Result<PluginRecord, UploadError> {
        let _slot = self.compile_slot.acquire().await.map_err(internal)?;
        if purpose != Purpose::Reload && !self.is_current(id) {
            return Err(UploadError::Superseded);
        }
        let plugin = match purpose {
            Purpose::Upload | Purpose::Bundled => runtime.load(wasm).await?,
            Purpose::Reload => runtime.reload(wasm, record.info.clone()).await?,
        };
        let ready = match purpose {
            Purpose::Bundled => super::plugins::operator_record(&record.name, &plugin, wasm.len(), true),
            _ => PluginRecord { info: plugin.info.clone(), state: PluginState::Ready, error: None, ..record.clone() },
        };
        let _change = self.changes.lock().await;
        match purpose {
            // The stored plugin serves unless deleted meanwhile, even if an
            // upload of its name (interrupted, or new) is shown as compiling.
            Purpose::Reload => {
                let (owner, name) = (record.owner.clone(), record.name.clone());
                let stored = store.call(move |s| s.get_plugin(owner.as_deref(), &name)).await.map_err(internal)?;
                if stored.is_none_or(|s| s.sha256 != record.sha256) {
                    return Err(UploadError::Superseded);
                }
            }
            _ if !self.is_current(id) => return Err(UploadError::Superseded),
            Purpose::Upload => {
                let finished = ready.clone();
                if !store.call(move |s| s.finish_plugin_upload(&finished)).await.map_err(internal)? {
                    return Err(UploadError::Superseded);
                }
            }
            Purpose::Bundled => {}
        }
        self.remove_pending_if(id);
        self.insert(ready.clone(), plugin);
        Ok(ready)
    }

    /// Wait until some compile ends (for a job whose plugin is compiling).
    pub async fn compile_ended(&self) {
        let mut rx = self.compiled.subscribe();
        let _ = rx.changed().await;
    }
}

fn new_record(
    owner: Option<&str>,
    name: &str,
    version: &str,
    sha256: &str,
    size: usize,
    state: PluginState,
) -> PluginRecord {
    PluginRecord {
        name: name.to_string(),
        version: version.to_string(),
        owner: owner.map(str::to_string),
        // A new component is private again, even under a public name: the
        // admin made public what they saw, not what replaces it.
        public: false,
        bundled: false,
        sha256: sha256.to_string(),
        size: size as u64,
        info: PluginInfo { name: name.to_string(), version: version.to_string(), ..PluginInfo::default_unknown() },
        created_at: now(),
        state,
        error: None,
    }
}

fn internal(e: impl std::fmt::Display) -> UploadError {
    UploadError::Internal(e.to_string())
}
