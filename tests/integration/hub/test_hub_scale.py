"""256 real netreel-store processes behind one hub (issue 16: a thousand nodes).

Each store holds its own node's packets (store-feeder, interleaved packet by packet across the
stores). `netreel pcapdump` through one hub then:

  * brings back every packet once, in time order, with one interface per node, and the hub's
    peak resident set stays under 128 MiB;
  * with one store stopped (SIGSTOP) halfway through the file -- the test stops reading the
    file's pipe halfway, so the stores are held mid-stream by back-pressure, stops node-8's
    store, and reads on -- the hub waits --store-timeout for it, then goes on: the file holds
    the other 255 nodes whole and a first part of node-8's stream (exactly what its store holds
    up to the time named), stderr names node-8 as cut short with its packet count and time, and
    the snapshot ends within the deadline.
"""

import os
import signal
import subprocess
import time

import cli_helpers as ch
import store_helpers as sh
from cli_helpers import cli_bin  # noqa: F401 (fixture)
from hub_helpers import (ASAN, closing_line, dispose, feed, hub_bin, hubs,  # noqa: F401
                         start_stores, store_list, store_window)

N = 256
PACKETS = 800  # per store: with IMIX sizes about 300 KB, many times what a store may send ahead
VICTIM = 7  # node-8
TIMEOUT_S = 2


def node_of(f, p):
    return f.interfaces[p.ifid].name.split("/")[0]


def test_256_stores_every_packet_and_one_stopped_mid_stream(stores, feeder, hubs, cli_bin,
                                                            store_bins, tmp_path):
    ss = []
    problems = []
    try:
        ss = start_stores(stores, tmp_path, N)
        fed, _ = feed(ss, feeder, packets=PACKETS, batch="64KiB")
        total = sum(f["packets"] for f in fed)
        assert total == N * PACKETS
        hub = hubs(store_list(ss), "--store-timeout", f"{TIMEOUT_S}s")

        # Every packet, once, in time order, one interface per node; the hub's memory bounded.
        out = tmp_path / "all.pcapng"
        res = ch.run(cli_bin, "pcapdump", "--hub", hub.addr, "-o", out, env=ch.base_env(),
                     timeout=300, expect=0)
        n, nbytes, nodes = closing_line(res)
        assert n == total and nbytes == out.stat().st_size, res.where()
        assert nodes.startswith(f"{N} nodes (node-1, "), nodes
        f = sh.read_pcapng(out)
        assert sorted(i.name for i in f.interfaces) == sorted(f"node-{k + 1}/eth0"
                                                              for k in range(N))
        ts = [p.ts_ns for p in f.packets]
        assert ts == sorted(ts), "the merge is not in time order"
        keys = [p.key() for p in f.packets]
        assert len(set(keys)) == total, "a packet twice"
        per_node = {}
        for p in f.packets:
            per_node[node_of(f, p)] = per_node.get(node_of(f, p), 0) + 1
        assert set(per_node.values()) == {PACKETS}, per_node
        full = {p.key() for p in f.packets if node_of(f, p) == f"node-{VICTIM + 1}"}
        out.unlink()
        if not ASAN:
            kib = hub.vm_hwm_kib()
            print(f"hub VmHWM {kib >> 10} MiB, {nbytes} bytes")
            assert kib < 128 * 1024, f"netreel-hub peaked at {kib >> 10} MiB with {N} stores"

        # One store stopped halfway: the file comes through a pipe the test reads, halfway then
        # held while the store is stopped, then to the end.
        argv = [str(cli_bin), "pcapdump", "--hub", hub.addr, "-o", "-"]
        with open(tmp_path / "cut.stderr", "wb") as e:
            p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                 stderr=e, env=ch.base_env())
        data = bytearray()
        victim = ss[VICTIM]
        try:
            while len(data) < nbytes // 2:
                chunk = p.stdout.read1(65536)
                assert chunk, "the file ended before its half"
                data += chunk
            os.kill(victim.proc.pid, signal.SIGSTOP)
            t = time.monotonic()
            data += p.stdout.read()
            p.wait(120)
            took = time.monotonic() - t
        finally:
            os.kill(victim.proc.pid, signal.SIGCONT)
            if p.poll() is None:
                p.kill()
                p.wait(10)
        err = (tmp_path / "cut.stderr").read_text(errors="replace")
        assert p.returncode == 0, err
        assert took < TIMEOUT_S + 15, f"{took:.1f} s after the store stopped, --store-timeout 2s"
        (tmp_path / "cut.pcapng").write_bytes(data)
        f = sh.read_pcapng(tmp_path / "cut.pcapng")
        ts = [q.ts_ns for q in f.packets]
        assert ts == sorted(ts), "the merge is not in time order"
        counts = {}
        for q in f.packets:
            counts[node_of(f, q)] = counts.get(node_of(f, q), 0) + 1
        name = f"node-{VICTIM + 1}"
        got = counts.pop(name, 0)
        assert set(counts.values()) == {PACKETS} and len(counts) == N - 1, counts
        print(f"victim {got} packets, {took:.1f} s after SIGSTOP, file {len(data)} bytes")
        assert 0 < got < PACKETS, f"{name}: {got} packets in the file: not stopped mid-stream"
        cut = [ln for ln in err.splitlines() if "CUT SHORT" in ln]
        assert len(cut) == 1 and f"node {name} " in cut[0], err
        assert f"its {got} packets up to " in cut[0], cut[0]
        assert "stopped sending mid-stream" in cut[0], cut[0]
        # What it sent is a first part of its stream: its own oldest packets up to the time
        # named, nothing missing in between.
        mine = [q for q in f.packets if node_of(f, q) == name]
        _, theirs = store_window(store_bins, victim.addr, 0, mine[-1].ts_ns,
                                 tmp_path / "victim.pcapng")
        assert {q.key() for q in mine} == {q.key() for q in theirs.packets} and \
            {q.key() for q in mine} <= full
    finally:
        problems += dispose(ss)
    assert not problems, "\n\n".join(problems)
