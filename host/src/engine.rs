//! The plugin runtime (the `kiln-runtime` crate) as this daemon uses it: a
//! plugin's output variables may not take the template's own names, and the
//! runtime's measurements go to `/metrics`. Every command that loads plugins
//! builds its runtime here, so they all refuse the same plugins.

use std::sync::Arc;

use crate::runtime::{Runtime, RuntimeConfig};

pub fn plugin_runtime(config: RuntimeConfig) -> anyhow::Result<Runtime> {
    let reserved = crate::template::VARIABLES.iter().copied().chain(["tags"]);
    Ok(Runtime::new(config)?.reserve_variables(reserved).observed_by(Arc::new(crate::metrics::RuntimeMetrics)))
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_plugins_variables_cannot_take_the_templates_own_names() {
        let runtime = super::plugin_runtime(Default::default()).unwrap();
        for name in ["key", "barename", "autoext", "tags"] {
            assert!(runtime.reserved_variables().iter().any(|v| v == name), "{name}");
        }
        assert!(!runtime.reserved_variables().iter().any(|v| v == "page"));
    }
}
