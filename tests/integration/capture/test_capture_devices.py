"""`-i any` split per network device, each named after the pod it leads to (issue 14, "a sighting
knows its pod"), on a node made of namespaces the way CNIs build one:

  node namespace N (the capture, the store, the hub, the fixture Kubernetes API on its loopback)
    up0      a veth to a "world" namespace, N's default route: an uplink
    vethwb   a routed pod's device (Calico's way: a /32 route to the pod, proxy ARP) -> web-1
    vethdb   another routed pod -> shop/db-0
    cni0     a bridge (flannel's and kindnet's way) with port vethbr -> default/br-0

What must hold: each datagram between pods is on the interface of the pod that sent it, named
NODE/NAMESPACE/POD with Inspektor Gadget's k8s.* description, and on the receiving pod's; one
to the world is on node-1/up0; every IDB has LINUX_SLL2 and one snaplen; the segments describe
the same interfaces; a pod added later gets its own interface.
"""

import itertools
import os
import socket
import struct
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest

import cli_helpers as ch
import kube_api
import store_helpers as sh
from cli_helpers import cli_bin  # noqa: F401 (fixture)
from hub_helpers import hub_bin, hubs, only_file, pcapdump, wireshark_ok  # noqa: F401
from capture_helpers import (MAGIC, SCALE, CaptureProc, _delete_ns, _ns_counter, lab,  # noqa
                             mval,
                             ns_socket, run, start_kube_api, start_store, write_kubeconfig)

NODE = "node-1"
PORT = 18897
DGRAM_PORT = 9300
WORLD_IP = "10.89.0.254"
PODS = {  # name: (namespace, address, how it is wired)
    "web-1": ("default", "10.90.0.2", "routed"),
    "db-0": ("shop", "10.90.0.3", "routed"),
    "br-0": ("default", "10.91.0.2", "bridge"),
}
SLL2 = 276


def _ns_name(suffix):
    _ns_counter[0] += 1
    return f"nr{os.getpid()}t{_ns_counter[0]}{suffix}"


class PodNode:
    """The node of the module docstring; every namespace goes on close()."""

    def __init__(self):
        self.node = _ns_name("a")
        self.world = _ns_name("b")
        self.pods = {}  # name -> namespace
        self.created = []
        try:
            for ns in (self.node, self.world):
                self._netns(ns)
            run(["ip", "netns", "exec", self.node, "sysctl", "-qw", "net.ipv4.ip_forward=1"])
            run(["ip", "link", "add", "up0", "netns", self.node, "type", "veth", "peer", "name",
                 "up0", "netns", self.world])
            self._ip(self.node, "addr", "add", "10.89.0.1/24", "dev", "up0")
            self._ip(self.world, "addr", "add", f"{WORLD_IP}/24", "dev", "up0")
            for ns in (self.node, self.world):
                self._ip(ns, "link", "set", "up0", "up")
            self._ip(self.node, "route", "add", "default", "via", WORLD_IP, "dev", "up0")
            self._ip(self.world, "route", "add", "10.90.0.0/15", "via", "10.89.0.1")
            self._ip(self.node, "link", "add", "cni0", "type", "bridge")
            self._ip(self.node, "addr", "add", "10.91.0.1/24", "dev", "cni0")
            self._ip(self.node, "link", "set", "cni0", "up")
            for name in PODS:
                self.add_pod(name)
        except Exception:
            self.close()
            raise

    def _netns(self, ns):
        run(["ip", "netns", "add", ns])
        self.created.append(ns)
        run(["ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1",
             "net.ipv6.conf.default.disable_ipv6=1"])
        self._ip(ns, "link", "set", "lo", "up")

    @staticmethod
    def _ip(ns, *args):
        run(["ip", "-n", ns, *args])

    def add_pod(self, name, how=None, addr=None):
        _, ip, wired = PODS.get(name, (None, addr, how))
        ns = _ns_name("b")
        dev = "veth" + name.replace("-", "")[:8]
        self._netns(ns)
        self.pods[name] = ns
        run(["ip", "link", "add", dev, "netns", self.node, "type", "veth", "peer", "name",
             "eth0", "netns", ns])
        self._ip(ns, "link", "set", "eth0", "up")
        self._ip(self.node, "link", "set", dev, "up")
        if wired == "routed":
            self._ip(ns, "addr", "add", f"{ip}/32", "dev", "eth0")
            self._ip(ns, "route", "add", "169.254.1.1", "dev", "eth0")
            self._ip(ns, "route", "add", "default", "via", "169.254.1.1", "dev", "eth0")
            run(["ip", "netns", "exec", self.node, "sysctl", "-qw",
                 f"net.ipv4.conf.{dev}.proxy_arp=1"])
            self._ip(self.node, "route", "add", f"{ip}/32", "dev", dev)
        else:
            self._ip(ns, "addr", "add", f"{ip}/24", "dev", "eth0")
            self._ip(ns, "route", "add", "default", "via", "10.91.0.1")
            self._ip(self.node, "link", "set", dev, "master", "cni0")
        return dev

    def remove_pod(self, name):
        """The pod's namespace goes, and its veth pair with it."""
        ns = self.pods.pop(name)
        _delete_ns(ns)
        self.created.remove(ns)

    def close(self):
        for ns in reversed(self.created):
            _delete_ns(ns)
        self.created = []


