"""netreel-hub's own edges (issue 5, "What to build"; docs/design.md §3, §5, §9; docs/hub.md):

  * --token-file: Snapshot and Status refused without the token, with a wrong one, with another
    scheme (UNAUTHENTICATED), served with it — from grpcio and from the CLI (--token-file,
    $NETREEL_TOKEN);
  * --max-snapshots: the snapshot past the cap gets RESOURCE_EXHAUSTED at once, the running
    ones finish, a later one is served; /metrics counts them, /healthz answers;
  * a store that never answers (a TCP listener that says nothing) is left out after
    --store-timeout and named, in the snapshot and in Status; so is a store that stops in the
    middle of its stream (a grpcio fake store), its packets until then kept;
  * dns:NAME:PORT: every A and AAAA record of NAME is a store, resolved again for every request
    (the hub runs in a namespace with its own hosts file, rewritten between two snapshots); a
    name that does not resolve is named in the summary and by the CLI;
  * bad flags: exit 2 and one line;
  * --format pcap over a capture on `-i any` (LINUX_SLL2) and one on an Ethernet veth:
    FAILED_PRECONDITION with a message that says why and what to use; pcapng of the same
    window is fine.
"""

import json
import subprocess
import threading
import time
from concurrent import futures
from pathlib import Path

import grpc
import pytest

import cli_helpers as ch
import store_helpers as sh
from cli_helpers import cli_bin, hub_pb  # noqa: F401 (fixtures)
from hub_helpers import (IP, NS, FakeSnapshotStore, NetnsEtc, Node, by_interface,  # noqa: F401
                         closing_line, feed_stores, hub_bin, hub_client, hubs, non_decreasing,
                         only_file, pcapdump, silent_store, store_list, wireshark_ok)
from capture_helpers import (STORE_PORT, UdpReceiver, lab, run, send_udp,  # noqa: F401
                             start_store, udp_datagrams)
from capture_helpers import wait_drained

UNAUTH = grpc.StatusCode.UNAUTHENTICATED


def warnings(res):
    return [ln for ln in res.stderr.splitlines() if "MISSING" in ln]


# ---- the token ---------------------------------------------------------------------------------

def test_token_file(stores, feeder, hubs, hub_client, cli_bin, tmp_path):
    ss, fed, _ = feed_stores(stores, feeder, tmp_path, n=2, packets=300)
    tok = tmp_path / "token"
    tok.write_text("  s3cret-Token.1 \n")  # white space around it is not part of it
    hub = hubs(store_list(ss), "--token-file", tok)
    c = hub_client(hub)
    # (Not "Bearer " alone: a header value may not end in white space (RFC 9113 §8.2.1).)
    for token in (None, "wrong", "s3cret-Token.1x", "s3cret-Token.", " s3cret-Token.1", "x"):
        for what, call in (("Snapshot", lambda: c.snapshot(token=token)),
                           ("Status", lambda: c.status(token=token))):
            with pytest.raises(grpc.RpcError) as e:
                call()
            assert e.value.code() == UNAUTH, f"{what} with token {token!r}: {e.value}"
            assert e.value.details(), f"{what}: UNAUTHENTICATED without a message"
    basic = [("authorization", "Basic s3cret-Token.1")]
    with pytest.raises(grpc.RpcError) as e:
        c.Status(c.pb.StatusRequest(), timeout=30, metadata=basic)
    assert e.value.code() == UNAUTH
    data, summary, _ = c.snapshot(token="s3cret-Token.1")
    assert summary.packets == 600 and len(sh.parse_pcapng(data).packets) == 600
    assert [s.reachable for s in c.status(token="s3cret-Token.1").stores] == [True, True]

    # The CLI: --token-file, $NETREEL_TOKEN; without, one line and exit 1, no file.
    d = tmp_path / "out"
    d.mkdir()
    r = pcapdump(cli_bin, hub, "--dest", d, "--token-file", tok, expect=0)
    assert closing_line(r)[0] == 600
    only_file(d).unlink()
    pcapdump(cli_bin, hub, "--dest", d, env=ch.base_env(NETREEL_TOKEN="s3cret-Token.1"),
             expect=0)
    only_file(d).unlink()
    for env in (ch.base_env(), ch.base_env(NETREEL_TOKEN="wrong")):
        r = pcapdump(cli_bin, hub, "--dest", d, env=env, expect=1)
        assert "UNAUTHENTICATED" in ch.one_error_line(r) or "token" in ch.one_error_line(r)
        assert list(d.iterdir()) == []
        r = ch.run(cli_bin, "status", "--hub", hub.addr, env=env, expect=1)
        ch.one_error_line(r)
    ch.run(cli_bin, "status", "--hub", hub.addr, "--token-file", tok, env=ch.base_env(),
           expect=0)


