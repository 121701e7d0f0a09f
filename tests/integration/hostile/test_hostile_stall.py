"""A consumer that starts a Snapshot and stops reading (issue 7: "a consumer that stops reading
mid-snapshot: hub and store memory stays bounded, other snapshots are still served, an idle
timeout frees the stuck one").

Two ways to stop reading, against the store and against the hub, each started with
--stall-timeout 2s:

  * window closed: the client reads its socket but never sends WINDOW_UPDATE (what a stuck
    gRPC client does once its buffers are full). The server's output for the call stops; after
    the stall timeout the call is reset with RST_STREAM(CANCEL), logged ("call stalled"), counted
    (netreel_rpc_calls_stalled_total) and freed (netreel_rpc_calls back to 0; the hub's
    netreel_hub_snapshots_active back to 0, and the store call behind it cancelled);
  * socket not read: the client never calls recv (a 4 KiB receive buffer). The server's socket
    fills; after the stall timeout the connection is closed
    (netreel_rpc_connections_closed_total{reason="stall_timeout"}).

While a consumer is stuck, a well-formed snapshot from another client returns every packet,
and the server's peak RSS stays under RSS_CAP_KB (not checked under NETREEL_ASAN=1).
"""

import time

import grpc
import pytest

import hostile_helpers as hh
import store_helpers as sh
from cli_helpers import hub_pb  # noqa: F401 (fixture)
from hub_helpers import HubStub, hub_bin, hubs, ts_base  # noqa: F401 (fixtures)

FEED = "16MiB" if not hh.ASAN else "8MiB"
STALL = ["--stall-timeout", "2s"]
RSS_CAP_KB = 96 * 1024
WAIT_S = hh.STALL_S + hh.TIMEOUT_SLACK_S + 1


@pytest.fixture(scope="module", autouse=True)
def count_line(request):
    yield
    hh.report_counts(request)


def fill(stores, feeder, *args):
    store = stores("--max-size", "256MiB", "--time-interval", "1h", *args)
    fed = feeder(store, "--bytes", FEED, "--ts-start", ts_base(), "--ts-step", 1000,
                 "--batch-bytes", "1MiB")
    return store, fed["packets"]


def snapshot_req(pb):
    return hh.grpc_msg(pb.SnapshotRequest().SerializeToString())


def stuck_window(port, path, pb):
    """Asks for the whole window and then reads without ever opening its window."""
    w = hh.Wire(port)
    w.until(lambda: w.settings_seen, 2)
    w.request(1, path, snapshot_req(pb))
    w.until(lambda: len(w.data.get(1, b"")) >= 60000, 10)
    got = len(w.data.get(1, b""))
    assert 60000 <= got <= 65535, f"the server sent {got} bytes into a 65535-byte window"
    return w


def stuck_socket(port, path, pb):
    """Asks for the whole window and never reads its socket."""
    w = hh.Wire(port, rcvbuf=4096, ack_settings=False)
    w.send(hh.frame(hh.WINDOW_UPDATE, 0, 0, (0x7FFFFFFF - 65535).to_bytes(4, "big")) +
           hh.settings_frame([(4, 0x7FFFFFFF)]))
    w.request(1, path, snapshot_req(pb))
    return w


def store_snapshot_ok(store, pb, packets):
    channel = grpc.insecure_channel(store.addr)
    try:
        t0 = time.monotonic()
        got = sh.StoreStub(channel, pb, pb.health).snapshot(timeout=30)
        took = time.monotonic() - t0
    finally:
        channel.close()
    assert len(got.packets) == packets, f"{len(got.packets)} packets, want {packets}"
    return took


def hub_snapshot_ok(hub, pb, packets):
    channel = grpc.insecure_channel(hub.addr)
    try:
        t0 = time.monotonic()
        data, summary, _ = HubStub(channel, pb).snapshot(timeout=30)
        took = time.monotonic() - t0
    finally:
        channel.close()
    assert summary.packets == packets and all(r.ok for r in summary.stores), summary
    assert len(sh.parse_pcapng(data).packets) == packets
    return took


