//! Installed plugins, by name: the bundled first-party ones, loaded at start.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use crate::runtime::{Plugin, Runtime};

#[derive(Clone, Default)]
pub struct Plugins {
    by_name: Arc<RwLock<BTreeMap<String, Plugin>>>,
}

impl Plugins {
    /// Load every bundled plugin (from the compile cache after the first start).
    pub async fn load_bundled(runtime: &Runtime) -> anyhow::Result<Plugins> {
        let plugins = Plugins::default();
        for (name, wasm) in crate::bundled::BUNDLED {
            let plugin = runtime.load(wasm).await.map_err(|e| anyhow::anyhow!("bundled plugin `{name}`: {e}"))?;
            tracing::debug!(plugin = name, cache = ?plugin.cache, load_time = ?plugin.load_time, "loaded bundled plugin");
            plugins.insert(name, plugin);
        }
        Ok(plugins)
    }

    /// Load every `*.wasm` in `dir` (if it exists), named by its `info().name`.
    /// A plugin that fails its checks is skipped with a warning naming the problem.
    pub async fn load_dir(&self, runtime: &Runtime, dir: &std::path::Path) -> anyhow::Result<()> {
        let Ok(entries) = std::fs::read_dir(dir) else { return Ok(()) };
        let mut paths: Vec<_> = entries.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|e| e == "wasm")).collect();
        paths.sort();
        for path in paths {
            let wasm = std::fs::read(&path)?;
            match runtime.load(&wasm).await {
                Ok(plugin) => {
                    tracing::info!(path = %path.display(), plugin = %plugin.info.name, "loaded plugin");
                    let name = plugin.info.name.clone();
                    self.insert(&name, plugin);
                }
                Err(e) => tracing::warn!(path = %path.display(), error = %e, "skipping plugin"),
            }
        }
        Ok(())
    }

    pub fn insert(&self, name: &str, plugin: Plugin) {
        self.by_name.write().unwrap_or_else(|e| e.into_inner()).insert(name.to_string(), plugin);
    }

    pub fn get(&self, name: &str) -> Option<Plugin> {
        self.by_name.read().unwrap_or_else(|e| e.into_inner()).get(name).cloned()
    }

    pub fn names(&self) -> Vec<String> {
        self.by_name.read().unwrap_or_else(|e| e.into_inner()).keys().cloned().collect()
    }
}
