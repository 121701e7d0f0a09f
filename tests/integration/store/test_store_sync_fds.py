"""netreel-store out of file descriptors: it acknowledges nothing a sync could not take.

A sync takes a duplicate of each dirty segment's descriptors (the segment may rotate while the
sync runs) and opens each stream directory that got a new file. When a dup() or that open()
fails (EMFILE), the files stay dirty and the sync acknowledges nothing; the store says so once,
refuses new Ingest and Snapshot calls with RESOURCE_EXHAUSTED while it lasts, acknowledges no
more written batches (with a sync interval they are otherwise acknowledged once written), tries
again each second, and acknowledges everything once a sync takes every file. Before, the failed
file was marked clean and its batches acknowledged unsynced. The failures are injected with an
LD_PRELOAD shim whose dup() (or open() of a directory) fails with EMFILE while a flag file
exists. One client address also cannot take every descriptor: past 64 connections from it, the
server closes the new ones.
"""

import socket
import time

import grpc
import pytest

import store_helpers as sh

SHIM = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <unistd.h>

static int failing(const char *env)
{
    const char *flag = getenv(env);
    return flag && access(flag, F_OK) == 0;
}

int dup(int fd)
{
    int (*real)(int) = (int (*)(int))dlsym(RTLD_NEXT, "dup");
    if (failing("NR_TEST_DUP_EMFILE")) {
        errno = EMFILE;
        return -1;
    }
    return real(fd);
}

static int opened(const char *sym, const char *path, int flags, va_list ap)
{
    int (*real)(const char *, int, ...) = (int (*)(const char *, int, ...))dlsym(RTLD_NEXT, sym);
    mode_t mode = (flags & (O_CREAT | O_TMPFILE)) ? va_arg(ap, mode_t) : 0;
    if ((flags & O_DIRECTORY) && failing("NR_TEST_OPENDIR_EMFILE")) {
        errno = EMFILE;
        return -1;
    }
    return real(path, flags, mode);
}
""" + sh.OPEN_WRAPPERS

IFACES = [("eth0", 1, 256)]


@pytest.fixture
def fd_shim(tmp_path):
    return sh.build_shim(tmp_path, "emfile", SHIM)


def closed_within(sock, seconds):
    """True when the peer closes sock within seconds (whatever it sent first)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            if sock.recv(4096) == b"":
                return True
        except socket.timeout:
            return False
        except ConnectionResetError:
            return True
    return False


def packets(t0, n):
    return [(0, t0 + i * 1000, sh.frame(i, 120)) for i in range(n)]


def start_store(store_bins, tmp_path, env=None, *extra):
    data = tmp_path / "data"
    argv = [store_bins.store, "--listen", "127.0.0.1:0", "--metrics-listen", "off",
            "--node", "node-a", "--data-dir", data, *extra]
    store = sh.StoreProc(argv, data, tmp_path / "store.stderr", env=env)
    store.wait_serving()
    return store