def check_rss(proc, what):
    hwm = hh.proc_kb(proc.pid, "VmHWM")
    print(f"{what}: VmHWM {hwm} KiB (cap {RSS_CAP_KB} KiB)")
    if not hh.ASAN:
        assert hwm < RSS_CAP_KB, f"{what}: VmHWM {hwm} KiB >= {RSS_CAP_KB}"


@pytest.mark.parametrize("how", [stuck_window, stuck_socket], ids=["window", "socket"])
def test_store_stuck_consumer(stores, feeder, store_pb, how):
    store, packets = fill(stores, feeder, *STALL)
    path = "/netreel.v1.Store/Snapshot"
    w = how(store.port, path, store_pb)
    t0 = time.monotonic()
    try:
        # Stuck: somebody else is served, in full.
        assert hh.metric(store, "netreel_rpc_calls") == 1
        took = store_snapshot_ok(store, store_pb, packets)
        print(f"a snapshot of {packets} packets while one is stuck: {took:.2f} s")
        # The stuck call is reset (window) or its connection closed (socket), logged, counted,
        # freed.
        if how is stuck_window:
            assert hh.wait_metric(store, 1, "netreel_rpc_calls_stalled_total") == 1, \
                store.stderr()
        else:
            assert hh.wait_metric(store, 1, "netreel_rpc_connections_closed_total",
                                  reason="stall_timeout") == 1, store.stderr()
        assert hh.wait_metric(store, 0, "netreel_rpc_calls") == 0
        freed = time.monotonic() - t0
        if how is stuck_window:
            w.until(lambda: 1 in w.rst, 5)
            assert w.rst.get(1) == hh.CANCEL, w.describe(1)
            assert not w.eof, "the connection was closed, not just the call"
            lines = [ln for ln in store.stderr().splitlines() if 'msg="call stalled"' in ln]
            assert len(lines) == 1 and path in lines[0] and "stall timeout" in lines[0], lines
        else:
            lines = [ln for ln in store.stderr().splitlines()
                     if 'msg="closing connection"' in ln and "read nothing" in ln]
            assert len(lines) == 1, store.stderr()
        assert freed >= hh.STALL_S - 0.2, f"freed after {freed:.2f} s, before --stall-timeout"
        print(f"stuck call freed after {freed:.2f} s: {lines[0]}")
        check_rss(store, "store")
        store_snapshot_ok(store, store_pb, packets)
    finally:
        w.close()
    hh.COUNTS["store"] += 1


@pytest.mark.parametrize("how", [stuck_window, stuck_socket], ids=["window", "socket"])
def test_hub_stuck_consumer(stores, feeder, hubs, hub_pb, how):  # noqa: F811
    store, packets = fill(stores, feeder)   # the store keeps the default stall timeout (1m)
    hub = hubs(store.addr, *STALL, metrics="127.0.0.1:0")
    path = "/netreel.v1.Hub/Snapshot"
    w = how(hub.port, path, hub_pb)
    t0 = time.monotonic()
    try:
        assert hh.metric(hub, "netreel_hub_snapshots_active") == 1
        took = hub_snapshot_ok(hub, hub_pb, packets)
        print(f"a hub snapshot of {packets} packets while one is stuck: {took:.2f} s")
        if how is stuck_window:
            assert hh.wait_metric(hub, 1, "netreel_rpc_calls_stalled_total") == 1, hub.stderr()
        else:
            assert hh.wait_metric(hub, 1, "netreel_rpc_connections_closed_total",
                                  reason="stall_timeout") == 1, hub.stderr()
        assert hh.wait_metric(hub, 0, "netreel_hub_snapshots_active") == 0
        assert hh.wait_metric(hub, 0, "netreel_rpc_calls") == 0
        freed = time.monotonic() - t0
        # The hub let go of the store's stream too: the store holds no call any more.
        assert hh.wait_metric(store, 0, "netreel_rpc_calls") == 0
        want = ('msg="call stalled"', path) if how is stuck_window else \
            ('msg="closing connection"', "read nothing")
        lines = [ln for ln in hub.stderr().splitlines() if all(x in ln for x in want)]
        assert len(lines) == 1, hub.stderr()
        ended = [ln for ln in hub.stderr().splitlines() if 'msg="snapshot ended early"' in ln]
        code = "DEADLINE_EXCEEDED" if how is stuck_window else "UNAVAILABLE"
        assert len(ended) == 1 and f"code={code}" in ended[0], hub.stderr()
        print(f"stuck hub call freed after {freed:.2f} s")
        check_rss(hub, "hub")
        check_rss(store, "store behind the hub")
        hub_snapshot_ok(hub, hub_pb, packets)
    finally:
        w.close()
    hh.COUNTS["hub"] += 1


