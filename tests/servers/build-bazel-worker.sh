#!/usr/bin/env bash
# Builds Bazel's own REAPI test server (RemoteWorker, REAPI 2.0) from Debian's
# bazel-bootstrap-source against the server jar of bazel-bootstrap, into $1 (default:
# /var/cache/remex-ci/bazel-worker). Prints the classpath to run it with.
set -euo pipefail
out=${1:-/var/cache/remex-ci/bazel-worker}
jar=/usr/share/bazel/A-server.jar
src=/usr/src/bazel-bootstrap/src/tools/remote/src/main/java
if [ ! -f "$jar" ] || [ ! -d "$src" ]; then
    echo "bazel-bootstrap and bazel-bootstrap-source are needed: apt-get install bazel-bootstrap bazel-bootstrap-source" >&2
    exit 1
fi
if [ ! -f "$out/classes/.built" ]; then
    rm -rf "$out/classes"
    mkdir -p "$out/classes"
    find "$src" -name '*.java' > "$out/sources.txt"
    javac -nowarn -d "$out/classes" -cp "$jar" @"$out/sources.txt" >&2
    touch "$out/classes/.built"
fi
echo "$out/classes:$jar"
