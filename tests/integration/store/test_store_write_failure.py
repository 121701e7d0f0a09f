"""netreel-store when a segment write fails while later batches are queued behind it.

Batches are written on the store's writer thread while the loop takes in the next ones, so a
failing write has others queued after it. The store must close that segment cut back to its
last good write, skip what was queued after, end the call with an error, keep serving, and take
the resent batches again: in the end every packet is held exactly once, in files Wireshark
reads, also after a restart. The failure is injected with an LD_PRELOAD shim: once a flag file
exists, the Kth write to a .pcapng file returns EIO.
"""

import re
import time

import store_helpers as sh

SHIM = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

static int counted;

ssize_t pwritev(int fd, const struct iovec *iov, int n, off_t off)
{
    ssize_t (*real)(int, const struct iovec *, int, off_t) =
        (ssize_t (*)(int, const struct iovec *, int, off_t))dlsym(RTLD_NEXT, "pwritev");
    const char *flag = getenv("NR_TEST_WRITE_EIO_FLAG");
    char link[64], path[512];
    ssize_t len;

    snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
    len = readlink(link, path, sizeof(path) - 1);
    if (flag && len > 7 && access(flag, F_OK) == 0) {
        path[len] = 0;
        if (strcmp(path + len - 7, ".pcapng") == 0 &&
            __atomic_add_fetch(&counted, 1, __ATOMIC_SEQ_CST) ==
                atoi(getenv("NR_TEST_WRITE_EIO_NTH"))) {
            errno = EIO;
            return -1;
        }
    }
    return real(fd, iov, n, off);
}
"""

NTH = 4  # the segment's head, two writes of batches, then the third write fails


def test_failed_write_is_cut_back_and_resent_batches_are_taken(store_bins, feeder, stores,
                                                               store_client, tmp_path):
    data = tmp_path / "data"
    flag = tmp_path / "fail-now"
    so = sh.build_shim(tmp_path, "write-eio", SHIM)
    argv = [store_bins.store, "--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0",
            "--node", "node-a", "--data-dir", data]
    store = sh.StoreProc(argv, data, tmp_path / "store.stderr",
                         env=sh.shim_env(so, NR_TEST_WRITE_EIO_FLAG=flag,
                                         NR_TEST_WRITE_EIO_NTH=NTH))
    try:
        store.wait_serving()
        ts = (sh.now_ns() // 10**9 - 60) * 10**9
        n = int(20000 * sh.SCALE)
        before = feeder(store, "--packets", n, "--ts-start", ts, "--batch-bytes", "64KiB",
                        "--dump", tmp_path / "before.pcapng", capture_id="before")  # all acked

        flag.touch()
        args = ["--packets", n, "--ts-start", ts + 10**9, "--batch-bytes", "64KiB"]
        failed = feeder(store, *args, capture_id="during", expect_ok=False, timeout=60)
        assert failed["status"] == 13 and failed["acked_seq"] < failed["last_seq"], failed
        # Acked: only batches written before the failed write (which may have carried several
        # queued batches at once: the error names the first).
        first_failed = int(re.search(r"batch seq (\d+):", failed["message"]).group(1))
        assert failed["acked_seq"] < first_failed, f"acked beyond the batches written: {failed}"
        time.sleep(0.2)
        assert store.alive(), f"the store stopped after a failed write:\n{sh.tail(store.stderr())}"
        err = store.stderr()
        assert "cannot write to a segment: closing it" in err and "Input/output error" in err, \
            sh.tail(err)
        _, metrics, _ = sh.scrape(store)
        assert sh.metric_value(metrics, "netreel_store_write_errors_total") == 1, metrics

        # The capture resends everything from its first unacknowledged batch: all taken. (The
        # failed call may have ended before it sent its last batch: the store's error can come
        # first on a busy machine. The same packets make as many batches as before.)
        again = feeder(store, *args, "--dump", tmp_path / "during.pcapng", capture_id="during")
        assert again["acked_seq"] == again["last_seq"] == before["last_seq"], again
        assert failed["last_seq"] <= again["last_seq"], (failed, again)

        want = sorted(sh.read_pcapng(tmp_path / "before.pcapng").keys() +
                      sh.read_pcapng(tmp_path / "during.pcapng").keys())
        got = store_client(store).snapshot()
        assert sorted(got.keys()) == want, (
            f"the store holds {len(got.packets)} packets, {len(want)} were sent once each")
        problems, _ = sh.wireshark_check(sh.segment_files(data))
        assert not problems, problems
    finally:
        problems = store.stop()
    assert not problems, problems

    # Restarted: recovery agrees with what the store served.
    flag.unlink()
    store2 = stores(data_dir=data)
    got = store_client(store2).snapshot()
    assert sorted(got.keys()) == want, "after a restart the recording differs"


def test_failed_write_after_a_restart_keeps_the_recovered_seqs(store_bins, feeder, stores,
                                                               store_client, tmp_path):
    # A failure makes the stream forget the batches after its last written one. After a
    # restart, the last written one is the last recovered from the index: a replay of the
    # batches recovered must still be duplicates, not a second copy.
    data = tmp_path / "data"
    flag = tmp_path / "fail-now"
    so = sh.build_shim(tmp_path, "write-eio", SHIM)
    ts = (sh.now_ns() // 10**9 - 60) * 10**9
    n = int(4000 * sh.SCALE)
    args = ["--packets", n, "--ts-start", ts, "--batch-bytes", "64KiB"]
    first_store = stores(data_dir=data)
    first = feeder(first_store, *args, "--dump", tmp_path / "first.pcapng", capture_id="c")
    problems = first_store.stop()
    assert not problems, problems

    flag.touch()
    argv = [store_bins.store, "--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0",
            "--node", "node-a", "--data-dir", data]
    store = sh.StoreProc(argv, data, tmp_path / "store.stderr",
                         env=sh.shim_env(so, NR_TEST_WRITE_EIO_FLAG=flag,
                                         NR_TEST_WRITE_EIO_NTH=2))  # the new segment's first batch
    try:
        store.wait_serving()
        failed = feeder(store, "--packets", n, "--ts-start", ts + 10**9, "--batch-bytes", "64KiB",
                        "--seq-start", first["last_seq"] + 1, capture_id="c", expect_ok=False,
                        timeout=60)
        assert failed["status"] == 13, failed
        client = store_client(store)
        assert client.stats().captures[0].last_seq == first["last_seq"], client.stats()

        again = feeder(store, *args, capture_id="c")
        assert again["acked_seq"] == first["last_seq"], again
        got = client.snapshot()
        want = sorted(sh.read_pcapng(tmp_path / "first.pcapng").keys())
        assert sorted(got.keys()) == want, (
            f"the store holds {len(got.packets)} packets, {len(want)} were sent: recovered "
            "batches were taken again")
        _, metrics, _ = sh.scrape(store)
        assert sh.metric_value(metrics, "netreel_store_batches_total", result="accepted") == 0, \
            "batches voided by the failure were counted as accepted"
        assert sh.metric_value(metrics, "netreel_store_batches_total",
                               result="duplicate") == first["last_seq"], metrics
    finally:
        problems = store.stop()
    assert not problems, problems
