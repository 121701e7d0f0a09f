"""The cluster view (issue 14): a two-node cluster of namespaces, each node recording `-i any`
as the chart does, and `netreel pcapdump` through the hub.

  fabric   a namespace with a bridge: the network between the nodes
  node-1   uplink eth0 10.88.0.1 on the fabric; pods a1 10.90.1.2 and a2 10.90.1.3 on routed
           veths (a /32 route and proxy ARP each, as Calico does); routes to node-2's pods
  node-2   uplink eth0 10.88.0.2; pod b1 10.90.2.2; routes to node-1's pods
  Service  10.96.0.10:80 -> b1:8080, DNAT on every node (nftables, as kube-proxy's nft mode)

Each node runs a store (on its uplink address), a capture with pod targeting from its own
fixture Kubernetes API, and node-1 also the hub. UDP and TCP go between pods on one node and
across nodes, directly and through the Service address.

What must hold (issue 14, "What must hold"):
  * the default file holds each datagram exactly once, on the interface of the pod that sent it;
  * for the TCP exchanges Wireshark's expert analysis has no retransmission, duplicate ACK,
    out-of-order or malformed packet;
  * --sightings=all holds every copy (four for a packet between nodes, two within a node), the
    copies of one packet sharing frame.packet_id;
  * a segment really lost (dropped by nftables on node-1's uplink) and sent again is kept, and
    tshark calls it a retransmission.
"""

import re
import socket
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
from hub_helpers import hub_bin, hubs, only_file, pcapdump, wireshark_ok  # noqa: F401
from capture_helpers import (MAGIC, SCALE, CaptureProc, in_netns, lab,  # noqa: F401
                             ns_socket, run, start_kube_api, start_store, write_kubeconfig)
from cluster_helpers import NetCluster, nft

PORT = 18897
DGRAM_PORT = 9300
HTTP_PORT = 8080
SVC, SVC_PORT = "10.96.0.10", 80
NODES = {"node-1": "10.88.0.1", "node-2": "10.88.0.2"}
PODS = {  # name: (node, address)
    "a1": ("node-1", "10.90.1.2"),
    "a2": ("node-1", "10.90.1.3"),
    "b1": ("node-2", "10.90.2.2"),
}
NAMESPACE = {"a1": "default", "a2": "default", "b1": "web"}
SLL2 = 276
EXPERT = ("tcp.analysis.retransmission || tcp.analysis.fast_retransmission || "
          "tcp.analysis.spurious_retransmission || tcp.analysis.duplicate_ack || "
          "tcp.analysis.out_of_order || _ws.malformed")


def kube_proxy(ns):
    """kube-proxy's DNAT of the Service address, on every node."""
    nft(ns, "add table ip kp",
        "add chain ip kp pre { type nat hook prerouting priority -100; }",
        f"add rule ip kp pre ip daddr {SVC} tcp dport {SVC_PORT} "
        f"dnat to {PODS['b1'][1]}:{HTTP_PORT}",
        f"add rule ip kp pre ip daddr {SVC} udp dport {SVC_PORT} "
        f"dnat to {PODS['b1'][1]}:{HTTP_PORT}")


def Cluster():
    """The namespaces of the module docstring (cluster_helpers.NetCluster)."""
    return NetCluster(NODES, PODS, node_setup=kube_proxy)


