"""`netreel pcapdump --follow` through the hub of a three-node cluster of namespaces (the
window, then live packets, merged in time order with a watermark).

  fabric   a namespace with a bridge: the network between the nodes
  node-K   uplink eth0 10.88.0.K on the fabric, one pod on a routed veth (a /32 route and
           proxy ARP, as Calico does), routes to the other nodes' pods
  pods     a1 10.90.1.2 on node-1, b1 10.90.2.2 on node-2, c1 10.90.3.2 on node-3

Each node runs a store on its uplink address and a capture `-i any` with pod targeting from its
own fixture Kubernetes API, as the chart does; the hub runs in node-1 with the three stores, and
pcapdump next to it. Every pod sends sequence-numbered UDP (payload: MAGIC, the 64-bit seq, the
node's name) at RATE datagrams a second to the pod of the next node (a1 -> b1 -> c1 -> a1), from
before pcapdump starts until after it has stopped.

What must hold (the issue's "What must hold"):
  * `pcapdump --time=30s --follow -o - | tshark -r -`, and the same into `tshark -i -`, see the
    history (sent before pcapdump started) and then live packets from all three nodes: the
    timestamps never go backwards; each pod's seqs are there once each, from its first (well
    inside the 30 s window) on with no gap, up to at least everything it sent more than
    lateness + batch time before the SIGINT; each packet once (the default --sightings=one),
    on the interface of the pod that sent it;
  * SIGINT to pcapdump (not to tshark) ends the follow cleanly: pcapdump exits 0 with its
    closing line on stderr ("stdout: N packets, ..., 3 nodes (...)", N what tshark read),
    tshark exits 0 without a warning;
  * `-o FILE --follow`, then SIGINT: exit 0, the closing line on stdout, FILE in place (no
    FILE.part left), and tshark -r and capinfos read it without a warning;
  * a store killed (SIGKILL) and started again on its data while a follow runs loses nothing
    its capture spooled: the hub calls it again and resumes its stream where it stopped
    (closing line: "0 late ..., 1 resumed, 3 nodes"), and that node's pod's seqs are all
    there, once, on that pod's interface.

The three pipelines of the first test run side by side through the one hub (also two follows
at once, with a file); the store test has its own cluster. They take ~17 s and ~10 s.
"""

import re
import signal
import struct
import subprocess
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path

import pytest

import cli_helpers as ch
import kube_api
import store_helpers as sh
from cli_helpers import cli_bin  # noqa: F401 (fixture)
from hub_helpers import hub_bin, hubs, wireshark_ok  # noqa: F401 (fixtures)
from capture_helpers import (MAGIC, CaptureProc, _logfmt, lab, ns_socket,  # noqa: F401
                             run, start_kube_api, start_store, wait_drained, write_kubeconfig)
from cluster_helpers import NetCluster

PORT = 18897
DGRAM_PORT = 9300
NODES = {"node-1": "10.88.0.1", "node-2": "10.88.0.2", "node-3": "10.88.0.3"}
PODS = {  # name: (node, address, namespace)
    "a1": ("node-1", "10.90.1.2", "default"),
    "b1": ("node-2", "10.90.2.2", "web"),
    "c1": ("node-3", "10.90.3.2", "default"),
}
PEER = {"a1": "b1", "b1": "c1", "c1": "a1"}  # each pod sends to the pod of the next node
RATE = 50  # datagrams a second from each pod
HISTORY_S = 8  # sent before pcapdump starts (inside its --time=30s)
LIVE_S = 8  # pcapdump runs this long before the SIGINT
SLOW = 3 if sh.ASAN else 1
# What may be missing at the end: what was sent less than this before the SIGINT (the
# capture's batch time and the ring's block timeout, the hub's default lateness of 1 s).
TAIL_S = 2.0 * SLOW
WAIT_S = 60 * SLOW  # for a process to end, or something to appear, before the test fails
TSHARK_ROOT_LINE = sh.TSHARK_ROOT_LINE
FIELDS = ["frame.time_epoch", "frame.interface_name", "ip.src", "udp.payload"]
CLOSING = re.compile(r"^(?P<path>.+): (?P<packets>\d+) packets, \S+ \((?P<bytes>\d+) bytes\), "
                     r"(?:(?P<late>\d+) late \(over --lateness, left out\), "
                     r"(?P<resumed>\d+) resumed, )?(?P<nodes>.*)$")
