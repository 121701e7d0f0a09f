"""netreel-store: what goes in comes out (docs/design.md §3-§5, issue 3).

  * ingest -> snapshot round trip, byte-exact per packet, against store-feeder's --dump; the
    segments on disk hold the same packets;
  * two capture streams with interleaved timestamps merge into one non-decreasing stream;
  * a stock grpcio client: Snapshot (chunks <= 1 MiB), Stats consistent with what was fed,
    grpc.health.v1 Check;
  * a resend of batches already written is acked and not stored twice;
  * on a slow disk, batches queued together are written as one, and still byte-exact.
"""

import threading

import grpc
import pytest

import store_helpers as sh


def ts_base():
    """A whole second ten minutes ago: inside the store's sane range and its 1h max-time."""
    return (sh.now_ns() // 10**9 - 600) * 10**9


def test_round_trip_is_byte_exact(stores, feeder, snapshot_tool, tmp_path):
    store = stores("--max-size", "64MiB")
    n = int(20000 * sh.SCALE)
    t0, step = ts_base(), 1000
    dump = tmp_path / "sent.pcapng"
    fed = feeder(store, "--packets", n, "--ts-start", t0, "--ts-step", step,
                 "--batch-bytes", "256KiB", "--iface", "eth7", "--dump", dump,
                 capture_id="roundtrip", node="node-x")
    assert fed["packets"] == n and fed["batches"] > 3, fed

    sent = sh.read_pcapng(dump).packets
    assert len(sent) == n
    assert [p.ts_ns for p in sent] == [t0 + i * step for i in range(n)]

    out = tmp_path / "snap.pcapng"
    snap = snapshot_tool(store, out)
    got = sh.read_pcapng(out)
    assert snap["packets"] == n, snap
    assert len(got.packets) == n, f"snapshot holds {len(got.packets)} packets, {n} were sent"
    for i, (a, b) in enumerate(zip(sent, got.packets)):
        assert a.key() == b.key(), (f"packet {i} differs: sent ts={a.ts_ns} caplen={a.caplen} "
                                    f"origlen={a.origlen}, got ts={b.ts_ns} caplen={b.caplen} "
                                    f"origlen={b.origlen}; data equal: {a.data == b.data}")
    assert snap["oldest_ns"] == t0 and snap["newest_ns"] == t0 + (n - 1) * step, snap
    # The interface keeps its name, its node and its link type.
    assert [(i.name, i.link_type) for i in got.interfaces] == [("node-x/eth7", 1)]
    assert snap["bytes"] == sum(32 + sh.pad4(p.caplen) for p in sent), snap

    # The segments on disk hold exactly the same packets, in order.
    on_disk = []
    for seg in sh.segment_files(store.data_dir):
        on_disk += sh.read_pcapng(seg).keys()
    assert on_disk == [p.key() for p in sent], "the segment files do not hold what was sent"


def test_two_captures_merge_in_time_order(stores, feeder, snapshot_tool, tmp_path):
    store = stores("--max-size", "64MiB")
    n = int(12000 * sh.SCALE)
    t0 = ts_base()
    # a: t0, t0+3us, ...; b: t0+1us, t0+3us, t0+5us, ...: interleaved, with equal timestamps.
    runs = {"cap-a": dict(ts=t0, step=3000, iface="eth0", node="node-a"),
            "cap-b": dict(ts=t0 + 1000, step=2000, iface="eth1", node="node-b")}
    results, errors = {}, []

    def run(cid, r):
        try:
            results[cid] = feeder(store, "--packets", n, "--ts-start", r["ts"], "--ts-step",
                                  r["step"], "--batch-bytes", "128KiB", "--iface", r["iface"],
                                  "--dump", tmp_path / f"{cid}.pcapng", capture_id=cid,
                                  node=r["node"])
        except BaseException as e:  # pytest.fail raises a BaseException
            errors.append(f"{cid}: {e}")

    threads = [threading.Thread(target=run, args=kv) for kv in runs.items()]
    for t in threads:
        t.start()
    for t in threads:
        t.join(600)
    assert not errors, "\n".join(errors)

    out = tmp_path / "snap.pcapng"
    snap = snapshot_tool(store, out)
    got = sh.read_pcapng(out)
    names = sorted(i.name for i in got.interfaces)
    assert names == ["node-a/eth0", "node-b/eth1"], f"header interfaces: {names}"
    ts = [p.ts_ns for p in got.packets]
    back = [i for i in range(1, len(ts)) if ts[i] < ts[i - 1]]
    assert not back, f"timestamps go backwards at packets {back[:10]}"
    assert len(got.packets) == 2 * n == snap["packets"], snap

    by_name = {i.name: k for k, i in enumerate(got.interfaces)}
    for cid, r in runs.items():
        ifid = by_name[f"{r['node']}/{r['iface']}"]
        sent = sh.read_pcapng(tmp_path / f"{cid}.pcapng").keys()
        mine = [p.key() for p in got.packets if p.ifid == ifid]
        assert mine == sent, f"{cid}: the snapshot's packets on its interface differ from --dump"
    assert min(ts) == t0 and max(ts) == max(t0 + (n - 1) * 3000, t0 + 1000 + (n - 1) * 2000)


def test_grpcio_snapshot_stats_and_health(stores, feeder, store_client, store_pb, tmp_path):
    store = stores("--max-size", "256MiB", node="node-g")
    client = store_client(store)
    n = int(30000 * sh.SCALE)
    t0, step = ts_base(), 500
    dump = tmp_path / "sent.pcapng"
    fed = feeder(store, "--packets", n, "--ts-start", t0, "--ts-step", step, "--dump", dump,
                 capture_id="grpcio-1", node="node-g")
    sent = sh.read_pcapng(dump)

    # Snapshot, reassembled from its chunks (shape and the 1 MiB bound checked by the helper).
    res = client.snapshot()
    assert res.keys() == sent.keys(), "grpcio snapshot differs from what was sent"
    if not sh.ASAN:
        assert len(res.chunk_sizes) > 1, "a window of several MiB came in one message"
    assert res.header.node == "node-g"
    assert [(i.name, i.node, i.link_type) for i in res.header.interfaces] == \
        [("eth0", "node-g", 1)]
    assert res.summary.packets == n
    assert res.summary.bytes == sum(res.chunk_sizes) == fed["bytes"]
    assert res.summary.oldest_ns == t0 and res.summary.newest_ns == t0 + (n - 1) * step

    # Smaller messages when asked (a hub fanning out to many stores): the same packets, each
    # message within the size (the helper checks) but for a lone block; below 2 KiB, 2 KiB.
    for ask, want in ((16384, 16384), (1000, 2048)):
        small = client.snapshot(max_chunk_bytes=ask)
        assert small.keys() == sent.keys(), f"max_chunk_bytes={ask}: other packets"
        assert max(small.chunk_sizes) <= want and len(small.chunk_sizes) > len(res.chunk_sizes)

    # Stats: what was fed, where it is.
    st = client.stats()
    segs = sh.segment_files(store.data_dir)
    assert st.node == "node-g"
    assert st.packets == n, st
    assert st.segments == len(segs), f"Stats.segments {st.segments}, {len(segs)} on disk"
    assert st.oldest_ns == t0 and st.newest_ns == t0 + (n - 1) * step, st
    assert st.max_bytes == 256 * sh.MIB
    assert st.max_time_ns == 3600 * 10**9
    on_disk = sum(-(-f.stat().st_size // 4096) * 4096
                  for f in store.data_dir.glob("*/*") if f.suffix in (".pcapng", ".idx"))
    assert st.bytes == on_disk, f"Stats.bytes {st.bytes}, segments+indexes in 4 KiB blocks {on_disk}"
    assert len(st.captures) == 1, st
    c = st.captures[0]
    assert c.capture_id == "grpcio-1"
    assert (c.last_seq, c.batches, c.packets, c.bytes) == \
        (fed["last_seq"], fed["batches"], n, fed["bytes"]), c
    assert c.counters.received == n, c
    assert c.last_batch_ns > 0
    assert all(d.segments == 0 for d in st.deletions), st.deletions

    # grpc.health.v1: the store's service and the server as a whole are SERVING.
    H = store_pb.health.HealthCheckResponse
    for svc in ("netreel.v1.Store", ""):
        r = client.Check(store_pb.health.HealthCheckRequest(service=svc), timeout=10)
        assert r.status == H.SERVING, f"Check({svc!r}) -> {r}"
    with pytest.raises(grpc.RpcError) as e:
        client.Check(store_pb.health.HealthCheckRequest(service="no.such.Service"), timeout=10)
    assert e.value.code() == grpc.StatusCode.NOT_FOUND, e.value


def test_resend_is_acked_and_not_duplicated(stores, feeder, store_client, tmp_path):
    store = stores("--max-size", "64MiB")
    client = store_client(store)
    n = int(8000 * sh.SCALE)
    args = ["--packets", n, "--ts-start", ts_base(), "--batch-bytes", "64KiB"]
    first = feeder(store, *args, "--dump", tmp_path / "a.pcapng", capture_id="dup")
    before = sh.dir_state(store.data_dir)
    again = feeder(store, *args, "--dump", tmp_path / "b.pcapng", capture_id="dup")
    assert again["acked_seq"] == first["last_seq"], again
    assert sh.dir_state(store.data_dir) == before, "a resend changed the data directory"
    # The stream goes on after the resend: the next seqs are stored after what was there.
    t1 = ts_base() + 10**9
    more = feeder(store, "--packets", n, "--ts-start", t1, "--batch-bytes", "64KiB",
                  "--seq-start", first["last_seq"] + 1, "--dump", tmp_path / "c.pcapng",
                  capture_id="dup")
    assert more["acked_seq"] == more["last_seq"] > first["last_seq"], more
    res = client.snapshot()
    want = sh.read_pcapng(tmp_path / "a.pcapng").keys() + sh.read_pcapng(tmp_path / "c.pcapng").keys()
    assert res.keys() == want, \
        "after a resend and more batches, the store does not hold each packet exactly once"
    c = client.stats().captures[0]
    assert (c.last_seq, c.packets) == (more["last_seq"], 2 * n), c


def test_interfaces_extended_and_pod_names_reach_files_and_snapshots(stores, store_client,
                                                                     snapshot_tool, store_pb,
                                                                     tmp_path):
    """A capture that adds an interface mid-stream and changes its pod set: the segment gets the
    new IDB and NRBs, the snapshot header names both interfaces and the pods of the window."""
    store = stores("--max-size", "64MiB")
    client = store_client(store)
    t = ts_base()
    web = (bytes([10, 0, 0, 1]), "default", "web")
    dns = (bytes([10, 0, 0, 2]), "kube-system", "dns")
    api = (bytes.fromhex("fd000000000000000000000000000001"), "default", "api")
    one = [("eth0", 1, 65535)]
    two = one + [("eth1", 1, 65535)]

    def pk(ifid, k):
        return (ifid, t + k * 1000, sh.frame(k, 60 + 10 * (k % 50)))

    b1 = [pk(0, k) for k in range(0, 100)]
    b2 = [pk(k % 2, k) for k in range(100, 200)]
    b3 = [pk(k % 2, k) for k in range(200, 300)]
    batches = [sh.make_batch(store_pb, "ifx", 1, b1, interfaces=one, node="node-p", pods=[web]),
               sh.make_batch(store_pb, "ifx", 2, b2, interfaces=two, node="node-p"),
               sh.make_batch(store_pb, "ifx", 3, [], node="node-p", pods=[dns, api]),
               sh.make_batch(store_pb, "ifx", 4, b3, node="node-p")]
    acks, err = sh.ingest(client, batches)
    assert err is None, f"{err.code()}: {err.details()}"
    assert acks and acks[-1].seq == 4, acks
    sent = b1 + b2 + b3

    # The segment: a pcapng with both IDBs and the pod names, that tshark reads.
    segs = sh.segment_files(store.data_dir)
    problems, parsed = sh.wireshark_check(segs)
    assert not problems, "\n".join(problems)
    ifnames = [i.name for s in segs for i in parsed[s].interfaces]
    assert any(n.endswith("eth0") for n in ifnames) and any(n.endswith("eth1") for n in ifnames), \
        ifnames
    names = {n for s in segs for _, n in parsed[s].names}
    assert {"default/web", "kube-system/dns", "default/api"} <= names, names
    on_disk = [p for s in segs for p in parsed[s].packets]
    assert [(p.ts_ns, p.data) for p in on_disk] == [(t, d) for _, t, d in sent]

    # The snapshot: both interfaces (of node-p), every packet on its own interface.
    res = client.snapshot()
    assert [(i.name, i.node) for i in res.header.interfaces] == \
        [("eth0", "node-p"), ("eth1", "node-p")], res.header
    assert [(p.ifid, p.ts_ns, p.data) for p in res.packets] == sent
    pods = {(bytes(p.ip), p.namespace, p.name) for p in res.header.pods}
    assert {dns, api} <= pods, f"the current pods are not in the header: {pods}"
    # A window of the first batch only: the pods known then.
    early = client.snapshot(since_ns=t, until_ns=t + 99 * 1000)
    assert len(early.packets) == 100
    assert web in {(bytes(p.ip), p.namespace, p.name) for p in early.header.pods}, early.header

    out = tmp_path / "snap.pcapng"
    snapshot_tool(store, out)
    problems, parsed = sh.wireshark_check([out])
    assert not problems, "\n".join(problems)
    f = parsed[out]
    assert [i.name for i in f.interfaces] == ["node-p/eth0", "node-p/eth1"]
    assert {"kube-system/dns", "default/api"} <= {n for _, n in f.names}


SLOW_WRITES = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <sys/uio.h>
#include <unistd.h>

/* A slow disk: every data write of more than a block takes 20 ms more. */
ssize_t pwritev(int fd, const struct iovec *iov, int n, off_t off)
{
    ssize_t (*real)(int, const struct iovec *, int, off_t) =
        (ssize_t (*)(int, const struct iovec *, int, off_t))dlsym(RTLD_NEXT, "pwritev");
    size_t len = 0;
    for (int i = 0; i < n; i++)
        len += iov[i].iov_len;
    if (len > 4096)
        usleep(20000);
    return real(fd, iov, n, off);
}
ssize_t pwritev64(int fd, const struct iovec *iov, int n, off_t off) { return pwritev(fd, iov, n, off); }
"""


def test_writes_queued_together_reach_the_disk_as_one_and_whole(store_bins, feeder, snapshot_tool,
                                                                tmp_path):
    # On a slow disk the batches queue behind the one being written; the writer makes the ones
    # of a segment queued together one write (and their index records another). What is on the
    # disk and in a snapshot is still exactly what was sent.
    shim = sh.build_shim(tmp_path, "slow", SLOW_WRITES)
    data = tmp_path / "data"
    argv = [store_bins.store, "--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0",
            "--node", "node-a", "--data-dir", data, "--max-size", "64MiB"]
    store = sh.StoreProc(argv, data, tmp_path / "store.stderr", env=sh.shim_env(shim))
    try:
        store.wait_serving()
        n = 20000
        t0, step = ts_base(), 1000
        dump = tmp_path / "sent.pcapng"
        fed = feeder(store, "--packets", n, "--ts-start", t0, "--ts-step", step,
                     "--batch-bytes", "64KiB", "--dump", dump, capture_id="grouped")
        assert fed["packets"] == n and fed["batches"] > 50, fed
        _, body, _ = sh.scrape(store)
        grouped = sh.metric_value(body, "netreel_store_writes_grouped_total")
        assert grouped > 0, "no writes were grouped although they queued behind a slow disk"
        sent = [p.key() for p in sh.read_pcapng(dump).packets]
        on_disk = []
        for seg in sh.segment_files(data):
            on_disk += sh.read_pcapng(seg).keys()
        assert on_disk == sent, "the segment files do not hold what was sent"
        snap = snapshot_tool(store, tmp_path / "snap.pcapng")
        assert snap["packets"] == n, snap
        assert sh.read_pcapng(tmp_path / "snap.pcapng").keys() == sent
    finally:
        problems = store.stop()
    assert not problems, problems
    problems, _ = sh.wireshark_check(sh.segment_files(data))
    assert not problems, problems