# ---- --max-snapshots ---------------------------------------------------------------------------

def metric(hub, name, **labels):
    status, body, _ = sh.scrape(hub)
    assert status == 200, body
    return sh.metric_value(body, name, **labels)


def test_max_snapshots(stores, feeder, hubs, hub_client, silent_store, cli_bin, tmp_path):
    ss, fed, _ = feed_stores(stores, feeder, tmp_path, n=1, packets=300)
    quiet = silent_store()  # holds the running snapshots open for --store-timeout
    hub = hubs(f"{ss[0].addr},{quiet.addr}", "--max-snapshots", "2", "--store-timeout", "3s",
               metrics="127.0.0.1:0")
    assert sh.scrape(hub, "/healthz")[:2] == (200, "ok\n")
    c = hub_client(hub)
    with futures.ThreadPoolExecutor(max_workers=2) as ex:
        running = [ex.submit(c.snapshot) for _ in range(2)]
        deadline = time.monotonic() + 10
        while metric(hub, "netreel_hub_snapshots_active") < 2:
            assert time.monotonic() < deadline, "the two snapshots never ran at once"
            time.sleep(0.02)
        t = time.monotonic()
        with pytest.raises(grpc.RpcError) as e:
            c.snapshot()
        assert time.monotonic() - t < 1, "the third snapshot was not refused at once"
        assert e.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, e.value
        assert "--max-snapshots" in e.value.details(), e.value.details()
        r = pcapdump(cli_bin, hub, "-o", tmp_path / "x.pcapng", expect=1)
        assert "RESOURCE_EXHAUSTED" in ch.one_error_line(r) or \
            "max-snapshots" in ch.one_error_line(r)
        assert not (tmp_path / "x.pcapng").exists()
        results = [f.result(timeout=30) for f in running]
    for data, summary, _ in results:  # the running ones were served, without the silent store
        assert summary.packets == 300
        assert [s.ok for s in summary.stores] == [True, False]
    assert metric(hub, "netreel_hub_snapshots_active") == 0
    assert metric(hub, "netreel_hub_snapshots_total", result="refused_busy") == 2
    assert metric(hub, "netreel_hub_snapshots_total", result="partial") == 2
    # The slots are free again.
    _, summary, _ = c.snapshot()
    assert summary.packets == 300


# ---- stores that do not answer -------------------------------------------------------------------

def test_caller_gone_while_the_clocks_are_measured(stores, feeder, hubs, hub_client, silent_store,
                                                   tmp_path):
    """The caller gives up while the clock probe waits for a silent store: the snapshot and its
    probe end without touching each other after (a hub that freed the snapshot first used it
    again when the probe ended; ASan's run of this test saw it), and the hub serves on."""
    ss, _, _ = feed_stores(stores, feeder, tmp_path, n=1, packets=100)
    quiet = silent_store()
    hub = hubs(f"{ss[0].addr},{quiet.addr}", "--store-timeout", "2s")
    with pytest.raises(grpc.RpcError) as e:
        hub_client(hub).snapshot(timeout=0.3)
    assert e.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED, e.value
    time.sleep(1.0)  # the probe leaves the silent store out after a quarter of 2 s, and ends
    data, summary, _ = hub_client(hub).snapshot(clock=1)  # CLOCK_RAW: no probe
    assert summary.packets == 100, summary
    assert [s.ok for s in summary.stores] == [True, False], summary


