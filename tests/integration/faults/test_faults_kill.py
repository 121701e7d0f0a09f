"""kill -9 under load (issue 7, "Fault injection", first point; docs/design.md §4).

One node (capture and store in a namespace, hub in the root namespace) records numbered UDP
datagrams and a TCP transfer, next to an independent tcpdump on the same interface. In the
middle of the traffic one process -- the capture, the store, the hub, or all three at once -- is
killed with SIGKILL and started again two seconds later on the same data. Afterwards:

  * every segment file reads clean in tshark and capinfos (no warning, counts agree);
  * one snapshot through the (new) hub: no datagram twice, timestamps never going backwards,
    and the hub's count equals the store's retained packets (/metrics);
  * what is missing is explained by the kill and nothing else:
      - store or hub killed: nothing; the snapshot holds exactly tcpdump's packets and the TCP
        stream rebuilds byte for byte (the capture's spool resent what the store had not
        acknowledged; the store dropped the resent batches it already had);
      - capture killed: only datagrams that left between the last acknowledgement before the
        kill and the new capture's start, and no more of them before the kill than the packets
        the kernel had handed the old capture that its store never acknowledged (its
        /metrics just before the kill against the store's count for that capture stream).

The hub is killed while it serves a snapshot: that `netreel pcapdump` exits 1 and leaves no file
(or, had it finished first, a whole one).

Not repeated here: the store killed under a store-feeder stream with a byte-exact resend
(test_store_recovery), under UDP only (test_capture_fidelity), the hub killed mid-stream with the
CLI's file (test_hub_faults).
"""

import subprocess
import time

import pytest

import cli_helpers as ch
import store_helpers as sh
from cli_helpers import cli_bin  # noqa: F401 (fixture)
from faults_helpers import (Rig, TcpStream, UdpStream, check_snapshot, labelled, runs,
                            segments_clean, seq_report, tcp_ok)
from hub_helpers import closing_line, hub_bin  # noqa: F401 (fixture)
from capture_helpers import diff_packets, lab, mval, read_pcap, match_packets  # noqa: F401

PPS = 1500
TCP_MBIT = 40
DOWN_S = 2.0
TS_TOLERANCE_NS = 1_000_000  # two packet sockets may stamp a received packet apart
# Before the kill the capture holds at most: the ring's block timeout (100 ms), the batch time
# (200 ms), the group commit and the ack's way back. Datagrams older than this were acked.
UNACKED_S = 1.0
NOT_BATCHED_S = 0.1 + 0.2  # the ring's block timeout + --batch-time


@pytest.fixture
def rig(lab, hub_bin, cli_bin):  # noqa: F811
    r = Rig(lab, hub_bin, cli_bin)
    problems = []
    try:
        yield r
    finally:
        problems = r.close()
    if problems:
        pytest.fail("\n\n".join(problems), pytrace=False)


