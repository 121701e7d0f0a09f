"""The hub against many stores in one process (tests/integration/bin/store-sim.c).

store-sim serves Store.Snapshot and Store.Stats for N synthetic nodes on N ports, their packets
interleaved packet by packet (node k's packet i at t0 + (i*N + k)*step), so the merge takes
turns among all of them -- the way to try the hub at hundreds or thousands of nodes without as
many processes (bench/hub-scale.sh). Here, 32 nodes: `netreel pcapdump` through a hub brings
back every packet once, in time order, with one interface per node; `netreel status` lists every
node; the simulator itself keeps to a store's protocol (window, snaplen, message size, no
filter); and with 1024 nodes the hub's memory is its budget's, not the store count's, and four
snapshots at once fit the memory limit the chart gives the hub; the connections snapshots leave
are closed after --store-idle-timeout.
"""

import os
import re
import shutil
import signal
import struct
import subprocess
import time
from pathlib import Path

import pytest

import cli_helpers as ch
import store_helpers as sh
from cli_helpers import cli_bin  # noqa: F401 (fixture)
from hub_helpers import ASAN, closing_line, hub_bin, hubs  # noqa: F401 (fixtures)

N = 32
PACKETS = 300
STEP = 1000


class Sim:
    def __init__(self, build_dir, tmp_path, n, packets, *args):
        self.ports_file = tmp_path / "sim.ports"
        self.stderr_path = tmp_path / "sim.stderr"
        argv = [str(build_dir / "tests" / "store-sim"), "--stores", str(n), "--packets",
                str(packets), "--ts-step", str(STEP), "--ports-file", str(self.ports_file),
                *map(str, args)]
        with open(self.stderr_path, "wb") as e:
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                         stdout=subprocess.DEVNULL, stderr=e)
        deadline = time.monotonic() + 60
        while not self.ports_file.exists():
            assert self.proc.poll() is None, f"store-sim exited: {self.stderr_path.read_text()}"
            assert time.monotonic() < deadline, "store-sim wrote no ports file within 60 s"
            time.sleep(0.05)
        self.addrs = self.ports_file.read_text().split()
        assert len(self.addrs) == n, self.addrs

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
                return "store-sim did not exit within 30 s of SIGTERM"
        if self.proc.returncode != 0:
            return f"store-sim exited {self.proc.returncode}: {self.stderr_path.read_text()}"
        return None


@pytest.fixture
def sim(build_dir, tmp_path):
    made = []

    def start(n=N, packets=PACKETS, *args):
        s = Sim(build_dir, tmp_path, n, packets, *args)
        made.append(s)
        return s

    yield start
    problems = [p for p in (s.stop() for s in made) if p]
    assert not problems, problems


def ids(pkts):
    return [struct.unpack_from("<QQ", p.data, 42) for p in pkts]


def test_every_packet_of_many_nodes_once_in_time_order(sim, hubs, cli_bin, tmp_path):
    s = sim()
    hub = hubs(",".join(s.addrs))
    out = tmp_path / "all.pcapng"
    res = ch.run(cli_bin, "pcapdump", "--hub", hub.addr, "-o", out, env=ch.base_env(),
                 timeout=120, expect=0)
    packets, nbytes, _ = closing_line(res)
    assert packets == N * PACKETS, res.where()
    f = sh.read_pcapng(out)
    got = ids(f.packets)
    assert len(got) == N * PACKETS and len(set(got)) == N * PACKETS, "a packet missing or twice"
    assert set(got) == {(k, i) for k in range(N) for i in range(PACKETS)}
    ts = [p.ts_ns for p in f.packets]
    assert ts == sorted(ts), "the merge is not in time order"
    # Interleaved: consecutive packets come from consecutive nodes, every node taking turns.
    assert [k for k, _ in got[:N]] == list(range(N)), got[:N]
    assert sorted(i.name for i in f.interfaces) == sorted(f"sim-{k}/eth0" for k in range(N))
    assert nbytes == out.stat().st_size

    st = ch.run(cli_bin, "status", "--all", "--hub", hub.addr, env=ch.base_env(), timeout=60,
                expect=0)
    rows = [ln for ln in st.stdout.splitlines() if ln.startswith("sim-")]
    assert len(rows) == N and all(" ok " in ln for ln in rows), st.where()