def start_cluster(lab, tmp_path, capture_args=None):
    """The cluster with a store and a capture on each node; capture_args: {node: [extra flags]}."""
    c = Cluster()
    lab.nets.append(c)  # deleted after the processes in it stopped
    pki = kube_api.make_pki(tmp_path / "pki")
    c.captures = {}
    for node, addr in NODES.items():
        api = kube_api.KubeAPI(pki)
        start_kube_api(api, c.ns[node])
        lab.apis.append(api)
        c.apis = getattr(c, "apis", []) + [api]
        for name, (pnode, paddr) in PODS.items():
            api.add(NAMESPACE[name], name, node=pnode, ips=[paddr])
        c.store_args = getattr(c, "store_args", {})
        c.store_args[node] = (lab.store_bins, c.ns[node], tmp_path / f"data-{node}",
                              tmp_path / f"store-{node}.stderr", PORT, "--node", node,
                              "--listen", f"{addr}:{PORT}")
        store = start_store(*c.store_args[node])
        lab.stores.append(store)
        c.stores = getattr(c, "stores", {})
        c.stores[node] = store
        kc = write_kubeconfig(tmp_path / f"kubeconfig-{node}", api)
        cap = CaptureProc(lab.capture_bin, ["-i", "any", "--store", f"{addr}:{PORT}",
                                            "--metrics-listen", "127.0.0.1:0", "--node", node,
                                            "--kubeconfig", kc,
                                            *(capture_args or {}).get(node, [])],
                          tmp_path / f"capture-{node}.stderr", ns=c.ns[node])
        lab.captures.append(cap)
        c.captures[node] = cap
    for node, cap in c.captures.items():
        cap.wait_capturing()
        want = sum(1 for pnode, _ in PODS.values() if pnode == node)
        deadline = time.monotonic() + 20 * SCALE
        while cap.scrape().get("netreel_capture_pod_devices") != want:
            assert time.monotonic() < deadline, f"{node}: pod devices not found\n" \
                f"{sh.tail(cap.stderr())}"
            time.sleep(0.1)
    return c


@pytest.fixture
def cluster(lab, tmp_path):
    return start_cluster(lab, tmp_path)


class Servers:
    """UDP sinks on DGRAM_PORT and HTTP_PORT and a TCP responder on HTTP_PORT in every pod: a
    request line in, RESPONSE out, until the peer closes."""

    RESPONSE = b"HTTP/1.0 200 OK\r\n\r\n" + b"x" * 3000

    def __init__(self, c):
        self.socks, self.threads, self.stop = [], [], threading.Event()
        for name, pns in c.pods.items():
            for port in (DGRAM_PORT, HTTP_PORT):
                u = ns_socket(pns)
                u.bind((PODS[name][1], port))
                u.settimeout(0.2)
                self._run(self._drain, u)
            t = ns_socket(pns, type=socket.SOCK_STREAM)
            t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            t.bind((PODS[name][1], HTTP_PORT))
            t.listen(16)
            t.settimeout(0.2)
            self._run(self._serve, t)

    def _run(self, fn, s):
        self.socks.append(s)
        th = threading.Thread(target=fn, args=(s,), daemon=True)
        th.start()
        self.threads.append(th)

    def _drain(self, s):
        while not self.stop.is_set():
            try:
                s.recv(65536)
            except OSError:
                pass

    def _serve(self, s):
        while not self.stop.is_set():
            try:
                conn, _ = s.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(10)
                try:
                    while conn.recv(4096):
                        conn.sendall(self.RESPONSE)
                except OSError:
                    pass

    def close(self):
        self.stop.set()
        for th in self.threads:
            th.join(5)
        for s in self.socks:
            s.close()


def send_udp(c, pod, dst, port, seqs):
    s = ns_socket(c.pods[pod])
    try:
        s.bind((PODS[pod][1], 0))
        for q in seqs:
            s.sendto(MAGIC + struct.pack("!Q", q) + b"d" * 64, (dst, port))
            time.sleep(0.002)
    finally:
        s.close()


def http_exchanges(c, pod, dst, port, n):
    """n connections from pod to dst:port, each one request and its whole response."""
    for _ in range(n):
        s = ns_socket(c.pods[pod], type=socket.SOCK_STREAM)
        try:
            s.settimeout(10)
            s.bind((PODS[pod][1], 0))
            s.connect((dst, port))
            s.sendall(b"GET / HTTP/1.0\r\n\r\n")
            got = b""
            while len(got) < len(Servers.RESPONSE):
                chunk = s.recv(65536)
                assert chunk, f"{pod} -> {dst}:{port}: closed after {len(got)} bytes"
                got += chunk
            assert got == Servers.RESPONSE
        finally:
            s.close()


def datagrams(f):
    """[(interface name, source, seq, packet)] of our datagrams (first fragments) in f."""
    out = []
    for p in f.packets:
        d = p.data
        if f.interfaces[p.ifid].link_type != SLL2 or d[0:2] != b"\x08\x00":
            continue
        ip4 = d[20:]
        ihl = (ip4[0] & 15) * 4
        if ip4[9] != 17 or ip4[ihl + 8:ihl + 12] != MAGIC:
            continue
        out.append((f.interfaces[p.ifid].name, socket.inet_ntoa(ip4[12:16]),
                    struct.unpack("!Q", ip4[ihl + 12:ihl + 20])[0], p))
    return out