def send(ns, src, dst, seqs):
    """Datagrams MAGIC + seq from src (in namespace ns) to dst:DGRAM_PORT."""
    s = ns_socket(ns)
    try:
        s.bind((src, 0))
        for q in seqs:
            s.sendto(MAGIC + struct.pack("!Q", q) + b"x" * 40, (dst, DGRAM_PORT))
            time.sleep(0.001)
    finally:
        s.close()


def datagrams(f, packets=False):
    """(interface name, source, destination, seq, sll2 packet type) of our datagrams in f (and
    the Packet, when asked)."""
    out = []
    for p in f.packets:
        d = p.data
        if f.interfaces[p.ifid].link_type != SLL2 or len(d) < 20 + 28:
            continue
        if struct.unpack("!H", d[0:2])[0] != 0x0800:
            continue
        ip = d[20:]
        ihl = (ip[0] & 15) * 4
        if ip[9] != 17 or ip[ihl + 8:ihl + 12] != MAGIC:
            continue
        seq = struct.unpack("!Q", ip[ihl + 12:ihl + 20])[0]
        row = (f.interfaces[p.ifid].name, socket.inet_ntoa(ip[12:16]),
               socket.inet_ntoa(ip[16:20]), seq, d[10])
        out.append(row + (p,) if packets else row)
    return out


def wait_metric(cap, name, want, timeout=20.0):
    deadline = time.monotonic() + timeout * SCALE
    got = None
    while time.monotonic() < deadline:
        got = cap.scrape().get(name)
        if got == want:
            return
        time.sleep(0.1)
    raise AssertionError(f"{name} is {got}, want {want}\n{sh.tail(cap.stderr())}")


def wait_filter(cap, ip, timeout=20.0):
    """Until the capture's filter lets ip in (pod targeting applies it a moment after the pod is
    listed)."""
    deadline = time.monotonic() + timeout * SCALE
    while not any(f"ip host {ip} " in ln or f"ip host {ip})" in ln
                  for ln in cap.lines("filter applied")[-1:]):
        assert time.monotonic() < deadline, sh.tail(cap.stderr())
        time.sleep(0.05)


@pytest.fixture
def pod_node(lab, tmp_path):
    return make_pod_node(lab, tmp_path)


def make_pod_node(lab, tmp_path, *capture_args):
    n = PodNode()
    lab.nets.append(n)  # deleted after the processes in it stopped
    pki = kube_api.make_pki(tmp_path / "pki")
    api = kube_api.KubeAPI(pki)
    start_kube_api(api, n.node)
    lab.apis.append(api)
    for name, (space, ip, _) in PODS.items():
        api.add(space, name, node=NODE, ips=[ip])
    store = start_store(lab.store_bins, n.node, tmp_path / "data", tmp_path / "store.stderr", PORT,
                        "--node", NODE)
    lab.stores.append(store)
    kc = write_kubeconfig(tmp_path / "kubeconfig", api)
    cap = CaptureProc(lab.capture_bin, ["-i", "any", "--store", f"127.0.0.1:{PORT}",
                                        "--metrics-listen", "127.0.0.1:0", "--node", NODE,
                                        "--kubeconfig", kc, *capture_args],
                      tmp_path / "capture.stderr",
                      ns=n.node)
    lab.captures.append(cap)
    cap.wait_capturing()
    return n, api, cap, store


