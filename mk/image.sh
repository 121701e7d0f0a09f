#!/usr/bin/env bash
# The container image (docker/Dockerfile).
#   mk/image.sh build TAG   build it with docker (when its daemon answers) or podman
#   mk/image.sh test TAG [BUILD_DIR]
#                           build it with podman from a base image made here by debootstrap,
#                           then check it from inside (the image mounted, its programs run by
#                           chroot): every program's --version, ldd, the user, no compiler
# `test` needs no container engine running and no registry but Debian's: podman builds with
# --isolation chroot, and the base images the Dockerfile names (debian:bookworm and
# debian:bookworm-slim) are one debootstrap --variant=minbase tree from the machine's own Debian
# mirror, imported under those names. Containers are never run: this sandbox refuses the
# runtime's rlimits, and chroot into the mounted image runs the programs just as well.
set -euo pipefail
cd "$(dirname "$0")/.."

cmd=${1:?usage: mk/image.sh build|test TAG}
tag=${2:?usage: mk/image.sh build|test TAG}
version=${tag##*:}
# The host's build of the same sources (default build/release): the image must hold each program.
host_bin=${3:-build/release}/bin
dockerfile=docker/Dockerfile
base_build=docker.io/library/debian:bookworm
base_runtime=docker.io/library/debian:bookworm-slim

say() { printf 'image: %s\n' "$*" >&2; }
die() { printf 'image: %s\n' "$*" >&2; exit 1; }

# Debian's podman and debootstrap (and getcap, to check the image): only `make test-image` and
# `make image` need them, and they bring a container stack (conmon, crun, iptables, ...) that
# `make test` has no use for.
install_tools() {
    local missing=() p
    for p in podman debootstrap libcap2-bin; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    [ "$(id -u)" -eq 0 ] || die "missing Debian packages: ${missing[*]} (apt-get install ${missing[*]})"
    say "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get -o DPkg::Lock::Timeout=300 update -qq
    apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# The first Debian mirror this machine's apt uses for bookworm (deb822 or one-line sources).
debian_mirror() {
    local uri
    uri=$(awk '
        /^URIs:/ { uris = $2 }
        /^Suites:/ { for (i = 2; i <= NF; i++) if ($i == "bookworm") { print uris; exit } }
        /^deb / { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { u = $i; s = $(i + 1); break }
                  if (s == "bookworm") { print u; exit } }
    ' /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null | head -n 1)
    [ -n "$uri" ] || die "no Debian bookworm mirror in /etc/apt/sources.list{,.d}"
    echo "${uri%/}"
}

debian_security_mirror() {
    local uri
    uri=$(awk '
        /^URIs:/ { uris = $2 }
        /^Suites:/ { for (i = 2; i <= NF; i++) if ($i == "bookworm-security") { print uris; exit } }
        /^deb / { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { u = $i; s = $(i + 1); break }
                  if (s == "bookworm-security") { print u; exit } }
    ' /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null | head -n 1)
    echo "${uri%/}"
}

# Both base names point to one minbase tree, made once and kept in podman's store.
make_base() {
    if podman image exists "$base_build" && podman image exists "$base_runtime"; then
        return 0
    fi
    local mirror security root
    mirror=$(debian_mirror)
    security=$(debian_security_mirror)
    root=$(mktemp -d /var/tmp/netreel-base.XXXXXX)
    say "debootstrap --variant=minbase bookworm from $mirror"
    if ! debootstrap --variant=minbase bookworm "$root" "$mirror" >"$root.log" 2>&1; then
        tail -n 20 "$root.log" >&2
        rm -rf "$root" "$root.log"
        die "debootstrap failed"
    fi
    # Like Debian's own images: the same suites as this machine, no caches, no package lists.
    rm -f "$root/etc/apt/sources.list"
    {
        printf 'Types: deb\nURIs: %s\nSuites: bookworm bookworm-updates\nComponents: main\n' "$mirror"
        printf 'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n'
        if [ -n "$security" ]; then
            printf '\nTypes: deb\nURIs: %s\nSuites: bookworm-security\nComponents: main\n' "$security"
            printf 'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n'
        fi
    } >"$root/etc/apt/sources.list.d/debian.sources"
    printf 'APT::Install-Recommends "false";\n' >"$root/etc/apt/apt.conf.d/90netreel-norecommends"
    rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb \
        "$root"/var/log/* "$root"/tmp/*
    tar -C "$root" --numeric-owner -c . | podman import --quiet - "$base_build" >/dev/null
    podman tag "$base_build" "$base_runtime"
    rm -rf "$root" "$root.log"
}

engine() {
    if command -v docker >/dev/null && docker info >/dev/null 2>&1; then
        echo docker
    elif command -v podman >/dev/null; then
        echo podman
    else
        die "neither docker (with its daemon running) nor podman is here: apt-get install podman"
    fi
}

build() {
    local eng=$1
    shift
    say "$eng build -t $tag"
    if [ "$eng" = podman ]; then
        podman build --isolation chroot --layers -f "$dockerfile" -t "$tag" \
            --build-arg VERSION="$version" "$@" .
    else
        docker build -f "$dockerfile" -t "$tag" --build-arg VERSION="$version" "$@" .
    fi
}

# Everything below runs in the mounted image: its own ld.so, libraries and /etc/passwd.
passed=0
failed=0
ok() { say "ok   $*"; passed=$((passed + 1)); }
fail() { say "FAIL $*"; failed=$((failed + 1)); }

check() {
    local root progs=() p out
    root=$(podman image mount "$tag")
    trap 'podman image unmount "$tag" >/dev/null 2>&1 || true' EXIT
    for p in "$root"/usr/local/bin/*; do
        [ -f "$p" ] && [ -x "$p" ] && progs+=("$(basename "$p")")
    done
    [ ${#progs[@]} -gt 0 ] || { fail "no program in /usr/local/bin"; return; }
    # The image holds every program the host's build of the same sources made.
    local built=() missing=()
    for p in "$host_bin"/*; do
        [ -x "$p" ] || continue
        built+=("$(basename "$p")")
        [ -x "$root/usr/local/bin/$(basename "$p")" ] || missing+=("$(basename "$p")")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        fail "built in $host_bin but not in the image: ${missing[*]}"
    else
        ok "the image holds every program built in $host_bin (${built[*]:-none})"
    fi
    for p in "${progs[@]}"; do
        if out=$(chroot --userspec=65532:65532 "$root" "/usr/local/bin/$p" --version 2>&1); then
            ok "$p --version: $out"
        else
            fail "$p --version: $out"
        fi
        out=$(chroot "$root" ldd "/usr/local/bin/$p" 2>&1) || true
        if grep -q 'not found' <<<"$out" || ! grep -q 'libc.so' <<<"$out"; then
            fail "ldd $p:"$'\n'"$out"
        else
            ok "ldd $p: $(grep -c '=>' <<<"$out") libraries, none missing"
        fi
    done
    local user
    user=$(podman image inspect --format '{{.Config.User}}' "$tag")
    case "${user%%:*}" in
    "" | 0 | root) fail "the default user is '${user}' (root)" ;;
    *) ok "default user $user ($(chroot "$root" getent passwd "${user%%:*}" | cut -d: -f1))" ;;
    esac
    # The capture's file capabilities, exactly, and no other program with any.
    local caps others
    caps=$(getcap "$root/usr/local/bin/netreel-capture" 2>/dev/null | awk '{print $2}')
    if [ "$caps" = "cap_net_admin,cap_net_raw=ep" ]; then
        ok "netreel-capture carries file capabilities $caps"
    else
        fail "netreel-capture's file capabilities are '${caps}', want cap_net_admin,cap_net_raw=ep"
    fi
    others=$(getcap -r "$root/usr" 2>/dev/null | grep -v "/usr/local/bin/netreel-capture " || true)
    if [ -z "$others" ]; then
        ok "no other file in /usr carries file capabilities"
    else
        fail "other files carry file capabilities: $others"
    fi
    local tools
    tools=$(cd "$root" && ls -d usr/bin/cc usr/bin/gcc* usr/bin/clang* usr/bin/cpp* usr/bin/ld \
        usr/bin/ld.bfd usr/bin/ld.gold usr/bin/as usr/bin/make usr/bin/pkg-config usr/bin/protoc* \
        2>/dev/null || true)
    local headers
    headers=$(cd "$root" && find usr/include usr/local/include -name '*.h' 2>/dev/null | head -n 5)
    local devpkgs
    devpkgs=$(chroot "$root" dpkg-query -W -f='${Package}\n' 2>/dev/null |
        grep -E -- '-dev$|^(gcc|g\+\+|clang|cpp)(-[0-9]+)?$|^(make|binutils.*|pkg-?conf.*|protobuf-c-compiler)$' || true)
    if [ -n "$tools$headers$devpkgs" ]; then
        fail "build tools in the runtime image: $(echo $tools $headers $devpkgs)"
    else
        ok "no compiler, linker, make, headers or -dev package in the image"
    fi
    local size
    size=$(podman image inspect --format '{{.Size}}' "$tag")
    say "     image size $((size / 1024 / 1024)) MiB, programs: ${progs[*]}"
}

case "$cmd" in
build)
    eng=$(engine)
    build "$eng"
    say "built $tag with $eng"
    ;;
test)
    install_tools
    make_base
    start=$SECONDS
    build podman --pull=never
    say "built $tag in $((SECONDS - start))s"
    check
    # The build stage's layers are left without a name: drop them, or every run keeps ~500 MB.
    podman image prune -f >/dev/null 2>&1 || true
    echo "image: $passed passed, $failed failed"
    [ "$failed" -eq 0 ]
    ;;
*)
    die "usage: mk/image.sh build|test TAG"
    ;;
esac
