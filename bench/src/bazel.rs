//! Bazel 4.2.3 on a generated workspace of `genrule`s, the same work as the remex repository:
//! one action per target writing one line to one output.

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Context;

/// How Bazel starts: its usual client and a server kept warm between builds, or `--batch`
/// with a new JVM for every command, as a new `remex` process is.
#[derive(Clone, Copy, Debug)]
pub enum Startup {
    Server,
    Batch,
}

impl fmt::Display for Startup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Server => write!(f, "warm server"),
            Self::Batch => write!(f, "`--batch`"),
        }
    }
}

pub struct Bazel {
    binary: PathBuf,
    startup: Startup,
    dir: tempfile::TempDir,
}

impl Bazel {
    /// A workspace of `count` genrules, with its own output user root.
    pub fn new(binary: &Path, startup: Startup, count: usize) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let workspace = dir.path().join("ws");
        std::fs::create_dir_all(&workspace)?;
        std::fs::write(workspace.join("WORKSPACE"), "")?;
        let mut build = String::new();
        for i in 0..count {
            build.push_str(&format!(
                "genrule(name = \"t{i}\", outs = [\"t{i}.txt\"], cmd = \"echo {i} > $@\")\n"
            ));
        }
        std::fs::write(workspace.join("BUILD"), build)?;
        let binary = binary.to_owned();
        Ok(Self {
            binary,
            startup,
            dir,
        })
    }

    /// `bazel build //...` with `flags`; it must succeed.
    pub fn build(&self, flags: &[&str]) -> anyhow::Result<()> {
        self.command(&["build", "//..."], flags)
    }

    pub fn clean(&self) -> anyhow::Result<()> {
        self.command(&["clean"], &[])
    }

    /// Stops the Bazel server this workspace started, if any.
    pub fn shut_down(&self) {
        if matches!(self.startup, Startup::Server) {
            let _ = self.command(&["shutdown"], &[]);
        }
    }

    fn command(&self, verb: &[&str], flags: &[&str]) -> anyhow::Result<()> {
        let root = self.dir.path().join("root");
        let mut command = Command::new(&self.binary);
        command.arg(format!("--output_user_root={}", root.display()));
        match self.startup {
            Startup::Batch => command.arg("--batch"),
            Startup::Server => command.arg("--max_idle_secs=300"),
        };
        let output = command
            .args(verb)
            .args(flags)
            .current_dir(self.dir.path().join("ws"))
            .output()
            .with_context(|| format!("cannot run `{}`", self.binary.display()))?;
        anyhow::ensure!(
            output.status.success(),
            "`bazel {}` failed: {}",
            verb.join(" "),
            String::from_utf8_lossy(&output.stderr)
        );
        Ok(())
    }
}

impl Drop for Bazel {
    fn drop(&mut self) {
        self.shut_down();
    }
}
