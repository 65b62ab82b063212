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

rm -f "$out"
(cd "$tmp" && python3 -m zipfile -c archive.zip bin include)
mv "$tmp/archive.zip" "$out"
sha256sum "$out" | cut -d' ' -f1