def test_silent_store_left_out_after_timeout(stores, feeder, hubs, hub_client, silent_store,
                                             cli_bin, tmp_path):
    ss, fed, _ = feed_stores(stores, feeder, tmp_path, n=2, packets=1000)
    quiet = silent_store()
    hub = hubs(f"{ss[0].addr},{quiet.addr},{ss[1].addr}", "--store-timeout", "1500ms")
    d = tmp_path / "out"
    d.mkdir()
    t = time.monotonic()
    r = pcapdump(cli_bin, hub, "--dest", d, expect=0)
    took = time.monotonic() - t
    assert 1.5 <= took < 5, f"the snapshot took {took:.1f} s with --store-timeout 1500ms"
    f = wireshark_ok(only_file(d))
    assert sorted(by_interface(f)) == ["node-1/eth0", "node-2/eth0"]
    assert len(f.packets) == 2000 and not non_decreasing(f.packets)
    (w,) = warnings(r)
    assert quiet.addr in w, w
    assert closing_line(r)[2] == "2 of 3 nodes (node-1, node-2)", r.where()
    # Status: it is unreachable, for the same reason, after the same time.
    t = time.monotonic()
    st = hub_client(hub).status()
    assert time.monotonic() - t < 5
    assert [s.reachable for s in st.stores] == [True, False, True]
    assert st.stores[1].store == quiet.addr and st.stores[1].error, st.stores[1]
    r = ch.run(cli_bin, "status", "--hub", hub.addr, env=ch.base_env(), expect=3)
    assert quiet.addr in r.stdout, r.where()
    # The reason says how long the hub waited, as the flag said it.
    assert any(x in w for x in ("1.5s", "1.5 s", "1500ms", "1500 ms")), \
        f"the reason does not say how long the hub waited (--store-timeout 1500ms): {w!r}"


class StallingStore(FakeSnapshotStore):
    """netreel.v1.Store/Snapshot on grpcio: the header, one message of `count` packets at
    t0 + 500 + i*1000, then silence until the call is cancelled."""

    def __init__(self, pb, t0, count):
        self.t0, self.count = t0, count
        self.cancelled = threading.Event()
        super().__init__(pb)

    def Snapshot(self, req, ctx):
        pb = self.pb
        yield pb.StoreChunk(header=pb.WindowHeader(node="node-stall", interfaces=[
            pb.Interface(id=0, name="eth0", link_type=1, snaplen=65535, node="node-stall")]))
        yield pb.StoreChunk(blocks=b"".join(
            sh.epb(0, self.t0 + 500 + i * 1000, sh.frame(i, 100)) for i in range(self.count)))
        while ctx.is_active():
            time.sleep(0.05)
        self.cancelled.set()



def test_store_stalling_mid_stream_is_cut_off(stores, feeder, hubs, hub_client, hub_pb,
                                              tmp_path):
    (store,), (fed,), t0 = feed_stores(stores, feeder, tmp_path, n=1, packets=1000)
    stall = StallingStore(hub_pb, t0, 10)
    try:
        hub = hubs(f"{store.addr},{stall.addr}", "--store-timeout", "1s")
        t = time.monotonic()
        data, summary, _ = hub_client(hub).snapshot()
        took = time.monotonic() - t
        assert stall.cancelled.wait(10), "the hub did not cancel the stalled store's call"
    finally:
        stall.stop()
    assert 1 <= took < 4, f"{took:.1f} s with --store-timeout 1s"
    f = sh.parse_pcapng(data)
    assert not non_decreasing(f.packets), non_decreasing(f.packets)
    got = by_interface(f)
    assert len(got["node-1/eth0"]) == 1000
    # What it sent before it stalled is in the file (docs/hub.md).
    assert [k[0] for k in got["node-stall/eth0"]] == [t0 + 500 + i * 1000 for i in range(10)]
    assert summary.packets == 1010
    assert [(s.node, s.ok, s.packets) for s in summary.stores] == \
        [("node-1", True, 1000), ("node-stall", False, 10)]
    assert "1 s" in summary.stores[1].error or "1s" in summary.stores[1].error, summary.stores[1]


# ---- dns: entries --------------------------------------------------------------------------------

