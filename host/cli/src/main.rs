//! The `remex` command: parses arguments, sets up logging, and hands each subcommand to its own
//! module. Exit codes: 0 success, 1 a target failed, 2 a usage or configuration error.

mod backend;
mod build;
mod digest;
mod dist;
mod help;
mod planners;
mod plugin;
mod plugins;
mod policy;
mod probes;
mod progress;
mod remote;
mod report;
mod runner;
mod serve;
mod test;
mod workspace;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

/// remex runs a repository's build and test processes, locally or on REAPI servers, with
/// language toolchains as sandboxed WebAssembly plugins.
#[derive(Parser)]
// `remex help KIND` is remex's own subcommand, so clap's must give way.
#[command(name = "remex", version, about, disable_help_subcommand = true)]
struct Cli {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    command: Command,
}

/// Options every subcommand takes.
#[derive(Args, Clone, Debug, Default)]
pub struct GlobalArgs {
    /// Where the local content-addressable store and action cache live
    /// [default: ~/.cache/remex].
    #[arg(long, global = true, value_name = "DIR")]
    pub local_store_dir: Option<PathBuf>,
    /// Show more: each action's digest and where it ran.
    #[arg(short, long, global = true)]
    pub verbose: bool,
}

#[derive(Subcommand)]
enum Command {
    /// Run the targets matched by SPECS and report each one's outcome.
    Test(test::TestArgs),
    /// Run the targets matched by SPECS and write their outputs under `dist/`.
    Build(build::BuildArgs),
    /// Print the root digest (`hash/size`) of a directory taken as an input root.
    Digest(digest::DigestArgs),
    /// Serve the local store and executor over REAPI v2 until interrupted.
    Serve(serve::ServeArgs),
    /// Install, list, inspect, remove or create toolchain plugins.
    Plugin(plugin::PluginArgs),
    /// Check actions against the policy plugins of `[policy] plugins`, running nothing.
    Policy(policy::PolicyArgs),
    /// Describe a target kind and its fields, or list the kinds.
    Help(help::HelpArgs),
    /// Describe the options of a scope (`global`, `python-bootstrap`, ...) or an environment
    /// kind, with each option's current value and where it comes from.
    HelpAdvanced(help::HelpAdvancedArgs),
}

/// A failure that is the user's to fix (bad option, BUILD file, spec): exit code 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// mimalloc rather than the system allocator: a run allocates and frees many small buffers on
/// many threads at once (plugin calls, gRPC messages), where glibc's arenas cost about a tenth
/// of the client's CPU and keep freed memory resident per thread.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    // Option flags such as `--remote-execution` are read by `remex-options`, not clap.
    let cli = Cli::parse_from(workspace::split_args(std::env::args_os()).0);
    init_tracing(cli.global.verbose);
    let result = match cli.command {
        Command::Test(args) => run_async(test::run(&cli.global, args)),
        Command::Build(args) => run_async(build::run(&cli.global, args)),
        Command::Digest(args) => digest::run(&cli.global, args),
        Command::Serve(args) => run_async(serve::run(&cli.global, args)),
        Command::Plugin(args) => plugin::run(&cli.global, args),
        Command::Policy(args) => policy::run(&cli.global, args),
        Command::Help(args) => help::run(&cli.global, args),
        Command::HelpAdvanced(args) => help::run_advanced(&cli.global, args),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {}", chain(&error));
            if error.downcast_ref::<UsageError>().is_some() {
                ExitCode::from(2)
            } else {
                ExitCode::from(1)
            }
        }
    }
}

fn run_async(future: impl Future<Output = anyhow::Result<ExitCode>>) -> anyhow::Result<ExitCode> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(future)
}

/// The error and its causes on one line, each once.
fn chain(error: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
    }
    parts.join(": ")
}

fn init_tracing(verbose: bool) {
    let default = if verbose { "info" } else { "warn" };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .without_time()
        .init();
}
