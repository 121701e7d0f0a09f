"""netreel-hub and `netreel pcapdump` over three "nodes" (issue 5, "What must hold", first two
points; docs/design.md §5, §7).

Three network namespaces, each a node with its own netreel-capture and netreel-store
(hub_helpers.Node: the capture records the node's veth, the store listens on a management link
the root namespace reaches); the hub runs in the root namespace with --stores naming all three.
Node 1's capture targets pods from the fixture Kubernetes API (--kubeconfig), so its packets
come with pod names. All three carry traffic at the same time: UDP datagrams with sequence
numbers (every 97th one fragmented) and a TCP transfer.

  * `netreel pcapdump --time=1m` gives one file holding every packet of the three stores'
    windows for the very window the hub took (asked of each store afterwards with
    store-snapshot), timestamps never going backwards, an interface per node named
    node/iface, node 1's pod names in the NRB, an ISB per interface, and tshark and capinfos
    read it without a warning;
  * --since/--until are packet-precise: a packet exactly at either bound is in, 1 ns outside
    it is out;
  * --filter 'udp port N' returns those packets and no others (as tcpdump -r with the same
    filter picks them from the whole file);
  * --format pcap is the nanosecond classic format that tcpdump -r reads, with the same
    packets.

The cluster is built once for the module; every test takes its own snapshots of it.
"""

import subprocess
import threading
import time
from collections import Counter
from types import SimpleNamespace

import pytest

import kube_api
import store_helpers as sh
from hub_helpers import (NS, HubProc, Node, by_interface, closing_line, hub_bin,  # noqa: F401
                         non_decreasing, only_file, pcapdump, rfc3339, shb_window, store_window,
                         wireshark_ok)
from cli_helpers import cli_bin  # noqa: F401 (fixture)
from capture_helpers import (A_IP, B_IP, SCALE, TCP_PORT, UDP_PORT, Lab, UdpReceiver,
                             ipv4, read_pcap, send_udp, sweep_stale_namespaces, tcp_stream,
                             tcp_transfer, udp_datagrams, udp_sizes, wait_filter,
                             write_kubeconfig)
from capture_helpers import names_of, wait_drained

N_UDP = int(1200 * SCALE)
TCP_BYTES = int((4 << 20) * SCALE)
PODS = {B_IP: ["default/web-1"], A_IP: ["shop/api-1"]}  # node-1's pods


def seq_base(k):
    return k * 1_000_000


@pytest.fixture(scope="module")
def cluster(build_dir, store_bins, hub_bin, cli_bin, tmp_path_factory):
    sweep_stale_namespaces()
    tmp = tmp_path_factory.mktemp("hub-cluster")
    lab = Lab(build_dir, store_bins, tmp)
    hub = None
    problems = []
    try:
        nodes = [Node(lab, f"node-{k}") for k in (1, 2, 3)]
        for n in nodes:
            n.start_store()
        # Node 1 records its pods' addresses, named by the fixture API.
        api = lab.kube_api(nodes[0].net, kube_api.make_pki(tmp / "kube-pki"))
        api.add("default", "web-1", node="node-1", ips=[B_IP])
        api.add("shop", "api-1", node="node-1", ips=[A_IP])
        api.add("shop", "api-far", node="node-2", ips=["10.77.0.9"])  # not node-1's
        caps = [nodes[0].start_capture("--kubeconfig", write_kubeconfig(tmp / "kubeconfig", api),
                                       wait=False),
                nodes[1].start_capture(wait=False), nodes[2].start_capture(wait=False)]
        for c in caps:
            c.wait_capturing()
        wait_filter(caps[0], [A_IP, B_IP])
        hub = HubProc(hub_bin, ",".join(n.store_addr for n in nodes), tmp / "hub.stderr")
        hub.wait_serving()

        # Traffic on the three nodes at once.
        results, errors = {}, []

        def traffic(k, node):
            try:
                rx = UdpReceiver(lab, node.net.a)
                sent = send_udp(lab, node.net.b, range(seq_base(k), seq_base(k) + N_UDP),
                                pps=3000, sizes=udp_sizes(N_UDP))
                data, got = tcp_transfer(lab, node.net, TCP_BYTES, mbit=200)
                results[k] = (sent, rx.stop(), data, got)
            except BaseException as e:  # noqa: B902 - reported below
                errors.append(e)

        ths = [threading.Thread(target=traffic, args=(k, n)) for k, n in enumerate(nodes, 1)]
        for t in ths:
            t.start()
        for t in ths:
            t.join(120)
        assert not errors, f"traffic failed: {errors!r}"
        for k, (sent, received, data, got) in results.items():
            assert sent == N_UDP and sorted(received) == list(range(seq_base(k),
                                                                    seq_base(k) + N_UDP)), \
                f"node-{k}: the traffic itself: {sent} sent, {len(set(received))} received"
            assert got["len"] == TCP_BYTES, f"node-{k}: TCP received {got['len']} bytes"
        time.sleep(0.5)  # the rings' block timeout and the batch time
        for c in caps:
            wait_drained(c)

        # The snapshot, as a user takes it.
        out = tmp / "out"
        out.mkdir()
        res = pcapdump(cli_bin, hub, "--time=1m", "--dest", out, expect=0)
        path = only_file(out)
        yield SimpleNamespace(lab=lab, nodes=nodes, caps=caps, hub=hub, tmp=tmp, res=res,
                              path=path, file=sh.read_pcapng(path),
                              tcp_data={k: r[2] for k, r in results.items()})
    finally:
        if hub is not None:
            problems += hub.stop()
        problems += lab.close()
    if problems:
        pytest.fail("\n\n".join(problems), pytrace=False)


