"""What the netreel-hub tests (test_hub_*.py) share: the hub process, a grpcio client for
netreel.v1.Hub (stubs from proto/ at test time, through cli_helpers' hub_pb), `netreel pcapdump`
runs, stores filled by store-feeder, "nodes" in network namespaces that the hub reaches from the
root namespace, a store that never answers, and per-namespace /etc/hosts files for dns: entries.

It builds on the other suites' helpers rather than copying them: capture_helpers (network
namespaces, the capture and store processes, traffic, the Lab that stops them all),
store_helpers (the pcapng reader, tshark/capinfos checks, the store process), cli_helpers (the
CLI runner, hub_pb) and conftest (stores, feeder, grpc_channel).

This module holds no tests.

A "node" (Node): a NetnsPair (namespace a: the store and the capture on a's veth end, namespace
b: the other end, where traffic comes from) plus a management link, a second veth pair between
the root namespace and namespace a, over which the hub (in the root namespace) calls the store
listening on a's end of it. The capture's interface never sees that link, so the recording holds
only the test's traffic; static neighbour entries on the a/b link keep ARP off the wire too.
"""

import json
import os
import re
import shutil
import socket
import threading
import time
from concurrent import futures
from pathlib import Path

import pytest

import cli_helpers as ch
import store_helpers as sh
from capture_helpers import A_IP, B_IP, STORE_PORT, _pid_alive, run, start_store

ASAN = sh.ASAN
SCALE = sh.SCALE
NS = 1_000_000_000
IP = shutil.which("ip") or "/usr/sbin/ip"
HUB_SERVICE = "netreel.v1.Hub"


# ---- time ------------------------------------------------------------------------------------

def rfc3339(ns):
    """Unix nanoseconds -> RFC 3339 in UTC with nine fraction digits."""
    s, frac = divmod(ns, NS)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(s)) + f".{frac:09d}Z"


def parse_rfc3339(text):
    """'2026-11-26T07:30:00.123456789Z' (UTC, any number of fraction digits) -> nanoseconds."""
    m = re.fullmatch(r"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d{1,9}))?Z", text)
    assert m, f"not an RFC 3339 UTC time: {text!r}"
    import calendar
    secs = calendar.timegm(tuple(int(x) for x in m.groups()[:6]))
    return secs * NS + int((m.group(7) or "0").ljust(9, "0"))


def shb_window(pcapng):
    """The window the hub names in the file's SHB comment -> (since_ns or None for "the oldest
    retained", until_ns, stores text)."""
    c = pcapng.shb_comment or ""
    m = re.match(r"netreel snapshot (.+?) \.\. (\S+); stores:(.*)$", c, re.S)
    assert m, f"the SHB comment does not name the window: {c!r}"
    since = None if m.group(1) == "the oldest retained" else parse_rfc3339(m.group(1))
    return since, parse_rfc3339(m.group(2)), m.group(3)


# ---- processes ---------------------------------------------------------------------------------