def test_store_many_stuck_snapshots_on_one_connection(stores, feeder, store_pb):
    """100 Snapshot streams on one connection (the most it allows), none read: each would queue
    its 1 MiB and a message (340 MB in all before lib/rpc bounded what one connection's calls
    queue together, limits.conn_send_high). Memory stays flat, somebody else is served, and
    after the stall timeout every stuck stream is reset and freed."""
    store, packets = fill(stores, feeder, *STALL)
    w = hh.Wire(store.port)
    w.until(lambda: w.settings_seen, 2)
    ids = list(range(1, 2 * hh.MAX_CONCURRENT, 2))
    body = snapshot_req(store_pb)
    w.send(b"".join(w.headers_frame(sid, hh.grpc_headers("/netreel.v1.Store/Snapshot")) +
                    hh.frame(hh.DATA, hh.END_STREAM, sid, body) for sid in ids))
    t0 = time.monotonic()
    try:
        w.until(lambda: False, 1.0)   # read what fits the windows; the rest stays queued
        assert hh.metric(store, "netreel_rpc_calls") == len(ids)
        check_rss(store, f"store with {len(ids)} stuck snapshots on one connection")
        store_snapshot_ok(store, store_pb, packets)
        w.until(lambda: all(sid in w.rst for sid in ids), hh.STALL_S + hh.TIMEOUT_SLACK_S + 5)
        not_reset = [sid for sid in ids if w.rst.get(sid) != hh.CANCEL]
        assert not not_reset, f"not reset with CANCEL: {not_reset[:10]} ({w.describe()})"
        assert hh.wait_metric(store, 0, "netreel_rpc_calls") == 0
        assert hh.metric(store, "netreel_rpc_calls_stalled_total") == len(ids)
        print(f"{len(ids)} stuck snapshots freed after {time.monotonic() - t0:.2f} s")
        check_rss(store, "store after")
    finally:
        w.close()
    hh.COUNTS["store"] += 1


def test_store_failed_call_stuck_behind_closed_window(stores, feeder, store_pb):
    """A client that opens no window at all (SETTINGS_INITIAL_WINDOW_SIZE 0) and sends two
    Snapshot requests on one call: the first starts the snapshot (its header waits behind the
    closed window), the second fails the call (UNIMPLEMENTED, its status queued behind the
    header). A call that already failed is as stuck as a running one: it is reset after the
    stall timeout, not kept forever."""
    store, _ = fill(stores, feeder, *STALL)   # more than a snapshot queues at once
    w = hh.Wire(store.port, settings=[(4, 0)])
    w.until(lambda: w.settings_seen, 2)
    req = snapshot_req(store_pb)
    w.request(1, "/netreel.v1.Store/Snapshot", req + req, end_stream=False)
    t0 = time.monotonic()
    try:
        w.until(lambda: 1 in w.rst, WAIT_S)
        assert w.rst.get(1) == hh.CANCEL, w.describe(1)
        assert w.data.get(1, b"") == b"", "the store sent DATA into a closed window"
        took = time.monotonic() - t0
        assert took >= hh.STALL_S - 0.2, f"reset after {took:.2f} s, before --stall-timeout"
        assert hh.wait_metric(store, 0, "netreel_rpc_calls") == 0
        assert hh.metric(store, "netreel_rpc_calls_stalled_total") == 1
        ended = [ln for ln in store.stderr().splitlines() if 'msg="snapshot ended"' in ln]
        assert len(ended) == 1 and "code=DEADLINE_EXCEEDED" in ended[0], store.stderr()
    finally:
        w.close()
    hh.COUNTS["store"] += 1
