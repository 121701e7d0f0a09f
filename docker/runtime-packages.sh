#!/bin/sh
# Prints the Debian packages that hold the shared libraries the given programs link (ldd), one
# per line: what the runtime stage installs, so that a new library in the build needs no edit
# here. Fails when a library is missing or belongs to no package.
#   sh docker/runtime-packages.sh PROGRAM...
set -eu
libs=$(for p in "$@"; do ldd "$p"; done | awk '
    /not found/ { print "MISSING " $1; next }
    $2 == "=>" && $3 ~ /^\// { print $3 }' | sort -u)
case "$libs" in *MISSING*) echo "runtime-packages: $(echo "$libs" | grep MISSING)" >&2; exit 1 ;; esac
for lib in $libs; do
    # Debian 12 merged /lib into /usr/lib, but dpkg knows each file by the path its package uses.
    dir=$(dirname "$lib")
    base=$(basename "$lib")
    pkg=
    for cand in "$lib" "/usr$lib" "${lib#/usr}" "$(readlink -f "$lib")" "/usr$(readlink -f "$lib")" \
        "$(readlink -f "$dir")/$base" "/usr$dir/$base"; do
        pkg=$(dpkg -S "$cand" 2>/dev/null | head -n 1 | cut -d: -f1) && [ -n "$pkg" ] && break
    done
    if [ -z "$pkg" ]; then
        echo "runtime-packages: no package holds $lib" >&2
        exit 1
    fi
    echo "$pkg"
done | sort -u