def iface_of(f, p):
    return f.interfaces[p.ifid].name


def test_one_file_from_three_nodes(cluster, store_bins):
    c = cluster
    f = wireshark_ok(c.path)  # tshark -r and capinfos without a warning, our strict reader
    names = [f"node-{k}/{n.net.iface}" for k, n in enumerate(c.nodes, 1)]
    assert [i.name for i in f.interfaces] == names, \
        f"one interface per node named node/iface: {[i.name for i in f.interfaces]}"
    assert all(i.link_type == 1 and i.tsresol == 9 for i in f.interfaces), f.interfaces
    assert not non_decreasing(f.packets), non_decreasing(f.packets)

    # The window the hub took, and each store's packets of exactly that window.
    since, until, stores_text = shb_window(f)
    assert until - since == 60 * NS, (since, until)
    for n in c.nodes:
        assert f"{n.name} ({n.store_addr})" in stores_text, f.shb_comment
    assert "missing" not in stores_text, f.shb_comment
    mine = by_interface(f)
    total = 0
    for k, n in enumerate(c.nodes, 1):
        obj, theirs = store_window(store_bins, n.store_addr, since, until,
                                   c.tmp / f"store-{k}.pcapng")
        total += obj["packets"]
        assert len(theirs.packets) == obj["packets"] > 0
        got = mine[names[k - 1]]
        assert got == theirs.keys(), (
            f"{names[k - 1]}: the file holds {len(got)} packets, store {n.store_addr} has "
            f"{len(theirs.packets)} in the same window; "
            f"{len(set(theirs.keys()) - set(got))} of the store's are not in the file")
    assert len(f.packets) == total, f"{len(f.packets)} packets in the file, the stores {total}"
    pk, nbytes, nodes = closing_line(c.res)
    assert (pk, nbytes) == (total, c.path.stat().st_size), c.res.where()
    assert nodes == "3 nodes (node-1, node-2, node-3)", c.res.where()

    # The traffic of each node is in the file under its node's interface: every datagram once,
    # the TCP stream whole.
    for k, name in enumerate(names, 1):
        pk = [p for p in f.packets if iface_of(f, p) == name]
        seqs = Counter(seq for _, seq, _ in udp_datagrams(pk))
        assert sorted(seqs) == list(range(seq_base(k), seq_base(k) + N_UDP)) and \
            max(seqs.values()) == 1, \
            f"{name}: {len(seqs)} of {N_UDP} datagrams, the most often {seqs.most_common(1)}"
        stream, _ = tcp_stream(pk, B_IP, TCP_PORT)
        assert stream == c.tcp_data[k], \
            f"{name}: the TCP stream rebuilt from the file is {len(stream)} of {TCP_BYTES} bytes"

    # Pod names from node-1's API, as an NRB that tshark uses.
    assert names_of(f) == PODS, f.names
    r = subprocess.run(["tshark", "-r", str(c.path), "-N", "n", "-T", "fields", "-e",
                        "ip.src_host", "-e", "frame.interface_name"], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    rows = Counter(tuple(ln.split("\t")) for ln in r.stdout.splitlines())
    assert rows[("default/web-1", names[0])] > N_UDP, rows

    # Statistics: one ISB per interface, after the packets.
    assert sorted(f.isbs) == [0, 1, 2], f"ISBs for interfaces {f.isbs}"
    assert f.blocks[-3:] == ["ISB"] * 3, f.blocks[-5:]


def unique_index(pkts, start, not_ifid=None):
    """The first packet at or after start whose timestamp no other packet has (and not on
    interface not_ifid)."""
    counts = Counter(p.ts_ns for p in pkts)
    for i in range(start, len(pkts)):
        if counts[pkts[i].ts_ns] == 1 and pkts[i].ifid != not_ifid:
            return i
    raise AssertionError(f"no packet with a timestamp of its own after {start}")


def named(f):
    return sorted((iface_of(f, p), p.key()) for p in f.packets)


def test_since_until_are_packet_precise(cluster, cli_bin, tmp_path):
    c = cluster
    pk = c.file.packets
    i = unique_index(pk, len(pk) // 4)
    j = unique_index(pk, 3 * len(pk) // 4, not_ifid=pk[i].ifid)  # the bounds on two nodes
    lo, hi = pk[i].ts_ns, pk[j].ts_ns

    def window(since, until):
        out = tmp_path / f"w-{since}-{until}.pcapng"
        r = pcapdump(cli_bin, c.hub, "--since", rfc3339(since), "--until", rfc3339(until),
                     "-o", out, "--force", expect=0)
        f = wireshark_ok(out)
        assert not non_decreasing(f.packets), non_decreasing(f.packets)
        assert shb_window(f)[:2] == (since, until), f.shb_comment
        assert closing_line(r)[0] == len(f.packets), r.where()
        return f

    def want(since, until):
        return sorted((iface_of(c.file, p), p.key()) for p in pk if since <= p.ts_ns <= until)

    cases = [("exactly on two packets", lo, hi),
             ("1 ns inside both", lo + 1, hi - 1),
             ("1 ns outside both", lo - 1, hi + 1),
             ("exactly one packet", lo, lo)]
    failures = []
    for what, since, until in cases:
        got = named(window(since, until))
        exp = want(since, until)
        if got != exp:
            failures.append(f"{what} [{since}, {until}]: {len(got)} packets, want {len(exp)}")
    assert not failures, "\n".join(failures)
    # The bounds themselves: in when exact, out 1 ns inside.
    exact = named(window(lo, hi))
    inner = named(window(lo + 1, hi - 1))
    for p in (pk[i], pk[j]):
        key = (iface_of(c.file, p), p.key())
        assert key in exact and key not in inner, f"packet at {p.ts_ns}"
    assert len(exact) == len(inner) + 2


def test_filter_udp_port(cluster, cli_bin, tmp_path):
    c = cluster
    since, until, _ = shb_window(c.file)
    out = tmp_path / "udp.pcapng"
    bpf = f"udp port {UDP_PORT}"
    r = pcapdump(cli_bin, c.hub, "--since", rfc3339(since), "--until", rfc3339(until),
                 "--filter", bpf, "-o", out, expect=0)
    f = wireshark_ok(out)
    assert [i.name for i in f.interfaces] == [i.name for i in c.file.interfaces]
    for p in f.packets:
        ip = ipv4(p.data)
        assert ip and ip[2] == 17 and ip[3] == 0, f"not a UDP packet: {p.ts_ns}"
        assert UDP_PORT in (int.from_bytes(ip[4][0:2], "big"), int.from_bytes(ip[4][2:4], "big"))
    # Exactly what tcpdump's own reading of the filter picks from the whole file.
    assert [p.ts_ns for p in f.packets] == sh.tcpdump_timestamps(c.path, bpf)
    assert len(f.packets) == 3 * N_UDP == closing_line(r)[0], \
        f"{len(f.packets)} packets, want the {3 * N_UDP} datagrams (first fragments)"
    assert len(c.file.packets) > len(f.packets)  # the filter had something to leave out


def test_format_pcap_opens_in_tcpdump(cluster, cli_bin, tmp_path):
    c = cluster
    since, until, _ = shb_window(c.file)
    out = tmp_path / "out.pcap"
    r = pcapdump(cli_bin, c.hub, "--since", rfc3339(since), "--until", rfc3339(until),
                 "--format", "pcap", "-o", out, expect=0)
    assert out.read_bytes()[:4] == bytes.fromhex("4d3cb2a1"), "not the nanosecond pcap magic"
    t = subprocess.run(["tcpdump", "-n", "-r", str(out)], capture_output=True, text=True,
                       timeout=120)
    assert t.returncode == 0, t.stderr
    assert len(t.stdout.splitlines()) == len(c.file.packets), t.stderr
    link, pk = read_pcap(out)
    assert link == 1
    assert [(p.ts_ns, p.origlen, p.data) for p in pk] == \
        [(p.ts_ns, p.origlen, p.data) for p in c.file.packets]
    assert closing_line(r)[0] == len(pk), r.where()
