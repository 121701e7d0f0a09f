"""Power loss: what the store promises survives it, and what it restarts on is whole.

This kernel has no device-mapper (no dm-flakey or dm-log-writes), so the power loss is
simulated from a record of the store's own calls, as ALICE and CrashMonkey do: an LD_PRELOAD
shim logs every file and directory the store creates and every fdatasync/fsync it completes
(when it started, the file's length then). The store takes numbered packets from a client at a
steady pace, is killed with SIGKILL mid-stream, and its data directory is then rebuilt as a
power loss at that instant could have left it:

  * a file or directory exists only if its parent directory was synced after it was created;
  * a file keeps what its last completed sync covered (its length when that sync started), and
    of what was written later either nothing ("synced") or some prefix ("torn": a random cut
    point between the two, different for each file -- an index may keep more than its segment
    or less).

The store restarts on each state, and:

  * every batch acknowledged longer ago than the sync interval (plus 3 s for the sync then
    running on a loaded machine) is there, whole; no batch is there in part or twice;
  * the client's resend of what was never acknowledged (as the capture's spool does) is taken
    once: every packet at most once, every batch acknowledged before the cut once;
  * every segment opens in tshark and capinfos without a warning.

And the same after a SIGKILL alone (no power loss: the page cache survives): every acknowledged
batch is there.
"""

import os
import random
import shutil
import struct
import threading
import time
from pathlib import Path

import pytest

import store_helpers as sh