def warm_up(n, cap, pods):
    """Traffic both ways until the capture knows every pod's device (a bridge learns a pod's MAC
    from its first packet)."""
    deadline = time.monotonic() + 20 * SCALE
    while time.monotonic() < deadline:
        send(n.pods["br-0"], PODS["br-0"][1], PODS["web-1"][1], [0])
        if cap.scrape().get("netreel_capture_pod_devices") == pods:
            return
        time.sleep(0.2)
    raise AssertionError(f"pod devices: {cap.scrape().get('netreel_capture_pod_devices')}, "
                         f"want {pods}\n{sh.tail(cap.stderr())}")


def dump(cli_bin, hubs, n, tmp_path, tag, *args):
    hub = hubs(f"127.0.0.1:{PORT}", ns=n.node)
    d = tmp_path / f"out-{tag}"
    d.mkdir()
    pcapdump(cli_bin, hub, "--time=5m", "--dest", d, *args, ns=n.node, expect=0)
    path = only_file(d)
    return path, wireshark_ok(path)


def pod_desc(name, device):
    space, _, _ = PODS[name]
    return (f"k8s.node={NODE};k8s.namespace={space};k8s.podName={name};"
            f"k8s.podUID=uid-{space}-{name};k8s.podLabels=app={name.split('-')[0]};"
            f"netreel.device={device};netreel.role=pod")