ALL_NODES = f"3 nodes ({', '.join(NODES)})"
# What `tshark -i -` says on stderr of a capture from a pipe that went well (Wireshark 4.0):
# where it is, its temporary file, "tshark: " with no text for the end of the pipe, the count.
TSHARK_I = re.compile(r"Capturing on '-'\n"
                      r" \*\* \(tshark:\d+\) [0-9:.]+ \[Main MESSAGE\] -- Capture started\.\n"
                      r" \*\* \(tshark:\d+\) [0-9:.]+ \[Main MESSAGE\] -- File: \"[^\"\n]+\"\n"
                      r"tshark: \n(\d+) packets captured")


def pod_iface(pod):
    node, _, namespace = PODS[pod]
    return f"{node}/{namespace}/{pod}"


def Cluster3():
    """The namespaces of the module docstring (cluster_helpers.NetCluster)."""
    return NetCluster(NODES, {pod: (node, addr) for pod, (node, addr, _) in PODS.items()})


def start_cluster(lab, tmp_path):
    """Cluster3 with a fixture Kubernetes API, a store and a capture `-i any` on every node,
    each capture waited for until it has found its pod's device."""
    c = Cluster3()
    lab.nets.append(c)  # deleted after the processes in it stopped
    pki = kube_api.make_pki(tmp_path / "pki")
    c.captures, c.stores, c.store_args = {}, {}, {}
    for node, addr in NODES.items():
        api = kube_api.KubeAPI(pki)
        start_kube_api(api, c.ns[node])
        lab.apis.append(api)
        for pod, (pnode, paddr, namespace) in PODS.items():
            api.add(namespace, pod, node=pnode, ips=[paddr])
        c.store_args[node] = (lab.store_bins, c.ns[node], tmp_path / f"data-{node}",
                              tmp_path / f"store-{node}.stderr", PORT, "--node", node,
                              "--listen", f"{addr}:{PORT}")
        c.stores[node] = start_store(*c.store_args[node])
        lab.stores.append(c.stores[node])
        cap = CaptureProc(lab.capture_bin, ["-i", "any", "--store", f"{addr}:{PORT}",
                                            "--metrics-listen", "127.0.0.1:0", "--node", node,
                                            "--kubeconfig",
                                            write_kubeconfig(tmp_path / f"kc-{node}", api)],
                          tmp_path / f"capture-{node}.stderr", ns=c.ns[node])
        lab.captures.append(cap)
        c.captures[node] = cap
    for node, cap in c.captures.items():
        cap.wait_capturing()
        deadline = time.monotonic() + 20 * SLOW
        while cap.scrape().get("netreel_capture_pod_devices") != 1:
            assert time.monotonic() < deadline, f"{node}: no pod device\n{sh.tail(cap.stderr())}"
            time.sleep(0.1)
    return c


