"""netreel-capture records what is on the wire (issue 4, "What must hold"):

  * capture -> store, next to an independent `tcpdump -w` on the same interface at the same time
    (same snaplen, same kernel buffer): the store's snapshot holds exactly the packets tcpdump
    wrote -- count, bytes, payloads and nanosecond timestamps -- for UDP datagrams carrying
    sequence numbers and a TCP transfer whose stream is rebuilt from the snapshot;
  * the store killed (-9) and restarted on the same data directory in the middle of the
    traffic: every datagram is in the final snapshot exactly once, and it still equals tcpdump's.

Both run in two network namespaces joined by a veth pair (capture_helpers.NetnsPair).

Not here yet: "a filter change applies to the live handle without a gap". The only ways to change
a running capture's filter are pod targeting and its override through --kube, which refuses to
start in this build; the test belongs with the fixture Kubernetes API server.
"""

import subprocess
import threading
import time
from collections import Counter

from capture_helpers import (B_IP, SCALE, TCP_PORT, UdpReceiver, diff_packets,  # noqa: F401
                             lab, mval, read_pcap, send_udp, tcp_stream, tcp_transfer,
                             udp_seqs, udp_sizes, wait_drained)

# Two packet sockets may stamp one received packet a few microseconds apart (see diff_packets).
TS_TOLERANCE_NS = 1_000_000
# tcpdump reads its ring with a 1 s block timeout and does not drain the ring when it is
# stopped: the traffic's last packets reach its file only once their block has retired.
TAIL_S = 1.6


