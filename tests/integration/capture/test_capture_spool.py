"""The spool is bounded and the capture never blocks (issue 4, "Never lost, never blocking").

With no store running, the capture keeps capturing; unacknowledged batches fill the spool up to
--spool-size and no further: once it is full, new batches are dropped whole and counted
(netreel_capture_dropped_total{where="spool"}), and the process's memory stays under the spool
plus a fixed margin however much traffic comes. When the store then comes up, the spooled
batches -- the oldest traffic -- arrive, and nothing else is missing.
"""

import re
import threading
import time

from capture_helpers import (ASAN, MIB, UdpReceiver, lab, mval, send_udp,  # noqa: F401
                             udp_seqs)

SPOOL = (8 if ASAN else 16) * MIB
BATCH = 1 * MIB  # --batch-bytes default
# What the process holds besides the spool: code and libraries, 4 pooled batch buffers and a
# sort buffer per interface (~1.3 MiB each), the ring's pages it has touched (--buffer-size
# 4MiB here), the batch being encoded when the spool turns it away.
MARGIN = 24 * MIB


def status_kb(pid, key):
    with open(f"/proc/{pid}/status") as f:
        m = re.search(rf"^{key}:\s+(\d+) kB", f.read(), re.M)
    return int(m.group(1))


def test_spool_is_bounded_then_delivered(lab):
    net = lab.netns()
    cap = lab.capture(net, "--spool-size", f"{SPOOL // MIB}MiB", "--buffer-size", "4MiB")  # no store
    UdpReceiver(lab, net.a, read=False)  # bound, so that A answers no ICMP

    # ~8 MB/s of 1000-byte datagrams: the spool fills in about 2 s (1 s under ASan), then the
    # rest must go.
    pps = 8000
    secs = 4 if ASAN else 6
    n = pps * secs
    stop = threading.Event()
    result = {}
    sender = threading.Thread(target=lambda: result.update(
        sent=send_udp(lab, net.b, range(n), pps=pps, sizes=[1000] * n, stop=stop)),
        daemon=True)
    samples = []  # (seconds, spool_bytes, dropped{spool}, packets_total, VmRSS kB)
    t0 = time.monotonic()
    sender.start()
    try:
        while sender.is_alive():
            ms = cap.scrape()
            samples.append((round(time.monotonic() - t0, 2), mval(ms, "netreel_capture_spool_bytes"),
                            mval(ms, "netreel_capture_dropped_total", where="spool"),
                            mval(ms, "netreel_capture_packets_total"),
                            status_kb(cap.pid, "VmRSS")))
            time.sleep(0.25)
    finally:
        stop.set()
        sender.join(60)
    assert result.get("sent") == n, result
    time.sleep(0.6)  # the last batch leaves the capture thread
    full = cap.scrape()
    hwm_kb = status_kb(cap.pid, "VmHWM")
    table = "\n".join(f"  t={t:5.2f}s spool={s / MIB:6.2f}MiB dropped={d:8.0f} "
                      f"packets={p:8.0f} rss={r / 1024:6.1f}MiB" for t, s, d, p, r in samples)

    # It kept capturing without its store: the count grew all along, the ring lost nothing
    # (and at the end, below, every datagram was captured).
    ps = [p for _, _, _, p, _ in samples]
    assert all(ps[i + 4] > ps[i] for i in range(1, len(ps) - 4)), \
        f"capturing stalled for a second\n{table}"
    assert mval(full, "netreel_capture_dropped_total", where="kernel") == 0, table
    assert mval(full, "netreel_capture_store_connected") == 0

    # The spool filled up to its bound and no further; then whole batches were dropped.
    spooled = mval(full, "netreel_capture_spool_bytes")
    assert SPOOL - 2 * BATCH <= spooled <= SPOOL, f"spool holds {spooled:g} bytes\n{table}"
    assert all(s <= SPOOL for _, s, _, _, _ in samples), table
    dropped = mval(full, "netreel_capture_dropped_total", where="spool")
    assert dropped > 0 and mval(full, "netreel_capture_batches_total", result="dropped") > 0, table
    # Nothing was dropped while a batch still fit.
    for t, s, d, _, _ in samples:
        if s < SPOOL - 2 * BATCH:
            assert d == 0, f"batches dropped at t={t}s with the spool at {s:g} bytes\n{table}"
    # The drops grew with the traffic once the spool was full.
    ds = [d for _, _, d, _, _ in samples]
    assert ds[-1] > 0 and sum(1 for a, b in zip(ds, ds[1:]) if b > a) >= 3, table
    assert mval(full, "netreel_capture_bytes_total") > 2 * SPOOL, "too little traffic to tell"

    # Memory: the spool's bound plus a margin, however much came (not under ASan: its shadow
    # memory and quarantine are no measure of the program's).
    if not ASAN:
        assert hwm_kb * 1024 <= SPOOL + MARGIN, (
            f"VmHWM {hwm_kb / 1024:.1f} MiB > spool {SPOOL // MIB} MiB + {MARGIN // MIB} MiB\n"
            f"{table}")

    # The store comes: what the spool held arrives, in order, and the spool empties.
    store = lab.store(net)
    deadline = time.monotonic() + 20
    while True:
        ms = cap.scrape()
        if (mval(ms, "netreel_capture_spool_bytes") == 0 and
                mval(ms, "netreel_capture_batches_total", result="acked") ==
                mval(ms, "netreel_capture_batches_total", result="spooled")):
            break
        assert time.monotonic() < deadline, \
            f"spooled batches not delivered within 20 s of the store's start\n{cap.stderr()}"
        time.sleep(0.2)
    assert cap.lines("store reachable again"), cap.stderr()
    dropped = mval(ms, "netreel_capture_dropped_total", where="spool")
    stopped = cap.stop()
    assert stopped["acked"] == stopped["batches"], stopped
    assert stopped["packets"] >= n, f"{stopped['packets']} packets captured of {n} sent"

    summary, snap, _ = lab.snapshot(net, store)
    assert len(snap.packets) == stopped["packets"] - dropped, (
        f"snapshot {len(snap.packets)} packets; captured {stopped['packets']}, "
        f"dropped with the spool full {dropped:g}")
    seqs = sorted(udp_seqs(snap.packets))
    assert len(seqs) == len(set(seqs)), "a datagram is in the snapshot twice"
    # The oldest traffic is what the spool kept: an unbroken run from the first datagram.
    run = 0
    while run < len(seqs) and seqs[run] == run:
        run += 1
    assert run * 1000 >= (SPOOL - 2 * BATCH) * 0.9, (
        f"the snapshot starts with datagrams 0..{run - 1} only; a full spool holds ~"
        f"{SPOOL // 1050} of them (first seqs: {seqs[:5]})")