@pytest.mark.parametrize("what", ["NR_TEST_DUP_EMFILE", "NR_TEST_OPENDIR_EMFILE"])
def test_no_descriptor_to_sync_means_no_ack(store_bins, store_pb, store_client, fd_shim, tmp_path,
                                            what):
    # --sync-interval 0: a batch is acknowledged only once synced.
    flag = tmp_path / "fail-now"
    store = start_store(store_bins, tmp_path, sh.shim_env(fd_shim, **{what: flag}),
                        "--sync-interval", "0")
    try:
        client = store_client(store)
        t0 = (sh.now_ns() // 10**9 - 60) * 10**9
        acks, err = sh.ingest(client, [sh.make_batch(store_pb, "before", 1, packets(t0, 5),
                                                     interfaces=IFACES)])
        assert err is None and [a.seq for a in acks] == [1], (acks, err)

        # A new stream (a new directory and segment) while no descriptor can be had: its
        # batches are written, never acknowledged.
        flag.touch()
        batches = [sh.make_batch(store_pb, "during", s, packets(t0 + s * 10**8, 5),
                                 interfaces=IFACES if s == 1 else None) for s in (1, 2, 3)]
        acks, err = sh.ingest(client, batches, timeout=4)
        assert acks == [], f"acknowledged seq {[a.seq for a in acks]} it could not sync"
        assert sh.ended_at_deadline(err), err
        assert store.log_lines("cannot sync: acknowledgements wait, and new calls are refused")

        check_refused_then_resumed(store, store_pb, client, flag, batches, t0)
    finally:
        problems = store.stop()
    assert not problems, problems
    problems, _ = sh.wireshark_check(sh.segment_files(tmp_path / "data"))
    assert not problems, problems


@pytest.mark.parametrize("what", ["NR_TEST_DUP_EMFILE", "NR_TEST_OPENDIR_EMFILE"])
def test_no_descriptor_to_sync_stops_the_acks(store_bins, store_pb, store_client, fd_shim,
                                              tmp_path, what):
    # With a sync interval a batch is acknowledged once written; once a sync could not take
    # every file, nothing more is acknowledged until one does: the interval bounds what a power
    # loss can cost, and a sync that cannot happen would stretch it without end.
    flag = tmp_path / "fail-now"
    store = start_store(store_bins, tmp_path, sh.shim_env(fd_shim, **{what: flag}),
                        "--sync-interval", "200ms")
    try:
        client = store_client(store)
        t0 = (sh.now_ns() // 10**9 - 60) * 10**9
        flag.touch()
        batches = [sh.make_batch(store_pb, "during", s, packets(t0 + s * 10**8, 5),
                                 interfaces=IFACES if s == 1 else None) for s in (1, 2, 3)]

        def sent():
            yield batches[0]
            deadline = time.monotonic() + 10
            while not store.log_lines("cannot sync: acknowledgements wait"):
                if time.monotonic() > deadline:
                    return
                time.sleep(0.05)
            yield from batches[1:]

        acks, err = sh.ingest(client, sent(), timeout=6)
        assert store.log_lines("cannot sync: acknowledgements wait, and new calls are refused")
        assert [a.seq for a in acks] == [1], \
            f"acknowledged {[a.seq for a in acks]}: only seq 1 was written before the sync failed"
        assert sh.ended_at_deadline(err), err
        check_refused_then_resumed(store, store_pb, client, flag, batches, t0)
    finally:
        problems = store.stop()
    assert not problems, problems
    problems, _ = sh.wireshark_check(sh.segment_files(tmp_path / "data"))
    assert not problems, problems


def check_refused_then_resumed(store, store_pb, client, flag, batches, t0):
    """While starved, new calls are refused; once descriptors are back, the batches are synced,
    acknowledged when sent again (as duplicates: nothing is written twice), and new calls work."""
    # Meanwhile new calls are refused, saying why.
    _, err = sh.ingest(client, [sh.make_batch(store_pb, "new", 1, packets(t0, 1),
                                              interfaces=IFACES)], timeout=10)
    assert err is not None and err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, err
    assert "cannot sync its files (Too many open files)" in err.details(), err.details()
    with pytest.raises(grpc.RpcError) as e:
        client.snapshot(timeout=10)
    assert e.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, e.value
    assert "no snapshot until it can" in e.value.details(), e.value.details()

    # Descriptors again: within a tick or two every batch is synced; sent again, they are
    # acknowledged (as duplicates: nothing is written twice), and new calls work.
    flag.unlink()
    deadline = time.monotonic() + 10
    while not store.log_lines("syncing again: acknowledgements resume"):
        assert time.monotonic() < deadline, sh.tail(store.stderr())
        time.sleep(0.1)
    acks, err = sh.ingest(client, batches)
    assert err is None and acks and acks[-1].seq == 3, (acks, err)
    acks, err = sh.ingest(client, [sh.make_batch(store_pb, "after", 1, packets(t0, 2),
                                                 interfaces=IFACES)])
    assert err is None and [a.seq for a in acks] == [1], (acks, err)
    by_id = {c.capture_id: c for c in client.stats().captures}
    assert by_id["during"].last_seq == 3 and by_id["during"].packets == 15, by_id
    assert client.snapshot(timeout=30).keys(), "the snapshot is empty"


def test_one_address_cannot_take_every_connection(store_bins, store_pb, store_client, tmp_path):
    store = start_store(store_bins, tmp_path)
    socks = []
    try:
        for _ in range(64):  # the limit: all stay open
            socks.append(socket.create_connection(("127.0.0.1", store.port), timeout=5))
        extra = socket.create_connection(("127.0.0.1", store.port), timeout=5)
        socks.append(extra)
        assert closed_within(extra, 5), "the 65th connection from one address was kept"
        # Another address (127.0.0.2 is loopback too) still gets in: kept open.
        other = socket.create_connection(("127.0.0.1", store.port), timeout=5,
                                         source_address=("127.0.0.2", 0))
        socks.append(other)
        assert not closed_within(other, 1), "a connection from another address was closed"
        assert store.log_lines("too many connections from one address")
        for s in socks[:10]:
            s.close()
        time.sleep(0.2)
        client = store_client(store)  # 127.0.0.1 again: room once some went
        assert client.stats().node == "node-a"
    finally:
        for s in socks:
            s.close()
        problems = store.stop()
    assert not problems, problems