class Traffic:
    """Every pod sends to its PEER at RATE datagrams a second (paced on the clock, so a
    busy moment is caught up), from start() to stop(); each pod's receiving socket drains
    what comes (no ICMP port unreachable on the wire). sent[pod][seq] is the wall time at which
    seq was handed to the kernel (just before: the packet's timestamp is after it)."""

    def __init__(self, c):
        self.c = c
        self.stop_flag = threading.Event()
        self.sent = {pod: [] for pod in PODS}
        self.errors = []
        self.socks, self.threads = [], []
        for pod, (_, addr, _) in PODS.items():
            rx = ns_socket(c.pods[pod])
            rx.bind((addr, DGRAM_PORT))
            rx.settimeout(0.2)
            self.socks.append(rx)
            self._thread(self._drain, rx)

    def _thread(self, fn, *args):
        t = threading.Thread(target=fn, args=args, daemon=True)
        t.start()
        self.threads.append(t)

    def _drain(self, s):
        while not self.stop_flag.is_set():
            try:
                s.recv(65536)
            except OSError:
                pass

    def _send(self, pod, tx):
        node, addr, _ = PODS[pod]
        dst = (PODS[PEER[pod]][1], DGRAM_PORT)
        tail = b"|" + node.encode() + b"|"
        t0, seq = time.monotonic(), 0
        try:
            while not self.stop_flag.is_set():
                ahead = t0 + seq / RATE - time.monotonic()
                if ahead > 0:
                    time.sleep(ahead)
                self.sent[pod].append(time.time())
                tx.sendto(MAGIC + struct.pack("!Q", seq) + tail + b"d" * 40, dst)
                seq += 1
        except OSError as e:
            self.errors.append(f"{pod}: seq {seq}: {e}")

    def start(self):
        for pod in PODS:
            tx = ns_socket(self.c.pods[pod])
            tx.bind((PODS[pod][1], 0))
            self.socks.append(tx)
            self._thread(self._send, pod, tx)
        return self

    def close(self):
        self.stop_flag.set()
        for t in self.threads:
            t.join(5)
        for s in self.socks:
            s.close()
        assert not self.errors, self.errors


@pytest.fixture
def traffic():
    made = []

    def make(c):
        t = Traffic(c)
        made.append(t)
        return t.start()

    yield make
    for t in made:
        t.stop_flag.set()
        for th in t.threads:
            th.join(5)
        for s in t.socks:
            s.close()


