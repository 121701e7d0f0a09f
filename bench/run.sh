#!/usr/bin/env bash
# Every benchmark, each next to its peer in the same run (docs/design.md §10):
#   bench/run.sh BUILD_DIR
# bench/rpc.sh: lib/rpc against iperf3; bench/store.sh: the store against dd and mergecap;
# bench/capture.sh: the capture against tcpdump and dumpcap; bench/capture-any.sh: the capture
# on `-i any` (split into one interface per device) against tcpdump -i any, and against another
# commit's capture when BENCH_BASE_COMMIT (or BENCH_BASE) is set; bench/export.sh: pcapdump
# through the hub against mergecap and cat; bench/sightings.sh: pcapdump with sightings collapsed
# against --sightings=all; bench/hub-scale.sh: the hub's memory and rate against the number of
# stores (store-sim), then again over mutual TLS (BENCH_HUB_TLS=1); bench/tls.sh: a TLS transfer with and without `netreel-capture --tls`;
# bench/follow.sh: the latency of `pcapdump --follow` from the wire to stdout, next to tcpdump's.
set -euo pipefail

build=${1:?usage: bench/run.sh BUILD_DIR}
here=$(cd "$(dirname "$0")" && pwd)
status=0
for b in rpc store capture capture-any export sightings hub-scale tls follow; do
    echo "== bench/$b.sh"
    "$here/$b.sh" "$build" || status=1
    if [ "$b" = hub-scale ]; then
        echo "== BENCH_HUB_TLS=1 bench/hub-scale.sh"
        BENCH_HUB_TLS=1 "$here/$b.sh" "$build" || status=1
    fi
done
exit $status
