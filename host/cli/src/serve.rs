//! `remex serve`: the local store and executor as a REAPI v2 server, until SIGINT or SIGTERM.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use remex_server::{ServerBuilder, TlsOptions};
use remex_store::LocalStore;

use crate::{GlobalArgs, UsageError};

#[derive(Args)]
pub struct ServeArgs {
    /// The address to listen on.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8980")]
    listen: SocketAddr,
    /// The store (CAS and action cache) to serve [default: `--local-store-dir`, else
    /// ~/.cache/remex].
    #[arg(long, value_name = "DIR")]
    store: Option<PathBuf>,
    /// How many actions run at once [default: one per core].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    workers: Option<u32>,
    /// A platform property this server offers; repeat for more. Actions asking for any other
    /// property are refused.
    #[arg(long = "platform", value_name = "KEY=VALUE", value_parser = parse_property)]
    platform: Vec<(String, String)>,
    /// The server's TLS certificate (PEM); serves TLS with `--tls-key`.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The private key of `--tls-cert` (PEM).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// A CA certificate (PEM) client certificates must be signed by: mutual TLS.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_client_ca: Option<PathBuf>,
    /// A file holding the token every request must present as `authorization: Bearer TOKEN`.
    #[arg(long, value_name = "FILE")]
    auth_token_file: Option<PathBuf>,
    /// An instance name to serve; repeat for more [default: any instance name].
    #[arg(long = "instance-name", value_name = "NAME")]
    instance_names: Vec<String>,
}

pub async fn run(global: &GlobalArgs, args: ServeArgs) -> anyhow::Result<ExitCode> {
    let store_dir = (args.store.clone())
        .or_else(|| global.local_store_dir.clone())
        .unwrap_or_else(remex_options::default_store_dir);
    // A shared server keeps what it acknowledged even through a power loss.
    let store = LocalStore::open(&store_dir)
        .with_context(|| format!("cannot open the store `{}`", store_dir.display()))?
        .durable(true);
    let builder = configure(ServerBuilder::new(store), &args)?;

    let server = builder.serve(args.listen, shutdown_signal()).await?;
    // Scripts and tests read the address from this line, so it goes out at once.
    let mut stdout = std::io::stdout();
    writeln!(stdout, "remex serve: listening on {}", server.local_addr())?;
    stdout.flush()?;
    tracing::info!(address = %server.local_addr(), store = %store_dir.display(), "serving");

    server.wait().await?;
    Ok(ExitCode::SUCCESS)
}

fn configure(builder: ServerBuilder, args: &ServeArgs) -> anyhow::Result<ServerBuilder> {
    let mut builder = builder
        .platform(args.platform.iter().cloned())
        .instance_names(args.instance_names.iter().cloned());
    if let Some(workers) = args.workers {
        builder = builder.workers(workers as usize);
    }
    if let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) {
        let client_ca = args.tls_client_ca.as_deref();
        builder = builder.tls(TlsOptions {
            certificate_pem: read("--tls-cert", cert)?,
            private_key_pem: read("--tls-key", key)?,
            client_ca_pem: client_ca
                .map(|ca| read("--tls-client-ca", ca))
                .transpose()?,
        });
    }
    if let Some(path) = &args.auth_token_file {
        builder = builder.auth_token(read_token(path)?);
    }
    Ok(builder)
}

fn read(flag: &str, path: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("cannot read `{flag}` file `{}`", path.display()))
}

fn read_token(path: &Path) -> anyhow::Result<String> {
    let bytes = read("--auth-token-file", path)?;
    let token = String::from_utf8(bytes)
        .map_err(|_| UsageError(format!("`{}` is not UTF-8", path.display())))?;
    let token = token.trim();
    if token.is_empty() {
        return Err(UsageError(format!("the token file `{}` is empty", path.display())).into());
    }
    Ok(token.to_owned())
}

fn parse_property(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
        _ => Err(format!("`{text}` is not KEY=VALUE")),
    }
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut terminate) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = terminate.recv() => {}
            }
        }
        Err(error) => {
            tracing::warn!(%error, "cannot watch for SIGTERM; stopping on SIGINT only");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
    tracing::info!("stopping: finishing or failing what is in flight");
}
