"""The disk fills up (issue 7, "Fault injection", third point; docs/design.md §4, "a free-disk
floor").

The store's data directory is on a 64 MiB tmpfs; a capture records numbered UDP datagrams and a
TCP transfer (~10 MB/s) into it, the hub in front. Another writer (dd) then eats the space:

  1. dd takes 28 MiB while the store holds ~30: the store stays above its free-disk floor (5%)
     by deleting its oldest segments (reason min_free_disk, in its log and /metrics), ingest
     goes on, a snapshot through the hub answers;
  2. another writer takes every byte left and every byte the store frees: the store deletes
     what it has, then refuses batches (RESOURCE_EXHAUSTED, logged, counted as
     batches_total{result="no_room"}) or has a write fail and cut back (write_errors_total); a
     snapshot still answers; the capture keeps the batches in its spool;
  3. dd's file goes: the capture's spool arrives, nothing spooled is lost.

Afterwards every segment reads clean in tshark (no torn block), the store killed with SIGKILL
and restarted finds nothing to cut but the active segment's padding block, and the datagrams
retained are an unbroken run up to the last one sent, none twice: what went is the oldest, and
only by a logged deletion.
"""

import time

import pytest

import store_helpers as sh
from cli_helpers import cli_bin  # noqa: F401 (fixture)
from faults_helpers import (Eater, Rig, TcpStream, Tmpfs, UdpStream, check_snapshot, dd_fill,
                            labelled, runs, segment_tails, segments_clean, seq_report,
                            unexpected_cuts)
from hub_helpers import hub_bin  # noqa: F401 (fixture)
from capture_helpers import lab, mval  # noqa: F401

MIB = 1 << 20
PPS = 1500


@pytest.fixture
def disk(lab):  # noqa: F811 - lab first: its processes stop before the unmount
    fs = Tmpfs(lab.tmp / "disk", "64m")
    try:
        yield fs
    finally:
        # The store is stopped by lab's teardown, which runs after this one: stop it here.
        problems = []
        for s in lab.stores:
            problems += s.stop()
        fs.close()
    if problems:
        pytest.fail("\n\n".join(problems), pytrace=False)


def deleted(ms, reason):
    return mval(ms, "netreel_store_deleted_segments_total", reason=reason)


def test_disk_fills_up(lab, disk, hub_bin, cli_bin):  # noqa: F811
    data = disk.path / "data"
    rig = Rig(lab, hub_bin, cli_bin, data_dir=data, store_args=("--max-size", "48MiB"))
    try:
        run_disk_fill(rig, disk)
    finally:
        problems = rig.close()
    assert not problems, "\n\n".join(problems)


def wait_for(what, cond, timeout, where):
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"{what} within {timeout:g} s\n{where()}"
        time.sleep(0.1)


