//! The toolchain plugins of a run: the bundled ones and those named by `[plugins] paths`, and
//! which plugin provides each target kind.

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::Context;
use remex_model::KindSpec;
use remex_options::{OptionRegistry, Options};
use remex_plugin_host::{Plugin, PluginHost, PluginLimits};
use remex_store::LocalStore;

use crate::UsageError;

/// Loaded plugins, indexed by the target kinds they provide.
pub struct PluginRegistry {
    plugins: Vec<Arc<Plugin>>,
    by_kind: BTreeMap<String, usize>,
}

impl PluginRegistry {
    pub fn load(options: &Options, store: &LocalStore) -> anyhow::Result<Self> {
        let limits = PluginLimits {
            deadline: options.plugins.deadline(),
            memory_bytes: options.plugins.memory_limit_bytes(),
            ..PluginLimits::default()
        };
        let cache_dir = remex_options::compiled_plugins_dir();
        let host = PluginHost::new(limits, Some(cache_dir))?;

        let mut registry = Self {
            plugins: Vec::new(),
            by_kind: BTreeMap::new(),
        };
        for (name, bytes) in remex_bundled::all() {
            let plugin = host.load(name, bytes)?;
            registry.add(plugin)?;
        }
        for path in &options.plugins.paths {
            let full = options.repo_root.join(path);
            let bytes = std::fs::read(&full)
                .with_context(|| format!("cannot read plugin `{}`", full.display()))
                .map_err(|e| UsageError(format!("{e:#} (listed in `[plugins] paths`)")))?;
            let plugin = host
                .load(&full.display().to_string(), &bytes)
                .map_err(|e| UsageError(e.to_string()))?;
            registry.add(plugin)?;
        }
        // Plugins installed with `remex plugin install`, checked against their recorded hash.
        for (origin, bytes) in crate::plugin::installed_components(store.root())? {
            let plugin = host
                .load(&origin, &bytes)
                .map_err(|e| UsageError(e.to_string()))?;
            registry.add(plugin)?;
        }
        Ok(registry)
    }

    fn add(&mut self, plugin: Plugin) -> anyhow::Result<()> {
        let index = self.plugins.len();
        for kind in plugin.kinds() {
            if let Some(other) = self.by_kind.insert(kind.name.clone(), index) {
                let other = &self.plugins[other];
                return Err(UsageError(format!(
                    "target kind `{}` is provided by both `{}` and `{}`",
                    kind.name,
                    other.name(),
                    plugin.name()
                ))
                .into());
            }
        }
        self.plugins.push(Arc::new(plugin));
        Ok(())
    }

    /// The options of a run: the built-in ones and those the plugins declare.
    ///
    /// A plugin's WIT `description` lists no options yet, so this is the built-in registry.
    /// Once it does, each plugin's scopes and options are registered here, and a clash with
    /// another option is a usage error naming the plugin.
    pub fn option_registry(&self) -> Result<OptionRegistry, UsageError> {
        Ok(OptionRegistry::builtin())
    }

    /// Every target kind of every plugin.
    pub fn kinds(&self) -> Vec<KindSpec> {
        self.plugins
            .iter()
            .flat_map(|p| p.kinds().iter().cloned())
            .collect()
    }

    /// The plugin providing `kind`.
    pub fn for_kind(&self, kind: &str) -> Option<Arc<Plugin>> {
        self.by_kind.get(kind).map(|&i| self.plugins[i].clone())
    }
}
