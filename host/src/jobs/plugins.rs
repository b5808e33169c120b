//! Installed plugins: bundled, dropped into the plugins folder, or uploaded
//! over HTTP by the admin or a tenant. Each is known by its owner and name.
//!
//! A tenant sees its own plugins, the admin's public ones (all bundled
//! plugins are), and any plugin the admin made public. When two share a
//! name, the tenant's own wins, then the admin's, then another public one.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use crate::model::{PluginRecord, now};
use crate::runtime::{LoadError, Plugin, Runtime};
use crate::store::owned_key;

/// A loaded plugin and its record.
#[derive(Clone)]
pub struct Installed {
    pub record: PluginRecord,
    pub plugin: Plugin,
}

impl Installed {
    /// The registry and store key: `owner/name`.
    pub fn key(&self) -> String {
        owned_key(self.record.owner.as_deref(), &self.record.name)
    }
}

/// An upload compiling or failed, and which upload it is: a newer upload of
/// the same name replaces it, and its compile's end then changes nothing.
#[derive(Clone)]
pub(super) struct Pending {
    pub id: u64,
    pub record: PluginRecord,
}

#[derive(Clone)]
pub struct Plugins {
    /// The plugins jobs can use (state `ready`).
    by_key: Arc<RwLock<BTreeMap<String, Installed>>>,
    /// Uploads compiling, or failed to: what a listing shows under the key.
    /// A ready version of the same key (if any) serves jobs meanwhile.
    pub(super) pending: Arc<RwLock<BTreeMap<String, Pending>>>,
    /// The id of the next upload shown in `pending`.
    next_id: Arc<std::sync::atomic::AtomicU64>,
    /// Held across each change of a plugin (upload, compile end, publish,
    /// delete): the store's rows and the maps change together, in order.
    pub changes: Arc<tokio::sync::Mutex<()>>,
    /// One compile at a time: a burst of uploads cannot take every core from
    /// the tasks running (see `plugin_compile`).
    pub(super) compile_slot: Arc<tokio::sync::Semaphore>,
    /// Bumped each time a compile ends, for jobs waiting on their plugin.
    pub(super) compiled: tokio::sync::watch::Sender<u64>,
    /// Uploaded components, each named by its SHA-256.
    blob_dir: PathBuf,
}

