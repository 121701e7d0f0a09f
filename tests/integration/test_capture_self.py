"""netreel-capture never records itself (DESIGN §6, issue 4).

With `-i lo` and nothing else on the loopback but the capture's own connection to its store, a
minute of recording (15 s under ASan) holds essentially nothing, and none of it on the store's
port -- though the capture's batches (heartbeats every 5 s) crossed lo the whole time. With
--record-self the same set-up records its own batches within seconds: the check can fail.

Each runs in a fresh network namespace, so its loopback carries nothing of anyone else's. The
capture's /metrics is off: scraping it would be traffic on lo.
"""

import time

from test_capture_common import ASAN, STORE_PORT, describe, lab, store_port_packets  # noqa: F401

QUIET_S = 15 if ASAN else 60


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