def dump(cli_bin, hubs, c, tmp_path, tag, *args, result=False):
    stores = ",".join(f"{a}:{PORT}" for a in NODES.values())
    hub = c.hub = hubs(stores, ns=c.ns["node-1"])
    d = tmp_path / f"out-{tag}"
    d.mkdir()
    r = pcapdump(cli_bin, hub, "--time=5m", "--dest", d, *args, ns=c.ns["node-1"], expect=0)
    path = only_file(d)
    if result:
        return path, wireshark_ok(path), r
    return path, wireshark_ok(path)


def tshark_frames(path, display_filter):
    r = subprocess.run(["tshark", "-r", str(path), "-Y", display_filter, "-T", "fields", "-e",
                        "frame.number"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return r.stdout.split()


def pod_iface(name):
    return f"{PODS[name][0]}/{NAMESPACE[name]}/{name}"


def test_each_packet_once_on_the_senders_interface(cluster, hubs, cli_bin, tmp_path):
    c = cluster
    srv = Servers(c)
    try:
        b1, a2 = PODS["b1"][1], PODS["a2"][1]
        send_udp(c, "a1", b1, DGRAM_PORT, range(0, 20))      # across nodes
        send_udp(c, "a1", a2, DGRAM_PORT, range(100, 120))   # within node-1
        send_udp(c, "a1", SVC, SVC_PORT, range(200, 220))    # through the Service
        send_udp(c, "b1", PODS["a1"][1], DGRAM_PORT, range(300, 320))  # the other way
        http_exchanges(c, "a1", b1, HTTP_PORT, 3)
        http_exchanges(c, "a1", SVC, SVC_PORT, 3)
        http_exchanges(c, "a2", PODS["a1"][1], HTTP_PORT, 3)
    finally:
        srv.close()
    time.sleep(1.5)  # the captures' batch time and the rings' block timeout

    path, f = dump(cli_bin, hubs, c, tmp_path, "one")
    assert {i.link_type for i in f.interfaces} == {SLL2}, f.interfaces
    assert len({i.snaplen for i in f.interfaces}) == 1, f.interfaces
    got = Counter((itf, src, q) for itf, src, q, _ in datagrams(f))
    want = Counter()
    for lo, pod in ((0, "a1"), (100, "a1"), (200, "a1"), (300, "b1")):
        for q in range(lo, lo + 20):
            want[(pod_iface(pod), PODS[pod][1], q)] = 1
    assert got == want, (sorted(set(got) - set(want))[:10], sorted(set(want) - set(got))[:10])
    # Every packet a pod sent is on that pod's interface (its address before any NAT).
    r = subprocess.run(["tshark", "-r", str(path), "-Y", "ip", "-T", "fields", "-e",
                        "frame.interface_name", "-e", "ip.src"], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    by_addr = {addr: pod_iface(name) for name, (_, addr) in PODS.items()}
    wrong = [ln for ln in r.stdout.splitlines()
             if ln.split("\t")[1] in by_addr and ln.split("\t")[0] != by_addr[ln.split("\t")[1]]]
    assert not wrong, wrong[:10]
    # Clean TCP reads as clean TCP.
    assert tshark_frames(path, "tcp") != []
    assert tshark_frames(path, EXPERT) == [], "expert notes on clean TCP"

    # Every sighting, the copies of one packet sharing frame.packet_id.
    path, f = dump(cli_bin, hubs, c, tmp_path, "all", "--sightings=all")
    copies = defaultdict(list)
    for itf, src, q, p in datagrams(f):
        copies[q].append((itf, p.packet_id))
    for q in range(0, 20):  # a1 -> b1: a1's device, both uplinks, b1's device
        assert sorted(i for i, _ in copies[q]) == sorted(
            [pod_iface("a1"), "node-1/eth0", "node-2/eth0", pod_iface("b1")]), copies[q]
    for q in range(100, 120):  # a1 -> a2 on node-1
        assert sorted(i for i, _ in copies[q]) == sorted([pod_iface("a1"), pod_iface("a2")])
    for q in [*range(0, 20), *range(100, 120), *range(200, 220), *range(300, 320)]:
        ids = {pid for _, pid in copies[q]}
        assert len(ids) == 1 and 0 not in ids, (q, copies[q])
    assert len({copies[q][0][1] for q in copies}) == len(copies), "two packets share an id"
    r = subprocess.run(["tshark", "-r", str(path), "-Y", "frame.packet_id == "
                        f"{copies[5][0][1]}", "-T", "fields", "-e", "frame.interface_name"],
                       capture_output=True, text=True, timeout=120)
    assert sorted(r.stdout.split()) == sorted(i for i, _ in copies[5]), r.stdout


def test_a_real_retransmission_is_kept(cluster, hubs, cli_bin, tmp_path):
    c = cluster
    # One segment of a1's request stream to b1 dies on node-1's uplink, after a1's device saw
    # it: TCP sends it again.
    nft(c.ns["node-1"], "add table inet loss",
        "add chain inet loss post { type filter hook postrouting priority 0; }",
        f"add rule inet loss post ip daddr {PODS['b1'][1]} tcp dport {HTTP_PORT} "
        "ip length > 60 numgen inc mod 1000 == 0 counter drop")
    srv = Servers(c)
    try:
        http_exchanges(c, "a1", PODS["b1"][1], HTTP_PORT, 1)
    finally:
        srv.close()
    r = run(["ip", "netns", "exec", c.ns["node-1"], "nft", "list", "chain", "inet", "loss",
             "post"])
    assert "packets 1 " in r.stdout, f"the rule dropped no segment: {r.stdout}"
    time.sleep(1.5)
    path, _ = dump(cli_bin, hubs, c, tmp_path, "loss")
    # The request is there twice (sent, then sent again), on a1's interface both times, and
    # tshark calls the second a retransmission. (A busy machine may delay an ACK enough for
    # more retransmissions: real ones too, kept as well.)
    r = subprocess.run(["tshark", "-r", str(path), "-Y", "tcp.payload && ip.src == "
                        f"{PODS['a1'][1]}", "-T", "fields", "-e", "frame.interface_name", "-e",
                        "tcp.analysis.retransmission", "-e", "tcp.seq"],
                       capture_output=True, text=True, timeout=120)
    rows = [ln.split("\t") for ln in r.stdout.splitlines()]
    assert len(rows) >= 2 and {row[0] for row in rows} == {pod_iface("a1")}, r.stdout
    first_seq = rows[0][2]
    again = [row for row in rows[1:] if row[2] == first_seq]
    assert again and all(row[1] for row in again), r.stdout
    assert not rows[0][1], f"the first send is no retransmission: {r.stdout}"


def exchanges(f):
    """Per TCP connection of f (by the client's port): (request time, response time), from the
    first packet carrying "GET" and the first carrying "HTTP"."""
    out = defaultdict(dict)
    for p in f.packets:
        d = p.data
        if f.interfaces[p.ifid].link_type != SLL2 or d[0:2] != b"\x08\x00":
            continue
        ip4 = d[20:]
        ihl = (ip4[0] & 15) * 4
        if ip4[9] != 6:
            continue
        tcp = ip4[ihl:]
        payload = tcp[(tcp[12] >> 4) * 4:]
        sport, dport = struct.unpack("!HH", tcp[:4])
        if payload.startswith(b"GET"):
            out[sport].setdefault("req", p.ts_ns)
        elif payload.startswith(b"HTTP"):
            out[dport].setdefault("resp", p.ts_ns)
    return {k: (v.get("req"), v.get("resp")) for k, v in out.items()}


def test_one_clock_from_the_traffic(lab, hubs, cli_bin, tmp_path):
    """node-2's clock runs 3 ms behind (the capture's --test-clock-skew): the hub measures it from
    the packets crossing between the nodes, reports it (SHB comment, the CLI's line, the
    summary), and takes it off node-2's timestamps, so that no response stands before its
    request; --clock=raw keeps them as the nodes said."""
    c = start_cluster(lab, tmp_path, {"node-2": ["--test-clock-skew=-3ms"]})
    srv = Servers(c)
    try:
        send_udp(c, "a1", PODS["b1"][1], DGRAM_PORT, range(0, 20))
        send_udp(c, "b1", PODS["a1"][1], DGRAM_PORT, range(100, 120))
        http_exchanges(c, "a1", PODS["b1"][1], HTTP_PORT, 5)
    finally:
        srv.close()
    time.sleep(1.5)

    path, f, r = dump(cli_bin, hubs, c, tmp_path, "aligned", result=True)
    line = [ln for ln in r.stderr.splitlines() if "clock of node-2" in ln]
    assert len(line) == 1, r.where()
    m = re.search(r"clock of node-2: ([-+][0-9.]+) ms against node-1 \(\xb1 ([0-9.]+) ms, "
                  r"(\d+) packets\)", line[0])
    assert m, line[0]
    offset, unc, n = float(m.group(1)), float(m.group(2)), int(m.group(3))
    # -3 ms within what the traffic allows (half the smallest round trip through the fabric)
    assert n > 0 and unc < 1.0, line[0]
    assert abs(offset - -3.0) <= unc + 0.05, line[0]
    m = re.search(r"clock of node-1: node-2 ([-+][0-9.]+) ms \u00b1 ([0-9.]+) ms", f.shb_comment)
    assert m and abs(float(m.group(1)) - offset) < 0.001, f.shb_comment
    aligned = exchanges(f)
    for port, (req, resp) in aligned.items():
        assert req is not None and resp is not None, (port, req, resp)
        assert req <= resp, f"connection {port}: the response is {(req - resp) / 1e6} ms early"
    got = sorted(q for _, _, q, _ in datagrams(f))
    assert got == [*range(0, 20), *range(100, 120)], got
    # `netreel status` shows the clock the snapshot measured.
    r = ch.run("ip", "netns", "exec", c.ns["node-1"], Path(cli_bin).resolve(), "status",
               "--all", "--hub", c.hub.addr, env=ch.base_env(), expect=0)
    rows = {ln.split()[0]: ln for ln in r.stdout.splitlines()[1:]}
    assert " reference " in rows["node-1"], r.stdout
    assert re.search(r" -3\.0\d\dms\u00b1\d\.\d{3} ", rows["node-2"]), r.stdout

    # Every sighting on one clock: no received copy before its sending copy.
    path, f = dump(cli_bin, hubs, c, tmp_path, "all", "--sightings=all")
    when = defaultdict(dict)
    for itf, _, q, p in datagrams(f):
        when[q][itf] = p.ts_ns
    for q in range(0, 20):
        assert when[q]["node-1/eth0"] <= when[q]["node-2/eth0"], (q, when[q])
    for q in range(100, 120):
        assert when[q]["node-2/eth0"] <= when[q]["node-1/eth0"], (q, when[q])

    # --clock=raw: the nodes' own clocks: node-2's packets 3 ms earlier than aligned (so that
    # responses stand before their requests, unless a round trip took longer than that), node-1's
    # as they were.
    path, f, r = dump(cli_bin, hubs, c, tmp_path, "raw", "--clock=raw", result=True)
    assert "clock of" not in r.stderr, r.where()
    assert "clocks raw" in f.shb_comment, f.shb_comment
    raw = exchanges(f)
    assert raw.keys() == aligned.keys(), (raw, aligned)
    for port in raw:
        assert raw[port][0] == aligned[port][0], (port, raw[port], aligned[port])  # node-1's
        moved = raw[port][1] - aligned[port][1]  # node-2's response, ns
        assert abs(moved - offset * 1e6) < 1000, (port, moved, offset)


def selected(cli_bin, hubs, c, tmp_path, tag, *args):
    """The seqs of our datagrams in a snapshot with the given selection flags."""
    _, f = dump(cli_bin, hubs, c, tmp_path, tag, *args)
    return sorted({q for _, _, q, _ in datagrams(f)})


def wait_recorded(cap, packets):
    deadline = time.monotonic() + 20 * SCALE
    while (cap.scrape().get("netreel_capture_packets_total") or 0) < packets:
        assert time.monotonic() < deadline, f"recorded: {cap.scrape()}"
        time.sleep(0.05)


def wait_pod_devices(cap, want):
    deadline = time.monotonic() + 20 * SCALE
    while cap.scrape().get("netreel_capture_pod_devices") != want:
        assert time.monotonic() < deadline, f"pod devices: {cap.scrape()}"
        time.sleep(0.1)


def test_who_after_the_fact(lab, cluster, hubs, cli_bin, tmp_path):
    """-n, --pod and -l select by the pods as they were when each packet was seen: a2 is
    deleted and its address then goes to a new pod a3 of another namespace; a2 is still found
    (and only a2), a3 is not taken for it. Everything goes to b1, of namespace "web"."""
    c = cluster
    a2_ip = PODS["a2"][1]
    srv = Servers(c)
    try:
        send_udp(c, "a1", PODS["b1"][1], DGRAM_PORT, range(0, 10))   # a1 -> b1
        send_udp(c, "a2", PODS["b1"][1], DGRAM_PORT, range(500, 510))  # a2 -> b1
        # They are on the wire (a first datagram waits for ARP) and recorded before a2 goes:
        # each was seen on its pod's device and on node-1's uplink.
        wait_recorded(c.captures["node-1"], 40)
        for api in c.apis:  # a2 goes; a3 of namespace "shop" comes with a2's address
            api.delete("default", "a2")
        wait_pod_devices(c.captures["node-1"], 1)
        for api in c.apis:
            api.add("shop", "a3", node="node-1", ips=[a2_ip])
        wait_pod_devices(c.captures["node-1"], 2)
        time.sleep(0.5)  # the filter's swap onto the handle
        send_udp(c, "a2", PODS["b1"][1], DGRAM_PORT, range(600, 610))  # now a3's packets
    finally:
        srv.close()
    time.sleep(1.5)

    a2 = list(range(500, 510))
    a3 = list(range(600, 610))
    a1 = list(range(0, 10))
    assert selected(cli_bin, hubs, c, tmp_path, "all") == a1 + a2 + a3
    # a2, deleted: found by its namespace, its name and its labels; a3 is not a2
    assert selected(cli_bin, hubs, c, tmp_path, "ns-default", "-n", "default") == a1 + a2
    assert selected(cli_bin, hubs, c, tmp_path, "pod-a2", "--pod", "^a2$") == a2
    assert selected(cli_bin, hubs, c, tmp_path, "l-a2", "-l", "app=a2") == a2
    # a3: only what it sent after it came
    assert selected(cli_bin, hubs, c, tmp_path, "ns-shop", "-n", "shop") == a3
    assert selected(cli_bin, hubs, c, tmp_path, "pod-a3", "--pod", "a3") == a3
    # combined: all of them must hold, and with --filter
    assert selected(cli_bin, hubs, c, tmp_path, "both", "-n", "default", "-l",
                    "app in (b1, a2)") == a2  # b1 is of namespace web
    assert selected(cli_bin, hubs, c, tmp_path, "notin", "-l", "app notin (a1,b1)") == a2 + a3
    assert selected(cli_bin, hubs, c, tmp_path, "none", "-n", "kube-system") == []
    assert selected(cli_bin, hubs, c, tmp_path, "filter", "-n", "default", "--filter",
                    f"src host {a2_ip}") == a2

    # The history is in the segments: a store started again on them still knows a2 and a3.
    for node in NODES:
        problems = c.stores[node].stop()
        assert not problems, problems
        c.stores[node] = start_store(*c.store_args[node])
        lab.stores.append(c.stores[node])
    assert selected(cli_bin, hubs, c, tmp_path, "after-restart", "-n", "default") == a1 + a2
    assert selected(cli_bin, hubs, c, tmp_path, "after-restart-a3", "-l", "app=a3") == a3

    # A selection that does not parse is an error, as a filter that does not compile is.
    hub = hubs(",".join(f"{a}:{PORT}" for a in NODES.values()), ns=c.ns["node-1"])
    d = tmp_path / "bad"
    d.mkdir()
    for args, words in ((["-l", "app in (a1"], "parenthesis"),
                        (["--pod", "a(("], "pod"),
                        (["-n", "Not_A_Label"], "Not_A_Label")):
        r = pcapdump(cli_bin, hub, "--time=5m", "--dest", d, *args, ns=c.ns["node-1"],
                     expect=1)
        line = ch.one_error_line(r)
        assert "INVALID_ARGUMENT" in line and words in line, line
        assert list(d.iterdir()) == [], list(d.iterdir())
