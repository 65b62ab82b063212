#!/usr/bin/env bash
# Installs and builds everything the integration tests need beyond Rust: the Debian packages,
# Bazel's REAPI test server, and buildbox-casd with buildbox-run. Idempotent; prints the
# environment variables the tests read, as `export` lines for `eval`.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cache=${REMEX_TEST_CACHE:-/var/cache/remex-ci}

packages=(bazel-bootstrap bazel-bootstrap-source bubblewrap default-jdk-headless unzip
    protobuf-compiler python3-protobuf)
missing=()
for package in "${packages[@]}"; do
    dpkg -s "$package" > /dev/null 2>&1 || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq "${missing[@]}" >&2
fi

classpath=$("$here/build-bazel-worker.sh" "$cache/bazel-worker")
buildbox=$("$here/fetch-buildbox.sh" "$cache/buildbox")
echo "export REMEX_TEST_BAZEL_WORKER_CLASSPATH='$classpath'"
echo "export REMEX_TEST_BUILDBOX_DIR='$buildbox'"