def test_any_is_split_per_device_named_after_pods(pod_node, hubs, cli_bin, tmp_path):
    n, api, cap, store = pod_node
    warm_up(n, cap, 3)
    web, db, br = (PODS[k][1] for k in ("web-1", "db-0", "br-0"))
    send(n.pods["web-1"], web, db, range(100, 120))
    send(n.pods["br-0"], br, web, range(200, 220))
    send(n.pods["web-1"], web, WORLD_IP, range(300, 310))
    time.sleep(1.5)  # the capture's batch time and the ring's block timeout
    path, f = dump(cli_bin, hubs, n, tmp_path, "all", "--sightings=all")

    names = {i.name: i for i in f.interfaces}
    assert {i.link_type for i in f.interfaces} == {SLL2}, f.interfaces
    assert len({i.snaplen for i in f.interfaces}) == 1, f.interfaces
    assert names[f"{NODE}/default/web-1"].description == pod_desc("web-1", "vethweb1")
    assert names[f"{NODE}/shop/db-0"].description == pod_desc("db-0", "vethdb0")
    assert names[f"{NODE}/default/br-0"].description == pod_desc("br-0", "vethbr0")
    assert names[f"{NODE}/up0"].description == \
        f"k8s.node={NODE};netreel.device=up0;netreel.role=uplink"
    assert names[f"{NODE}/cni0"].description == \
        f"k8s.node={NODE};netreel.device=cni0;netreel.role=bridge"
    assert f"{NODE}/any" not in names, "every packet's device was known"

    got = datagrams(f)
    where = Counter((itf, seq) for itf, _, _, seq, _ in got)
    # web-1 -> db-0: in from web-1's device (PACKET_HOST), out to db-0's (PACKET_OUTGOING).
    for q in range(100, 120):
        assert where[(f"{NODE}/default/web-1", q)] == 1, (q, sorted(where.items()))
        assert where[(f"{NODE}/shop/db-0", q)] == 1, (q, sorted(where.items()))
    assert {(itf, t) for itf, _, _, q, t in got if 100 <= q < 120} == {
        (f"{NODE}/default/web-1", 0), (f"{NODE}/shop/db-0", 4)}
    # br-0 -> web-1 through the bridge: its port, the bridge device, then web-1's device.
    for q in range(200, 220):
        assert where[(f"{NODE}/default/br-0", q)] == 1, (q, sorted(where.items()))
        assert where[(f"{NODE}/cni0", q)] == 1, (q, sorted(where.items()))
        assert where[(f"{NODE}/default/web-1", q)] == 1, (q, sorted(where.items()))
    # web-1 -> the world: out through the uplink.
    for q in range(300, 310):
        assert where[(f"{NODE}/up0", q)] == 1, (q, sorted(where.items()))
    # The copies of one datagram share a packet id, and only they; each says its direction.
    ids = {}
    for itf, _, _, q, t, p in datagrams(f, packets=True):
        if q >= 100:
            ids.setdefault(q, set()).add(p.packet_id)
            assert p.flags & 3 == (2 if t == 4 else 1), (itf, q, t, p.flags)
    assert all(len(v) == 1 and 0 not in v for v in ids.values()), ids
    assert len({min(v) for v in ids.values()}) == len(ids), ids

    # By default each datagram once, on the interface of the pod that sent it.
    path, f = dump(cli_bin, hubs, n, tmp_path, "one")
    once = Counter((itf, q) for itf, _, _, q, _ in datagrams(f) if q >= 100)
    want = {(f"{NODE}/default/web-1", q): 1 for q in [*range(100, 120), *range(300, 310)]}
    want.update({(f"{NODE}/default/br-0", q): 1 for q in range(200, 220)})
    assert dict(once) == want, sorted(once.items())

    # Wireshark shows the same: the name and the k8s fields of the sending pod's interface.
    r = subprocess.run(["tshark", "-r", str(path), "-Y", f"ip.src=={web} && ip.dst=={db} && !icmp && "
                        "sll.pkttype==0", "-T", "fields", "-e", "frame.interface_name", "-e",
                        "frame.interface_description"], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    assert set(r.stdout.splitlines()) == {
        f"{NODE}/default/web-1\t{pod_desc('web-1', 'vethweb1')}"}, r.stdout

    # The store's own segments describe the same interfaces.
    cap.stop()
    seg_names = {}
    for seg in sh.segment_files(tmp_path / "data"):
        for i in sh.read_pcapng(seg).interfaces:
            seg_names[i.name] = i.description
    assert seg_names.get("default/web-1") == pod_desc("web-1", "vethweb1"), seg_names
    assert seg_names.get("up0") == f"k8s.node={NODE};netreel.device=up0;netreel.role=uplink"


def test_a_pod_added_later_gets_its_own_interface(pod_node, hubs, cli_bin, tmp_path):
    n, api, cap, store = pod_node
    warm_up(n, cap, 3)
    dev = n.add_pod("late-0", how="routed", addr="10.90.0.9")
    # Its packets before the API lists it are not recorded (pod targeting); after, on its own
    # interface, as soon as the filter and the device map have it.
    api.add("default", "late-0", node=NODE, ips=["10.90.0.9"])
    wait_metric(cap, "netreel_capture_pod_devices", 4)
    deadline = time.monotonic() + 10 * SCALE
    seqs = itertools.count(500)
    sent = []
    while time.monotonic() < deadline:
        batch = [next(seqs) for _ in range(5)]
        send(n.pods["late-0"], "10.90.0.9", PODS["web-1"][1], batch)
        sent += batch
        time.sleep(0.3)
        if len(sent) >= 40:
            break
    time.sleep(1.5)
    _, f = dump(cli_bin, hubs, n, tmp_path, "2")
    names = {i.name: i for i in f.interfaces}
    assert names[f"{NODE}/default/late-0"].description == (
        f"k8s.node={NODE};k8s.namespace=default;k8s.podName=late-0;k8s.podUID=uid-default-late-0;"
        f"k8s.podLabels=app=late;netreel.device={dev};netreel.role=pod")
    on_late = {q for itf, src, _, q, t in datagrams(f)
               if itf == f"{NODE}/default/late-0" and src == "10.90.0.9"}
    # The first ones may predate the filter; the last 20 are all there.
    assert set(sent[-20:]) <= on_late, (sorted(on_late), sent)


def test_interfaces_go_once_per_call_and_again_after_a_reconnect(pod_node, hubs, cli_bin, lab,
                                                                  tmp_path):
    # A batch carries only the interfaces its call has not carried yet: a node with hundreds of
    # pods' devices does not send their descriptions with every batch. A new call (the store
    # restarted) starts with the whole table, and nothing is lost on the way.
    n, api, cap, store = pod_node
    warm_up(n, cap, 3)
    web, db = PODS["web-1"][1], PODS["db-0"][1]
    for i in range(10):  # ten batches or more, each with packets of several devices
        send(n.pods["web-1"], web, db, range(1000 + 10 * i, 1010 + 10 * i))
        time.sleep(0.25)
    time.sleep(1.5)
    m = cap.scrape()
    made = m["netreel_capture_interfaces"]
    spooled = mval(m, "netreel_capture_batches_total", result="spooled")
    assert spooled >= 5, m
    assert m["netreel_capture_interfaces_sent_total"] == made, m

    # The store restarted: the capture's new call sends the whole table once more.
    store.stop()
    send(n.pods["web-1"], web, db, range(2000, 2010))  # waits in the spool
    store2 = start_store(lab.store_bins, n.node, tmp_path / "data", tmp_path / "store2.stderr",
                         PORT, "--node", NODE)
    lab.stores.append(store2)
    wait_metric(cap, "netreel_capture_store_connected", 1)
    wait_metric(cap, "netreel_capture_spool_bytes", 0)  # the waiting batch is in
    # The call that works sent the whole table again (so did each failed attempt while the
    # store was down).
    deadline = time.monotonic() + 10 * SCALE
    while (m1 := cap.scrape())["netreel_capture_interfaces_sent_total"] < 2 * made:
        assert time.monotonic() < deadline, m1
        time.sleep(0.1)
    dev = n.add_pod("late-1", how="routed", addr="10.90.0.10")
    api.add("default", "late-1", node=NODE, ips=["10.90.0.10"])
    wait_metric(cap, "netreel_capture_pod_devices", 4)
    wait_filter(cap, "10.90.0.10")
    late = []
    deadline = time.monotonic() + 10 * SCALE
    while time.monotonic() < deadline and len(late) < 30:
        batch = list(range(3000 + len(late), 3005 + len(late)))
        send(n.pods["late-1"], "10.90.0.10", web, batch)
        late += batch
        time.sleep(0.3)
    time.sleep(1.5)
    m2 = cap.scrape()
    made2 = m2["netreel_capture_interfaces"]
    assert made2 > made, (made, made2)
    # The late pod's device (and whatever else appeared) went once on this call, not once per
    # batch: at most the whole table since m1, however many batches went.
    delta = m2["netreel_capture_interfaces_sent_total"] - m1["netreel_capture_interfaces_sent_total"]
    assert made2 - m1["netreel_capture_interfaces"] <= delta <= made2, (m1, m2)
    assert mval(m2, "netreel_capture_batches_total", result="spooled") - \
        mval(m1, "netreel_capture_batches_total", result="spooled") >= 3, m2

    _, f = dump(cli_bin, hubs, n, tmp_path, "calls")
    names = {i.name: i for i in f.interfaces}
    assert names[f"{NODE}/default/late-1"].description.endswith(
        f"netreel.device={dev};netreel.role=pod"), names
    on = Counter((itf, q) for itf, _, _, q, _ in datagrams(f))
    for q in [*range(1000, 1100), *range(2000, 2010)]:
        assert on[(f"{NODE}/default/web-1", q)] == 1, (q, sorted(on.items()))
    assert {q for (itf, q) in on if itf == f"{NODE}/default/late-1"} >= set(late[-20:]), \
        sorted(on.items())


def test_a_full_interface_table_begins_a_new_stream(lab, hubs, cli_bin, tmp_path):
    # Pods come and go, each with a new device: a capture that lived long enough would fill its
    # table with the dead and then put new pods' packets on "any". Near full, it begins a new
    # capture stream whose table holds only what still sends; every datagram stays on its pod's
    # interface, and none is lost at the switch. (--test-interfaces-max makes "long" short.)
    # The store is down while the switch happens: the spool then holds batches of both
    # streams, and each goes on its own call.
    n, api, cap, store = make_pod_node(lab, tmp_path, "--test-interfaces-max", "12")
    warm_up(n, cap, 3)
    web = PODS["web-1"][1]
    sent = {}  # pod -> seqs it sent while listed
    for k in range(10):  # 10 pods, one after another, each gone before the next
        if k == 6:
            store.stop()
        if k == 10 - 1:  # churn-8's datagrams, a batch or so after it went, began the new one
            wait_metric(cap, "netreel_capture_streams_total", 2)
        name, ip = f"churn-{k}", f"10.90.1.{10 + k}"
        n.add_pod(name, how="routed", addr=ip)
        api.add("default", name, node=NODE, ips=[ip])
        wait_metric(cap, "netreel_capture_pod_devices", 4)
        wait_filter(cap, ip)
        seqs = list(range(5000 + 100 * k, 5010 + 100 * k))
        send(n.pods[name], ip, web, seqs[:5])
        time.sleep(0.4)  # a batch or two apart
        send(n.pods[name], ip, web, seqs[5:])
        # Gone at once, as a Job's pod that just ended: its last datagrams reach the capture's
        # split a batch time and a ring block later, after it left the set, and are still named
        # after it.
        time.sleep(0.4)
        sent[name] = seqs
        api.delete("default", name)
        n.remove_pod(name)
        wait_metric(cap, "netreel_capture_pod_devices", 3)
    send(n.pods["web-1"], web, PODS["db-0"][1], range(9000, 9010))  # after it all, on web-1's
    time.sleep(1.5)
    assert cap.scrape()["netreel_capture_spool_bytes"] > 0
    store2 = start_store(lab.store_bins, n.node, tmp_path / "data", tmp_path / "store2.stderr",
                         PORT, "--node", NODE)
    lab.stores.append(store2)
    wait_metric(cap, "netreel_capture_spool_bytes", 0)
    m = cap.scrape()
    assert m["netreel_capture_streams_total"] == 2, (m, sh.tail(cap.stderr()))
    assert mval(m, "netreel_capture_batches_total", result="refused") == 0, m
    assert mval(m, "netreel_capture_dropped_total", where="spool") == 0, m
    assert m["netreel_capture_unsplit_packets_total"] == 0, m
    assert cap.lines("a new capture stream: the interface table was nearly full"), cap.stderr()

    _, f = dump(cli_bin, hubs, n, tmp_path, "streams", "--sightings=all")
    assert f"{NODE}/any" not in {i.name for i in f.interfaces}
    on = Counter((itf, q) for itf, _, _, q, _ in datagrams(f))
    for name, seqs in sent.items():
        got = {q for (itf, q) in on if itf == f"{NODE}/default/{name}"}
        # The first datagrams may come before the filter lets the pod's address in.
        assert set(seqs[5:]) <= got, (name, sorted(on.items()))
    for q in range(9000, 9010):
        assert on[(f"{NODE}/default/web-1", q)] == 1, (q, sorted(on.items()))
    # The new stream's first batch (churn-8's first datagrams began it) carries the pod set:
    # selected by pod, churn-8 has every datagram its interface has.
    _, fp = dump(cli_bin, hubs, n, tmp_path, "by-pod", "--sightings=all", "--pod", "^churn-8$")
    picked = {q for itf, _, _, q, _ in datagrams(fp) if itf == f"{NODE}/default/churn-8"}
    assert picked == {q for (itf, q) in on if itf == f"{NODE}/default/churn-8"} and picked, \
        (sorted(picked), sent["churn-8"])

    # The store keeps the two streams apart, each in its directory.
    dirs = {Path(p).parent.name for p in sh.segment_files(tmp_path / "data")}
    assert len(dirs) == 2 and all(d.startswith(f"{NODE}_") for d in dirs), dirs