class Follow:
    """`netreel pcapdump --hub HUB --follow ARGS -o OUT` inside namespace ns (ARGS: the
    window, --time=30s, and more), with -o - into `tshark READ - -T fields` (READ: -r or -i),
    else into the file OUT. Every program's stdout and stderr go to files in d."""

    def __init__(self, cli_bin, hub, ns, d, out="-", read=None, args=("--time=30s",)):
        d.mkdir()
        self.d, self.out, self.read = d, out, read
        self.history = "--time=30s" in args
        self.label = " ".join(["pcapdump --follow", *args, "-o", "-" if read else "FILE"] +
                              (["| tshark", read, "-"] if read else []))
        self.argv = ["ip", "netns", "exec", ns, str(Path(cli_bin).resolve()), "pcapdump",
                     "--hub", hub.addr, "--follow", *args, "-o", str(out)]
        self.tshark = None
        self.started = time.time()
        with open(d / "pcapdump.stdout", "wb") as o, open(d / "pcapdump.stderr", "wb") as e:
            self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL,
                                         stdout=subprocess.PIPE if read else o, stderr=e,
                                         env=ch.base_env())
        if read:
            self.targv = ["tshark", "-n", read, "-", "-T", "fields",
                          *(x for f in FIELDS for x in ("-e", f))]
            with open(d / "tshark.stdout", "wb") as o, open(d / "tshark.stderr", "wb") as e:
                self.tshark = subprocess.Popen(self.targv, stdin=self.proc.stdout, stdout=o,
                                               stderr=e)
            self.proc.stdout.close()  # the pipe is pcapdump's and tshark's alone
        self.rc = self.trc = None
        self.sigint_at = None

    def text(self, name):
        return (self.d / name).read_text(errors="replace")

    def where(self):
        out = (f"{' '.join(self.argv)} (exit {self.rc})\nstdout: "
               f"{sh.tail(self.text('pcapdump.stdout'), 2000)!r}\n"
               f"stderr:\n{sh.tail(self.text('pcapdump.stderr'))}")
        if self.tshark:
            out += (f"\n{' '.join(self.targv)} (exit {self.trc})\nstderr:\n"
                    f"{sh.tail(self.text('tshark.stderr'))}")
        return out

    def interrupt(self):
        assert self.proc.poll() is None, f"pcapdump ended before the SIGINT: {self.where()}"
        self.sigint_at = time.time()
        self.proc.send_signal(signal.SIGINT)

    def wait(self):
        """Waits for pcapdump (and tshark) to end; returns pcapdump's closing line as a match
        of CLOSING."""
        for p, attr in ((self.proc, "rc"), (self.tshark, "trc")):
            if p is None:
                continue
            try:
                setattr(self, attr, p.wait(WAIT_S))
            except subprocess.TimeoutExpired:
                self.kill()
                raise AssertionError(f"{p.args[0]} still running {WAIT_S:g} s after pcapdump's "
                                     f"SIGINT: {self.where()}")
        ch.check_sanitizer(self.text("pcapdump.stderr"), self.where())
        assert self.rc == 0, f"want exit 0 after SIGINT: {self.where()}"
        # The closing line alone, on stderr with -o - and on stdout with -o FILE; before it
        # only what the hub measured of the nodes' clocks (no missing node, no warning).
        lines = [ln for ln in self.text("pcapdump.stderr").splitlines() if ln.strip()]
        if self.out != "-":
            out = self.text("pcapdump.stdout").splitlines()
            assert len(out) == 1, self.where()
            lines.append(out[0])
        assert lines, f"no closing line: {self.where()}"
        extra = [ln for ln in lines[:-1] if not ln.startswith("netreel: clock of ")]
        assert not extra, f"more than the closing line: {self.where()}"
        m = CLOSING.match(lines[-1])
        assert m, f"no closing line: {self.where()}"
        assert m["path"] == ("stdout" if self.out == "-" else str(self.out)), self.where()
        assert m["nodes"] == ALL_NODES, self.where()
        if self.tshark:
            assert self.trc == 0, f"tshark failed: {self.where()}"
            err = [ln for ln in self.text("tshark.stderr").splitlines()
                   if ln.strip() and ln != TSHARK_ROOT_LINE]
            if self.read == "-i":
                t = TSHARK_I.fullmatch("\n".join(err))
                assert t and t[1] == m["packets"], f"tshark warns: {self.where()}"
            else:
                assert not err, f"tshark warns: {self.where()}"
        return m

    def kill(self):
        for p in (self.proc, self.tshark):
            if p is not None and p.poll() is None:
                p.kill()
                p.wait(10)


@pytest.fixture
def follows(cli_bin):
    """start(hub, ns, d, ...) -> Follow (its arguments); whatever still runs is killed on
    teardown."""
    made = []

    def start(*args, **kw):
        f = Follow(cli_bin, *args, **kw)
        made.append(f)
        return f

    yield start
    for f in made:
        f.kill()


def tshark_rows(f, path=None):
    """[(timestamp ns, interface, source, payload bytes)] of every frame tshark printed for f
    (or read from path, with tshark -r, which must not warn)."""
    if path is not None:
        r = subprocess.run(["tshark", "-n", "-r", str(path), "-T", "fields",
                            *(x for fl in FIELDS for x in ("-e", fl))],
                           capture_output=True, text=True, timeout=120)
        err = [ln for ln in r.stderr.splitlines() if ln.strip() and ln != TSHARK_ROOT_LINE]
        assert r.returncode == 0 and not err, f"tshark -r {path}: exit {r.returncode}\n{r.stderr}"
        text = r.stdout
    else:
        text = f.text("tshark.stdout")
    rows = []
    for ln in text.splitlines():
        epoch, itf, src, payload = (ln.split("\t") + [""] * 4)[:4]
        s, _, frac = epoch.partition(".")
        assert s.isdigit() and frac.isdigit() and len(frac) == 9, \
            f"not a nanosecond timestamp: {ln!r}"
        rows.append((int(s) * 10**9 + int(frac), itf, src, bytes.fromhex(payload)))
    return rows


