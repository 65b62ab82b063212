//! A `remex serve` child process on a loopback port with its own store, stopped on drop.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use anyhow::Context;

pub struct Server {
    child: Child,
    pub address: String,
    _store: tempfile::TempDir,
}

impl Server {
    /// Starts `remex serve` on `127.0.0.1:0` with a fresh store and waits for its address.
    pub fn start(remex: &Path) -> anyhow::Result<Self> {
        let store = tempfile::tempdir()?;
        let mut child = Command::new(remex)
            .args(["serve", "--listen", "127.0.0.1:0", "--store"])
            .arg(store.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("cannot start `{} serve`", remex.display()))?;
        let stdout = child
            .stdout
            .take()
            .context("no stdout from `remex serve`")?;
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line)?;
        let address = line
            .trim()
            .rsplit(' ')
            .next()
            .filter(|a| a.contains(':'))
            .with_context(|| format!("unexpected first line from `remex serve`: {line:?}"))?;
        let address = format!("grpc://{address}");
        Ok(Self {
            child,
            address,
            _store: store,
        })
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // Only the child this harness started.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
