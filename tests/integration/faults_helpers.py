"""What the fault-injection tests (test_faults_*.py, issue 7 "Fault injection") share: one
"node" (capture + store in a network namespace, traffic from a second one) with the hub in the
root namespace, processes that can be killed with SIGKILL and started again on the same data,
traffic whose every datagram is numbered and timed, the counters of all three processes, and the
checks a user would make afterwards (tshark on every segment, one snapshot through the hub, no
datagram twice, what is missing explained by the kill).

It builds on the other suites' helpers rather than copying them: capture_helpers (namespaces,
capture/tcpdump processes, datagrams, the Lab that stops everything), hub_helpers (Node with its
management link, HubProc, pcapdump), store_helpers (pcapng reader, tshark/capinfos checks).

This module holds no tests. Fault tests that take long are marked @pytest.mark.faults: they run
only with NETREEL_FAULTS=1 (`make test-faults`); conftest.py skips them otherwise.
"""

import errno
import hashlib
import http.client
import os
import re
import socket
import struct
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path

import store_helpers as sh
from hub_helpers import HubProc, Node, non_decreasing, only_file, pcapdump
from capture_helpers import (A_IP, B_IP, MIB, STORE_PORT, TCP_PORT, UDP_PORT, datagram,
                             metrics, ns_socket, start_store, tcp_stream, udp_seqs,
                             wait_drained)

ASAN = sh.ASAN
SCALE = sh.SCALE
FAULTS = os.environ.get("NETREEL_FAULTS", "0") not in ("", "0")


# ---- metrics ---------------------------------------------------------------------------------

def scrape_at(host, port, path="/metrics", timeout=10):
    """GET http://host:port/path from the root namespace -> parsed metrics (see
    capture_helpers.metrics)."""
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", path)
        r = conn.getresponse()
        body = r.read().decode(errors="replace")
        assert r.status == 200, f"GET {host}:{port}{path}: HTTP {r.status}: {body[:300]}"
        return metrics(body)
    finally:
        conn.close()


def labelled(ms, name):
    """{frozenset(labels): value} of every sample of name."""
    return {k[1]: v for k, v in ms.items() if isinstance(k, tuple) and k[0] == name}


# ---- a node with its hub ----------------------------------------------------------------------

class Rig:
    """One node (hub_helpers.Node: store and capture in namespace a, traffic from b) plus the hub
    in the root namespace, each of which a test may SIGKILL and start again on the same data.
    Everything is stopped by Lab.close() and close() on teardown."""

    def __init__(self, lab, hub_bin, cli_bin, store_args=(), capture_args=(), hub_args=(),
                 data_dir=None):
        self.lab, self.hub_bin, self.cli_bin = lab, hub_bin, cli_bin
        self.store_args, self.capture_args, self.hub_args = store_args, capture_args, hub_args
        self.node = Node(lab, "node-1")
        self.net = self.node.net
        self.data_dir = Path(data_dir) if data_dir else lab.tmp / "data-node-1"
        self.hubs = []
        self.hub = None
        self.store = self.capture = None

    # The store serves /metrics on its management address, which the root namespace reaches.
    def start_store(self, *extra):
        s = start_store(self.lab.store_bins, self.net.a, self.data_dir,
                        self.lab._path("store.stderr"), STORE_PORT, "--listen",
                        self.node.store_addr, "--node", self.node.name, "--metrics-listen",
                        f"{self.node.ip}:0", *self.store_args, *extra)
        self.lab.stores.append(s)
        self.node.store = self.store = s
        return s

    def start_capture(self):
        self.capture = self.node.start_capture("--buffer-size", "32MiB", *self.capture_args)
        return self.capture

    def start_hub(self, *extra):
        n = len(self.hubs)
        h = HubProc(self.hub_bin, self.node.store_addr, self.lab.tmp / f"hub-{n}.stderr",
                    *self.hub_args, *extra, metrics="127.0.0.1:0")
        self.hubs.append(h)
        h.wait_serving()
        self.hub = h
        return h

    def start(self):
        self.start_store()
        self.start_capture()
        self.start_hub()
        return self

    def store_metrics(self):
        assert self.store.alive(), f"the store exited\n{sh.tail(self.store.stderr())}"
        return scrape_at(self.node.ip, self.store.metrics_port)

    def hub_metrics(self):
        return scrape_at("127.0.0.1", self.hub.metrics_port)

    def wait_drained(self, timeout=60.0):
        """Until every batch the capture made is acknowledged; returns its last /metrics."""
        return wait_drained(self.capture, timeout, store=self.store)

    def pcapdump(self, out_dir, *args, timeout=300):
        """`netreel pcapdump --time=1h` through the current hub -> (CliResult, Pcapng, path)."""
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        r = pcapdump(self.cli_bin, self.hub, "--time=1h", "--dest", out_dir, *args, expect=0,
                     timeout=timeout)
        path = only_file(out_dir)
        return r, sh.read_pcapng(path), path

    def close(self):
        problems = []
        for h in self.hubs:
            problems += h.stop()
        return problems