def check_follow(rows, traffic, f, packets):
    """What every follow's output must hold (module docstring), rows from tshark_rows; packets:
    how many the closing line counted. Returns {pod: sorted seqs seen}."""
    try:
        return _check_follow(rows, traffic, f, packets)
    except AssertionError as e:
        raise AssertionError(f"{f.label}: {e}") from None


def _check_follow(rows, traffic, f, packets):
    assert len(rows) == packets, f"tshark read {len(rows)} packets, pcapdump wrote {packets}"
    for i in range(1, len(rows)):
        assert rows[i][0] >= rows[i - 1][0], \
            f"frame {i + 1} at {rows[i][0]} comes after frame {i} at {rows[i - 1][0]}"
    seen, elsewhere = defaultdict(list), defaultdict(list)
    by_addr = {addr: pod for pod, (_, addr, _) in PODS.items()}
    for ts, itf, src, pl in rows:
        if pl[:4] != MAGIC:
            continue
        seq = struct.unpack("!Q", pl[4:12])[0]
        pod = by_addr.get(src)
        assert pod and pl[12:].split(b"|")[1] == PODS[pod][0].encode(), \
            f"not one of our datagrams as sent: {(ts, itf, src, pl)}"
        assert seq < len(traffic.sent[pod]), f"{pod} did not send seq {seq}"
        seen[pod].append(seq)
        # Each packet once, as its sender's node saw it on the pod's device; only at the end
        # may another node's copy (the receiver's) stand for one whose sender's capture had
        # not sent it on before the SIGINT.
        if itf != pod_iface(pod) and traffic.sent[pod][seq] < f.sigint_at - TAIL_S:
            elsewhere[pod].append((seq, itf))
    for pod, sent in traffic.sent.items():
        got = seen[pod]
        dup = sorted(q for q, n in Counter(got).items() if n > 1)
        assert not dup, f"{pod}: seqs written twice: {dup[:20]}"
        # From its first datagram (inside the 30 s window), or from the first one sent after
        # pcapdump started (without a window: from then on), every one with no gap, up to
        # those sent TAIL_S before the SIGINT at least.
        if f.history:
            assert sent[0] > f.started - 30 + 1, "the history is longer than the window"
            first = 0
        else:
            first = next(q for q, at in enumerate(sent) if at > f.started + 1)
        must = max(q for q, at in enumerate(sent) if at < f.sigint_at - TAIL_S)
        lo, hi = min(got + [first]), max(got + [must])
        missing = sorted(set(range(lo, hi + 1)) - set(got))
        assert not missing, (
            f"{pod}: {len(missing)} seqs missing: {missing[:20]}{'...' if missing[20:] else ''}; "
            f"it sent {first}..{must} ({first} sent {sent[first] - f.started:+.3f} s after "
            f"pcapdump started, {must} {TAIL_S:g} s before the SIGINT), the file has "
            f"{len(got)} from {min(got, default=None)} to {max(got, default=None)}")
        if f.history:
            assert [q for q in got if sent[q] < f.started], f"{pod}: no history"
        assert [q for q in got if sent[q] > f.started + 1], f"{pod}: nothing live"
    assert not elsewhere, "datagrams written as another node saw them, not as their " \
        "sender's did (its store's were left out): " + \
        "; ".join(f"{pod}: {len(v)}, e.g. {v[:3]}" for pod, v in elsewhere.items())
    return {pod: sorted(got) for pod, got in seen.items()}


def no_late(m, f):
    """The closing line counts no late and no resumed packets (it names neither)."""
    assert m["late"] is None and m["resumed"] is None, \
        f"{f.label}: packets left out as late with every store up: {f.where()}"