def vm_hwm_kib(pid):
    """Peak resident set size (VmHWM) of a running process, in KiB."""
    m = re.search(r"^VmHWM:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text(), re.M)
    assert m, f"no VmHWM in /proc/{pid}/status"
    return int(m.group(1))


class HubProc(sh.StoreProc):
    """A running netreel-hub (inside namespace ns when given). The store's process class fits:
    the same msg=serving line with port=N, SIGTERM -> exit 0, sanitizer reports checked."""

    def __init__(self, binary, stores, stderr_path, *args, ns=None, listen="127.0.0.1:0",
                 metrics="off"):
        argv = ([IP, "netns", "exec", ns] if ns else []) + [
            binary, "--listen", listen, "--metrics-listen", metrics, "--node", "hub-node",
            "--stores", stores, *args]
        super().__init__(argv, Path(stderr_path).parent, stderr_path)
        self.ns = ns

    def vm_hwm_kib(self):
        return vm_hwm_kib(self.pid)


@pytest.fixture(scope="session")
def hub_bin(build_dir):
    p = build_dir / "bin" / "netreel-hub"
    if not (p.is_file() and os.access(p, os.X_OK)):
        pytest.fail(f"missing {p} -- build it with `make`", pytrace=False)
    return p


@pytest.fixture
def hubs(hub_bin, tmp_path):
    """start(stores, *args, ns=None, metrics='off', wait=True) -> HubProc, waited for until it
    serves. Every hub gets SIGTERM on teardown and must exit 0 (under ASan: no report)."""
    started = []

    def start(stores, *args, ns=None, metrics="off", wait=True):
        h = HubProc(hub_bin, stores, tmp_path / f"hub-{len(started)}.stderr", *args, ns=ns,
                    metrics=metrics)
        started.append(h)
        if wait:
            h.wait_serving()
        return h

    yield start
    problems = []
    for h in started:
        problems += h.stop()
        if h.killed and ASAN and sh.sanitizer_reports(h.stderr()):  # a report before the kill
            problems.append(f"{h.cmdline()}: sanitizer report before SIGKILL:\n"
                            f"{sh.tail(h.stderr())}")
    if problems:
        pytest.fail("\n\n".join(problems), pytrace=False)


def pcapdump(cli_bin, hub, *args, ns=None, expect=None, cwd=None, timeout=120, env=None):
    """`netreel pcapdump --hub HUB ARGS` (inside namespace ns when given) -> ch.CliResult.
    $NETREEL_* cleared and the local-hub probe off, as in the CLI tests."""
    addr = hub if isinstance(hub, str) else hub.addr
    pre = [IP, "netns", "exec", ns] if ns else []
    cli_bin = Path(cli_bin).resolve()  # also from another cwd
    prog, rest = (pre[0], pre[1:] + [cli_bin]) if pre else (cli_bin, [])
    return ch.run(prog, *rest, "pcapdump", "--hub", addr, *args, env=env or ch.base_env(),
                  cwd=cwd, timeout=timeout, expect=expect)


def closing_line(res):
    """pcapdump's closing line -> (packets, bytes, node text) ('path: N packets, X (B bytes),
    ...')."""
    text = res.stdout.strip() or res.stderr.strip().splitlines()[-1]
    m = re.search(r": (\d+) packets, \S+ \((\d+) bytes\), (.*)$", text.splitlines()[-1])
    assert m, f"no closing line: {res.where()}"
    return int(m.group(1)), int(m.group(2)), m.group(3)


def only_file(d, suffix=".pcapng"):
    got = sorted(Path(d).iterdir())
    assert len(got) == 1 and got[0].name.endswith(suffix), f"want one {suffix} file: {got}"
    return got[0]


def store_window(store_bins, addr, since, until, out, *args, ns=None):
    """store-snapshot of [since, until] from the store at addr -> (JSON summary, Pcapng)."""
    argv = ([IP, "netns", "exec", ns] if ns else []) + [
        store_bins.snapshot, "--store", addr, "-o", out, "--since", since, "--until", until,
        *args]
    r, obj = sh.run_tool(argv)
    assert r.returncode == 0 and obj and obj.get("status") == 0, (
        f"{' '.join(map(str, argv))}: exit {r.returncode}\nstdout: {r.stdout}\n"
        f"stderr:\n{sh.tail(r.stderr)}")
    return obj, sh.read_pcapng(out)


def by_interface(pcapng):
    """{interface name: [Packet.key(), ...] in file order}."""
    out = {itf.name: [] for itf in pcapng.interfaces}
    for p in pcapng.packets:
        out[pcapng.interfaces[p.ifid].name].append(p.key())
    return out


def non_decreasing(packets):
    """'' when the timestamps never go backwards, else where they do."""
    for i in range(1, len(packets)):
        if packets[i].ts_ns < packets[i - 1].ts_ns:
            return (f"packet {i} at {packets[i].ts_ns} comes after packet {i - 1} at "
                    f"{packets[i - 1].ts_ns}")
    return ""


def wireshark_ok(path):
    """tshark -r and capinfos read path without a warning; returns the parsed Pcapng."""
    problems, parsed = sh.wireshark_check([path])
    assert not problems, "\n".join(problems)
    return parsed[Path(path)]


# ---- grpcio: a stand-in store -------------------------------------------------------------------

class FakeSnapshotStore:
    """netreel.v1.Store/Snapshot on grpcio, on 127.0.0.1 (self.addr): a subclass's
    Snapshot(req, ctx) yields the StoreChunks. stop() ends it."""

    def __init__(self, pb):
        import grpc  # only the tests that fake a store need it
        self.pb = pb
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=4),
                                  options=[("grpc.so_reuseport", 0)])
        self.server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(
            "netreel.v1.Store", {"Snapshot": grpc.unary_stream_rpc_method_handler(
                self.Snapshot, pb.SnapshotRequest.FromString,
                pb.StoreChunk.SerializeToString)}),))
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.addr = f"127.0.0.1:{self.port}"
        self.server.start()

    def Snapshot(self, req, ctx):
        raise NotImplementedError

    def stop(self):
        self.server.stop(grace=None).wait(10)