/// Why an upload was refused.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    #[error("{field}: {message}")]
    Invalid { field: &'static str, message: String },
    #[error("the component was refused: {0}")]
    Load(#[from] LoadError),
    #[error("{0}")]
    Quota(String),
    /// Another upload of the same name, or its deletion, came while this one compiled.
    #[error("replaced by a newer upload of the same name, or deleted, while it compiled")]
    Superseded,
    #[error("storing the plugin: {0}")]
    Internal(String),
}

impl Plugins {
    pub fn new(blob_dir: PathBuf) -> Plugins {
        Plugins {
            by_key: Arc::default(),
            pending: Arc::default(),
            next_id: Arc::default(),
            changes: Arc::default(),
            compile_slot: Arc::new(tokio::sync::Semaphore::new(1)),
            compiled: tokio::sync::watch::Sender::new(0),
            blob_dir,
        }
    }

    /// Load every `*.wasm` in `dir` (if it exists), named by its `info().name`,
    /// public. A plugin that fails its checks is skipped with a warning naming the problem.
    pub async fn load_dir(&self, runtime: &Runtime, dir: &Path) -> anyhow::Result<()> {
        let Ok(entries) = std::fs::read_dir(dir) else { return Ok(()) };
        let mut paths: Vec<_> =
            entries.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|e| e == "wasm")).collect();
        paths.sort();
        for path in paths {
            let wasm = std::fs::read(&path)?;
            match runtime.load(&wasm).await {
                Ok(plugin) => {
                    tracing::info!(path = %path.display(), plugin = %plugin.info.name, "loaded plugin");
                    let name = plugin.info.name.clone();
                    self.insert(operator_record(&name, &plugin, wasm.len(), false), plugin);
                }
                Err(e) => tracing::warn!(path = %path.display(), error = %e, "skipping plugin"),
            }
        }
        Ok(())
    }

    pub(super) fn blob_path(&self, sha256: &str) -> PathBuf {
        self.blob_dir.join(format!("{sha256}.wasm"))
    }

    /// The checks of an upload that need neither a compile nor the plugin's
    /// `info()`: its name and version, the bundled names, the tenant's quotas.
    pub(super) fn check_upload(
        &self,
        owner: Option<&str>,
        quotas: Option<&crate::auth::Quotas>,
        name: &str,
        version: &str,
        size: usize,
    ) -> Result<(), UploadError> {
        crate::auth::check_name("plugin", name).map_err(|message| UploadError::Invalid { field: "name", message })?;
        if version.is_empty() || version.len() > 64 || version.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(UploadError::Invalid {
                field: "version",
                message: "give 1-64 printable characters, e.g. `1.2.0`".into(),
            });
        }
        if self.get(None, name).is_some_and(|i| i.record.bundled)
            || self.get_pending(None, name).is_some_and(|r| r.bundled)
        {
            return Err(UploadError::Invalid {
                field: "name",
                message: format!("`{name}` is a plugin installed with the daemon: choose another name"),
            });
        }
        if let Some(q) = quotas {
            if size as u64 > q.plugin_size {
                return Err(UploadError::Quota(format!(
                    "plugin of {size} bytes is over the tenant's plugin_size quota of {} bytes",
                    q.plugin_size
                )));
            }
            let owned = self.owned_by(owner).iter().filter(|n| *n != name).count();
            if owned as u64 >= u64::from(q.plugins) {
                return Err(UploadError::Quota(format!(
                    "the tenant has {owned} plugins, its `plugins` quota: delete one first"
                )));
            }
        }
        Ok(())
    }

    /// Keep the component under its digest (once).
    pub(super) fn keep_blob(&self, sha256: &str, wasm: &[u8]) -> Result<(), UploadError> {
        let path = self.blob_path(sha256);
        if !path.exists() {
            write_atomically(&self.blob_dir, &path, wasm)
                .map_err(|e| UploadError::Internal(format!("{}: {e}", path.display())))?;
        }
        Ok(())
    }

    pub fn insert(&self, record: PluginRecord, plugin: Plugin) {
        let installed = Installed { record, plugin };
        self.by_key.write().unwrap_or_else(|e| e.into_inner()).insert(installed.key(), installed);
    }

    pub fn remove(&self, owner: Option<&str>, name: &str) {
        self.by_key.write().unwrap_or_else(|e| e.into_inner()).remove(&owned_key(owner, name));
    }

    /// The plugin of exactly this owner and name.
    pub fn get(&self, owner: Option<&str>, name: &str) -> Option<Installed> {
        self.by_key.read().unwrap_or_else(|e| e.into_inner()).get(&owned_key(owner, name)).cloned()
    }

    /// The plugin `name` as `viewer` (a tenant, or `None` for the admin) sees it.
    pub fn resolve(&self, viewer: Option<&str>, name: &str) -> Option<Installed> {
        if let Some(own) = self.get(viewer, name) {
            return Some(own);
        }
        if let Some(admins) = self.get(None, name).filter(|i| i.record.public) {
            return Some(admins);
        }
        let all = self.by_key.read().unwrap_or_else(|e| e.into_inner());
        all.values().find(|i| i.record.public && i.record.name == name).cloned()
    }

    /// Whether `viewer` may use this plugin.
    pub fn visible_to(record: &PluginRecord, viewer: Option<&str>) -> bool {
        viewer.is_none() || record.public || record.owner.as_deref() == viewer
    }

    /// The plugins `viewer` may use (the admin: all of them).
    /// An upload compiling (or failed) stands in its key's place for those
    /// who may see it (its owner, the admin): it is the newest word on the name.
    pub fn visible(&self, viewer: Option<&str>) -> Vec<PluginRecord> {
        let mut all: BTreeMap<String, PluginRecord> = {
            let ready = self.by_key.read().unwrap_or_else(|e| e.into_inner());
            ready
                .iter()
                .map(|(k, i)| (k.clone(), i.record.clone()))
                .filter(|(_, r)| Self::visible_to(r, viewer))
                .collect()
        };
        let pending = self.pending.read().unwrap_or_else(|e| e.into_inner());
        all.extend(
            pending
                .iter()
                .filter(|(_, p)| Self::visible_to(&p.record, viewer))
                .map(|(k, p)| (k.clone(), p.record.clone())),
        );
        all.into_values().collect()
    }

    /// Whether a plugin other than `owner`'s, ready and public, is named `name`.
    pub fn public_elsewhere(&self, owner: Option<&str>, name: &str) -> bool {
        let all = self.by_key.read().unwrap_or_else(|e| e.into_inner());
        all.values().any(|i| i.record.public && i.record.name == name && i.record.owner.as_deref() != owner)
    }

    /// The upload of exactly this owner and name that is compiling or failed.
    pub fn get_pending(&self, owner: Option<&str>, name: &str) -> Option<PluginRecord> {
        self.pending.read().unwrap_or_else(|e| e.into_inner()).get(&owned_key(owner, name)).map(|p| p.record.clone())
    }

    /// [`Plugins::resolve`] among the uploads compiling or failed: why a
    /// style's plugin cannot be used yet.
    pub fn resolve_pending(&self, viewer: Option<&str>, name: &str) -> Option<PluginRecord> {
        if let Some(own) = self.get_pending(viewer, name) {
            return Some(own);
        }
        let pending = self.pending.read().unwrap_or_else(|e| e.into_inner());
        pending.values().map(|p| &p.record).find(|r| r.name == name && r.public).cloned()
    }

    /// Show `record` as the newest upload of its name; its id.
    pub(super) fn show_pending(&self, record: PluginRecord) -> u64 {
        let id = self.next_id.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let key = owned_key(record.owner.as_deref(), &record.name);
        self.pending.write().unwrap_or_else(|e| e.into_inner()).insert(key, Pending { id, record });
        id
    }

    /// Whether upload `id` is still the one shown under its name.
    pub(super) fn is_current(&self, id: u64) -> bool {
        self.pending.read().unwrap_or_else(|e| e.into_inner()).values().any(|p| p.id == id)
    }

    /// Change what upload `id` shows (failed), if it is still shown.
    pub(super) fn replace_pending(&self, id: u64, record: PluginRecord) {
        let mut pending = self.pending.write().unwrap_or_else(|e| e.into_inner());
        if let Some(p) = pending.values_mut().find(|p| p.id == id) {
            p.record = record;
        }
    }

    /// Stop showing upload `id` (compiled, or its caller told of its failure).
    pub(super) fn remove_pending_if(&self, id: u64) {
        self.pending.write().unwrap_or_else(|e| e.into_inner()).retain(|_, p| p.id != id);
    }

    /// Forget an upload that compiles or failed (deleted).
    pub fn remove_pending(&self, owner: Option<&str>, name: &str) -> Option<PluginRecord> {
        self.pending.write().unwrap_or_else(|e| e.into_inner()).remove(&owned_key(owner, name)).map(|p| p.record)
    }

    /// The names of `owner`'s plugins, ready or compiling.
    fn owned_by(&self, owner: Option<&str>) -> std::collections::BTreeSet<String> {
        let all = self.by_key.read().unwrap_or_else(|e| e.into_inner());
        let pending = self.pending.read().unwrap_or_else(|e| e.into_inner());
        all.values()
            .map(|i| &i.record)
            .chain(pending.values().map(|p| &p.record))
            .filter(|r| r.owner.as_deref() == owner && !r.bundled)
            .map(|r| r.name.clone())
            .collect()
    }

    /// Names `viewer` may use, for error messages.
    pub fn names(&self, viewer: Option<&str>) -> Vec<String> {
        let mut names: Vec<String> = self.visible(viewer).into_iter().map(|r| r.name).collect();
        names.dedup();
        names
    }
}

/// The record of a plugin installed with the daemon: the admin's, public.
pub(super) fn operator_record(name: &str, plugin: &Plugin, size: usize, bundled_in_binary: bool) -> PluginRecord {
    PluginRecord {
        name: name.to_string(),
        version: plugin.info.version.clone(),
        owner: None,
        public: true,
        // Both kinds come with the daemon, not through the API: neither can be deleted over it.
        bundled: true,
        sha256: plugin.sha256.clone(),
        size: size as u64,
        info: plugin.info.clone(),
        created_at: if bundled_in_binary { 0 } else { now() },
        state: crate::model::PluginState::Ready,
        error: None,
    }
}

/// Write `bytes` to `path` through a temporary file in `dir`, so a crash never
/// leaves a half-written component under its digest.
fn write_atomically(dir: &Path, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    std::io::Write::write_all(&mut tmp, bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}
