#!/bin/sh
# Builds remex, the plan example and the harness in release, runs every case, and rewrites
# docs/performance.md. Arguments go to the harness: --full, --no-bazel, --only CASE, --reps N.
set -eu
cd "$(dirname "$0")/.."
cargo build --release -p remex-cli --bin remex
cargo build --release -p remex-plugin-host --example plan_python
cargo build --release -p remex-bench
# Private copies: another build in this checkout may relink target/release mid-run.
bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT
release=${CARGO_TARGET_DIR:-target}/release
cp "$release"/remex "$release"/examples/plan_python "$release"/remex-bench "$bin"/
"$bin"/remex-bench \
    --remex "$bin"/remex \
    --plan-example "$bin"/plan_python \
    --output docs/performance.md \
    "$@"
