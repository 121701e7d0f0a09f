"""What the netreel-capture tests (test_capture_*.py) share: network namespaces joined by a veth
pair, the capture / store / tcpdump processes inside them, traffic of known content made from
sockets opened inside the namespaces, and a classic-pcap reader for tcpdump's files.

A helper module, not a test module: its fixtures are imported by the test modules (`from
capture_helpers import ...`), so that conftest.py stays as the store tests left it.

Layout of a test "node": namespace A holds one end of the veth pair (10.77.0.1/24), the store
(listening on 127.0.0.1:STORE_PORT of A's own loopback) and the capture; namespace B holds the
other end (10.77.0.2/24) and sends traffic to A. IPv6 is off in both, so the only packets on the
wire are the ones a test makes (and the ARP they cause). Everything a test starts is stopped and
every namespace deleted on teardown, also when the test fails.
"""

import ctypes
import hashlib
import http.client
import os
import random
import re
import signal
import socket
import struct
import subprocess
import threading
import time
from pathlib import Path

import pytest

import kube_api
import store_helpers as sh

ASAN = sh.ASAN
SCALE = sh.SCALE  # volumes and durations under ASan
STORE_PORT = 18897  # the store's port inside a test namespace (the namespace is ours alone)
A_IP, B_IP = "10.77.0.1", "10.77.0.2"
UDP_PORT, TCP_PORT = 9000, 9001
MAGIC = b"NRSQ"  # first bytes of every UDP datagram the tests send, then the 64-bit seq
MIB = 1 << 20

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)
_ns_counter = [0]
_NS_RE = re.compile(r"^nr(\d+)t\d+[ab]$")


# ---- network namespaces ---------------------------------------------------------------------

def run(argv, check=True, timeout=30):
    r = subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=timeout)
    if check and r.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, argv))}: exit {r.returncode}: {r.stderr.strip()}")
    return r


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def _ns_pids(ns):
    r = run(["ip", "netns", "pids", ns], check=False)
    return [int(x) for x in r.stdout.split()] if r.returncode == 0 else []


def _delete_ns(ns):
    """Kills what still runs in ns (only processes of our tests live there), deletes it."""
    for _ in range(50):
        pids = _ns_pids(ns)
        if not pids:
            break
        for p in pids:
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.1)
    run(["ip", "netns", "del", ns], check=False)


def sweep_stale_namespaces():
    """Deletes namespaces that tests of a test run which no longer exists left behind (a run
    killed with SIGKILL cannot clean up). Only names of our own pattern with a dead pid."""
    r = run(["ip", "netns", "list"], check=False)
    for ln in r.stdout.splitlines():
        name = ln.split()[0] if ln.split() else ""
        m = _NS_RE.match(name)
        if m and int(m.group(1)) != os.getpid() and not _pid_alive(int(m.group(1))):
            _delete_ns(name)


class NetnsPair:
    """Two namespaces a and b joined by a veth pair; the veth ends carry the namespaces' names
    (A's end is self.iface)."""

    def __init__(self, with_b=True):
        _ns_counter[0] += 1
        base = f"nr{os.getpid()}t{_ns_counter[0]}"
        self.a, self.b = base + "a", base + "b"
        self.iface = self.a
        self.names = [self.a] + ([self.b] if with_b else [])
        self.created = []
        try:
            for ns in self.names:
                run(["ip", "netns", "add", ns])
                self.created.append(ns)
                # No IPv6: no router solicitations, MLD reports or DAD probes on the wire.
                for key in ("all", "default"):
                    run(["ip", "netns", "exec", ns, "sysctl", "-q", "-w",
                         f"net.ipv6.conf.{key}.disable_ipv6=1"])
                run(["ip", "-n", ns, "link", "set", "lo", "up"])
            if with_b:
                run(["ip", "link", "add", self.a, "type", "veth", "peer", "name", self.b])
                try:
                    for ns, ip in ((self.a, A_IP), (self.b, B_IP)):
                        run(["ip", "link", "set", ns, "netns", ns])
                        run(["ip", "-n", ns, "addr", "add", f"{ip}/24", "dev", ns])
                        run(["ip", "-n", ns, "link", "set", ns, "up"])
                except Exception:
                    run(["ip", "link", "del", self.a], check=False)
                    raise
        except Exception:
            self.close()
            raise

    def exec_prefix(self, ns=None):
        return ["ip", "netns", "exec", ns or self.a]

    def close(self):
        for ns in reversed(self.created):
            _delete_ns(ns)
        self.created = []


