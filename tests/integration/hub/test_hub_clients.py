"""Clients of the hub other than a file on disk (issue 5, "What must hold", fourth point;
docs/design.md §1, §3): `netreel pcapdump -o - | tshark -r -`, and a stock grpcio client (stubs from
proto/ generated at test time) calling Hub.Snapshot, Hub.Status and grpc.health.v1.Health.

Three stores filled by store-feeder with interleaved timestamps (store k's packets at
t0 + k*333 + i*1000 ns), so the content of any window is known exactly.

  * the pipe: tshark reads the stream from stdin without a warning, every packet of every node;
    pcapdump's closing line goes to stderr; both exit 0;
  * Hub.Snapshot from grpcio: the file's bytes in FileChunks, the summary only in the last
    one (packets, the file's bytes, the window, every store ok with its node and packets); a
    window cut to the nanosecond; PCAP format; byte for byte what `netreel pcapdump` writes
    for the same window;
  * Hub.Status from grpcio: each store's Stats exactly as the store itself answers them, and a
    store that is down as unreachable with the reason; `netreel status` says the same.
"""

import subprocess

import pytest

import cli_helpers as ch
import store_helpers as sh
from cli_helpers import cli_bin, hub_pb  # noqa: F401 (fixtures)
from hub_helpers import (NS, SCALE, by_interface, feed_stores, hub_bin, hub_client,  # noqa: F401
                         hubs, non_decreasing, pcapdump, rfc3339, store_list)

N = int(6000 * SCALE)


@pytest.fixture
def three(stores, feeder, hubs, tmp_path):
    ss, fed, t0 = feed_stores(stores, feeder, tmp_path, n=3, packets=N)
    hub = hubs(store_list(ss))
    # Store k's packet i is at t0 + k*333 + i*1000 (k from 0).
    ts = {f"node-{k + 1}/eth0": [t0 + k * 333 + i * 1000 for i in range(N)] for k in range(3)}
    return ss, fed, t0, hub, ts


