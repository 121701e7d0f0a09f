"""netreel-capture never records itself (docs/design.md §6, issue 4).

With `-i lo` and nothing else on the loopback but the capture's own connection to its store, a
minute of recording (15 s under ASan) holds essentially nothing, and none of it on the store's
port -- though the capture's batches (heartbeats every 5 s) crossed lo the whole time. With
--record-self the same set-up records its own batches within seconds: the check can fail.

Each runs in a fresh network namespace, so its loopback carries nothing of anyone else's. The
capture's /metrics is off: scraping it would be traffic on lo.
"""

import struct
import threading
import time

from capture_helpers import (ASAN, STORE_PORT, describe, ipv4, lab,  # noqa: F401
                             ns_socket, store_port_packets)

QUIET_S = 15 if ASAN else 60
FLOOD_PORT = 5555
KEPT_PORT = 5556


def record_lo(lab, seconds, *args):
    net = lab.netns(with_b=False)
    store = lab.store(net)
    cap = lab.capture(net, *args, iface="lo", metrics=False)
    time.sleep(seconds)
    stopped = cap.stop()
    summary, snap, _ = lab.snapshot(net, store)
    return cap, stopped, snap


def test_lo_minute_holds_nothing_of_its_own(lab):
    cap, stopped, snap = record_lo(lab, QUIET_S)
    applied = cap.lines("filter applied")
    assert applied and f'filter="not (tcp port {STORE_PORT})"' in applied[-1], cap.stderr()

    # The batches did cross lo: a heartbeat at least every 5 s, all acknowledged.
    assert stopped["batches"] >= QUIET_S // 5 - 1 and stopped["acked"] == stopped["batches"], \
        stopped

    own = store_port_packets(snap.packets)
    assert not own, (f"{len(own)} packets of the capture's own store connection (port "
                     f"{STORE_PORT}) were recorded, first: " +
                     "; ".join(describe(p) for p in own[:5]))
    assert len(snap.packets) <= 10, (
        f"{QUIET_S} s of an idle loopback recorded {len(snap.packets)} packets: " +
        "; ".join(describe(p) for p in snap.packets[:10]))
    assert stopped["packets"] == len(snap.packets), (stopped, len(snap.packets))


def test_record_self_does_record_the_store_port(lab):
    # The opposite, to show the check above can fail: with --record-self the capture's own
    # batches are recorded, and the batches carrying those, and so on.
    cap, stopped, snap = record_lo(lab, 4, "--record-self")
    own = store_port_packets(snap.packets)
    assert len(own) >= 10, (f"--record-self recorded {len(own)} packets on the store port; "
                            f"{len(snap.packets)} in all; stopped: {stopped}")
    assert stopped["acked"] == stopped["batches"], stopped


def udp_port_packets(packets, port):
    out = []
    for p in packets:
        ip = ipv4(p.data)
        if ip and ip[2] == 17 and len(ip[4]) >= 4 and port in struct.unpack_from("!HH", ip[4], 0):
            out.append(p)
    return out


def test_filter_holds_from_the_first_packet(lab):
    # Traffic the filter leaves out flows on lo before and while the capture opens its handle:
    # none of it may reach the recording. The ring fills from pcap_activate on, before any filter
    # is attached, so what it caught by then must be filtered too (the local hub's and store's
    # calls were once recorded this way, though their ports were excluded).
    net = lab.netns(with_b=False)
    store = lab.store(net)
    sock = ns_socket(net.a)
    stop = threading.Event()
    sent = [0]

    def flood():
        while not stop.is_set():
            sock.sendto(b"left out", ("127.0.0.1", FLOOD_PORT))
            sent[0] += 1

    t = threading.Thread(target=flood)
    t.start()
    try:
        time.sleep(0.3)
        cap = lab.capture(net, "--filter", f"udp port {KEPT_PORT}", iface="lo", metrics=False)
        time.sleep(1)
    finally:
        stop.set()
        t.join()
        sock.close()
    with ns_socket(net.a) as s:
        for i in range(10):
            s.sendto(b"kept %d" % i, ("127.0.0.1", KEPT_PORT))
    time.sleep(0.5)
    cap.stop()
    _, snap, _ = lab.snapshot(net, store)
    assert sent[0] > 1000, sent
    leaked = udp_port_packets(snap.packets, FLOOD_PORT)
    assert not leaked, (f"{len(leaked)} of {sent[0]} packets outside the filter were recorded, "
                        "first: " + "; ".join(describe(p) for p in leaked[:5]))
    assert len(udp_port_packets(snap.packets, KEPT_PORT)) == 10, len(snap.packets)