# ---- grpcio: netreel.v1.Hub --------------------------------------------------------------------

class HubStub:
    """netreel.v1.Hub for grpcio, by the generic API (as a stock client would call it)."""

    def __init__(self, channel, pb):
        p = f"/{HUB_SERVICE}/"
        self.pb = pb
        self.Snapshot = channel.unary_stream(p + "Snapshot", pb.SnapshotRequest.SerializeToString,
                                             pb.FileChunk.FromString)
        self.Status = channel.unary_unary(p + "Status", pb.StatusRequest.SerializeToString,
                                          pb.ClusterStatus.FromString)

    @staticmethod
    def _md(token):
        return None if token is None else [("authorization", f"Bearer {token}")]

    def snapshot(self, token=None, timeout=120, **req):
        """Calls Snapshot; checks that only the last FileChunk carries the summary. Returns
        (file bytes, summary, number of messages)."""
        data, summaries, n = bytearray(), [], 0
        for c in self.Snapshot(self.pb.SnapshotRequest(**req), timeout=timeout,
                               metadata=self._md(token)):
            data += c.data
            if c.HasField("summary"):
                summaries.append(n)
                summary = c.summary
            n += 1
        assert summaries == [n - 1], \
            f"the summary must come in the last of {n} messages, came in {summaries}"
        return bytes(data), summary, n

    def status(self, token=None, timeout=30):
        return self.Status(self.pb.StatusRequest(), timeout=timeout, metadata=self._md(token))


@pytest.fixture
def hub_client(grpc_channel, hub_pb):
    """make(hub) -> HubStub on a plaintext grpcio channel to the hub's port (closed on
    teardown)."""
    return lambda hub: HubStub(grpc_channel(hub.port), hub_pb)


# ---- stores filled by store-feeder -----------------------------------------------------------

