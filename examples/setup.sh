#!/usr/bin/env bash
# Installs what the example repository needs beyond remex itself: Debian's protobuf compiler
# and Python runtime, and unzip; then packs protoc into build-support/protoc.zip, the archive
# `[protoc]` in remex.toml names. Run as root (it uses apt-get) from anywhere.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
packages=(protobuf-compiler python3-protobuf unzip python3)
missing=()
for package in "${packages[@]}"; do
    dpkg -s "$package" > /dev/null 2>&1 || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${missing[@]}"
fi
mkdir -p "$here/build-support"
sh "$here/../plugins/protobuf/make-protoc-archive.sh" "$here/build-support/protoc.zip" > /dev/null
