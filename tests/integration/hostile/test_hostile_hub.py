"""netreel-hub against hostile clients (issue 7 "Hostile input", docs/design.md §9): the HTTP/2 and
gRPC framing cases of hostile_helpers.GENERIC_CASES (bytes before the preface, invalid frames, rapid
reset, CONTINUATION/SETTINGS/PING floods, 10 000 streams, header bombs, a 4 GiB length prefix,
truncated messages, malformed protobuf, silent peers and the handshake/idle timeouts), then the
hub's own: Snapshot requests with filters that do not compile or are megabytes long, reversed and
absurd windows, formats that do not exist, bearer tokens that are too long, and a TLS handshake that
never finishes.

The hub serves one store (a real netreel-store with 60 packets in it). Every case expects one
exact verdict (a gRPC status code and words of its message, a GOAWAY error code, or a close in
a stated time); after each the hub must be alive, serve a well-formed Snapshot whose file holds
exactly the store's 60 packets, stay under RSS_CAP_KB (not checked under NETREEL_ASAN=1), and
the store's data directory must be byte for byte what it was.

The last line names how many cases ran: "hostile: N cases against store, M against hub".
"""

import time

import grpc
import pytest

import hostile_helpers as hh
import store_helpers as sh
from cli_helpers import hub_pb  # noqa: F401 (fixture)
from hub_helpers import HubProc, HubStub, hub_bin, hubs  # noqa: F401 (fixtures)

# The hub's peak over the suite: its own few MiB, 64 MiB of unfinished messages one connection
# may make it hold (lib/rpc limits.max_unfinished), and the floods' queues.
RSS_CAP_KB = 160 * 1024
SNAP = "/netreel.v1.Hub/Snapshot"
STATUS = "/netreel.v1.Hub/Status"
INT64_MAX = (1 << 63) - 1


class Ctx:
    pass


def good_snapshot(c):
    """A well-formed Snapshot on a fresh connection: a pcapng file with the store's packets."""
    channel = grpc.insecure_channel(c.hub.addr)
    try:
        stub = HubStub(channel, c.pb)
        data, summary, _ = stub.snapshot(timeout=10)
        assert stub.status(timeout=10).stores, "Status names no store"
    finally:
        channel.close()
    f = sh.parse_pcapng(data, where="hub snapshot")
    want = [sh.Packet(0, t, len(d), len(d), d).key() for _, t, d in c.sent]
    assert f.keys() == want, f"the file holds {len(f.packets)} packets, want {len(want)}"
    assert all(r.ok for r in summary.stores), summary


@pytest.fixture(scope="module")
def ctx(store_bins, hub_bin, hub_pb, tmp_path_factory, request):  # noqa: F811
    d = tmp_path_factory.mktemp("hostile-hub")
    store = sh.StoreProc([store_bins.store, "--listen", "127.0.0.1:0", "--metrics-listen", "off",
                          "--node", "node-h", "--data-dir", d / "data", "--max-size", "64MiB",
                          "--time-interval", "1h", "--idle-timeout", "2s"],
                         d / "data", d / "store.stderr")
    hub = None
    c = Ctx()
    try:
        store.wait_serving()
        c.pb, c.store = hub_pb, store
        c.sent = hh.seed_store(store, hub_pb)
        hub = HubProc(hub_bin, store.addr, d / "hub.stderr", *hh.TIMEOUT_ARGS,
                      metrics="127.0.0.1:0")
        hub.wait_serving()
        c.hub = hub
        # Nothing the hub is sent reaches the store's disk either.
        c.target = hh.Target("hub", hub, lambda: good_snapshot(c), RSS_CAP_KB,
                             data_dir=store.data_dir, snapshot_path=SNAP, unary_path=STATUS,
                             unary_body=b"")
        c.target.good("the first snapshot")
        yield c
    finally:
        problems = store.stop() + (hub.stop() if hub else [])
        if hasattr(c, "target"):
            print(f"hub: VmHWM {c.target.rss_peak} KiB over the suite (cap {RSS_CAP_KB} KiB)")
        hh.report_counts(request)
        if problems:
            pytest.fail("\n".join(problems), pytrace=False)


@pytest.mark.parametrize("case", hh.GENERIC_CASES, ids=[f.__name__ for f in hh.GENERIC_CASES])
def test_generic(ctx, case):
    what = case(ctx.target)
    if what:
        print(f"{case.__name__}: {what}")
    ctx.target.check(case.__name__)
    hh.COUNTS["hub"] += 1


def snap_req(c, **kw):
    return hh.grpc_msg(c.pb.SnapshotRequest(**kw).SerializeToString())


def filter_not_compiling(c):
    return snap_req(c, filter="tcp port nonsense"), hh.INVALID_ARGUMENT, \
        ["does not compile"]


def filter_cut_at_nul(c):
    # the hub re-encodes the filter for the stores: a NUL must not cut it on the way
    return snap_req(c, filter="tcp\x00 and nonsense"), hh.INVALID_ARGUMENT, \
        ["the filter holds a NUL byte"]