def test_sim_keeps_to_the_store_protocol(sim, store_client, tmp_path):
    # A window, a snaplen; a filter is refused rather than ignored.
    s = sim(2, 50)
    port = int(s.addrs[1].rsplit(":", 1)[1])
    client = store_client(type("S", (), {"port": port})())
    stats = client.stats()
    assert stats.node == "sim-1" and stats.packets == 50
    first, last = stats.oldest_ns, stats.newest_ns
    assert last - first == 49 * 2 * STEP
    snap = client.snapshot(since_ns=first + 10 * 2 * STEP, until_ns=first + 19 * 2 * STEP,
                           snaplen=60)
    assert [i for _, i in ids(snap.packets)] == list(range(10, 20))
    assert all(p.caplen == 60 and p.origlen == 128 for p in snap.packets)
    assert snap.summary.packets == 10 and snap.header.node == "sim-1"
    import grpc
    with pytest.raises(grpc.RpcError) as e:
        client.snapshot(filter="udp")
    assert e.value.code() == grpc.StatusCode.UNIMPLEMENTED


@pytest.mark.skipif(ASAN, reason="ASan's shadow memory and quarantine are no measure of RSS")
def test_hub_memory_is_the_budget_not_the_store_count(sim, hubs, cli_bin, tmp_path):
    # 1024 stores, 160 KB each: without a budget the hub held what every store sent ahead of the
    # merge, all of it here (about 260 MiB). With --memory-budget 32MiB for one snapshot, each store is
    # asked for 8 KiB messages and given a 16 KiB window: the hub's peak stays near its
    # connections' cost, and every packet still comes back in time order.
    n, per = 1024, 1000
    s = sim(n, per)
    hub = hubs(",".join(s.addrs), "--memory-budget", "32MiB", "--max-snapshots", "1")
    # The file goes to stdout, thrown away here (160 MB); the closing line comes on stderr.
    r = subprocess.run([str(cli_bin), "pcapdump", "--hub", hub.addr, "-o", "-"],
                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE, env=ch.base_env(), timeout=300)
    err = r.stderr.decode(errors="replace")
    assert r.returncode == 0, err
    m = re.search(r": (\d+) packets, ", err)
    assert m and int(m.group(1)) == n * per, err
    hwm_mib = hub.vm_hwm_kib() / 1024
    assert hwm_mib < 100, f"hub peak RSS {hwm_mib:.1f} MiB with 1024 stores"
    # Status of all of them in one answer: the totals, nobody needing attention.
    import json
    st = ch.run(cli_bin, "status", "-o", "json", "--hub", hub.addr, env=ch.base_env(),
                timeout=60, expect=0)
    doc = json.loads(st.stdout)
    assert (doc["nodes"], doc["ok"], doc["attention"]) == (n, n, []), st.where()
    assert doc["packets"] == n * per, st.where()


def snapshots_at_once(cli_bin, hub, count, packets, timeout=300):
    """`count` pcapdumps of the whole window through hub at once: each must exit 0 with
    `packets` packets."""
    procs = [subprocess.Popen([str(cli_bin), "pcapdump", "--hub", hub.addr, "-o", "-"],
                              stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, env=ch.base_env()) for _ in range(count)]
    for p in procs:
        _, err = p.communicate(timeout=timeout)
        err = err.decode(errors="replace")
        assert p.returncode == 0, err
        m = re.search(r": (\d+) packets, ", err)
        assert m and int(m.group(1)) == packets, err


def sockets(proc):
    """The sockets a process holds open."""
    fds = Path(f"/proc/{proc.pid}/fd")
    n = 0
    for fd in fds.iterdir():
        try:
            n += os.readlink(fd).startswith("socket:")
        except FileNotFoundError:  # closed while we looked
            pass
    return n


def hub_conns(hub):
    _, body, _ = sh.scrape(hub)
    return tuple(int(sh.metric_value(body, "netreel_hub_store_connections", state=st))
                 for st in ("in_use", "idle"))


def wait_conns(hub, want, within):
    """Until the hub's store connections (in use, idle) are `want`, for `within` seconds."""
    deadline = time.monotonic() + within
    while hub_conns(hub) != want:
        assert time.monotonic() < deadline, f"connections {hub_conns(hub)} (in use, idle)" \
                                            f" after {within} s, want {want}"
        time.sleep(0.05)