def segments_clean(data_dir):
    """tshark -r, capinfos and the strict reader on every segment: no warning, counts agree.
    Returns the number of segments and packets in them."""
    files = sh.segment_files(data_dir)
    problems, parsed = sh.wireshark_check(files)
    assert not problems, "\n".join(problems)
    return len(files), sum(len(f.packets) for f in parsed.values())


def cut_lines(store):
    """The store's log lines saying it cut or left a segment at start-up."""
    return [ln for ln in store.stderr().splitlines()
            if "segment cut back" in ln or "cannot be recovered" in ln or "padding cut" in ln]


PADDING_BLOCK = 0x8E7E0001  # the store's local-use block that fills an active segment's 4 KiB


def segment_tails(data_dir):
    """{segment path: (file size, length of its last block when that is the store's padding
    block, else 0)}, by walking the blocks (the files are whole: see segments_clean)."""
    out = {}
    for p in sh.segment_files(data_dir):
        b = p.read_bytes()
        off, last = 0, None
        while off + 12 <= len(b):
            btype, total = struct.unpack_from("<II", b, off)
            if total < 12 or off + total > len(b):
                break
            last = (btype, total)
            off += total
        pad = last[1] if last and last[0] == PADDING_BLOCK else 0
        out[str(p)] = (len(b), pad)
    return out


def unexpected_cuts(store, tails):
    """Recovery's cuts other than taking off an active segment's padding block, as it was
    before the kill (tails: segment_tails then). A torn block would be one of these: the store
    says "segment cut back" (a warning) for those and "padding cut" (info) for the padding."""
    bad = []
    for ln in cut_lines(store):
        f = dict(re.findall(r"(\w+)=(\S+)", ln))
        seg, frm, to = f.get("segment"), int(f.get("from", -1)), int(f.get("to", -1))
        size, pad = tails.get(seg, (None, 0))
        if "padding cut" not in ln or size != frm or not pad or frm - to != pad:
            bad.append(f"{ln} (before the kill: {size} bytes, padding {pad})")
    return bad


# ---- traffic ----------------------------------------------------------------------------------

class UdpStream(threading.Thread):
    """Datagrams seq = 0, 1, 2, ... from namespace b to A_IP:UDP_PORT at about pps, until
    stop(); remembers when each one left (time.monotonic()). A receiving socket in a keeps
    the kernel from answering with ICMP."""

    def __init__(self, lab, net, pps, size_of=lambda seq: 12 + (seq * 37) % 1461):
        super().__init__(daemon=True)
        self.rx = ns_socket(net.a)
        lab.sockets.append(self.rx)
        self.rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 * MIB)
        self.rx.bind((A_IP, UDP_PORT))
        self.tx = ns_socket(net.b)
        lab.sockets.append(self.tx)
        self.tx.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 * MIB)
        self.tx.connect((A_IP, UDP_PORT))
        self.pps, self.size_of = pps, size_of
        self.sent_at = []
        self.halt = threading.Event()
        self.error = None
        self.drainer = threading.Thread(target=self._drain, daemon=True)

    def _drain(self):
        self.rx.settimeout(0.2)
        while not self.halt.is_set():
            try:
                self.rx.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                return

    def run(self):
        try:
            t0 = time.monotonic()
            seq = 0
            while not self.halt.is_set():
                d = datagram(seq, self.size_of(seq))
                while True:
                    try:
                        self.tx.send(d)
                        break
                    except (BlockingIOError, ConnectionRefusedError):
                        time.sleep(0.0005)
                self.sent_at.append(time.monotonic())
                seq += 1
                if seq % 16 == 0:
                    ahead = t0 + seq / self.pps - time.monotonic()
                    if ahead > 0:
                        time.sleep(ahead)
        except BaseException as e:  # noqa: B902 - reported by stop()
            self.error = e

    def begin(self):
        self.drainer.start()
        self.start()
        return self

    def stop(self):
        self.halt.set()
        self.join(30)
        self.drainer.join(5)
        if self.error:
            raise self.error
        return len(self.sent_at)

    def sent_between(self, t0, t1):
        """Seqs of the datagrams that left in [t0, t1] (monotonic)."""
        return [s for s, t in enumerate(self.sent_at) if t0 <= t <= t1]