def in_netns(ns, fn, *args):
    """Runs fn(*args) in a thread that has joined network namespace ns; returns its result.
    A socket made there stays in ns whichever thread uses it later."""
    box = {}

    def body():
        try:
            fd = os.open(f"/run/netns/{ns}", os.O_RDONLY)
            try:
                if _libc.setns(fd, CLONE_NEWNET) != 0:
                    e = ctypes.get_errno()
                    raise OSError(e, f"setns({ns}): {os.strerror(e)}")
            finally:
                os.close(fd)
            box["v"] = fn(*args)
        except BaseException as e:  # noqa: B902 - handed to the caller
            box["e"] = e

    t = threading.Thread(target=body)
    t.start()
    t.join()
    if "e" in box:
        raise box["e"]
    return box.get("v")


def ns_socket(ns, family=socket.AF_INET, type=socket.SOCK_DGRAM):
    return in_netns(ns, socket.socket, family, type)


def http_get(ns, port, path="/metrics", timeout=10):
    """GET http://127.0.0.1:port/path inside ns -> (status, body)."""
    sock = in_netns(ns, socket.create_connection, ("127.0.0.1", port), timeout)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    conn.sock = sock
    try:
        conn.request("GET", path)
        r = conn.getresponse()
        return r.status, r.read().decode(errors="replace")
    finally:
        conn.close()


def metrics(text):
    """Prometheus text -> {(name, frozenset(labels)): value}, plus name -> value for samples
    without labels."""
    out = {}
    for ln in text.splitlines():
        if ln.startswith("#") or not ln.strip():
            continue
        m = re.match(r"([A-Za-z_:][A-Za-z0-9_:]*)(\{(.*)\})?\s+(\S+)$", ln)
        if not m:
            continue
        labels = frozenset(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(3) or ""))
        out[(m.group(1), labels)] = float(m.group(4))
        if not labels:
            out[m.group(1)] = float(m.group(4))
    return out


def mval(ms, name, **labels):
    key = (name, frozenset((k, str(v)) for k, v in labels.items()))
    assert key in ms, f"/metrics has no {name}{labels or ''}"
    return ms[key]


def wait_drained(cap, timeout=30.0, store=None, packets=0):
    """Waits until the capture has batched at least `packets` packets (counted as each batch
    is spooled) and every batch it made is acknowledged; returns the last /metrics.
    store: its stderr goes into the failure message too."""
    deadline = time.monotonic() + timeout
    while True:
        ms = cap.scrape()
        spooled = mval(ms, "netreel_capture_batches_total", result="spooled")
        acked = mval(ms, "netreel_capture_batches_total", result="acked")
        batched = mval(ms, "netreel_capture_packets_total")
        if batched >= packets and acked == spooled and \
                mval(ms, "netreel_capture_spool_bytes") == 0:
            return ms
        assert time.monotonic() < deadline, (
            f"after {timeout:g} s the capture has batched {batched:g} packets (want "
            f"{packets}), the store has acked {acked:g} of {spooled:g} batches, "
            f"{mval(ms, 'netreel_capture_spool_bytes'):g} bytes still spooled\ncapture stderr:\n"
            f"{sh.tail(cap.stderr())}"
            + (f"\nstore stderr:\n{sh.tail(store.stderr())}" if store else ""))
        time.sleep(0.2)


# ---- processes ------------------------------------------------------------------------------

def _logfmt(line):
    """A logfmt line -> {key: value} (quoted values unquoted)."""
    return {k: a or b for k, a, b in re.findall(r'(\w+)=(?:"((?:[^"\\]|\\.)*)"|(\S+))', line)}


