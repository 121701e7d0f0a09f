"""netreel-store's acknowledgement and its sync interval.

An acknowledgement means written: the batch is in its segment and index (the page cache at
least) and visible to snapshots. What is written is synced (fdatasync, many batches at once) at
the latest --sync-interval (default 1s) after it was written, and as soon as a segment closes;
--sync-interval 0 acknowledges each batch only once a sync covered it. An LD_PRELOAD shim logs
every fdatasync (when it started, and the file) and holds them back while a flag file exists.
"""

import os
import time

import pytest

import store_helpers as sh

SHIM = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int fdatasync(int fd)
{
    int (*real)(int) = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
    const char *hold = getenv("NR_TEST_FDATASYNC_HOLD");
    const char *log = getenv("NR_TEST_FDATASYNC_LOG");
    char link[64], path[1024], line[1200];
    struct timespec ts;
    ssize_t n;

    while (hold && access(hold, F_OK) == 0)
        usleep(10000);
    clock_gettime(CLOCK_REALTIME, &ts);
    snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
    n = readlink(link, path, sizeof(path) - 1);
    path[n > 0 ? n : 0] = 0;
    if (log) {
        int lfd = open(log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
        int len = snprintf(line, sizeof(line), "%lld %s\n",
                           (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec, path);
        if (lfd >= 0) {
            (void)!write(lfd, line, (size_t)len);
            close(lfd);
        }
    }
    return real(fd);
}
"""

IFACES = [("eth0", 1, 256)]


@pytest.fixture
def sync_shim(tmp_path):
    return sh.build_shim(tmp_path, "synclog", SHIM)


class Logged:
    """A store under the shim: hold is the flag file, syncs() what it logged."""

    def __init__(self, store_bins, shim, tmp_path, *extra):
        self.data = tmp_path / "data"
        self.hold = tmp_path / "hold"
        self.log = tmp_path / "fdatasync.log"
        env = sh.shim_env(shim, NR_TEST_FDATASYNC_HOLD=self.hold, NR_TEST_FDATASYNC_LOG=self.log)
        argv = [store_bins.store, "--listen", "127.0.0.1:0", "--metrics-listen", "off",
                "--node", "node-a", "--data-dir", self.data, *extra]
        self.store = sh.StoreProc(argv, self.data, tmp_path / "store.stderr", env=env)
        try:
            self.store.wait_serving()
        except BaseException:
            self.store.kill9()  # never left behind
            raise

    def syncs(self, suffix=".pcapng"):
        """[(ns, path)] of the fdatasyncs of files ending in suffix, in order."""
        if not self.log.exists():
            return []
        out = []
        for ln in self.log.read_text().splitlines():
            ns, _, path = ln.partition(" ")
            if path.endswith(suffix):
                out.append((int(ns), path))
        return out

    def wait_sync(self, path, after_ns, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            hits = [ns for ns, p in self.syncs() if p == str(path) and ns >= after_ns]
            if hits:
                return hits[0]
            time.sleep(0.02)
        return None

    def stop(self):
        if self.hold.exists():
            self.hold.unlink()
        return self.store.stop()


def packets(t0, n):
    return [(0, t0 + i * 1000, sh.frame(i, 200)) for i in range(n)]


def batches(pb, capture_id, t0, seqs):
    return [sh.make_batch(pb, capture_id, s, packets(t0 + s * 10**8, 4),
                          interfaces=IFACES if s == seqs[0] else None) for s in seqs]


def test_an_ack_waits_for_the_write_not_for_the_disk(store_bins, store_pb, store_client,
                                                     sync_shim, tmp_path):
    st = Logged(store_bins, sync_shim, tmp_path)  # the default interval
    try:
        client = store_client(st.store)
        t0 = (sh.now_ns() // 10**9 - 60) * 10**9
        st.hold.touch()  # no fdatasync finishes from now on
        acks, err = sh.ingest(client, batches(store_pb, "cap", t0, [1, 2, 3]), timeout=20)
        assert err is None and [a.seq for a in acks][-1] == 3, (acks, err)
        # Acknowledged means visible to snapshots, with nothing synced yet.
        assert len(client.snapshot(timeout=30).keys()) == 12
        assert st.syncs() == [], "a sync finished while they were held back"
        # Once the disk answers, what was written is synced.
        seg = sh.segment_files(st.data)[0]
        st.hold.unlink()
        assert st.wait_sync(seg, 0, 10), f"{seg} was not synced: {st.syncs('')}"
    finally:
        problems = st.stop()
    assert not problems, problems
    problems, _ = sh.wireshark_check(sh.segment_files(st.data))
    assert not problems, problems


def test_sync_interval_0_acks_only_what_a_sync_covered(store_bins, store_pb, store_client,
                                                       sync_shim, tmp_path):
    st = Logged(store_bins, sync_shim, tmp_path, "--sync-interval", "0")
    try:
        client = store_client(st.store)
        t0 = (sh.now_ns() // 10**9 - 60) * 10**9
        st.hold.touch()
        sent = batches(store_pb, "cap", t0, [1, 2, 3])
        acks, err = sh.ingest(client, sent, timeout=3)
        assert acks == [], f"acknowledged {[a.seq for a in acks]} before any sync finished"
        assert sh.ended_at_deadline(err), err
        st.hold.unlink()
        acks, err = sh.ingest(client, sent, timeout=20)  # again: duplicates, acknowledged
        assert err is None and [a.seq for a in acks][-1] == 3, (acks, err)
        seg = sh.segment_files(st.data)[0]
        assert st.wait_sync(seg, 0, 1), "acknowledged before its segment was synced"
        assert client.stats().captures[0].packets == 12
    finally:
        problems = st.stop()
    assert not problems, problems


def test_what_is_written_is_synced_within_the_interval(store_bins, store_pb, store_client,
                                                       sync_shim, tmp_path):
    st = Logged(store_bins, sync_shim, tmp_path, "--sync-interval", "1s")
    try:
        client = store_client(st.store)
        t0 = (sh.now_ns() // 10**9 - 60) * 10**9
        for round_ in range(3):  # each write starts the clock anew
            before = time.time_ns()
            seqs = [2 * round_ + 1, 2 * round_ + 2]
            acks, err = sh.ingest(client, batches(store_pb, "cap", t0, seqs))
            assert err is None and acks[-1].seq == seqs[-1], (acks, err)
            seg = sh.segment_files(st.data)[0]
            at = st.wait_sync(seg, before, 1 + 4)  # the interval, and room for a slow machine
            assert at, f"round {round_}: no fdatasync of {seg} within 5 s of the write"
            time.sleep(0.3)
    finally:
        problems = st.stop()
    assert not problems, problems


def test_a_long_interval_defers_the_sync_but_not_past_a_close(store_bins, store_pb, store_client,
                                                              sync_shim, tmp_path):
    # --sync-interval 1h: no fdatasync of the segment while it is active (the group commit
    # waits) -- until it closes (rotation after --time-interval 1s, on the once-a-second tick),
    # which syncs it at once.
    st = Logged(store_bins, sync_shim, tmp_path, "--sync-interval", "1h", "--time-interval", "1s")
    try:
        client = store_client(st.store)
        t0 = (sh.now_ns() // 10**9 - 60) * 10**9
        before = time.time_ns()
        acks, err = sh.ingest(client, batches(store_pb, "cap", t0, [1, 2, 3]))
        assert err is None and acks[-1].seq == 3, (acks, err)
        seg = sh.segment_files(st.data)[0]
        synced = st.wait_sync(seg, 0, 1 + 1 + 6)
        assert synced, f"the closed segment {seg} was not synced: {st.syncs('')}"
        assert synced - before >= 0.9e9, \
            f"synced {(synced - before) / 1e9:.2f} s after the write: before it closed"
    finally:
        problems = st.stop()
    assert not problems, problems