def run_kill(rig, victims):
    rig.start()
    dump = rig.lab.tcpdump(rig.net)
    udp = UdpStream(rig.lab, rig.net, PPS).begin()
    tcp = TcpStream(rig.lab, rig.net, mbit=TCP_MBIT).begin()
    old_cap = rig.capture
    old_id = old_cap.started["capture_id"]
    try:
        time.sleep(2.5)
        t_scrape = time.monotonic()
        cap_before = rig.capture.scrape()
        store_before = rig.store_metrics()
        inflight = None
        if "hub" in victims:  # the hub dies while it serves a snapshot
            inflight_dir = rig.lab.tmp / "inflight"
            inflight_dir.mkdir()
            inflight = subprocess.Popen(
                [str(rig.cli_bin), "pcapdump", "--hub", rig.hub.addr, "--time=1h", "--dest",
                 str(inflight_dir)], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE, env=ch.base_env())
            time.sleep(0.05)
        t_kill = time.monotonic()
        if "capture" in victims:
            rig.capture.kill()
        if "store" in victims:
            rig.store.kill9()
        if "hub" in victims:
            rig.hub.kill9()
        time.sleep(DOWN_S)
        if "store" in victims:
            rig.start_store()
        if "capture" in victims:
            rig.start_capture()
        t_up = time.monotonic()
        if "hub" in victims:
            rig.start_hub()
        time.sleep(2.0)
    finally:
        n = udp.stop()
        data = tcp.stop()
    if inflight is not None:
        # Cut off by the kill (exit 1, no file, not even the .part) or done just before it
        # (exit 0, a whole file).
        _, err = inflight.communicate(timeout=60)
        left = list(inflight_dir.iterdir())
        if inflight.returncode == 0:
            assert len(left) == 1 and not sh.wireshark_check(left)[0], left
        else:
            assert inflight.returncode == 1 and not left, (inflight.returncode, left, err)
    time.sleep(0.6)  # the ring's block timeout and the batch time
    cap_after = rig.wait_drained()
    time.sleep(1.2)  # tcpdump's ring hands over its last block
    td = dump.stop()
    assert td["dropped"] == 0, f"tcpdump dropped {td}"

    nseg, seg_packets = segments_clean(rig.data_dir)
    res, f, path = rig.pcapdump(rig.lab.tmp / "out")
    check_snapshot(f)
    assert closing_line(res)[0] == len(f.packets), res.where()
    store_after = rig.store_metrics()
    assert mval(store_after, "netreel_store_packets") == len(f.packets) == seg_packets, \
        (mval(store_after, "netreel_store_packets"), len(f.packets), seg_packets)
    seqs, dup, missing = seq_report(f.packets, n)
    assert not dup, f"{len(dup)} datagrams twice after the kill (first {dup[:10]})"
    _, theirs = read_pcap(dump.out)
    _, only_ours, _ = match_packets(f.packets, theirs)
    assert not only_ours, f"{len(only_ours)} packets in the snapshot that tcpdump did not see"

    figures = dict(victims=victims, sent=n, tcp_bytes=len(data), segments=nseg,
                   packets=len(f.packets), missing=len(missing), missing_runs=runs(missing)[:5],
                   capture_store_errors=mval(cap_after, "netreel_capture_store_errors_total"),
                   store_duplicates=mval(store_after, "netreel_store_batches_total",
                                         result="duplicate"),
                   down_s=round(t_up - t_kill, 2),
                   inflight_snapshot_rc=inflight.returncode if inflight else None)
    if "capture" not in victims:
        # Nothing may be missing: the capture kept what its store had not acknowledged.
        assert not missing, f"{len(missing)} datagrams missing: {runs(missing)[:10]}"
        d = diff_packets(f.packets, theirs, tolerance_ns=TS_TOLERANCE_NS)
        assert not d, "the snapshot and tcpdump's file differ:\n" + d
        assert not tcp_ok(f.packets, data), tcp_ok(f.packets, data)
        assert mval(cap_after, "netreel_capture_dropped_total", where="spool") == 0
        assert mval(cap_after, "netreel_capture_dropped_total", where="kernel") == 0
        if "store" in victims:
            assert mval(cap_after, "netreel_capture_store_errors_total") >= 1
            assert rig.capture.lines("store reachable again"), rig.capture.stderr()
    else:
        # Only what the dead capture held or never saw.
        allowed = set(udp.sent_between(t_kill - UNACKED_S, t_up + 0.5))
        unexplained = sorted(set(missing) - allowed)
        assert not unexplained, (f"{len(unexplained)} datagrams missing outside the kill's "
                                 f"window: {runs(unexplained)[:10]}; {figures}")
        before = [s for s in missing if udp.sent_at[s] < t_kill]
        if "store" not in victims:
            stored_old = labelled(store_after, "netreel_store_capture_packets_total")[
                frozenset({("capture", old_id)})]
            # Not acked: the batches in the spool (packets_total counts what was batched) and
            # what had not reached a batch yet (the ring's block timeout, the batch time, the
            # moment between the scrape and the kill).
            batched = mval(cap_before, "netreel_capture_packets_total")
            bound = batched - stored_old + PPS * (NOT_BATCHED_S + t_kill - t_scrape)
            figures.update(unacked_bound=round(bound), lost_before_kill=len(before),
                           batched_at_kill=batched, stored_of_old_capture=stored_old)
            assert stored_old <= batched
            assert len(before) <= bound, (
                f"{len(before)} datagrams sent before the kill are missing; the old capture "
                f"had batched {batched:g} packets, its store holds {stored_old:g}: {figures}")
            # The store's part of the old capture's datagrams is an unbroken prefix.
            assert not missing or all(s in seqs for s in range(missing[0])), runs(missing)[:10]
            # The loss shows: the old stream ended at the kill, a new one took over.
            streams = labelled(store_after, "netreel_store_capture_packets_total")
            assert len(streams) == 2, streams
            assert sum(streams.values()) == len(f.packets), streams
            last = labelled(store_after, "netreel_store_capture_last_batch_timestamp_seconds")[
                frozenset({("capture", old_id)})]
            assert last <= time.time() - (time.monotonic() - t_kill) + 0.05, last
        assert len(missing) <= PPS * (t_up - t_kill + UNACKED_S + 0.5)
    assert mval(store_before, "netreel_store_write_errors_total") == 0
    print(f"\nkill -9 {'+'.join(victims)}: {figures}")
    return figures


def test_capture_killed(rig):
    run_kill(rig, ("capture",))


def test_store_killed(rig):
    run_kill(rig, ("store",))


def test_hub_killed(rig):
    run_kill(rig, ("hub",))


@pytest.mark.faults
def test_all_three_killed(rig):
    run_kill(rig, ("capture", "store", "hub"))
