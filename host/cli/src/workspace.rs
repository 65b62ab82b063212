//! Everything a run needs before it starts work: options, the local store, the plugins and the
//! targets of every BUILD file. Any failure here is the user's to fix and exits with code 2.

use std::collections::BTreeMap;
use std::path::Path;

use remex_model::Target;
use remex_options::{Options, Overrides, Source};
use remex_store::LocalStore;

use crate::plugins::PluginRegistry;
use crate::{GlobalArgs, UsageError};

/// The loaded repository.
pub struct Workspace {
    pub options: Options,
    pub store: LocalStore,
    pub plugins: PluginRegistry,
    pub targets: Vec<Target>,
}

impl Workspace {
    pub fn load(global: &GlobalArgs) -> anyhow::Result<Self> {
        let cwd = std::env::current_dir()?;
        let options = load_options(&cwd, global)?;
        let store = LocalStore::open(&options.local_store_dir)?;
        let plugins = PluginRegistry::load(&options, &store)?;
        let targets = remex_buildfile::evaluate_repository(&options.repo_root, &plugins.kinds())
            .map_err(|e| UsageError(e.to_string()))?;
        Ok(Self {
            options,
            store,
            plugins,
            targets,
        })
    }

    pub fn repo_root(&self) -> &Path {
        &self.options.repo_root
    }
}

fn load_options(cwd: &Path, global: &GlobalArgs) -> anyhow::Result<Options> {
    let vars: BTreeMap<String, String> = std::env::vars()
        .filter(|(name, _)| name.starts_with("REMEX_"))
        .collect();
    let flags = Overrides {
        local_store_dir: global
            .local_store_dir
            .clone()
            .map(|dir| (dir, Source::Flag("--local-store-dir".into()))),
    };
    let overrides = Overrides::from_env(&vars).merged_with(flags);
    Ok(remex_options::load(cwd, overrides).map_err(|e| UsageError(e.to_string()))?)
}
