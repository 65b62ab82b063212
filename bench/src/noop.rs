//! The command-line cases, each beside Bazel 4.2.3 doing the same: `no-op` (a second
//! `remex test ::` of an unchanged repository) and `cached` (every target a remote cache hit
//! on the same `remex serve`, from a fresh local store).

use std::path::Path;
use std::process::Command;

use anyhow::Context;

use crate::Settings;
use crate::bazel::{Bazel, Startup};
use crate::machine::Limits;
use crate::measure::{median_secs, repeat, timed};
use crate::report::{Row, Verdict};
use crate::server::Server;

pub fn run(settings: &Settings, _: &Limits) -> anyhow::Result<Vec<Row>> {
    let count = settings.sizes.noop_targets;
    let dir = tempfile::tempdir()?;
    let repo = dir.path().join("repo");
    let store = dir.path().join("store");
    write_repo(&repo, count, false)?;
    remex(&settings.remex, &repo, &store, &[])?;
    let runs = repeat(settings.reps, || {
        timed(|| remex(&settings.remex, &repo, &store, &[]))
    })?;
    let ours = median_secs(&runs);
    let workload = format!("{count} `shell_command` targets, nothing changed");
    let mut rows = vec![
        Row::new("no-op", "second `remex test ::` (new process)", &workload)
            .value(format!("{:.0} ms", ours * 1e3))
            .target("< 200 ms", Verdict::of(ours < 0.2)),
    ];
    if let Some(bazel) = &settings.bazel {
        rows.extend(bazel_noop(settings, bazel, count, ours, &workload)?);
    }
    Ok(rows)
}

fn bazel_noop(
    settings: &Settings,
    bazel: &Path,
    count: usize,
    ours: f64,
    workload: &str,
) -> anyhow::Result<Vec<Row>> {
    let mut rows = Vec::new();
    for startup in [Startup::Server, Startup::Batch] {
        let bazel = Bazel::new(bazel, startup, count)?;
        bazel.build(&[])?;
        let runs = repeat(settings.reps, || timed(|| bazel.build(&[])))?;
        let theirs = median_secs(&runs);
        rows.push(
            Row::new(
                "no-op",
                &format!("Bazel no-op `build //...`, {startup}"),
                workload,
            )
            .value(format!("{:.0} ms", theirs * 1e3))
            .ratio(theirs / ours, "Bazel ÷ remex")
            .target("≥ 3", Verdict::of(theirs / ours >= 3.0)),
        );
    }
    Ok(rows)
}

pub fn run_cached(settings: &Settings, _: &Limits) -> anyhow::Result<Vec<Row>> {
    let count = settings.sizes.cached_actions;
    let server = Server::start(&settings.remex)?;
    let dir = tempfile::tempdir()?;
    let repo = dir.path().join("repo");
    write_repo(&repo, count, true)?;
    let address = server.address.clone();
    let flags = [
        "--remote-execution".to_owned(),
        format!("--remote-store-address={address}"),
        format!("--remote-execution-address={address}"),
    ];
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let mut round = 0;
    let runs = repeat(settings.reps, || {
        round += 1;
        let store = dir.path().join(format!("store{round}"));
        let took = timed(|| remex(&settings.remex, &repo, &store, &flags));
        std::fs::remove_dir_all(&store)?;
        took
    })?;
    let ours = median_secs(&runs);
    let workload = format!("{count} `shell_command` targets, all remote cache hits");
    let mut rows = vec![
        Row::new(
            "cached",
            "`remex test ::` remote, fresh local store",
            &workload,
        )
        .value(format!("{ours:.2} s"))
        .target(
            "< 2 s (at 10,000)",
            Verdict::of(ours * 10_000.0 / (count as f64) < 2.0),
        ),
    ];
    if let Some(bazel) = &settings.bazel {
        rows.extend(bazel_cached(
            settings, bazel, &server, count, ours, &workload,
        )?);
    }
    Ok(rows)
}

fn bazel_cached(
    settings: &Settings,
    bazel: &Path,
    server: &Server,
    count: usize,
    ours: f64,
    workload: &str,
) -> anyhow::Result<Vec<Row>> {
    let bazel = Bazel::new(bazel, Startup::Server, count)?;
    let remote = [
        format!("--remote_executor={}", server.address),
        "--remote_download_minimal".to_owned(),
    ];
    let remote: Vec<&str> = remote.iter().map(String::as_str).collect();
    bazel.build(&remote)?;
    let runs = repeat(settings.reps, || {
        bazel.clean()?;
        timed(|| bazel.build(&remote))
    })?;
    let theirs = median_secs(&runs);
    Ok(vec![
        Row::new(
            "cached",
            "Bazel `build //...` after `clean`, warm server",
            workload,
        )
        .value(format!("{theirs:.2} s"))
        .ratio(theirs / ours, "Bazel ÷ remex")
        .target("≥ 5", Verdict::of(theirs / ours >= 5.0)),
    ])
}

/// A repository of `count` `shell_command` targets, in the remote environment when `remote`.
fn write_repo(repo: &Path, count: usize, remote: bool) -> anyhow::Result<()> {
    std::fs::create_dir_all(repo)?;
    let mut toml = String::from("[GLOBAL]\n");
    let mut build = String::new();
    let mut environment = String::new();
    if remote {
        toml.push_str("\n[environments-preview]\nnames = { remote = \"//:remote\" }\n");
        build.push_str(
            "remote_environment(name = \"remote\", extra_platform_properties = [], \
             fallback_environment = \"__local__\")\n",
        );
        environment = ", environment = \"remote\"".to_owned();
    }
    for i in 0..count {
        build.push_str(&format!(
            "shell_command(name = \"t{i}\", command = \"echo {i} > out.txt\", \
             outputs = [\"out.txt\"]{environment})\n"
        ));
    }
    std::fs::write(repo.join("remex.toml"), toml)?;
    std::fs::write(repo.join("BUILD"), build)?;
    Ok(())
}

/// Runs `remex test ::` in `repo` with its local store at `store`; it must pass.
fn remex(remex: &Path, repo: &Path, store: &Path, flags: &[&str]) -> anyhow::Result<()> {
    let output = Command::new(remex)
        .args(["test", "::"])
        .args(flags)
        .current_dir(repo)
        .env("REMEX_LOCAL_STORE_DIR", store)
        .env_remove("RUST_LOG")
        .output()
        .with_context(|| format!("cannot run `{}`", remex.display()))?;
    anyhow::ensure!(
        output.status.success(),
        "`remex test ::` failed: {}\n{}",
        String::from_utf8_lossy(&output.stderr),
        tail(&output.stdout)
    );
    Ok(())
}

fn tail(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(10)..].join("\n")
}
