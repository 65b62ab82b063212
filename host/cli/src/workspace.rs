//! Everything a run needs before it starts work: options, the local store, the plugins, the
//! targets of every BUILD file and the environment each runs in. Any failure here is the
//! user's to fix and exits with code 2.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::path::Path;

use clap::CommandFactory;
use remex_model::{Environment, Target};
use remex_options::{
    Environments, OptionInputs, Options, environment_kinds, host_platform, is_environment_kind,
};
use remex_store::LocalStore;

use crate::plugins::PluginRegistry;
use crate::{Cli, GlobalArgs, UsageError};

/// The loaded repository.
pub struct Workspace {
    pub options: Options,
    pub store: LocalStore,
    pub plugins: PluginRegistry,
    /// The targets that run: every target of the BUILD files except environments.
    pub targets: Vec<Target>,
    /// The environment of each target in `targets`.
    pub environments: Environments,
}

impl Workspace {
    /// Reads and checks the options, opens the store, loads the plugins, evaluates the BUILD
    /// files and resolves every target's environment, in that order.
    pub fn load(global: &GlobalArgs) -> anyhow::Result<Self> {
        let cwd = std::env::current_dir()?;
        let inputs = read_inputs(&cwd, global)?;
        let bootstrap = inputs.bootstrap().map_err(usage)?;
        let store = LocalStore::open(&bootstrap.global.local_store_dir)?;
        let plugins = PluginRegistry::load(&bootstrap, &store)?;

        let option_registry = plugins.option_registry()?;
        let options = inputs.resolve(&option_registry).map_err(usage)?;
        for warning in &options.warnings {
            tracing::warn!("{warning}");
        }

        let mut kinds = plugins.kinds();
        kinds.extend(environment_kinds(&option_registry));
        let all =
            remex_buildfile::evaluate_repository(&options.repo_root, &kinds).map_err(usage)?;
        let environments =
            Environments::resolve(&options, &option_registry, &all, &host_platform())
                .map_err(usage)?;
        let targets = all
            .into_iter()
            .filter(|t| !is_environment_kind(&t.kind))
            .collect();
        Ok(Self {
            options,
            store,
            plugins,
            targets,
            environments,
        })
    }

    pub fn repo_root(&self) -> &Path {
        &self.options.repo_root
    }

    /// The environment `target` is planned and run in, with its options resolved.
    pub fn environment(&self, target: &Target) -> Environment {
        self.environments
            .for_target(target)
            .map(|resolved| resolved.environment.clone())
            .unwrap_or_else(Environment::local)
    }
}

fn usage(error: impl std::fmt::Display) -> UsageError {
    UsageError(error.to_string())
}

/// `remex.toml`, the `REMEX_*` variables and the option flags of this run.
pub fn read_inputs(cwd: &Path, global: &GlobalArgs) -> anyhow::Result<OptionInputs> {
    let mut flags = split_args(std::env::args_os()).1;
    // `--local-store-dir` is also a clap flag, so that `remex --help` shows it.
    if let Some(dir) = &global.local_store_dir {
        flags.insert(0, format!("--local-store-dir={}", dir.display()));
    }
    // `vars_os`, because `vars` panics on a variable that is not UTF-8, even an unrelated one.
    let variables = std::env::vars_os()
        .filter_map(|(name, value)| Some((name.into_string().ok()?, value.into_string().ok()?)));
    let inputs = OptionInputs::read(cwd, variables, flags).map_err(usage)?;
    Ok(inputs)
}

/// Splits a command line into the arguments clap parses and the option flags it leaves to
/// `remex-options`: each `--name`, `--no-name` or `--name=value` before any `--` whose name is
/// no clap flag of any subcommand, such as `--remote-execution` or
/// `--python-bootstrap-search-path=<PATH>`. An option flag takes its value after `=` only.
pub fn split_args(args: impl IntoIterator<Item = OsString>) -> (Vec<OsString>, Vec<String>) {
    let known = clap_long_flags();
    let mut clap_args = Vec::new();
    let mut option_flags = Vec::new();
    let mut rest_is_positional = false;
    for arg in args {
        let text = arg.to_str().filter(|_| !rest_is_positional);
        match text.and_then(|t| t.strip_prefix("--").map(|name| (t, name))) {
            Some(("--", _)) => {
                rest_is_positional = true;
                clap_args.push(arg);
            }
            Some((flag, name)) if !known.contains(name.split('=').next().unwrap_or(name)) => {
                option_flags.push(flag.to_owned());
            }
            _ => clap_args.push(arg),
        }
    }
    (clap_args, option_flags)
}

/// Every long flag clap knows, in every subcommand, with `help` and `version`.
fn clap_long_flags() -> BTreeSet<String> {
    let mut flags = BTreeSet::from(["help".to_owned(), "version".to_owned()]);
    let mut pending = vec![Cli::command()];
    while let Some(command) = pending.pop() {
        for arg in command.get_arguments() {
            flags.extend(arg.get_long().map(str::to_owned));
            flags.extend(
                arg.get_all_aliases()
                    .into_iter()
                    .flatten()
                    .map(str::to_owned),
            );
        }
        pending.extend(command.get_subcommands().cloned());
    }
    flags
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(args: &[&str]) -> (Vec<String>, Vec<String>) {
        let (clap, options) = split_args(args.iter().map(OsString::from));
        let clap = clap.into_iter().map(|a| a.to_string_lossy().into_owned());
        (clap.collect(), options)
    }

    #[test]
    fn option_flags_are_taken_out_and_clap_flags_left() {
        let (clap, options) = split(&[
            "remex",
            "--remote-execution",
            "test",
            "-v",
            "--local-store-dir",
            "/s",
            "--python-bootstrap-search-path=<PATH>,/opt/bin",
            "::",
            "--",
            "--not-a-flag",
        ]);
        assert_eq!(
            clap,
            [
                "remex",
                "test",
                "-v",
                "--local-store-dir",
                "/s",
                "::",
                "--",
                "--not-a-flag"
            ]
        );
        assert_eq!(
            options,
            [
                "--remote-execution",
                "--python-bootstrap-search-path=<PATH>,/opt/bin"
            ]
        );
    }
}
