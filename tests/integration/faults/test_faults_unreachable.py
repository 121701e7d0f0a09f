"""The store unreachable for 30 s while traffic flows (issue 7, "Fault injection", second point).

One node records numbered UDP datagrams and a TCP transfer (~2.5 MB/s together) next to an
independent tcpdump; the store is stopped with SIGSTOP for 30 s (its socket stays open and
silent: no acknowledgement, no reset, as a hung process or a dead link looks) and then continued.
Meanwhile the capture keeps capturing and holds everything in its spool (--spool-size 128MiB,
more than the 30 s need), and after 10 s without an acknowledgement says so (a warning,
netreel_capture_store_connected 0, an error counted); afterwards it delivers: the final snapshot through the hub holds every
datagram once and exactly tcpdump's packets, the TCP stream rebuilds byte for byte, nothing was
dropped anywhere (spool, kernel), and the capture's memory stayed within the spool plus a margin.

test_capture_spool covers the other side: no store at all and a spool too small, which drops
whole batches, counted.
"""

import os
import re
import signal
import time

import pytest

from cli_helpers import cli_bin  # noqa: F401 (fixture)
from faults_helpers import (Rig, TcpStream, UdpStream, check_snapshot, runs, segments_clean,
                            seq_report, tcp_ok)
from hub_helpers import hub_bin  # noqa: F401 (fixture)
from capture_helpers import diff_packets, lab, mval, read_pcap  # noqa: F401

MIB = 1 << 20
STOPPED_S = 30
SPOOL = 128 * MIB
MARGIN = 64 * MIB  # code, libraries, the ring's touched pages (32 MiB), batch buffers
TS_TOLERANCE_NS = 1_000_000


def status_kb(pid, key):
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(rf"^{key}:\s+(\d+) kB", f.read(), re.M).group(1))


@pytest.fixture
def rig(lab, hub_bin, cli_bin):  # noqa: F811
    r = Rig(lab, hub_bin, cli_bin, capture_args=("--spool-size", "128MiB"))
    problems = []
    try:
        yield r
    finally:
        if r.store and r.store.alive():
            os.kill(r.store.pid, signal.SIGCONT)
        problems = r.close()
    if problems:
        pytest.fail("\n\n".join(problems), pytrace=False)


@pytest.mark.faults
def test_store_stopped_30s_spools_and_delivers(rig):
    rig.start()
    dump = rig.lab.tcpdump(rig.net)
    udp = UdpStream(rig.lab, rig.net, 2000).begin()
    tcp = TcpStream(rig.lab, rig.net, mbit=8).begin()
    samples = []
    try:
        time.sleep(2.0)
        os.kill(rig.store.pid, signal.SIGSTOP)
        t_stop = time.monotonic()
        while time.monotonic() - t_stop < STOPPED_S:
            ms = rig.capture.scrape()
            samples.append((round(time.monotonic() - t_stop, 1),
                            mval(ms, "netreel_capture_spool_bytes"),
                            mval(ms, "netreel_capture_packets_total"),
                            mval(ms, "netreel_capture_store_connected"),
                            status_kb(rig.capture.pid, "VmRSS")))
            time.sleep(1.0)
        os.kill(rig.store.pid, signal.SIGCONT)
        t_cont = time.monotonic()
        time.sleep(2.0)
    finally:
        n = udp.stop()
        data = tcp.stop()
    time.sleep(0.6)
    cap_ms = rig.wait_drained(120)
    drained_s = time.monotonic() - t_cont
    time.sleep(1.2)
    td = dump.stop()
    table = "\n".join(f"  t={t:5.1f}s spool={s / MIB:7.2f}MiB packets={p:8.0f} connected={c:g} "
                      f"rss={r / 1024:6.1f}MiB" for t, s, p, c, r in samples)

    # It kept capturing and spooling all along.
    ps = [p for _, _, p, _, _ in samples]
    assert all(b > a for a, b in zip(ps, ps[1:])), f"capturing stalled\n{table}"
    spool_peak = max(s for _, s, _, _, _ in samples)
    assert spool_peak > 30 * MIB, f"the spool never held the stopped time's traffic\n{table}"
    hwm_kb = status_kb(rig.capture.pid, "VmHWM")
    assert hwm_kb * 1024 <= SPOOL + MARGIN, f"VmHWM {hwm_kb / 1024:.1f} MiB\n{table}"
    assert mval(cap_ms, "netreel_capture_dropped_total", where="spool") == 0, table
    assert mval(cap_ms, "netreel_capture_dropped_total", where="kernel") == 0, table
    assert td["dropped"] == 0, td
    # And it said so: not acknowledging after 10 s (store_connected 0, an error counted), then
    # reachable again.
    assert all(c == 1 for t, _, _, c, _ in samples if t < 9), table
    assert all(c == 0 for t, _, _, c, _ in samples if t >= 12), table
    assert rig.capture.lines("store not acknowledging; batches wait in the spool"), \
        rig.capture.stderr()
    assert rig.capture.lines("store reachable again"), rig.capture.stderr()
    assert mval(cap_ms, "netreel_capture_store_errors_total") >= 1
    assert mval(cap_ms, "netreel_capture_store_connected") == 1

    # Everything arrived, once.
    segments_clean(rig.data_dir)
    _, f, _ = rig.pcapdump(rig.lab.tmp / "out")
    check_snapshot(f)
    seqs, dup, missing = seq_report(f.packets, n)
    assert not dup and not missing, (f"{len(dup)} datagrams twice, missing: {runs(missing)[:10]}"
                                     f"\n{table}")
    _, theirs = read_pcap(dump.out)
    d = diff_packets(f.packets, theirs, tolerance_ns=TS_TOLERANCE_NS)
    assert not d, "the snapshot and tcpdump's file differ:\n" + d
    assert not tcp_ok(f.packets, data), tcp_ok(f.packets, data)
    print(f"\nstore stopped {STOPPED_S}s: sent={n} packets={len(f.packets)} spool_peak="
          f"{spool_peak / MIB:.1f}MiB capture_vmhwm={hwm_kb / 1024:.1f}MiB "
          f"drained_in={drained_s:.1f}s store_errors="
          f"{mval(cap_ms, 'netreel_capture_store_errors_total'):g}\n{table}")
