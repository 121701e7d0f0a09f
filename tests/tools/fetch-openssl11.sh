#!/usr/bin/env bash
# Fetches OpenSSL 1.1.1 (Debian 11's libssl1.1 and openssl packages) into DIR/root, without
# installing anything or touching the system's apt configuration, for the opt-in test
# tests/integration/tls/test_capture_tls_openssl11.py:
#   tests/tools/fetch-openssl11.sh build/openssl11
#   NETREEL_OPENSSL11=build/openssl11/root NETREEL_BUILD=$PWD/build/release \
#       /usr/bin/python3 -m pytest -q tests/integration/tls/test_capture_tls_openssl11.py
# Debian 12 has no OpenSSL 1.1; the packages come from deb.debian.org's bullseye.
set -euo pipefail
dir=${1:?usage: tests/tools/fetch-openssl11.sh DIR}
mkdir -p "$dir/lists/partial" "$dir/cache/archives/partial"
dir=$(cd "$dir" && pwd)
echo "deb http://deb.debian.org/debian bullseye main" >"$dir/sources.list"
opts=(-q -o "Dir::Etc::SourceList=$dir/sources.list" -o Dir::Etc::SourceParts=/dev/null
      -o "Dir::State::Lists=$dir/lists" -o "Dir::Cache=$dir/cache")
apt-get "${opts[@]}" update >/dev/null
(cd "$dir" && apt-get "${opts[@]}" download libssl1.1 openssl/bullseye 2>/dev/null)
for deb in "$dir"/*.deb; do dpkg-deb -x "$deb" "$dir/root"; done
chmod -R a+rX "$dir"
LD_LIBRARY_PATH="$dir/root/usr/lib/x86_64-linux-gnu" "$dir/root/usr/bin/openssl" version