def test_dns_entries_resolve_to_every_address_for_every_request(lab, hubs, cli_bin, tmp_path):
    net = lab.netns(with_b=False)
    ns = net.a
    for key in ("all", "default", "lo"):  # ::1 on the namespace's loopback
        run([IP, "netns", "exec", ns, "sysctl", "-q", "-w", f"net.ipv6.conf.{key}.disable_ipv6=0"])
    etc = NetnsEtc(ns)  # before anything runs in ns: `ip netns exec` binds it at start
    try:
        name, port = "stores.netreel.test", STORE_PORT
        addrs = {"node-a": "127.0.0.2", "node-b": "127.0.0.3", "node-c": "::1"}
        ss = {}
        for node, a in addrs.items():
            listen = f"[{a}]:{port}" if ":" in a else f"{a}:{port}"
            s = start_store(lab.store_bins, ns, tmp_path / f"data-{node}",
                            tmp_path / f"store-{node}.stderr", port, "--listen", listen,
                            "--node", node)
            lab.stores.append(s)
            r, obj = sh.run_tool([IP, "netns", "exec", ns, lab.store_bins.feeder, "--store",
                                  listen, "--capture-id", f"cap-{node}", "--node", node,
                                  "--packets", 100, "--ts-start",
                                  (sh.now_ns() // NS - 300) * NS + len(ss) * 100])
            assert r.returncode == 0 and obj["acked_seq"] == obj["last_seq"], r.stderr
            ss[node] = listen
        gone = f"127.0.0.4:{port}"  # listed, nothing listens there
        etc.write_hosts([("127.0.0.2", name), ("127.0.0.3", name), ("::1", name),
                         ("127.0.0.4", name)])
        hub = hubs(f"dns:{name}:{port},dns:nothere.netreel.test:{port}", ns=ns)
        d = tmp_path / "one"
        d.mkdir()
        r = pcapdump(cli_bin, hub, "--dest", d, ns=ns, expect=0)
        f = wireshark_ok(only_file(d))
        assert sorted(by_interface(f)) == ["node-a/eth0", "node-b/eth0", "node-c/eth0"], \
            f.interfaces
        assert len(f.packets) == 300 and not non_decreasing(f.packets)
        w = warnings(r)
        assert len(w) == 2, r.where()
        assert any(gone in x for x in w), f"{gone} (refused) is not named: {w}"
        assert any("nothere.netreel.test" in x and "resolve" in x for x in w), \
            f"the name that does not resolve is not named: {w}"
        assert closing_line(r)[2].startswith("3 of 5 nodes ("), r.where()
        r = pcapdump(cli_bin, hub, "--strict", "-o", d / "strict.pcapng", ns=ns, expect=3)

        # The records change: the next request sees the new set.
        etc.write_hosts([("127.0.0.2", name), ("::1", name)])
        d = tmp_path / "two"
        d.mkdir()
        r = pcapdump(cli_bin, hub, "--dest", d, ns=ns, expect=0)
        f = wireshark_ok(only_file(d))
        assert sorted(by_interface(f)) == ["node-a/eth0", "node-c/eth0"], f.interfaces
        (w,) = warnings(r)
        assert "nothere.netreel.test" in w, w
        text = closing_line(r)[2]  # the stores in the order of the records (::1 first)
        assert text in ("2 of 3 nodes (node-a, node-c)", "2 of 3 nodes (node-c, node-a)"), \
            r.where()
        r = ch.run(IP, "netns", "exec", ns, cli_bin, "status", "--all", "--hub", hub.addr,
                   env=ch.base_env(), expect=3)
        rows = sorted(ln.split()[:3] for ln in r.stdout.splitlines()[1:])
        assert rows == [["?", f"dns:nothere.netreel.test:{port}", "UNREACHABLE:"],
                        ["node-a", ss["node-a"], "ok"], ["node-c", ss["node-c"], "ok"]], \
            r.where()
    finally:
        etc.close()


def test_dns_answer_larger_than_udp_holds(lab, hubs, cli_bin, tmp_path):
    """A headless Service of a thousand nodes: its A records do not fit a UDP answer, so the
    resolver is told to ask again over TCP (TC), and the hub gets all of them -- a thousand
    stores for one dns: entry, each asked (here none listens, so each is unreachable at once)."""
    net = lab.netns(with_b=False)
    ns = net.a
    etc = NetnsEtc(ns)  # the resolver points at 127.0.0.1 of ns, where dns-big.py answers
    n, port = 1000, STORE_PORT
    dns = subprocess.Popen([IP, "netns", "exec", ns, "/usr/bin/python3",
                            str(Path(__file__).parents[1] / "bin" / "dns-big.py"),
                            "big.netreel.test", str(n)],
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
    try:
        assert dns.stdout.readline().strip() == "ready", dns.stderr.read()
        hub = hubs(f"dns:big.netreel.test:{port}", ns=ns)
        r = ch.run(IP, "netns", "exec", ns, cli_bin, "status", "-o", "json", "--hub", hub.addr,
                   env=ch.base_env(), timeout=120, expect=3)
        doc = json.loads(r.stdout)
        want = {f"127.77.{k // 250}.{k % 250 + 1}:{port}" for k in range(n)}
        assert doc["nodes"] == n and {s["store"] for s in doc["stores"]} == want, \
            f"{doc['nodes']} stores: {r.stderr}"
        assert doc["unreachable"] == n and all("refused" in s["error"] for s in doc["stores"])
    finally:
        dns.terminate()
        _, err = dns.communicate(timeout=10)
        etc.close()
    assert "tcp=" in err and "tcp=0" not in err, f"no query came over TCP: {err}"


# ---- flags -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("args,words", [
    ([], ["--stores"]),
    (["--stores", "127.0.0.1:8897", "--bogus"], ["--bogus"]),
    (["--stores"], ["--stores"]),
    # A bad --stores entry: the flag and the entry as written are named.
    (["--stores", "127.0.0.1"], ["--stores", "127.0.0.1"]),
    (["--stores", "127.0.0.1:0"], ["--stores", "127.0.0.1:0"]),
    (["--stores", "a:1,host:99999"], ["--stores", "host:99999"]),
    (["--stores", "dns:onlyname"], ["--stores", "dns:onlyname"]),
    (["--stores", "a:1,dns::8897"], ["--stores", "dns::8897"]),
    (["--stores", "a:1", "--max-snapshots", "0"], ["--max-snapshots"]),
    (["--stores", "a:1", "--max-snapshots", "many"], ["--max-snapshots"]),
    (["--stores", "a:1", "--store-timeout", "5x"], ["--store-timeout"]),
    (["--stores", "a:1", "--store-timeout", "10ms"], ["--store-timeout"]),
    (["--stores", "a:1", "--store-idle-timeout", "soon"], ["--store-idle-timeout"]),
    (["--stores", "a:1", "--store-idle-timeout", "10ms"], ["--store-idle-timeout"]),
    (["--stores", "a:1", "--tls-cert", "/x.pem"], ["--tls-key"]),
    (["--stores", "a:1", "--store-tls-key", "/x.key"], ["--store-tls-cert"]),
    (["--stores", "a:1", "--token-file", "/nonexistent/token"], ["/nonexistent/token"]),
    (["--stores", "a:1", "--log-level", "loud"], ["--log-level"]),
    (["--stores", "a:1", "--listen", "127.0.0.1:notaport"], ["notaport"]),
    (["--stores", "a:1", "surplus"], ["surplus"]),
])
def test_bad_flags(hub_bin, args, words):
    r = ch.run(hub_bin, "--metrics-listen", "off", *args, env=ch.base_env(), expect=2,
               timeout=20)
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("netreel-hub: "), r.where()
    assert all(w in lines[0] for w in words), f"want {words} named: {r.where()}"
    assert r.stdout == "", r.where()


def test_empty_token_file_and_help(hub_bin, tmp_path):
    (tmp_path / "t").write_text(" \n")
    r = ch.run(hub_bin, "--stores", "a:1", "--token-file", tmp_path / "t", env=ch.base_env(),
               expect=2)
    assert "empty" in r.stderr and len(r.stderr.splitlines()) == 1, r.where()
    r = ch.run(hub_bin, "--help", env=ch.base_env(), expect=0)
    assert r.stdout.startswith("usage: netreel-hub") and r.stderr == ""
    assert ch.run(hub_bin, "--version", env=ch.base_env(), expect=0).stdout.startswith(
        "netreel-hub ")


# ---- --format pcap with two link types ---------------------------------------------------------------

def test_pcap_refused_for_mixed_link_types(lab, hubs, hub_client, cli_bin, tmp_path):
    nodes = [Node(lab, "node-1"), Node(lab, "node-2")]
    for n in nodes:
        n.start_store()
    caps = [nodes[0].start_capture(iface="any"), nodes[1].start_capture()]
    for n in nodes:
        UdpReceiver(lab, n.net.a, read=False)
        send_udp(lab, n.net.b, range(50), pps=2000)
    for c in caps:  # the datagrams batched (ring and batch time) and stored
        wait_drained(c, packets=50)
    hub = hubs(",".join(n.store_addr for n in nodes))

    d = tmp_path / "out"
    d.mkdir()
    r = pcapdump(cli_bin, hub, "--time=1m", "--format", "pcap", "--dest", d, expect=1)
    line = ch.one_error_line(r)
    assert "link type" in line and "pcapng" in line, line
    assert list(d.iterdir()) == [], list(d.iterdir())
    with pytest.raises(grpc.RpcError) as e:
        hub_client(hub).snapshot(since_ns=sh.now_ns() - 60 * NS, format=1)
    assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION, e.value
    msg = e.value.details()

    # pcapng holds both.
    r = pcapdump(cli_bin, hub, "--time=1m", "--dest", d, expect=0)
    f = wireshark_ok(only_file(d))
    # `-i any` is one interface per device (docs/capture.md): node-1's datagrams came in on its
    # end of the veth pair.
    names = [i.name for i in f.interfaces]
    assert f"node-1/{nodes[0].net.iface}" in names and "node-1/any" not in names, names
    assert names[-1] == f"node-2/{nodes[1].net.iface}", names
    cooked = {i.link_type for i in f.interfaces if i.name.startswith("node-1/")}
    eth = f.interfaces[-1].link_type
    assert eth == 1 and cooked == {276}, f.interfaces
    # The message names both link types and the way out.
    assert "276" in msg and f"{eth}" in msg and "pcapng" in msg, msg
    for node in ("node-1/", "node-2/"):
        got = [p for p in f.packets if f.interfaces[p.ifid].name.startswith(node)]
        # The cooked header (LINUX_SLL2: 20 bytes) in front of the IP packet.
        frames = [b"\0" * 12 + b"\x08\x00" + p.data[20:] if f.interfaces[p.ifid].link_type == 276
                  else p.data for p in got]
        seqs = sorted(s for _, s, _ in udp_datagrams([sh.Packet(0, 0, 0, 0, x) for x in frames]))
        assert seqs == list(range(50)), f"{node}: {seqs[:10]}..."


def test_one_snaplen_for_every_interface(lab, hubs, cli_bin, tmp_path):
    # Nodes recording with different --snaplen (or `tls`, which keeps 262144): the file's IDBs
    # all say the largest, as libpcap-based readers refuse a file whose interfaces differ in it,
    # and each node's packets stay as it cut them.
    nodes = [Node(lab, "node-1"), Node(lab, "node-2")]
    for n in nodes:
        n.start_store()
    caps = [nodes[0].start_capture("--snaplen", "96"), nodes[1].start_capture("--snaplen", "4000")]
    for n in nodes:
        UdpReceiver(lab, n.net.a, read=False)
        send_udp(lab, n.net.b, range(30), pps=2000, sizes=[1000] * 30)
    for c in caps:
        wait_drained(c, packets=30)
    hub = hubs(",".join(n.store_addr for n in nodes))
    d = tmp_path / "out"
    d.mkdir()
    pcapdump(cli_bin, hub, "--time=1m", "--dest", d, expect=0)
    path = only_file(d)
    f = wireshark_ok(path)
    assert {i.snaplen for i in f.interfaces} == {4000}, f.interfaces
    caplen = {n: {p.caplen for p in f.packets if f.interfaces[p.ifid].name.startswith(n)}
              for n in ("node-1/", "node-2/")}
    assert max(caplen["node-1/"]) == 96 and max(caplen["node-2/"]) > 1000, caplen
    # tcpdump (libpcap) reads every packet of it.
    r = subprocess.run(["tcpdump", "-nr", str(path)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert len(r.stdout.splitlines()) == len(f.packets), r.stderr
