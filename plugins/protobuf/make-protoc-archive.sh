#!/bin/sh
# Packs the protoc of Debian's `protobuf-compiler` package into the layout of a protoc release
# zip (`bin/protoc`, `include/google/protobuf/*.proto`), for `[protoc] archive`, and prints its
# SHA-256 for `[protoc] sha256`. Nothing is downloaded: install the package first
# (`apt-get install protobuf-compiler`; the Python runtime the generated code imports is
# `python3-protobuf`, of the same version).
set -eu
out=${1:?usage: make-protoc-archive.sh OUT.zip}
protoc=$(command -v protoc) || {
    echo "protoc is not installed; run \`apt-get install protobuf-compiler\`" >&2
    exit 1
}
include=${PROTOC_INCLUDE:-/usr/include}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/bin" "$tmp/include"
cp "$protoc" "$tmp/bin/protoc"
chmod 755 "$tmp/bin/protoc"
(cd "$include" && find google/protobuf -name '*.proto' -exec cp --parents {} "$tmp/include/" \;)

# Entries sorted, with fixed times and modes, so the same protoc always gives the same archive
# and so the same `[protoc] sha256`.
rm -f "$out"
python3 - "$tmp" "$tmp/archive.zip" <<'PY'
import os, sys, zipfile
root, out = sys.argv[1], sys.argv[2]
paths = []
for directory, _, files in os.walk(root):
    paths += [os.path.join(directory, f) for f in files if f != "archive.zip"]
with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
    for path in sorted(paths):
        name = os.path.relpath(path, root)
        info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
        mode = 0o755 if name == "bin/protoc" else 0o644
        info.external_attr = (0o100000 | mode) << 16
        info.compress_type = zipfile.ZIP_DEFLATED
        with open(path, "rb") as f:
            archive.writestr(info, f.read())
PY
mv "$tmp/archive.zip" "$out"
sha256sum "$out" | cut -d' ' -f1