def run_disk_fill(rig, disk):
    rig.start()
    store = rig.store
    floor = disk.total() * 0.05
    udp = UdpStream(rig.lab, rig.net, PPS, size_of=lambda s: 1000).begin()
    tcp = TcpStream(rig.lab, rig.net, mbit=70).begin()
    logs = lambda: f"store stderr:\n{sh.tail(store.stderr())}"  # noqa: E731
    try:
        # ~30 MB recorded.
        wait_for("30 MB recorded", lambda: mval(rig.store_metrics(), "netreel_store_bytes") >=
                 30 * MIB, 30, logs)

        # 1. Another writer takes 28 MiB: the floor is kept by deleting the oldest segments.
        eaten = dd_fill(disk.path / "eater-1", 28)
        assert eaten == 28 * MIB, f"dd wrote {eaten} bytes"
        wait_for("a min_free_disk deletion", lambda: deleted(rig.store_metrics(),
                                                              "min_free_disk") > 0, 20, logs)
        time.sleep(2.0)
        ms1 = rig.store_metrics()
        assert mval(ms1, "netreel_store_disk_free_bytes") + 4 * MIB >= floor, ms1
        assert store.log_lines("segment deleted"), logs()
        assert any("reason=min_free_disk" in ln for ln in store.log_lines("segment deleted"))
        # Ingest goes on: more batches accepted since the deletions.
        acc1 = mval(ms1, "netreel_store_batches_total", result="accepted")
        time.sleep(1.0)
        assert mval(rig.store_metrics(), "netreel_store_batches_total", result="accepted") > acc1
        _, f1, _ = rig.pcapdump(rig.lab.tmp / "snap-1")
        check_snapshot(f1)
        assert f1.packets, "the snapshot with the disk nearly full is empty"

        # 2. Another writer takes every byte left, and every byte the store frees.
        eater = Eater(disk.path / "eater-2")
        eater.start()
        t_full = time.monotonic()

        def refused_or_failed():
            ms = rig.store_metrics()
            return (mval(ms, "netreel_store_write_errors_total") > 0 or
                    store.log_lines("ingest refused"))
        wait_for("a refused batch or a failed write", refused_or_failed, 20, logs)
        time.sleep(1.5)
        full_ms = rig.store_metrics()
        cap_full = rig.capture.scrape()
        assert store.alive()
        # A snapshot still answers (with what is left, maybe nothing).
        _, f2, _ = rig.pcapdump(rig.lab.tmp / "snap-2")
        check_snapshot(f2)
        assert mval(cap_full, "netreel_capture_spool_bytes") > 0, \
            "the capture spools nothing while its store cannot write"

        assert disk.free() < 1 * MIB, disk.free()
        eaten = eater.stop()

        # 3. The space comes back: the spool arrives.
        (disk.path / "eater-1").unlink()
        eater.release()
        t_free = time.monotonic()
        time.sleep(1.5)
    finally:
        n = udp.stop()
        tcp.stop()
    time.sleep(0.6)
    cap_ms = rig.wait_drained(60)
    after = rig.store_metrics()

    # Every segment whole; the store's view agrees with the files.
    nseg, seg_packets = segments_clean(rig.data_dir)
    _, f, _ = rig.pcapdump(rig.lab.tmp / "snap-3")
    check_snapshot(f)
    assert len(f.packets) == seg_packets == mval(after, "netreel_store_packets")
    seqs, dup, missing = seq_report(f.packets, n)
    assert not dup, f"{len(dup)} datagrams twice (first {dup[:10]})"
    # What went is the oldest: the datagrams kept run unbroken up to the last one sent.
    kept = sorted(seqs)
    assert kept and kept == list(range(kept[0], n)), \
        f"retained datagrams are not an unbroken run to {n - 1}: {runs(kept)[:10]}"
    assert mval(cap_ms, "netreel_capture_dropped_total", where="spool") == 0
    assert mval(cap_ms, "netreel_capture_store_errors_total") > 0
    if store.log_lines("ingest refused"):
        assert rig.capture.lines("store has no room; batches wait in the spool"), \
            rig.capture.stderr()
        assert rig.capture.lines("store reachable again"), rig.capture.stderr()

    # Logged and counted.
    dels = labelled(after, "netreel_store_deleted_segments_total")
    refused = store.log_lines("ingest refused")
    write_errors = mval(after, "netreel_store_write_errors_total")
    no_room = mval(after, "netreel_store_batches_total", result="no_room")
    assert refused or write_errors > 0
    assert no_room == len(refused), (no_room, refused)
    for ln in refused:
        assert "RESOURCE_EXHAUSTED" in ln, ln

    # Killed and restarted: recovery finds nothing to cut. The capture stops first (it sends
    # what it holds and waits for the acks), so that no batch is in flight at the kill: a cut
    # would be bytes the store wrote but never indexed, a torn block.
    # The active segment ends with the store's padding block (its O_DIRECT writes fill whole
    # 4 KiB blocks), which recovery takes off: that cut, exactly, is expected.
    stopped = rig.capture.stop()
    assert stopped["acked"] == stopped["batches"], stopped
    tails = segment_tails(rig.data_dir)
    store.kill9()
    rig.start_store()
    assert not unexpected_cuts(rig.store, tails), unexpected_cuts(rig.store, tails)
    segments_clean(rig.data_dir)
    print(f"\ndisk full: sent={n} kept={len(kept)} first_kept={kept[0]} segments={nseg} "
          f"deleted={ {dict(k)['reason']: v for k, v in dels.items()} } "
          f"write_errors={write_errors:g} refused_calls={len(refused)} no_room={no_room:g} "
          f"spool_at_full={mval(cap_full, 'netreel_capture_spool_bytes'):g} "
          f"store_bytes_at_full={mval(full_ms, 'netreel_store_bytes'):g} "
          f"full_s={t_free - t_full:.1f} eaten={eaten}")