SHIM = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static long long now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void say(const char *fmt, ...)
{
    const char *log = getenv("NR_TEST_POWER_LOG");
    char line[1400];
    va_list ap;
    int fd, n;

    if (!log)
        return;
    va_start(ap, fmt);
    n = vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    fd = ((int (*)(const char *, int, ...))dlsym(RTLD_NEXT, "open"))(
        log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (fd >= 0) {
        (void)!write(fd, line, (size_t)n);
        close(fd);
    }
}

static void path_of(int fd, char *path, size_t len)
{
    char link[64];
    ssize_t n;
    snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
    n = readlink(link, path, len - 1);
    path[n > 0 ? n : 0] = 0;
}

/* S START_NS SIZE_AT_START PATH, once the sync succeeded */
static int synced(const char *sym, int fd)
{
    int (*real)(int) = (int (*)(int))dlsym(RTLD_NEXT, sym);
    char path[1024];
    struct stat sb;
    long long start = now_ns();
    long long size = fstat(fd, &sb) == 0 ? (long long)sb.st_size : -1;
    int rc = real(fd);
    int e = errno;

    if (rc == 0) {
        path_of(fd, path, sizeof(path));
        say("S %lld %lld %s\n", start, size, path);
    }
    errno = e;
    return rc;
}

int fdatasync(int fd) { return synced("fdatasync", fd); }
int fsync(int fd) { return synced("fsync", fd); }

/* C NS PATH: a name that did not exist before */
int mkdir(const char *path, mode_t mode)
{
    int (*real)(const char *, mode_t) = (int (*)(const char *, mode_t))dlsym(RTLD_NEXT, "mkdir");
    long long t = now_ns();
    int rc = real(path, mode);
    int e = errno;
    char abs[1024];
    if (rc == 0 && realpath(path, abs))
        say("C %lld %s\n", t, abs);
    errno = e;
    return rc;
}

static int opened(const char *sym, const char *path, int flags, va_list ap)
{
    int (*real)(const char *, int, ...) = (int (*)(const char *, int, ...))dlsym(RTLD_NEXT, sym);
    mode_t mode = (flags & (O_CREAT | O_TMPFILE)) ? va_arg(ap, mode_t) : 0;
    int existed = (flags & O_CREAT) ? access(path, F_OK) == 0 : 1;
    long long t = now_ns();
    int fd = real(path, flags, mode);
    int e = errno;
    if (fd >= 0 && !existed) {
        char abs[1024];
        path_of(fd, abs, sizeof(abs));
        say("C %lld %s\n", t, abs);
    }
    errno = e;
    return fd;
}
""" + sh.OPEN_WRAPPERS

IFACES = [("eth0", 1, 2048)]
PER_BATCH = 20
MARGIN_S = 3.0  # past the interval: the sync then running, a loaded machine


@pytest.fixture
def power_shim(tmp_path):
    return sh.build_shim(tmp_path, "power", SHIM)


def packet_ids(pkts):
    return [struct.unpack_from("<Q", p.data, 42)[0] for p in pkts]


class Client(threading.Thread):
    """Streams batches seq 1.. (PER_BATCH numbered packets each) on one Ingest call and notes
    when each acknowledgement came."""

    def __init__(self, stub, pb, t0):
        super().__init__(daemon=True)
        self.stub, self.pb, self.t0 = stub, pb, t0
        self.stop = threading.Event()
        self.sent = 0
        self.acked = []  # (seq, time.time_ns())

    def batch(self, seq):
        pkts = []
        for k in range(PER_BATCH):
            i = (seq - 1) * PER_BATCH + k
            pkts.append((0, self.t0 + i * 100_000, sh.frame(i, 600)))
        return sh.make_batch(self.pb, "power", seq, pkts, interfaces=IFACES if seq == 1 else None)

    def gen(self):
        seq = 1
        while not self.stop.is_set():
            self.sent = seq
            yield self.batch(seq)
            seq += 1
            time.sleep(0.005)

    def run(self):
        try:
            for a in self.stub.Ingest(self.gen(), timeout=120):
                self.acked.append((a.seq, time.time_ns()))
        except Exception:  # the store was killed: the call fails
            pass


def parse_log(path):
    created, syncs = {}, []
    for ln in Path(path).read_text().splitlines():
        kind, rest = ln.split(" ", 1)
        if kind == "C":
            ns, p = rest.split(" ", 1)
            created[p] = int(ns)
        elif kind == "S":
            ns, size, p = rest.split(" ", 2)
            syncs.append((int(ns), int(size), p))
    return created, syncs


def power_state(data, copy, log, mode, rng):
    """Copies data to copy as a power loss could have left it (see the module's text)."""
    created, syncs = parse_log(log)
    shutil.copytree(data, copy)
    gone = []

    def survives(p):
        p = str(p)
        if p == "/":
            return True
        parent = os.path.dirname(p)
        if not survives(parent):
            return False
        c = created.get(p)
        return c is None or any(d == parent and ns > c for ns, _, d in syncs)

    if not survives(Path(data).resolve()):
        gone.append(".")
        shutil.rmtree(copy)
        os.mkdir(copy)

    for f in sorted(Path(data).rglob("*")):
        rel = f.relative_to(data)
        target = Path(copy) / rel
        if not target.exists():
            continue  # its directory went
        if not survives(f.resolve()):
            gone.append(str(rel))
            if target.is_dir():
                shutil.rmtree(target)
            else:
                target.unlink()
            continue
        if target.is_dir() or f.name == ".lock":
            continue
        c = created.get(str(f.resolve()), 0)
        kept = [size for ns, size, p in syncs if p == str(f.resolve()) and ns > c]
        size = target.stat().st_size
        keep = min(kept[-1] if kept else 0, size)
        if mode == "torn" and size > keep:
            keep = rng.randint(keep, size)
        os.truncate(target, keep)
    return gone


def stored(data):
    """The packet ids in the segments, in file order."""
    ids = []
    for f in sh.segment_files(data):
        ids += packet_ids(sh.read_pcapng(f).packets)
    return ids


def check_batches_whole(ids):
    """The seqs of the batches ids holds, each whole and once."""
    by_seq = {}
    for i in ids:
        by_seq.setdefault(i // PER_BATCH + 1, []).append(i)
    torn = {s: len(v) for s, v in by_seq.items() if sorted(v) != list(
        range((s - 1) * PER_BATCH, s * PER_BATCH))}
    assert not torn, f"batches not whole or twice (seq: packets): {dict(list(torn.items())[:10])}"
    return set(by_seq)


def run_power(store_bins, store_pb, store_client, stores, tmp_path, shim, variants, interval_s,
              run_s):
    data = tmp_path / "data"
    log = tmp_path / "power.log"
    env = sh.shim_env(shim, NR_TEST_POWER_LOG=log)
    argv = [store_bins.store, "--listen", "127.0.0.1:0", "--metrics-listen", "off",
            "--node", "node-a", "--data-dir", data, "--sync-interval", f"{int(interval_s * 1000)}ms",
            "--time-interval", "1s"]
    store = sh.StoreProc(argv, data, tmp_path / "store.stderr", env=env)
    try:
        store.wait_serving()
        t0 = (sh.now_ns() // 10**9 - 120) * 10**9
        client = Client(store_client(store), store_pb, t0)
        client.start()
        time.sleep(run_s)  # several segments, closed ones and the active one
    finally:
        store.kill9()  # the power goes (and never is a store left behind)
    killed = time.time_ns()
    client.stop.set()
    client.join(30)
    assert client.acked, "nothing was acknowledged before the kill"
    acked_max = max(s for s, _ in client.acked)
    bound_s = interval_s + MARGIN_S
    old = [s for s, t in client.acked if t <= killed - bound_s * 1e9]
    old_max = max(old) if old else 0
    assert old_max > 10, f"too few batches acknowledged {bound_s} s before the kill: {old_max}"

    rng = random.Random(20261207)
    for n, mode in enumerate(variants):
        state = tmp_path / f"state-{n}-{mode}"
        if mode == "kill":
            shutil.copytree(data, state)
            gone = []
        else:
            gone = power_state(data, state, log, mode, rng)
        restarted = stores(data_dir=state)
        stub = store_client(restarted)
        seqs = check_batches_whole(stored(state))
        want = set(range(1, (acked_max if mode == "kill" else old_max) + 1))
        missing = sorted(want - seqs)
        assert not missing, (f"{mode}: acknowledged batches lost: {missing[:20]} "
                             f"(acked up to {acked_max}, {old_max} of them > {bound_s} s before "
                             f"the kill; files gone: {gone})")
        # The capture resends what was never acknowledged; the store takes each once.
        resend = [client.batch(s) for s in range(acked_max + 1, client.sent + 1)]
        if resend and not resend[0].interfaces:  # a new call carries the table from id 0
            resend[0].interfaces.add(id=0, name=IFACES[0][0], link_type=IFACES[0][1],
                                     snaplen=IFACES[0][2])
            acks, err = sh.ingest(stub, resend)
            assert err is None and acks[-1].seq == client.sent, (mode, acks[-1:], err)
        snap_ids = packet_ids(stub.snapshot(timeout=60).packets)
        assert len(snap_ids) == len(set(snap_ids)), f"{mode}: a packet twice in the snapshot"
        final = check_batches_whole(snap_ids)
        assert want <= final and set(range(acked_max + 1, client.sent + 1)) <= final, mode
        problems = restarted.stop()
        assert not problems, problems
        problems, _ = sh.wireshark_check(sh.segment_files(state))
        assert not problems, (mode, problems)


def test_power_loss_keeps_what_the_interval_promises(store_bins, store_pb, store_client, stores,
                                                     power_shim, tmp_path):
    run_power(store_bins, store_pb, store_client, stores, tmp_path, power_shim,
              ["kill", "synced", "torn", "torn", "torn"], interval_s=0.2, run_s=4)


@pytest.mark.faults
def test_power_loss_at_the_default_interval(store_bins, store_pb, store_client, stores,
                                            power_shim, tmp_path):
    run_power(store_bins, store_pb, store_client, stores, tmp_path, power_shim,
              ["kill", "synced"] + ["torn"] * 8, interval_s=1.0, run_s=12)