def filter_two_mib(c):
    f = "tcp or " * (2 * hh.MIB // 7) + "udp"
    return snap_req(c, filter=f), hh.INVALID_ARGUMENT, [f"filter of {len(f)} bytes: at most 16384"]


def filter_over_4mib(c):
    f = "tcp or " * (5 * hh.MIB // 7) + "udp"
    return snap_req(c, filter=f), hh.RESOURCE_EXHAUSTED, ["larger than max"]


def window_reversed(c):
    return snap_req(c, since_ns=2000, until_ns=1000), hh.INVALID_ARGUMENT, \
        ["reversed", "since_ns 2000, until_ns 1000"]


def window_negative(c):
    return snap_req(c, since_ns=-5, until_ns=1000), hh.INVALID_ARGUMENT, ["since_ns -5"]


def window_since_max(c):
    return snap_req(c, since_ns=INT64_MAX), hh.INVALID_ARGUMENT, ["reversed"]


def format_unknown(c):
    return hh.grpc_msg(b"\x20\x07"), hh.INVALID_ARGUMENT, ["format 7"]


def format_negative(c):
    return hh.grpc_msg(b"\x20" + b"\xff" * 9 + b"\x01"), hh.INVALID_ARGUMENT, ["format -1"]


HUB_CASES = [filter_not_compiling, filter_cut_at_nul, filter_two_mib, filter_over_4mib, window_reversed,
             window_negative, window_since_max, format_unknown, format_negative]


@pytest.mark.parametrize("case", [
    pytest.param(c, marks=pytest.mark.xfail(reason=c.xfail, strict=False))
    if hasattr(c, "xfail") else c for c in HUB_CASES], ids=[f.__name__ for f in HUB_CASES])
def test_hub_request(ctx, case):
    body, code, words = case(ctx)
    w = ctx.target.wire()
    w.request(1, SNAP, body)
    hh.expect_status(w, 1, code, *words, timeout=15)
    w.close()
    ctx.target.check(case.__name__)
    hh.COUNTS["hub"] += 1


def test_window_absurd_but_valid(ctx):
    """since 0 .. the end of time, snaplen 2^32-1: the whole retained window, served."""
    w = ctx.target.wire()
    w.send(hh.frame(hh.WINDOW_UPDATE, 0, 0, (0x7FFFFFFF - 65535).to_bytes(4, "big")))
    w.request(1, SNAP, snap_req(ctx, since_ns=0, until_ns=INT64_MAX, snaplen=0xFFFFFFFF))
    hh.expect_status(w, 1, hh.OK, timeout=15)
    w.close()
    ctx.target.check("an absurd window")
    hh.COUNTS["hub"] += 1


def test_slow_store_filter_does_not_stall_the_hub(ctx):
    """A filter the stores take seconds to compile (see test_hostile_store's slow filter): the
    hub's own loop is not held: its health check answers at once meanwhile (its Status asks the
    stores, and waits for the one that compiles)."""
    f = " or ".join(f"host 10.{i // 250}.{i % 250}.1" for i in range(300))
    w = ctx.target.wire()
    try:
        w.request(1, SNAP, snap_req(ctx, filter=f))
        time.sleep(0.2)
        w2 = ctx.target.wire()
        t0 = time.monotonic()
        w2.request(1, "/grpc.health.v1.Health/Check", hh.grpc_msg(b""))
        hh.expect_status(w2, 1, hh.OK, timeout=5)
        took = time.monotonic() - t0
        w2.close()
        assert took < 1.0, f"the hub's health check took {took:.2f} s while a store compiled"
        hh.expect_status(w, 1, hh.OK, timeout=60)
    finally:
        w.close()
    ctx.target.check("a slow filter")
    hh.COUNTS["hub"] += 1


def test_token_abuse(ctx, hubs, tmp_path):  # noqa: F811
    """A hub with --token-file: a wrong token of 8 KiB is UNAUTHENTICATED, one past the header
    list limit RESOURCE_EXHAUSTED, a right one served."""
    tok = tmp_path / "token"
    tok.write_text("s3cret\n")
    hub = hubs(ctx.store.addr, "--token-file", tok, *hh.TIMEOUT_ARGS)
    for sid, value, code, words in (
            (1, "Bearer " + "x" * 8192, hh.UNAUTHENTICATED, ["bearer token"]),
            (3, "Bearer " + "x" * 20000, hh.RESOURCE_EXHAUSTED, ["header list larger"]),
            (5, "Basic s3cret", hh.UNAUTHENTICATED, ["bearer token"]),
            (7, "Bearer s3cret", hh.OK, [])):
        w = hh.Wire(hub.port)
        w.until(lambda: w.settings_seen, 2)
        w.request(sid, STATUS, hh.grpc_msg(b""), extra=[("authorization", value)])
        hh.expect_status(w, sid, code, *words)
        w.close()
    assert hub.alive()
    hh.COUNTS["hub"] += 1


@pytest.mark.parametrize("how", [hh.tls_silent, hh.tls_half_hello, hh.tls_hello_then_silence],
                         ids=["silent", "half_hello", "hello_then_silence"])
def test_tls_handshake_never_finished(ctx, hubs, certs, how):  # noqa: F811
    hub = hubs(ctx.store.addr, "--tls-cert", certs.server_cert, "--tls-key", certs.server_key,
               "--tls-ca", certs.ca, *hh.TIMEOUT_ARGS, metrics="127.0.0.1:0")
    took = how(hub.port)
    print(f"{how.__name__}: closed after {took:.2f} s")
    assert hh.wait_metric(hub, 1, "netreel_rpc_connections_closed_total",
                          reason="handshake_timeout") == 1
    hh.COUNTS["hub"] += 1