def test_stdout_into_tshark(three, cli_bin, tmp_path):
    ss, fed, t0, hub, ts = three
    err = tmp_path / "cli.stderr"
    with open(err, "wb") as ef:
        cli = subprocess.Popen([str(cli_bin.resolve()), "pcapdump", "--hub", hub.addr, "-o", "-"],
                               stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=ef,
                               env=ch.base_env(), cwd=tmp_path)
    tsh = subprocess.Popen(["tshark", "-n", "-r", "-", "-T", "fields", "-e", "frame.time_epoch",
                            "-e", "frame.interface_name"], stdin=cli.stdout,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    cli.stdout.close()
    try:
        out, terr = tsh.communicate(timeout=120)
        cli.wait(60)
    finally:
        for p in (cli, tsh):
            if p.poll() is None:
                p.kill()
                p.wait(10)
    text = err.read_text(errors="replace")
    ch.check_sanitizer(text, "netreel pcapdump -o -")
    assert cli.returncode == 0, f"pcapdump exit {cli.returncode}: {text}"
    assert tsh.returncode == 0, f"tshark -r - exit {tsh.returncode}: {terr}"
    warn = [ln for ln in terr.splitlines() if ln.strip() and ln.strip() != sh.TSHARK_ROOT_LINE]
    assert not warn, f"tshark -r - warns: {warn}"
    rows = [ln.split("\t") for ln in out.splitlines()]
    assert len(rows) == 3 * N, f"tshark read {len(rows)} packets of {3 * N}"
    for name, want in ts.items():
        got = [r[0] for r in rows if r[1] == name]
        assert got == [f"{t // NS}.{t % NS:09d}" for t in want], f"{name}: {len(got)} packets"
    # Nothing but the closing line on stderr (not a terminal: no progress line).
    lines = text.splitlines()
    assert len(lines) == 1 and f": {3 * N} packets," in lines[0], text
    assert lines[0].endswith("3 nodes (node-1, node-2, node-3)"), text
    assert list(tmp_path.glob("netreel-*")) == []


def test_grpcio_snapshot(three, hub_client, hub_pb, cli_bin, tmp_path):
    ss, fed, t0, hub, ts = three
    c = hub_client(hub)
    data, summary, n = c.snapshot()
    assert n > 1, "the file came in one message"
    f = sh.parse_pcapng(data, "Hub.Snapshot")
    assert not non_decreasing(f.packets), non_decreasing(f.packets)
    assert {k: [p[0] for p in v] for k, v in by_interface(f).items()} == ts
    assert (summary.packets, summary.bytes) == (3 * N, len(data))
    assert summary.since_ns == t0 and summary.until_ns > t0 + N * 1000, summary
    assert [(s.store, s.node, s.ok, s.error, s.packets) for s in summary.stores] == \
        [(s.addr, f"node-{k + 1}", True, "", N) for k, s in enumerate(ss)]

    # A window cut at the nanosecond, in PCAPNG and in PCAP.
    lo, hi = t0 + 1000 * (N // 3), t0 + 1000 * (2 * N // 3) + 333
    want = sorted(t for v in ts.values() for t in v if lo <= t <= hi)
    data, summary, _ = c.snapshot(since_ns=lo, until_ns=hi)
    f = sh.parse_pcapng(data, "Hub.Snapshot window")
    assert [p.ts_ns for p in f.packets] == want
    assert (summary.since_ns, summary.until_ns, summary.packets) == (lo, hi, len(want))
    # `netreel pcapdump` writes the very same bytes for the same window.
    out = tmp_path / "cli.pcapng"
    pcapdump(cli_bin, hub, "--since", rfc3339(lo), "--until", rfc3339(hi), "-o", out, expect=0)
    assert out.read_bytes() == data, "pcapdump's file differs from Hub.Snapshot's bytes"

    pcap, summary, _ = c.snapshot(since_ns=lo, until_ns=hi,
                                  format=hub_pb.Format.Value("FORMAT_PCAP"))
    assert pcap[:4] == bytes.fromhex("4d3cb2a1") and summary.packets == len(want)
    out = tmp_path / "grpc.pcap"
    out.write_bytes(pcap)
    assert sh.tcpdump_timestamps(out, "") == want

    # Health: the hub's service is SERVING to a stock probe.
    hpb = hub_pb.health
    import grpc
    ch_ = grpc.insecure_channel(hub.addr)
    try:
        check = ch_.unary_unary("/grpc.health.v1.Health/Check",
                                hpb.HealthCheckRequest.SerializeToString,
                                hpb.HealthCheckResponse.FromString)
        for svc in ("", "netreel.v1.Hub"):
            assert check(hpb.HealthCheckRequest(service=svc), timeout=10).status == \
                hpb.HealthCheckResponse.SERVING, svc
    finally:
        ch_.close()


def test_grpcio_status(three, hub_client, store_client, cli_bin):
    ss, fed, t0, hub, ts = three
    c = hub_client(hub)
    st = c.status()
    assert [s.store for s in st.stores] == [s.addr for s in ss]
    for k, (s, store) in enumerate(zip(st.stores, ss)):
        assert s.reachable and s.error == "", s
        direct = store_client(store).stats()
        assert s.stats == direct, f"{store.addr}: the hub says\n{s.stats}\nthe store says\n{direct}"
        assert (s.stats.node, s.stats.packets, s.stats.oldest_ns) == \
            (f"node-{k + 1}", N, t0 + k * 333)
    r = ch.run(cli_bin, "status", "--all", "--hub", hub.addr, env=ch.base_env(), expect=0)
    rows = r.stdout.splitlines()[1:]
    assert [ln.split()[:3] for ln in rows] == \
        [[f"node-{k + 1}", s.addr, "ok"] for k, s in enumerate(ss)], r.where()

    # A store that is down: unreachable, with the reason; status exits 3.
    ss[2].kill9()
    st = c.status()
    assert [s.reachable for s in st.stores] == [True, True, False]
    assert "connection refused" in st.stores[2].error, st.stores[2]
    r = ch.run(cli_bin, "status", "-o", "wide", "--hub", hub.addr, env=ch.base_env(), expect=3)
    assert "UNREACHABLE" in r.stdout.splitlines()[-1] and ss[2].addr in r.stdout, r.where()
    # The summary leads with the totals and names it among the nodes that need attention.
    r = ch.run(cli_bin, "status", "--hub", hub.addr, env=ch.base_env(), expect=3)
    assert r.stdout.startswith("3 nodes: 2 ok, 1 unreachable\n"), r.where()
    (att,) = [ln for ln in r.stdout.splitlines() if "UNREACHABLE" in ln]
    assert ss[2].addr in att and "node-3" in att, r.where()