@pytest.mark.skipif(ASAN, reason="ASan's shadow memory and quarantine are no measure of RSS")
@pytest.mark.parametrize("tls", [False, True], ids=["plaintext", "mtls"])
def test_concurrent_snapshots_fit_the_charts_limit(sim, hubs, cli_bin, certs, tls):
    # --max-snapshots (4) snapshots of 1024 stores at once, each on connections of its own: every
    # one complete, and the hub's peak within what the chart gives it for 1024 nodes (64MiB +
    # maxSnapshots x nodes x 32KiB, 64KiB with TLS, + the budget, docs/deploy.md). (The chart
    # counted one connection per store before: 224 MiB, which four snapshots passed; then 32KiB
    # with TLS too: 320 MiB, which four snapshots over mutual TLS passed, at 338 MiB.)
    n, per, k = 1024, 2000, 4
    s = sim(n, per, *(["--tls-cert", certs.server_cert, "--tls-key", certs.server_key,
                       "--tls-ca", certs.ca] if tls else []))
    hub = hubs(",".join(s.addrs), "--max-snapshots", str(k),
               *(["--store-tls-ca", certs.ca, "--store-tls-cert", certs.client_cert,
                  "--store-tls-key", certs.client_key] if tls else []))
    snapshots_at_once(cli_bin, hub, k, n * per)
    limit_mib = 64 + k * n * (64 if tls else 32) / 1024 + 128
    hwm_mib = hub.vm_hwm_kib() / 1024
    print(f"hub VmHWM {hwm_mib:.1f} MiB")
    assert hwm_mib < limit_mib, f"hub peak RSS {hwm_mib:.1f} MiB, the chart gives {limit_mib:.0f}"


def test_every_packet_when_the_calls_open_the_connections(sim, hubs, cli_bin, tmp_path):
    # `--clock raw` skips the clock probe, so the snapshot's calls are the first on their
    # connections, 600 dialled 256 at a time: a store's SETTINGS and its ACK of the hub's often
    # arrive apart. A call started between the two opened its stream with HTTP/2's default window,
    # the ACK then took the hub's smaller initial window off it, and the store waited for a
    # WINDOW_UPDATE that never came: stores left out after --store-timeout, header and all.
    n, per = 600, 300
    s = sim(n, per)
    hub = hubs(",".join(s.addrs), "--store-timeout", "3s")
    res = ch.run(cli_bin, "pcapdump", "--hub", hub.addr, "--clock", "raw", "-o",
                 tmp_path / "raw.pcapng", env=ch.base_env(), timeout=120, expect=0)
    assert "MISSING" not in res.stderr and "CUT SHORT" not in res.stderr, res.stderr[-2000:]
    assert closing_line(res)[0] == n * per, res.where()


def test_a_caller_that_goes_leaves_no_store_warnings(sim, hubs, cli_bin):
    # The reader of a 256-store snapshot goes after its first 100 KB (as `| head -c` does): the
    # hub cancels the 256 store calls. That is not the stores' doing: one line says the snapshot
    # ended early, not one warning per store.
    n, per = 256, 2000
    s = sim(n, per)
    hub = hubs(",".join(s.addrs))
    p = subprocess.Popen([str(cli_bin), "pcapdump", "--hub", hub.addr, "-o", "-"],
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL, env=ch.base_env())
    assert len(p.stdout.read(100_000)) == 100_000
    p.stdout.close()
    p.wait(30)
    deadline = time.monotonic() + 10
    while "snapshot ended early" not in hub.stderr():
        assert time.monotonic() < deadline, hub.stderr()[-2000:]
        time.sleep(0.1)
    time.sleep(0.5)
    left_out = [ln for ln in hub.stderr().splitlines() if "store left out" in ln]
    assert not left_out, f"{len(left_out)} warnings: {left_out[:3]}"


