//! `remex help KIND` and `remex help-advanced SCOPE`: the fields of a target kind, and the
//! options of a scope with type, default, help, and inside a repository each option's current
//! value and where it came from. Generated from the specs the parser and BUILD evaluation use.

use std::path::Path;
use std::process::ExitCode;

use clap::Args;
use remex_model::KindSpec;
use remex_options::{
    OptionInputs, OptionRegistry, Options, environment_kinds, kind_help, scope_for_help, scope_help,
};
use remex_store::LocalStore;

use crate::plugins::PluginRegistry;
use crate::workspace::read_inputs;
use crate::{GlobalArgs, UsageError};

#[derive(Args)]
pub struct HelpArgs {
    /// A target kind, such as `shell_command` or `remote_environment`; none lists them all.
    #[arg(value_name = "KIND")]
    kind: Option<String>,
}

#[derive(Args)]
pub struct HelpAdvancedArgs {
    /// `global`, an options scope such as `python-bootstrap`, or an environment kind such as
    /// `remote_environment`; none lists them all.
    #[arg(value_name = "SCOPE")]
    topic: Option<String>,
}

/// What help describes: the options and target kinds of this repository, as far as they load.
struct HelpContext {
    registry: OptionRegistry,
    /// `None` when the options could not be loaded; the help then shows no current values.
    options: Option<Options>,
    kinds: Vec<KindSpec>,
}

pub fn run(global: &GlobalArgs, args: HelpArgs) -> anyhow::Result<ExitCode> {
    let context = HelpContext::load(global)?;
    let Some(name) = args.kind else {
        print!("{}", context.kind_list());
        return Ok(ExitCode::SUCCESS);
    };
    let Some(kind) = context.kinds.iter().find(|k| k.name == name) else {
        return Err(context.unknown_kind(&name).into());
    };
    let resolved = context.options.as_ref().map(|o| &o.resolved);
    print!("{}", kind_help(kind, &context.registry, resolved));
    Ok(ExitCode::SUCCESS)
}

pub fn run_advanced(global: &GlobalArgs, args: HelpAdvancedArgs) -> anyhow::Result<ExitCode> {
    let context = HelpContext::load(global)?;
    let Some(topic) = args.topic else {
        print!("{}", context.topic_list());
        return Ok(ExitCode::SUCCESS);
    };
    let resolved = context.options.as_ref().map(|o| &o.resolved);
    let text = match scope_for_help(&context.registry, &topic) {
        Some(scope) => scope_help(&context.registry, scope, resolved),
        None => environment_kinds(&context.registry)
            .iter()
            .find(|k| k.name == topic)
            .map(|kind| kind_help(kind, &context.registry, resolved)),
    };
    match text {
        Some(text) => print!("{text}"),
        None => {
            let topics = context.topic_names().join(", ");
            let message = format!("`{topic}` is neither an options scope nor an environment kind");
            return Err(UsageError(format!("{message}; try one of: {topics}")).into());
        }
    }
    Ok(ExitCode::SUCCESS)
}

impl HelpContext {
    /// Loads what it can: a broken `remex.toml` or plugin is reported on stderr, and help is
    /// shown from the defaults instead.
    fn load(global: &GlobalArgs) -> anyhow::Result<Self> {
        let cwd = std::env::current_dir()?;
        let (options, plugins) = match load_repository(&cwd, global) {
            Ok((options, plugins)) => (Some(options), plugins),
            Err(error) => {
                eprintln!("note: current values are not shown: {error:#}");
                (None, load_default_plugins(&cwd)?)
            }
        };
        let registry = plugins.option_registry()?;
        let mut kinds = plugins.kinds();
        kinds.extend(environment_kinds(&registry));
        kinds.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(Self {
            registry,
            options,
            kinds,
        })
    }

    fn kind_list(&self) -> String {
        let mut text = String::from("Target kinds (`remex help KIND` describes one):\n\n");
        for kind in &self.kinds {
            text.push_str(&format!("  {:<24} {}\n", kind.name, kind.help));
        }
        text
    }

    fn topic_list(&self) -> String {
        let mut text = String::from("Options scopes (`remex help-advanced SCOPE`):\n\n");
        for scope in self.registry.scopes() {
            let name = scope_name(&scope.name);
            text.push_str(&format!("  {name:<24} {}\n", scope.help));
        }
        text.push_str("\nEnvironment kinds (`remex help-advanced KIND`):\n\n");
        for kind in environment_kinds(&self.registry) {
            text.push_str(&format!("  {:<24} {}\n", kind.name, kind.help));
        }
        text
    }

    fn topic_names(&self) -> Vec<String> {
        let scopes = self.registry.scopes().iter().map(|s| scope_name(&s.name));
        let kinds = environment_kinds(&self.registry)
            .into_iter()
            .map(|k| k.name);
        scopes.map(str::to_owned).chain(kinds).collect()
    }

    fn unknown_kind(&self, name: &str) -> UsageError {
        if scope_for_help(&self.registry, name).is_some() {
            return UsageError(format!(
                "`{name}` is an options scope: `remex help-advanced {name}` describes it"
            ));
        }
        let kinds: Vec<&str> = self.kinds.iter().map(|k| k.name.as_str()).collect();
        UsageError(format!(
            "no target kind `{name}`; the kinds are {}",
            kinds.join(", ")
        ))
    }
}

/// The options and plugins of the repository around `cwd`.
fn load_repository(cwd: &Path, global: &GlobalArgs) -> anyhow::Result<(Options, PluginRegistry)> {
    let inputs = read_inputs(cwd, global)?;
    let bootstrap = inputs.bootstrap()?;
    let store = LocalStore::open(&bootstrap.global.local_store_dir)?;
    let plugins = PluginRegistry::load(&bootstrap, &store)?;
    let options = inputs.resolve(&plugins.option_registry()?)?;
    Ok((options, plugins))
}

/// The plugins a run loads with every option at its default.
fn load_default_plugins(cwd: &Path) -> anyhow::Result<PluginRegistry> {
    let defaults = OptionInputs::defaults(cwd).bootstrap()?;
    let store = LocalStore::open(&defaults.global.local_store_dir)?;
    PluginRegistry::load(&defaults, &store)
}

/// How a scope is named on the command line: `global` for `GLOBAL`.
fn scope_name(scope: &str) -> &str {
    if scope == remex_options::GLOBAL_SCOPE {
        "global"
    } else {
        scope
    }
}