class CaptureProc:
    """A running netreel-capture (inside namespace ns when ns is given)."""

    def __init__(self, binary, args, stderr_path, ns=None):
        self.argv = (["ip", "netns", "exec", ns] if ns else []) + [str(binary), *map(str, args)]
        self.ns = ns
        self.stderr_path = Path(stderr_path)
        with open(self.stderr_path, "wb") as errf:
            self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL,
                                         stdout=subprocess.DEVNULL, stderr=errf)
        self.pid = self.proc.pid  # ip netns exec execs the program: same pid
        self.metrics_port = None
        self.started = {}
        self.stopped_line = None
        self.done = False

    def cmdline(self):
        return " ".join(self.argv)

    def stderr(self):
        return self.stderr_path.read_text(errors="replace")

    def lines(self, msg):
        want = f'msg="{msg}"' if " " in msg else f"msg={msg} "
        return [ln for ln in self.stderr().splitlines() if want in ln + " "]

    def wait_capturing(self, timeout=30.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.lines("capturing")
            if got:
                self.started = _logfmt(got[0])
                self.metrics_port = int(self.started.get("metrics_port", "-1"))
                return self
            if self.proc.poll() is not None:
                raise AssertionError(f"{self.cmdline()} exited with status "
                                     f"{self.proc.returncode} before capturing\nstderr:\n"
                                     f"{sh.tail(self.stderr())}")
            time.sleep(0.02)
        raise AssertionError(f"{self.cmdline()}: no msg=capturing line within {timeout:g} s\n"
                             f"stderr:\n{sh.tail(self.stderr())}")

    def scrape(self):
        assert self.metrics_port and self.metrics_port > 0, "capture started without metrics"
        assert self.alive(), (f"the capture exited with status {self.proc.returncode}\n"
                              f"stderr:\n{sh.tail(self.stderr())}")
        status, body = http_get(self.ns, self.metrics_port)
        assert status == 200, f"GET /metrics: HTTP {status}: {body[:500]}"
        return metrics(body)

    def alive(self):
        return self.proc.poll() is None

    def status(self):
        return Path(f"/proc/{self.pid}/status").read_text()

    def stop(self, timeout=20.0):
        """SIGTERM; must exit 0 with a msg=stopped line (returned as a dict) and, under ASan,
        no sanitizer report. Raises AssertionError otherwise."""
        if self.done:
            return self.stopped_line
        self.done = True
        def no_stopped_line(err):
            return [] if self.lines("stopped") else ["no msg=stopped line"]

        problems = sh.stop_process(self.proc, self.cmdline(), self.stderr, timeout,
                                   more=no_stopped_line)
        if problems:
            raise AssertionError(problems[0])
        stopped = self.lines("stopped")
        self.stopped_line = {k: int(v) if v.isdigit() else v
                             for k, v in _logfmt(stopped[-1]).items()}
        return self.stopped_line

    def kill(self):
        self.done = True
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


class Tcpdump:
    """`tcpdump -w FILE` with nanosecond timestamps, the capture's snaplen and buffer size."""

    def __init__(self, ns, iface, out, stderr_path, snaplen=262144, buffer_kib=65536):
        self.out = Path(out)
        self.stderr_path = Path(stderr_path)
        self.argv = ["ip", "netns", "exec", ns, "tcpdump", "-n", "-i", iface, "-s", str(snaplen),
                     "-B", str(buffer_kib), "--time-stamp-precision=nano", "-w", str(out)]
        with open(self.stderr_path, "wb") as errf:
            self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL,
                                         stdout=subprocess.DEVNULL, stderr=errf)
        self.stats = None

    def stderr(self):
        return self.stderr_path.read_text(errors="replace")

    def wait_listening(self, timeout=15.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if "listening on" in self.stderr():
                return self
            if self.proc.poll() is not None:
                break
            time.sleep(0.02)
        raise AssertionError(f"{' '.join(self.argv)}: not listening (status "
                             f"{self.proc.poll()})\nstderr:\n{sh.tail(self.stderr())}")

    def stop(self):
        """SIGINT; returns {'captured', 'received', 'dropped'} from tcpdump's last lines."""
        if self.stats is not None:
            return self.stats
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
                raise AssertionError("tcpdump did not exit within 20 s of SIGINT")
        err = self.stderr()
        st = {}
        for key, pat in (("captured", r"(\d+) packets? captured"),
                         ("received", r"(\d+) packets? received by filter"),
                         ("dropped", r"(\d+) packets? dropped by kernel")):
            m = re.search(pat, err)
            assert m, f"tcpdump printed no '{pat}' line:\n{sh.tail(err)}"
            st[key] = int(m.group(1))
        self.stats = st
        return st

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


def start_store(store_bins, ns, data_dir, stderr_path, port=STORE_PORT, *extra):
    argv = ["ip", "netns", "exec", ns, store_bins.store, "--listen", f"127.0.0.1:{port}",
            "--metrics-listen", "off", "--node", "node-a", "--data-dir", data_dir,
            "--max-size", "2GB", *extra]
    s = sh.StoreProc(argv, data_dir, stderr_path)
    s.wait_serving()
    return s


class Lab:
    """The `lab` fixture: a namespace pair and every process a test starts in it, all stopped
    and deleted on teardown."""

    def __init__(self, build_dir, store_bins, tmp_path):
        self.capture_bin = build_dir / "bin" / "netreel-capture"
        if not (self.capture_bin.is_file() and os.access(self.capture_bin, os.X_OK)):
            pytest.fail(f"missing program {self.capture_bin} -- build it with `make`",
                        pytrace=False)
        self.store_bins = store_bins
        self.tmp = tmp_path
        self.nets = []
        self.stores = []
        self.captures = []
        self.tcpdumps = []
        self.sockets = []
        self.apis = []  # fixture Kubernetes API servers (kube_api.KubeAPI)
        self.n = 0

    def _path(self, stem):
        self.n += 1
        return self.tmp / f"{self.n:02d}-{stem}"

    def netns(self, with_b=True):
        n = NetnsPair(with_b)
        self.nets.append(n)
        return n

    def store(self, net, data_dir=None, port=STORE_PORT):
        s = start_store(self.store_bins, net.a, data_dir or self.tmp / "data",
                        self._path("store.stderr"), port)
        self.stores.append(s)
        return s

    def capture(self, net, *args, iface=None, store_port=STORE_PORT, metrics=True, wait=True):
        argv = ["-i", iface or net.iface, "--store", f"127.0.0.1:{store_port}",
                "--metrics-listen", "127.0.0.1:0" if metrics else "off", "--node", "node-a",
                *args]
        c = CaptureProc(self.capture_bin, argv, self._path("capture.stderr"), ns=net.a)
        self.captures.append(c)
        if wait:
            c.wait_capturing()
        return c

    def tcpdump(self, net, iface=None, **kw):
        t = Tcpdump(net.a, iface or net.iface, self._path("tcpdump.pcap"),
                    self._path("tcpdump.stderr"), **kw)
        self.tcpdumps.append(t)
        return t.wait_listening()

    def snapshot(self, net, store, *args, port=STORE_PORT):
        """store-snapshot of the whole window inside net.a -> (JSON summary, Pcapng)."""
        out = self._path("snapshot.pcapng")
        argv = ["ip", "netns", "exec", net.a, self.store_bins.snapshot, "--store",
                f"127.0.0.1:{port}", "-o", out, *args]
        r, obj = sh.run_tool(argv)
        assert r.returncode == 0 and obj and obj.get("status") == 0, (
            f"{' '.join(map(str, argv))}: exit {r.returncode}\nstdout: {r.stdout}\n"
            f"stderr:\n{sh.tail(r.stderr)}")
        return obj, sh.read_pcapng(out), out

    def kube_api(self, net, pki):
        """A fixture Kubernetes API server (kube_api.KubeAPI, not yet holding pods) listening on
        127.0.0.1 of namespace net.a, where the capture runs; stopped on teardown. Start it again
        after .stop() with start_kube_api(api, net.a)."""
        api = kube_api.KubeAPI(pki)
        start_kube_api(api, net.a)
        self.apis.append(api)
        return api

    def close(self):
        problems = []
        for a in self.apis:
            try:
                a.stop()
            except OSError:
                pass
        for s in self.sockets:
            try:
                s.close()
            except OSError:
                pass
        for t in self.tcpdumps:
            t.kill()
        for c in self.captures:
            if not c.done:
                try:
                    c.stop()
                except AssertionError as e:
                    problems.append(str(e))
        for s in self.stores:
            problems += s.stop()
        for n in self.nets:
            n.close()
        return problems


@pytest.fixture
def lab(build_dir, store_bins, tmp_path):
    sweep_stale_namespaces()
    lb = Lab(build_dir, store_bins, tmp_path)
    failed = []
    try:
        yield lb
    finally:
        failed = lb.close()
    if failed:
        pytest.fail("\n\n".join(failed), pytrace=False)


# ---- traffic of known content ----------------------------------------------------------------

def datagram(seq, size):
    """UDP payload of `size` bytes (>= 12) naming datagram seq."""
    head = MAGIC + struct.pack("!Q", seq)
    body = hashlib.sha256(head).digest()
    return (head + body * (size // 32 + 1))[:max(size, 12)]


def udp_sizes(n):
    """Payload sizes: mostly 12..1472, every 97th one 4000 (IP fragments)."""
    return [4000 if i % 97 == 50 else 12 + (i * 37) % 1461 for i in range(n)]


class UdpReceiver:
    """A socket bound to A_IP:UDP_PORT in namespace a (so that no ICMP port unreachable
    answers the datagrams); read=True collects the seqs it receives."""

    def __init__(self, lab, ns, read=True):
        self.sock = ns_socket(ns)
        lab.sockets.append(self.sock)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 * MIB)
        self.sock.bind((A_IP, UDP_PORT))
        self.seqs = []
        self.thread = None
        if read:
            self.sock.settimeout(0.3)
            self.stop_flag = threading.Event()  # stop() asked: stop once the socket is quiet
            self.halt = threading.Event()       # stop now
            self.thread = threading.Thread(target=self._loop, daemon=True)
            self.thread.start()

    def _loop(self):
        while not self.halt.is_set():
            try:
                d = self.sock.recv(65536)
            except socket.timeout:
                if self.stop_flag.is_set():
                    return
                continue
            except OSError:
                return
            if d[:4] == MAGIC:
                self.seqs.append(struct.unpack("!Q", d[4:12])[0])

    def stop(self, timeout=10.0):
        """Reads until nothing has come for 0.3 s (datagrams still on their way, and those a
        busy machine kept the thread from reading: a fixed pause missed them), at most timeout
        s (x3 under ASan); returns the seqs received."""
        if self.thread:
            self.stop_flag.set()
            self.thread.join(timeout * (3 if ASAN else 1))
            self.halt.set()
            self.thread.join(5)
        return self.seqs


def send_udp(lab, ns, seqs, pps, sizes=None, stop=None, src=None):
    """Sends datagram(seq, size) for seq in seqs from ns to A_IP:UDP_PORT at about pps
    (0: as fast as it goes), from address src of ns when given. Returns how many it sent."""
    sock = ns_socket(ns)
    lab.sockets.append(sock)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 * MIB)
    if src:
        sock.bind((src, 0))
    sock.connect((A_IP, UDP_PORT))
    t0 = time.monotonic()
    sent = 0
    for k, seq in enumerate(seqs):
        if stop is not None and stop.is_set():
            break
        size = sizes[k] if sizes else 12 + (seq * 37) % 1461
        while True:
            try:
                sock.send(datagram(seq, size))
                break
            except (BlockingIOError, ConnectionRefusedError):
                time.sleep(0.0005)
        sent += 1
        if pps and k % 16 == 15:
            ahead = t0 + (k + 1) / pps - time.monotonic()
            if ahead > 0:
                time.sleep(ahead)
    return sent


def tcp_transfer(lab, net, nbytes, mbit=400):
    """nbytes of seeded random data from B to A_IP:TCP_PORT over one connection, paced at about
    mbit Mbit/s. Returns (data sent, sha256 and length of what A's socket received)."""
    data = random.Random(20261126).randbytes(nbytes)
    srv = ns_socket(net.a, type=socket.SOCK_STREAM)
    lab.sockets.append(srv)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((A_IP, TCP_PORT))
    srv.listen(1)
    got = {}

    def receive():
        c, _ = srv.accept()
        h, n = hashlib.sha256(), 0
        with c:
            while True:
                d = c.recv(1 << 20)
                if not d:
                    break
                h.update(d)
                n += len(d)
        got["sha"], got["len"] = h.hexdigest(), n

    rt = threading.Thread(target=receive, daemon=True)
    rt.start()
    cli = ns_socket(net.b, type=socket.SOCK_STREAM)
    lab.sockets.append(cli)
    cli.connect((A_IP, TCP_PORT))
    chunk = 64 * 1024
    t0 = time.monotonic()
    for off in range(0, nbytes, chunk):
        cli.sendall(data[off:off + chunk])
        ahead = t0 + (off + chunk) * 8 / (mbit * 1e6) - time.monotonic()
        if ahead > 0:
            time.sleep(ahead)
    cli.close()
    rt.join(30)
    assert got, "the TCP receiver in namespace A did not finish"
    return data, got


# ---- packets: reading and comparing -----------------------------------------------------------

def read_pcap(path):
    """A classic pcap file (tcpdump -w) -> (link type, [Packet]); nanosecond or microsecond."""
    b = Path(path).read_bytes()
    assert len(b) >= 24, f"{path}: {len(b)} bytes, no pcap header"
    magic = struct.unpack_from("<I", b, 0)[0]
    if magic in (0xA1B2C3D4, 0xA1B23C4D):
        e = "<"
    else:
        e = ">"
        magic = struct.unpack_from(">I", b, 0)[0]
    assert magic in (0xA1B2C3D4, 0xA1B23C4D), f"{path}: not a pcap file (magic {magic:#x})"
    mult = 1 if magic == 0xA1B23C4D else 1000
    link = struct.unpack_from(e + "I", b, 20)[0] & 0x0FFFFFFF
    out, off = [], 24
    while off + 16 <= len(b):
        sec, frac, caplen, origlen = struct.unpack_from(e + "IIII", b, off)
        off += 16
        assert off + caplen <= len(b), f"{path}: a torn record at offset {off - 16}"
        out.append(sh.Packet(0, sec * 10**9 + frac * mult, caplen, origlen,
                             bytes(b[off:off + caplen])))
        off += caplen
    return link, out


def ipv4(data):
    """Ethernet/IPv4 -> (src, dst, proto, frag_offset, ip payload) or None."""
    if len(data) < 34 or data[12:14] != b"\x08\x00":
        return None
    ihl = (data[14] & 0x0F) * 4
    total = struct.unpack_from("!H", data, 16)[0]
    frag = struct.unpack_from("!H", data, 20)[0] & 0x1FFF
    src, dst = socket.inet_ntoa(data[26:30]), socket.inet_ntoa(data[30:34])
    return src, dst, data[23], frag, data[14 + ihl:14 + total]


def udp_seqs(packets):
    """The seqs of our datagrams among packets (first fragments; ICMP quotes excluded)."""
    out = []
    for p in packets:
        ip = ipv4(p.data)
        if not ip or ip[2] != 17 or ip[3] != 0:
            continue
        pl = ip[4][8:]
        if pl[:4] == MAGIC:
            out.append(struct.unpack("!Q", pl[4:12])[0])
    return out


def tcp_stream(packets, src, dport):
    """The byte stream src sent to dport, rebuilt from the TCP segments' sequence numbers
    (a retransmitted segment counts once). Returns (bytes, segments with data)."""
    segs = {}
    isn = None
    for p in packets:
        ip = ipv4(p.data)
        if not ip or ip[0] != src or ip[2] != 6:
            continue
        t = ip[4]
        if struct.unpack_from("!H", t, 2)[0] != dport:
            continue
        seq = struct.unpack_from("!I", t, 4)[0]
        flags = t[13]
        if flags & 0x02:  # SYN
            isn = seq
            continue
        pl = t[(t[12] >> 4) * 4:]
        if pl:
            segs.setdefault(seq, pl)
    if isn is None:
        return b"", 0
    out = bytearray()
    for seq in sorted(segs, key=lambda s: (s - isn - 1) & 0xFFFFFFFF):
        rel = (seq - isn - 1) & 0xFFFFFFFF
        pl = segs[seq]
        if rel > len(out):
            break  # a hole: the stream ends here
        out += pl[len(out) - rel:]
    return bytes(out), len(segs)


def describe(p):
    ip = ipv4(p.data)
    what = (f"{ip[0]}->{ip[1]} proto {ip[2]}" if ip else
            f"ethertype {p.data[12:14].hex()}" if len(p.data) >= 14 else "runt")
    return f"ts={p.ts_ns} len={p.origlen} caplen={p.caplen} {what}"


def match_packets(ours, theirs):
    """Pairs the packets of two recordings of the same wire by what they are (lengths and
    bytes), each group in timestamp order. Returns (pairs [(ours, theirs)], only ours, only
    theirs)."""
    groups = {}
    for side, pkts in ((0, ours), (1, theirs)):
        for p in pkts:
            groups.setdefault((p.caplen, p.origlen, p.data), ([], []))[side].append(p)
    pairs, only_a, only_b = [], [], []
    for a, b in groups.values():
        a.sort(key=lambda p: p.ts_ns)
        b.sort(key=lambda p: p.ts_ns)
        pairs += list(zip(a, b))
        only_a += a[len(b):]
        only_b += b[len(a):]
    return pairs, only_a, only_b


def diff_packets(ours, theirs, ours_name="snapshot", theirs_name="tcpdump", tolerance_ns=None,
                 limit=8):
    """'' when both hold the same packets (lengths and bytes) and each pair's timestamps are
    equal, or within tolerance_ns; else a summary of what differs.

    Two packet sockets on one interface share a packet's timestamp when the kernel stamped
    the skb once (most of what an interface sends); for a received skb that carries no stamp
    (TCP's departure-time stamps are cleared when veth forwards them), each socket's receive
    path reads the clock itself, so the two differ by the time between the two deliveries.
    """
    pairs, only_a, only_b = match_packets(ours, theirs)
    lines = []
    if only_a or only_b:
        lines.append(f"{ours_name}: {len(ours)} packets, {theirs_name}: {len(theirs)}; "
                     f"{len(only_a)} only in {ours_name}, {len(only_b)} only in {theirs_name}")
        for name, only in ((ours_name, only_a), (theirs_name, only_b)):
            for p in sorted(only, key=lambda p: p.ts_ns)[:limit]:
                lines.append(f"  only in {name}: {describe(p)}")
    tol = tolerance_ns or 0
    off = [(a, b) for a, b in pairs if abs(a.ts_ns - b.ts_ns) > tol]
    if off:
        worst = max(off, key=lambda ab: abs(ab[0].ts_ns - ab[1].ts_ns))
        lines.append(f"{len(off)} of {len(pairs)} packets have timestamps more than {tol} ns "
                     f"apart; the worst by {worst[0].ts_ns - worst[1].ts_ns} ns: "
                     f"{describe(worst[0])}")
    return "\n".join(lines)


def ts_deltas(ours, theirs):
    """|ours.ts - theirs.ts| of every matched pair, sorted."""
    pairs, _, _ = match_packets(ours, theirs)
    return sorted(abs(a.ts_ns - b.ts_ns) for a, b in pairs)


def store_port_packets(packets, port=STORE_PORT):
    """Packets of TCP on port (either end), on Ethernet-like or loopback link types alike:
    lo's link type is Ethernet (1) with zero addresses."""
    out = []
    for p in packets:
        ip = ipv4(p.data)
        if not ip or ip[2] != 6 or len(ip[4]) < 4:
            continue
        sport, dport = struct.unpack_from("!HH", ip[4], 0)
        if port in (sport, dport):
            out.append(p)
    return out


def names_of(snap):
    """The NRB records of a pcapng: {address text: sorted names}."""
    out = {}
    for raw, name in snap.names:
        fam = socket.AF_INET if len(raw) == 4 else socket.AF_INET6
        out.setdefault(socket.inet_ntop(fam, raw), set()).add(name)
    return {k: sorted(v) for k, v in out.items()}


def status_fields(text):
    return {k: v.strip() for k, v in (ln.split(":", 1) for ln in text.splitlines() if ":" in ln)}


# ---- pod targeting ------------------------------------------------------------------------------

def add_address(ns, ip, iface=None):
    """Adds ip/24 to the veth end of namespace ns (another "pod" on that side)."""
    run(["ip", "-n", ns, "addr", "add", f"{ip}/24", "dev", iface or ns])


def start_kube_api(api, ns):
    """api.start() from a thread inside namespace ns: its listener (and every connection it
    accepts) lives in ns, so a capture running there reaches it at api.url. Also after
    api.stop(), on the same port."""
    return in_netns(ns, api.start)


def write_kubeconfig(path, api, token="token-1"):
    """A kubeconfig for the fixture API server: its URL, CA file, a fixed bearer token."""
    Path(path).write_text(
        "apiVersion: v1\n"
        "kind: Config\n"
        f"clusters: [{{name: c, cluster: {{server: '{api.url}', "
        f"certificate-authority: '{api.pki / 'ca.pem'}'}}}}]\n"
        f"users: [{{name: u, user: {{token: {token}}}}}]\n"
        "contexts: [{name: x, context: {cluster: c, user: u}}]\n"
        "current-context: x\n")
    return Path(path)


def targeting_filter(hosts, store_port=STORE_PORT):
    """The filter the capture applies for pod addresses hosts (in the target set's order:
    IPv4 before IPv6, by bytes) with its own store port excluded; 'less 0' for none."""
    def key(h):
        fam = socket.AF_INET6 if ":" in h else socket.AF_INET
        return (fam == socket.AF_INET6, socket.inet_pton(fam, h))
    base = " or ".join(f"{'ip6' if ':' in h else 'ip'} host {h}"
                       for h in sorted(set(hosts), key=key)) or "less 0"
    return f"({base}) and not (tcp port {store_port})"


def filters_applied(cap):
    """The filter of every msg="filter applied" line, in order."""
    return [_logfmt(ln).get("filter", "") for ln in cap.lines("filter applied")]


def wait_filter(cap, hosts, timeout=5.0, since=0):
    """Waits until the capture's last applied filter (among lines after the first `since`) is
    targeting_filter(hosts). Returns the number of filter lines then."""
    want = targeting_filter(hosts)
    deadline = time.monotonic() + timeout
    while True:
        got = filters_applied(cap)
        if len(got) > since and got[-1] == want:
            return len(got)
        if time.monotonic() > deadline or not cap.alive():
            raise AssertionError(f"no filter {want!r} applied within {timeout:g} s; the capture "
                                 f"applied {got[since:][-5:]}\nstderr:\n{sh.tail(cap.stderr())}")
        time.sleep(0.01)


def udp_datagrams(packets):
    """(source address, seq, timestamp) of our datagrams among packets (first fragments)."""
    out = []
    for p in packets:
        ip = ipv4(p.data)
        if not ip or ip[2] != 17 or ip[3] != 0:
            continue
        pl = ip[4][8:]
        if pl[:4] == MAGIC:
            out.append((ip[0], struct.unpack("!Q", pl[4:12])[0], p.ts_ns))
    return out


# ---- --tls ----------------------------------------------------------------------------------------

def kernel_lacks_tls_support():
    """Why --tls cannot work on this kernel at all, or None."""
    if not Path("/sys/kernel/btf/vmlinux").exists():
        return "the kernel has no BTF (/sys/kernel/btf/vmlinux)"
    cfg = Path(f"/boot/config-{os.uname().release}")
    if cfg.exists() and "CONFIG_UPROBES=y" not in cfg.read_text():
        return "the kernel was built without CONFIG_UPROBES"
    if not Path("/sys/bus/event_source/devices/uprobe").exists():
        return "the kernel has no uprobe PMU (/sys/bus/event_source/devices/uprobe)"
    return None


def wait_for(pred, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.05)
    return False


def helper_pid(cap, timeout=10.0):
    """The pid of the capture's helper process (comm netreel-tls), or None."""
    def find():
        kids = Path(f"/proc/{cap.pid}/task/{cap.pid}/children").read_text().split()
        for k in kids:
            try:
                if Path(f"/proc/{k}/comm").read_text().strip() == "netreel-tls":
                    return int(k)
            except OSError:
                pass
        return None
    found = []
    wait_for(lambda: found.append(find()) or found[-1] is not None, timeout)
    return found[-1] if found else None