def test_stores_over_mutual_tls(sim, hubs, cli_bin, certs, tmp_path):
    # As the chart deploys it: mutual TLS between the hub and every store. 512 stores: every
    # packet back, within the memory a store connection costs with TLS (one TLS context shared
    # by all of them, no copy of what was read kept per connection: 154 MiB at 1024 stores
    # before, 97 after). Once the idle connections are closed (--store-idle-timeout 1s) the next
    # snapshot resumes each store's TLS session. Then the CA file the hub verifies the stores with
    # is replaced by an unrelated one: new connections load it (sessions made under the old one
    # are not resumed), and no store verifies any more.
    n, per = 512, 1000
    ca = tmp_path / "hub-ca.pem"
    shutil.copyfile(certs.ca, ca)
    s = sim(n, per, "--tls-cert", certs.server_cert, "--tls-key", certs.server_key,
            "--tls-ca", certs.ca)
    hub = hubs(",".join(s.addrs), "--store-tls-ca", ca, "--store-tls-cert", certs.client_cert,
               "--store-tls-key", certs.client_key, "--store-idle-timeout", "1s",
               metrics="127.0.0.1:0")
    res = ch.run(cli_bin, "pcapdump", "--hub", hub.addr, "-o", tmp_path / "tls.pcapng",
                 env=ch.base_env(), timeout=120, expect=0)
    assert "MISSING" not in res.stderr and closing_line(res)[0] == n * per, res.where()
    hwm_mib = hub.vm_hwm_kib() / 1024
    print(f"hub VmHWM {hwm_mib:.1f} MiB")
    assert ASAN or hwm_mib < 96, f"hub peak RSS {hwm_mib:.1f} MiB for {n} stores over TLS"

    def handshakes(kind):
        _, body, _ = sh.scrape(hub)
        return sh.metric_value(body, "netreel_hub_store_tls_handshakes_total", kind=kind)

    # The connections closed, the next snapshot resumes the sessions the stores gave (TLS 1.3
    # tickets): no certificates, no signatures. (A slow first snapshot, under ASan, may have
    # resumed a few already: a store whose probe call ended a second before the snapshot's
    # calls started had its connection closed as idle in between.)
    wait_conns(hub, (0, 0), 15)
    full, resumed = handshakes("full"), handshakes("resumed")
    assert full >= n and resumed < n / 8, (full, resumed)
    res = ch.run(cli_bin, "pcapdump", "--hub", hub.addr, "-o", tmp_path / "again.pcapng",
                 env=ch.base_env(), timeout=120, expect=0)
    assert "MISSING" not in res.stderr and closing_line(res)[0] == n * per, res.where()
    assert handshakes("resumed") - resumed >= n and handshakes("full") == full

    shutil.copyfile(certs.other_ca, ca)
    wait_conns(hub, (0, 0), 15)
    res = ch.run(cli_bin, "pcapdump", "--hub", hub.addr, "-o", tmp_path / "none.pcapng",
                 env=ch.base_env(), timeout=120)
    missing = [ln for ln in res.stderr.splitlines() if "MISSING" in ln]
    assert len(missing) == n and all("TLS handshake failed" in ln for ln in missing), \
        res.where()


def test_idle_store_connections_are_closed(sim, hubs, cli_bin):
    # Three snapshots at once leave a connection per store for each (each snapshot has its own).
    # With --store-idle-timeout 4s the extra ones go after an eighth of it (0.5 s), one per store
    # is kept for the next snapshot until the 4 s are up, then the hub's sockets are back to what
    # it had before any; the next snapshot dials again and gets every packet. With 0 they stay.
    n, per, k = 64, 300, 3
    s = sim(n, per)
    closing = hubs(",".join(s.addrs), "--store-idle-timeout", "4s", metrics="127.0.0.1:0")
    keeping = hubs(",".join(s.addrs), "--store-idle-timeout", "0", metrics="127.0.0.1:0")
    before = {h: sockets(h) for h in (closing, keeping)}

    for h in (closing, keeping):
        snapshots_at_once(cli_bin, h, k, n * per, timeout=120)
    t = time.monotonic()
    left = hub_conns(keeping)
    assert left[0] == 0 and left[1] > n, left  # more than one a store: the snapshots overlapped
    wait_conns(closing, (0, n), 3)
    assert time.monotonic() - t < 3.5, "the last connection of each store went with the extras"
    wait_conns(closing, (0, 0), 8)
    deadline = time.monotonic() + 5  # (the scrape's own connection is closing)
    while sockets(closing) != before[closing]:
        assert time.monotonic() < deadline, f"{sockets(closing)} sockets, {before[closing]} before"
        time.sleep(0.05)
    assert hub_conns(keeping) == left, "--store-idle-timeout 0 closed connections"
    assert sockets(keeping) >= before[keeping] + left[1]
    snapshots_at_once(cli_bin, closing, 1, n * per, timeout=120)
    assert hub_conns(closing)[1] == n


def test_the_snapshot_takes_the_clock_probes_connections(sim, hubs, cli_bin):
    # A busy cluster: the window's last 5 s hold more than the 200 000 packets the clock probe
    # reads, so the probe stops with its calls to every store still open. The snapshot's calls
    # start once those have ended and take their connections: one connection a store, not two
    # (with TLS, a second handshake with every store, and twice the hub's memory for them).
    n, per = 32, 8000
    s = sim(n, per, "--ts-start", str(time.time_ns() - 2 * 10**9))  # 0.256 s, 2 s ago
    hub = hubs(",".join(s.addrs), metrics="127.0.0.1:0")
    snapshots_at_once(cli_bin, hub, 1, n * per, timeout=120)
    assert hub_conns(hub) == (0, n), "connections (in use, idle) after one snapshot"
    snapshots_at_once(cli_bin, hub, 1, n * per, timeout=120)
    assert hub_conns(hub) == (0, n), "the second snapshot did not reuse them"