def test_follow_into_tshark_and_a_file(lab, hubs, follows, traffic, tmp_path):
    """--time=30s --follow: -o - | tshark -r -, -o - | tshark -i - and -o FILE side by side
    through one hub; SIGINT to each pcapdump."""
    c = start_cluster(lab, tmp_path)
    hub = hubs(",".join(f"{a}:{PORT}" for a in NODES.values()), ns=c.ns["node-1"])
    tr = traffic(c)
    time.sleep(HISTORY_S)  # the history: what the window must bring
    ns = c.ns["node-1"]
    file = tmp_path / "file" / "follow.pcapng"
    runs = {"-r": follows(hub, ns, tmp_path / "read", read="-r"),
            "-i": follows(hub, ns, tmp_path / "live", read="-i"),
            "file": follows(hub, ns, tmp_path / "file", out=file)}
    time.sleep(LIVE_S)
    for f in runs.values():
        f.interrupt()
    closing = {k: f.wait() for k, f in runs.items()}
    tr.close()  # sent until after pcapdump stopped

    for k in ("-r", "-i"):
        check_follow(tshark_rows(runs[k]), tr, runs[k], int(closing[k]["packets"]))
        no_late(closing[k], runs[k])

    f, m = runs["file"], closing["file"]
    assert sorted(p.name for p in file.parent.iterdir()) == sorted(
        ["follow.pcapng", "pcapdump.stdout", "pcapdump.stderr"]), f.where()
    assert file.stat().st_size == int(m["bytes"]), f.where()
    parsed = wireshark_ok(file)  # tshark -r and capinfos without a warning, whole pcapng
    assert len(parsed.packets) == int(m["packets"]), f.where()
    check_follow(tshark_rows(f, file), tr, f, int(m["packets"]))
    no_late(m, f)


def test_follow_a_store_killed_and_started_again(lab, hubs, follows, traffic, tmp_path):
    """SIGKILL node-2's store mid-follow, start it again on the same data and address 2 s
    later: the hub calls it again and resumes its stream where it stopped, node-2's capture
    sends what it spooled meanwhile, and nothing of node-2's pod is lost or written twice.

    Its packets of the outage reach the hub only after the store is back and the capture has
    reconnected (its backoff doubles up to 5 s): the hub holds the watermark for a store that
    went away (up to --store-timeout), and the store says its capture is away until it is back,
    so they are not late at the default lateness. The follow starts from now (no window): this
    test is about the resume alone."""
    c = start_cluster(lab, tmp_path)
    hub = hubs(",".join(f"{a}:{PORT}" for a in NODES.values()), ns=c.ns["node-1"])
    tr = traffic(c)
    f = follows(hub, c.ns["node-1"], tmp_path / "read", read="-r")
    time.sleep(3)
    c.stores["node-2"].kill9()
    killed = time.time()
    time.sleep(2)
    args = list(c.store_args["node-2"])
    args[3] = tmp_path / "store-node-2.again.stderr"  # the first one's log stays
    c.stores["node-2"] = start_store(*args)
    lab.stores.append(c.stores["node-2"])
    # The hub calls it again, and the capture sends it what it spooled meanwhile.
    deadline = time.monotonic() + WAIT_S
    while 'msg="follow: a store is back"' not in hub.stderr():
        assert time.monotonic() < deadline, \
            f"the hub did not call the store again:\n{sh.tail(hub.stderr())}"
        time.sleep(0.1)
    cap = c.captures["node-2"]
    wait_drained(cap, WAIT_S, c.stores["node-2"])
    again = cap.lines("store reachable again")
    assert cap.lines("store unreachable; batches wait in the spool") and again and \
        int(_logfmt(again[-1]).get("spool_batches", 0)) > 0, \
        f"the capture spooled nothing meanwhile:\n{sh.tail(cap.stderr())}"
    time.sleep(3)  # live again
    f.interrupt()
    m = f.wait()
    tr.close()

    seen = check_follow(tshark_rows(f), tr, f, int(m["packets"]))
    down = [q for q, at in enumerate(tr.sent["b1"]) if killed < at < killed + 2]
    assert down and set(down) <= set(seen["b1"]), "b1's datagrams of the outage are missing"
    assert m["late"] == "0" and m["resumed"] == "1", f.where()
    log = hub.stderr()
    assert re.search(r'msg="follow: a store went away; it is called again" '
                     r'store=10\.88\.0\.2:\d+ ', log), log
