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
use crate::store::{Store, owned_key};

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

#[derive(Clone)]
pub struct Plugins {
    by_key: Arc<RwLock<BTreeMap<String, Installed>>>,
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
    #[error("storing the plugin: {0}")]
    Internal(String),
}

impl Plugins {
    pub fn new(blob_dir: PathBuf) -> Plugins {
        Plugins { by_key: Arc::default(), blob_dir }
    }

    /// Load every bundled plugin (from the compile cache after the first start).
    pub async fn load_bundled(&self, runtime: &Runtime) -> anyhow::Result<()> {
        let total = crate::bundled::BUNDLED.len();
        for (i, (name, wasm)) in crate::bundled::BUNDLED.iter().enumerate() {
            // From the compile cache this takes milliseconds; a first start on a
            // new data dir compiles each one (seconds): say so rather than stay silent.
            let load = runtime.load(wasm);
            tokio::pin!(load);
            let loaded = tokio::select! {
                loaded = &mut load => loaded,
                _ = tokio::time::sleep(std::time::Duration::from_millis(500)) => {
                    tracing::info!(
                        "compiling bundled plugin {}/{total} `{name}` for this machine (a first start on this data dir; later starts reuse the compile cache)",
                        i + 1
                    );
                    load.await
                }
            };
            let plugin = loaded.map_err(|e| anyhow::anyhow!("bundled plugin `{name}`: {e}"))?;
            tracing::debug!(plugin = name, cache = ?plugin.cache, load_time = ?plugin.load_time, "loaded bundled plugin");
            self.insert(operator_record(name, &plugin, wasm.len(), true), plugin);
        }
        Ok(())
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

    /// Load the uploaded plugins recorded in the store.
    pub async fn load_uploaded(&self, runtime: &Runtime, store: &Store) -> anyhow::Result<()> {
        for record in store.list_plugins(None)? {
            let path = self.blob_path(&record.sha256);
            let loaded = match std::fs::read(&path) {
                Ok(wasm) => runtime.reload(&wasm, record.info.clone()).await.map_err(|e| e.to_string()),
                Err(e) => Err(format!("reading {}: {e}", path.display())),
            };
            match loaded {
                Ok(plugin) => self.insert(record, plugin),
                Err(e) => {
                    tracing::error!(plugin = %record.name, owner = ?record.owner, error = %e, "an uploaded plugin could not be loaded")
                }
            }
        }
        Ok(())
    }

    fn blob_path(&self, sha256: &str) -> PathBuf {
        self.blob_dir.join(format!("{sha256}.wasm"))
    }

    /// Validate, compile (into the cache) and store an uploaded component.
    /// A plugin of the same owner and name is replaced, and private again until
    /// the admin publishes it: running jobs keep the version they started with
    /// until the daemon restarts.
    // Each argument is a separate input of the upload request; a struct would only rename them.
    #[allow(clippy::too_many_arguments)]
    pub async fn upload(
        &self,
        runtime: &Runtime,
        store: &Store,
        owner: Option<&str>,
        quotas: Option<&crate::auth::Quotas>,
        name: &str,
        version: &str,
        wasm: &[u8],
    ) -> Result<PluginRecord, UploadError> {
        crate::auth::check_name("plugin", name).map_err(|message| UploadError::Invalid { field: "name", message })?;
        if version.is_empty() || version.len() > 64 || version.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(UploadError::Invalid {
                field: "version",
                message: "give 1-64 printable characters, e.g. `1.2.0`".into(),
            });
        }
        if self.get(None, name).is_some_and(|i| i.record.bundled) {
            return Err(UploadError::Invalid {
                field: "name",
                message: format!("`{name}` is a plugin installed with the daemon: choose another name"),
            });
        }
        if let Some(q) = quotas {
            if wasm.len() as u64 > q.plugin_size {
                return Err(UploadError::Quota(format!(
                    "plugin of {} bytes is over the tenant's plugin_size quota of {} bytes",
                    wasm.len(),
                    q.plugin_size
                )));
            }
            let owned = self.owned_by(owner).iter().filter(|r| r.name != name).count();
            if owned as u64 >= u64::from(q.plugins) {
                return Err(UploadError::Quota(format!(
                    "the tenant has {owned} plugins, its `plugins` quota: delete one first"
                )));
            }
        }
        let plugin = runtime.load(wasm).await?;
        let path = self.blob_path(&plugin.sha256);
        if !path.exists() {
            write_atomically(&self.blob_dir, &path, wasm)
                .map_err(|e| UploadError::Internal(format!("{}: {e}", path.display())))?;
        }
        // A new component is private again, even under a public name: the
        // admin made public what they saw, not what replaces it.
        let public = false;
        let record = PluginRecord {
            name: name.to_string(),
            version: version.to_string(),
            owner: owner.map(str::to_string),
            public,
            bundled: false,
            sha256: plugin.sha256.clone(),
            size: wasm.len() as u64,
            info: plugin.info.clone(),
            created_at: now(),
        };
        store.put_plugin(&record).map_err(|e| UploadError::Internal(e.to_string()))?;
        self.insert(record.clone(), plugin);
        Ok(record)
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
    pub fn visible(&self, viewer: Option<&str>) -> Vec<PluginRecord> {
        let all = self.by_key.read().unwrap_or_else(|e| e.into_inner());
        all.values().map(|i| i.record.clone()).filter(|r| Self::visible_to(r, viewer)).collect()
    }

    fn owned_by(&self, owner: Option<&str>) -> Vec<PluginRecord> {
        let all = self.by_key.read().unwrap_or_else(|e| e.into_inner());
        all.values().map(|i| i.record.clone()).filter(|r| r.owner.as_deref() == owner && !r.bundled).collect()
    }

    /// Names `viewer` may use, for error messages.
    pub fn names(&self, viewer: Option<&str>) -> Vec<String> {
        let mut names: Vec<String> = self.visible(viewer).into_iter().map(|r| r.name).collect();
        names.dedup();
        names
    }
}

/// The record of a plugin installed with the daemon: the admin's, public.
fn operator_record(name: &str, plugin: &Plugin, size: usize, bundled_in_binary: bool) -> PluginRecord {
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