class TcpStream(threading.Thread):
    """One TCP connection from b to A_IP:TCP_PORT carrying seeded random bytes at about mbit
    Mbit/s until stop(); A's side reads and hashes everything. .data is what was sent."""

    def __init__(self, lab, net, mbit=100, seed=7):
        super().__init__(daemon=True)
        self.srv = ns_socket(net.a, type=socket.SOCK_STREAM)
        lab.sockets.append(self.srv)
        self.srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.srv.bind((A_IP, TCP_PORT))
        self.srv.listen(1)
        self.cli = ns_socket(net.b, type=socket.SOCK_STREAM)
        lab.sockets.append(self.cli)
        self.mbit = mbit
        self.block = hashlib.sha256(str(seed).encode()).digest() * 2048  # 64 KiB
        self.sent = bytearray()
        self.got = hashlib.sha256()
        self.got_len = 0
        self.halt = threading.Event()
        self.error = None
        self.receiver = threading.Thread(target=self._receive, daemon=True)

    def _receive(self):
        c, _ = self.srv.accept()
        with c:
            while True:
                d = c.recv(1 << 20)
                if not d:
                    return
                self.got.update(d)
                self.got_len += len(d)

    def run(self):
        try:
            self.cli.connect((A_IP, TCP_PORT))
            t0 = time.monotonic()
            k = 0
            while not self.halt.is_set():
                # Each 64 KiB differs from the last (its counter), so the stream rebuilt from the
                # recording can only match if every segment is there once, in place.
                chunk = struct.pack("!Q", k) + self.block[8:]
                self.cli.sendall(chunk)
                self.sent += chunk
                k += 1
                ahead = t0 + len(self.sent) * 8 / (self.mbit * 1e6) - time.monotonic()
                if ahead > 0:
                    time.sleep(ahead)
            self.cli.shutdown(socket.SHUT_WR)
        except BaseException as e:  # noqa: B902 - reported by stop()
            self.error = e

    def begin(self):
        self.receiver.start()
        self.start()
        return self

    def stop(self):
        self.halt.set()
        self.join(30)
        self.receiver.join(30)
        if self.error:
            raise self.error
        assert self.got_len == len(self.sent), \
            f"TCP: {self.got_len} bytes received of {len(self.sent)} sent"
        return bytes(self.sent)


# ---- what a snapshot holds ----------------------------------------------------------------------

def seq_report(packets, n_sent):
    """(Counter of seqs, duplicated seqs, missing seqs among 0..n_sent-1)."""
    seqs = Counter(udp_seqs(packets))
    dup = sorted(s for s, k in seqs.items() if k > 1)
    missing = sorted(set(range(n_sent)) - set(seqs))
    return seqs, dup, missing


def tcp_ok(packets, data):
    """'' when the TCP stream rebuilt from packets is data, else what differs."""
    got, _ = tcp_stream(packets, B_IP, TCP_PORT)
    if got == data:
        return ""
    return f"TCP stream rebuilt from the snapshot: {len(got)} bytes, {len(data)} sent"


def check_snapshot(f):
    """Whole pcapng, timestamps never going backwards."""
    bad = non_decreasing(f.packets)
    assert not bad, bad


def runs(seqs):
    """[(first, last), ...] of consecutive runs in sorted seqs."""
    out = []
    for s in seqs:
        if out and s == out[-1][1] + 1:
            out[-1][1] = s
        else:
            out.append([s, s])
    return [tuple(r) for r in out]


# ---- file systems -------------------------------------------------------------------------------

class Tmpfs:
    """A tmpfs of `size` mounted on path (created); unmounted (lazily if busy) by close()."""

    def __init__(self, path, size):
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs",
                            str(self.path)], capture_output=True, text=True, timeout=30)
        assert r.returncode == 0, f"mount -t tmpfs: {r.stderr}"
        self.mounted = True

    def free(self):
        v = os.statvfs(self.path)
        return v.f_bavail * v.f_frsize

    def total(self):
        v = os.statvfs(self.path)
        return v.f_blocks * v.f_frsize

    def close(self):
        if self.mounted:
            r = subprocess.run(["umount", str(self.path)], capture_output=True, timeout=30)
            if r.returncode != 0:
                subprocess.run(["umount", "-l", str(self.path)], capture_output=True, timeout=30)
            self.mounted = False


def dd_fill(path, mib):
    """dd writes mib MiB to path (another writer eating the space); returns the bytes it got
    (less than asked when the disk filled up)."""
    subprocess.run(["dd", "if=/dev/zero", f"of={path}", "bs=1M", f"count={mib}"],
                   capture_output=True, timeout=60)
    return Path(path).stat().st_size if Path(path).exists() else 0


class Eater(threading.Thread):
    """Another writer that takes every byte of path's file system as soon as it is free (the
    store's deletions included), 64 KiB at a time, until stop(). Its file is deleted by
    release()."""

    def __init__(self, path):
        super().__init__(daemon=True)
        self.path = Path(path)
        self.halt = threading.Event()
        self.bytes = 0
        self.error = None

    def run(self):
        chunk = b"\0" * (64 << 10)
        try:
            with open(self.path, "ab", buffering=0) as f:
                while not self.halt.is_set():
                    try:
                        self.bytes += f.write(chunk)
                    except OSError as e:
                        if e.errno != errno.ENOSPC:
                            raise
                        time.sleep(0.005)
        except BaseException as e:  # noqa: B902 - reported by stop()
            self.error = e

    def stop(self):
        self.halt.set()
        self.join(10)
        if self.error:
            raise self.error
        return self.bytes

    def release(self):
        self.path.unlink(missing_ok=True)