def ts_base():
    """A whole second ten minutes ago: old enough to be a finished past, young enough for the
    stores' default max-time."""
    return (sh.now_ns() // NS - 600) * NS


def start_stores(stores, tmp_path, n=3, store_args=()):
    """n stores node-1..node-n in the root namespace (conftest's `stores`), data in
    tmp_path/data-K."""
    return [stores("--max-size", "64GB", *store_args, data_dir=tmp_path / f"data-{k + 1}",
                   node=f"node-{k + 1}", metrics=False) for k in range(n)]


def feed(ss, feeder, packets=2000, nbytes=None, step=1000, batch="256KiB"):
    """Feeds each store of ss one capture stream with store-feeder, all at the same time: IMIX
    packets, store k's at t0 + k*step/n + i*step (so the stores' streams interleave packet by
    packet). Returns (feeder results, t0)."""
    t0 = ts_base()
    n = len(ss)
    size = ["--bytes", nbytes] if nbytes else ["--packets", packets]

    def one(k):
        return feeder(ss[k], *size, "--ts-start", t0 + k * step // n, "--ts-step", step,
                      "--batch-bytes", batch, capture_id=f"cap-{k + 1}", node=f"node-{k + 1}",
                      timeout=600)

    with futures.ThreadPoolExecutor(max_workers=n) as ex:
        return list(ex.map(one, range(n))), t0


def feed_stores(stores, feeder, tmp_path, n=3, store_args=(), **kw):
    """start_stores, then feed. Returns (stores, feeder results, t0)."""
    ss = start_stores(stores, tmp_path, n, store_args)
    fed, t0 = feed(ss, feeder, **kw)
    return ss, fed, t0


def dispose(ss):
    """Stops the stores of ss (SIGTERM, exit 0, no sanitizer report) and deletes their data:
    large windows do not stay behind in pytest's kept temporary folders. Returns the problems
    (see sh.StoreProc.stop)."""
    problems = []
    for s in ss:
        problems += s.stop()
        shutil.rmtree(s.data_dir, ignore_errors=True)
    return problems


def store_list(ss):
    return ",".join(s.addr for s in ss)


class SilentStore:
    """A TCP listener on 127.0.0.1 that accepts connections and never says a word: a store
    that hangs (stopped, or its node gone without a reset)."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.addr = f"127.0.0.1:{self.port}"
        self.conns = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(c)

    def close(self):
        try:
            self.sock.shutdown(socket.SHUT_RDWR)  # accept() in the thread returns: it ends
        except OSError:
            pass
        # A connection the thread accepts while we close would stay open (to a hub that may
        # still be running): the thread ends first, then every connection it took is closed.
        self.thread.join(10)
        self.sock.close()
        for c in self.conns:
            c.close()


@pytest.fixture
def silent_store():
    made = []

    def make():
        s = SilentStore()
        made.append(s)
        return s

    yield make
    for s in made:
        s.close()


# ---- nodes in network namespaces ---------------------------------------------------------------

_links = [0]


class Node:
    """One "node": lab.netns() (store + capture in a, traffic from b) and a management link
    from the root namespace to a. The store listens on a's end of that link (self.store_addr);
    the capture sends to it there and records a's end of the a/b pair."""

    def __init__(self, lab, name):
        self.lab, self.name = lab, name
        self.net = lab.netns()
        _links[0] += 1
        idx = (os.getpid() * 16 + _links[0]) % 16384
        x, j = idx // 64, idx % 64
        self.root_ip, self.ip = f"10.78.{x}.{4 * j + 1}", f"10.78.{x}.{4 * j + 2}"
        self.root_if = f"nrm{os.getpid()}x{_links[0]}"
        # The pair goes away with the namespace (NetnsPair.close), also after a failure here.
        run([IP, "link", "add", self.root_if, "type", "veth", "peer", "name", "mgmt", "netns",
             self.net.a])
        run([IP, "addr", "add", f"{self.root_ip}/30", "dev", self.root_if])
        run([IP, "link", "set", self.root_if, "up"])
        run([IP, "-n", self.net.a, "addr", "add", f"{self.ip}/30", "dev", "mgmt"])
        run([IP, "-n", self.net.a, "link", "set", "mgmt", "up"])
        # No ARP on the recorded link: each end knows the other's address for good.
        mac = {}
        for ns in (self.net.a, self.net.b):
            mac[ns] = json.loads(run([IP, "-j", "-n", ns, "link", "show", "dev", ns]).stdout
                                 )[0]["address"]
        run([IP, "-n", self.net.a, "neigh", "replace", B_IP, "lladdr", mac[self.net.b], "dev",
             self.net.a, "nud", "permanent"])
        run([IP, "-n", self.net.b, "neigh", "replace", A_IP, "lladdr", mac[self.net.a], "dev",
             self.net.b, "nud", "permanent"])
        self.store_addr = f"{self.ip}:{STORE_PORT}"
        self.store = None
        self.capture = None

    def start_store(self, *args):
        s = start_store(self.lab.store_bins, self.net.a, self.lab.tmp / f"data-{self.name}",
                        self.lab._path(f"store-{self.name}.stderr"), STORE_PORT,
                        "--listen", self.store_addr, "--node", self.name, *args)
        self.lab.stores.append(s)
        self.store = s
        return s

    def start_capture(self, *args, iface=None, wait=True):
        self.capture = self.lab.capture(self.net, "--store", self.store_addr, "--node",
                                        self.name, *args, iface=iface, wait=wait)
        return self.capture


# ---- /etc/netns/NS: a namespace's own hosts file -------------------------------------------------

ETC_NETNS = Path("/etc/netns")


def sweep_stale_etc_netns():
    """Removes /etc/netns/NAME folders that a killed test run of ours left behind."""
    if not ETC_NETNS.is_dir():
        return
    for d in ETC_NETNS.iterdir():
        m = re.match(r"^nr(\d+)t\d+[ab]$", d.name)
        if m and int(m.group(1)) != os.getpid() and not _pid_alive(int(m.group(1))):
            shutil.rmtree(d, ignore_errors=True)


class NetnsEtc:
    """/etc/netns/NS/hosts and resolv.conf: `ip netns exec NS` binds them over /etc/hosts and
    /etc/resolv.conf for what it runs, so a name resolves as a test wants it inside NS only.
    The resolver points at 127.0.0.1 of NS, where nothing answers: a name not in the hosts file
    fails at once. write_hosts() rewrites the file in place (the bind mount follows the inode),
    so a process already running sees the change."""

    def __init__(self, ns):
        sweep_stale_etc_netns()
        self.dir = ETC_NETNS / ns
        self.dir.mkdir(parents=True, exist_ok=False)
        (self.dir / "resolv.conf").write_text("nameserver 127.0.0.1\noptions timeout:1 attempts:1\n")
        self.hosts = self.dir / "hosts"
        self.write_hosts([])

    def write_hosts(self, entries):
        """entries: [(address, name), ...]."""
        with open(self.hosts, "r+" if self.hosts.exists() else "w") as f:
            f.seek(0)
            f.truncate()
            f.write("127.0.0.1 localhost\n" + "".join(f"{a} {n}\n" for a, n in entries))

    def close(self):
        shutil.rmtree(self.dir, ignore_errors=True)