def test_a_store_that_stops_mid_stream_is_cut_short(sim, hubs, cli_bin, tmp_path):
    # 256 nodes; sim-7 stops after 500 of its 2000 packets and holds its stream open, as a store
    # stopped with SIGSTOP does. The hub waits --store-timeout (2 s) for it, then goes on: the
    # file holds the other 255 whole and sim-7's first 500, in time order, and stderr names it
    # with how far it got. --strict fails the same snapshot.
    n, per, after = 256, 2000, 500
    s = sim(n, per, "--stall", f"7:{after}")
    hub = hubs(",".join(s.addrs), "--store-timeout", "2s")
    out = tmp_path / "cut.pcapng"
    t = time.monotonic()
    res = ch.run(cli_bin, "pcapdump", "--hub", hub.addr, "-o", out, env=ch.base_env(),
                 timeout=120, expect=0)
    took = time.monotonic() - t
    assert took < 2 + 10, f"the snapshot took {took:.1f} s with --store-timeout 2s"
    f = sh.read_pcapng(out)
    got = ids(f.packets)
    want = {(k, i) for k in range(n) if k != 7 for i in range(per)} | \
        {(7, i) for i in range(after)}
    assert len(got) == len(want) and set(got) == want, f"{len(got)} packets of {len(want)}"
    ts = [p.ts_ns for p in f.packets]
    assert ts == sorted(ts), "the merge is not in time order"
    last7 = max(p.ts_ns for p, (k, _) in zip(f.packets, got) if k == 7)
    cut = [ln for ln in res.stderr.splitlines() if "CUT SHORT" in ln]
    assert len(cut) == 1 and "node sim-7 " in cut[0] and f"its {after} packets up to " in cut[0], \
        res.where()
    assert "stopped sending mid-stream: nothing for 2s (--store-timeout)" in cut[0], cut[0]
    # The time it reached is its last packet's, to the microsecond.
    stamp = cut[0].split(" up to ")[1].split(" ")[0]
    sec = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(last7 // 10**9))
    assert stamp == f"{sec}.{last7 % 10**9 // 1000:06d}Z", (stamp, last7)
    assert closing_line(res)[2].startswith(f"{n - 1} of {n} nodes"), res.where()

    res = ch.run(cli_bin, "pcapdump", "--hub", hub.addr, "--strict", "-o", tmp_path / "s.pcapng",
                 env=ch.base_env(), timeout=120, expect=3)
    assert "sim-7" in res.stderr and not (tmp_path / "s.pcapng").exists(), res.where()


def stats_in_flight(s):
    """The most Stats calls store-sim had in flight at once (it says at exit)."""
    assert s.stop() is None
    m = re.search(r"stats in flight at most (\d+)", s.stderr_path.read_text())
    assert m, s.stderr_path.read_text()
    return int(m.group(1))


def test_status_asks_a_bounded_number_of_stores_at_once(sim, hubs, cli_bin):
    # 600 stores answering Stats 300 ms late: the hub keeps 256 asked at once (HUB_STATUS_CALLS),
    # not 600, and still answers for every one of them.
    import json
    n = 600
    s = sim(n, 10, "--stats-delay", 300)
    hub = hubs(",".join(s.addrs))
    st = ch.run(cli_bin, "status", "-o", "json", "--hub", hub.addr, env=ch.base_env(),
                timeout=120, expect=0)
    doc = json.loads(st.stdout)
    assert (doc["nodes"], doc["ok"], doc["attention"]) == (n, n, []), st.where()
    most = stats_in_flight(s)
    assert 1 < most <= 256, f"{most} Stats calls in flight at once"


def test_status_answers_within_the_store_timeout(sim, hubs, cli_bin):
    # Every store answers Stats 30 s late, and --store-timeout is 1 s: the first 256 asked run
    # out of time, the other 44 are not asked at all once the deadline has passed -- the answer
    # comes within the timeout, not in rounds of it, and names why for every node.
    import json
    n = 300
    s = sim(n, 10, "--stats-delay", 30000)
    hub = hubs(",".join(s.addrs), "--store-timeout", "1s")
    st = ch.run(cli_bin, "status", "-o", "json", "--hub", hub.addr, env=ch.base_env(),
                timeout=60, expect=3)
    doc = json.loads(st.stdout)
    assert (doc["nodes"], doc["ok"], doc["unreachable"]) == (n, 0, n), st.where()
    errors = [a["error"] for a in doc["attention"]]
    late = [e for e in errors if "DEADLINE_EXCEEDED" in e]
    unasked = [e for e in errors if e.startswith("not asked: the answer was due within 1s")]
    assert len(late) + len(unasked) == n and len(late) <= 256 and unasked, errors[:3] + errors[-3:]