def tshark_epochs(path):
    """frame.time_epoch of every packet, as tshark prints it (nine decimals)."""
    r = subprocess.run(["tshark", "-n", "-r", str(path), "-T", "fields", "-e",
                        "frame.time_epoch"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, f"tshark -r {path}: exit {r.returncode}: {r.stderr}"
    return [ln.strip() for ln in r.stdout.splitlines() if ln.strip()]


def test_capture_matches_tcpdump(lab):
    net = lab.netns()
    store = lab.store(net)
    dump = lab.tcpdump(net)  # -s 262144 -B 65536: the capture's defaults
    cap = lab.capture(net)   # --snaplen and --buffer-size left at their defaults
    assert cap.lines("filter applied") and \
        f'filter="not (tcp port {store.port})"' in cap.lines("filter applied")[-1], cap.stderr()

    n = int(3000 * SCALE)
    rx = UdpReceiver(lab, net.a)
    sizes = udp_sizes(n)
    sent = send_udp(lab, net.b, range(n), pps=4000, sizes=sizes)
    tcp_bytes = int(16 << 20 if SCALE == 1 else 4 << 20)
    data, got = tcp_transfer(lab, net, tcp_bytes, mbit=400)
    assert got["len"] == tcp_bytes, f"A's socket received {got['len']} of {tcp_bytes} bytes"
    received = rx.stop()
    assert sent == n and sorted(received) == list(range(n)), \
        f"the traffic itself: {sent} datagrams sent, {len(set(received))} distinct received"

    time.sleep(TAIL_S)
    ms = wait_drained(cap)
    td = dump.stop()
    link, theirs = read_pcap(dump.out)
    # Taken while the capture still runs, long after the traffic: checked last, below.
    _, live, _ = lab.snapshot(net, store)
    stopped = cap.stop()
    assert stopped["acked"] == stopped["batches"], stopped
    summary, snap, snap_path = lab.snapshot(net, store)
    ours = snap.packets

    # Neither recorder may have lost anything here, or the comparison below means little.
    assert td["dropped"] == 0, f"tcpdump's kernel dropped packets: {td}"
    assert mval(ms, "netreel_capture_dropped_total", where="kernel") == 0, "capture kernel drops"
    for where in ("interface", "buffer", "spool"):
        assert mval(ms, "netreel_capture_dropped_total", where=where) == 0, where

    # One interface, Ethernet, nanosecond timestamps in the file.
    assert [(i.name, i.link_type, i.tsresol) for i in snap.interfaces] == \
        [(f"node-a/{net.iface}", link, 9)], snap.interfaces
    assert snap.interfaces[0].snaplen == 262144

    # The same packets: count, bytes, and (timestamp, lengths, data) of each.
    assert len(ours) == len(theirs) == td["captured"], \
        f"snapshot {len(ours)} packets, tcpdump file {len(theirs)}, tcpdump said {td}"
    assert summary["packets"] == len(ours), summary
    assert sum(p.caplen for p in ours) == sum(p.caplen for p in theirs)
    assert stopped["packets"] == len(ours), (stopped, len(ours))
    d = diff_packets(ours, theirs, tolerance_ns=TS_TOLERANCE_NS)
    assert not d, "the snapshot and tcpdump's file differ:\n" + d

    # The traffic is all there: every datagram once, the TCP stream byte for byte.
    seqs = udp_seqs(ours)
    assert Counter(seqs) == Counter(range(n)), \
        f"UDP seqs: {len(seqs)} in the snapshot, {len(set(seqs))} distinct, {n} sent"
    stream, nsegs = tcp_stream(ours, B_IP, TCP_PORT)
    assert len(stream) == tcp_bytes and stream == data, \
        f"the TCP stream rebuilt from the snapshot ({nsegs} segments) holds {len(stream)} " \
        f"bytes; {tcp_bytes} were sent (equal prefix: {stream == data[:len(stream)]})"
    assert max(p.origlen for p in ours) > 1514, "no GSO-sized TCP packet: is the test right?"

    # Timestamps: nanoseconds, non-decreasing, and tshark reads the same nine digits.
    ts = [p.ts_ns for p in ours]
    assert ts == sorted(ts), "the snapshot's timestamps go backwards"
    assert any(t % 1000 for t in ts), "every timestamp is a whole microsecond"
    epochs = tshark_epochs(snap_path)
    assert epochs == [f"{t // 10**9}.{t % 10**9:09d}" for t in ts], \
        f"tshark's frame.time_epoch differs, first: {epochs[:3]} vs {ts[:3]}"

    # A batch leaves --batch-time (200 ms) after its first packet, also when no packet follows:
    # 1.6 s after the traffic the running capture has delivered all of it.
    d = diff_packets(live.packets, theirs, "store while capturing", tolerance_ns=TS_TOLERANCE_NS)
    assert not d, (f"{TAIL_S} s after the traffic ended, the store does not hold all of it yet "
                   f"(the rest came at SIGTERM):\n" + d)


def test_store_restart_loses_and_duplicates_nothing(lab):
    net = lab.netns()
    data_dir = lab.tmp / "data"
    first = lab.store(net, data_dir=data_dir)
    dump = lab.tcpdump(net)
    cap = lab.capture(net)
    rx = UdpReceiver(lab, net.a)

    pps = 1000
    n = int(6 * pps * max(SCALE, 0.5))  # 6 s of traffic (3 s under ASan)
    stop = threading.Event()
    result = {}
    sender = threading.Thread(target=lambda: result.update(
        sent=send_udp(lab, net.b, range(n), pps=pps, stop=stop)), daemon=True)
    sender.start()
    try:
        time.sleep(n / pps / 3)
        before = cap.scrape()
        first.kill9()
        time.sleep(2.0)
        mid = cap.scrape()  # the capture goes on while its store is away
        second = lab.store(net, data_dir=data_dir)
    finally:
        sender.join(60)
        stop.set()
    assert result.get("sent") == n, result
    received = rx.stop()
    assert sorted(received) == list(range(n)), "the traffic itself lost datagrams"

    time.sleep(TAIL_S)
    ms = wait_drained(cap)
    td = dump.stop()
    stopped = cap.stop()

    # The restart happened under the capture: it saw the store go and come back.
    assert mval(mid, "netreel_capture_store_connected") == 0, "store_connected stayed 1"
    assert mval(mid, "netreel_capture_packets_total") > \
        mval(before, "netreel_capture_packets_total"), "capturing stopped with the store"
    assert cap.lines("store unreachable; batches wait in the spool"), cap.stderr()
    assert cap.lines("store reachable again"), cap.stderr()
    assert mval(ms, "netreel_capture_store_errors_total") >= 1
    assert mval(ms, "netreel_capture_dropped_total", where="spool") == 0
    assert td["dropped"] == 0 and mval(ms, "netreel_capture_dropped_total", where="kernel") == 0

    summary, snap, _ = lab.snapshot(net, second)
    seqs = Counter(udp_seqs(snap.packets))
    dup = sorted(s for s, k in seqs.items() if k > 1)
    missing = sorted(set(range(n)) - set(seqs))
    assert not dup and not missing, (
        f"after the store's restart: {len(dup)} datagrams twice (first {dup[:10]}), "
        f"{len(missing)} missing (first {missing[:10]}) of {n}")

    _, theirs = read_pcap(dump.out)
    d = diff_packets(snap.packets, theirs, tolerance_ns=TS_TOLERANCE_NS)
    assert not d, "the snapshot and tcpdump's file differ:\n" + d
    assert stopped["packets"] == len(snap.packets) and stopped["acked"] == stopped["batches"], \
        (stopped, len(snap.packets))
