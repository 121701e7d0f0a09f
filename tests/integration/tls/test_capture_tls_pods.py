"""netreel-capture --tls with pod targeting (issue 8: "uprobes ... of the processes of targeted
pods"; docs/capture-tls.md, "Which processes"): the probes trace only processes whose network
namespace is a targeted pod's, and follow the pod set as the Kubernetes API changes it.

Two "pods" are two network namespaces, each with its own address on a dummy interface; in each,
a python `ssl` server and client talk over that address (the PEER of test_capture_tls). The
fixture Kubernetes API (kube_api.py) lists the pods the capture targets. Both conversations run
at the same time; only the targeted pod's plaintext may appear on interface `tls`.
"""

import os
import socket
import subprocess
import threading
import time

import pytest

import kube_api
from capture_helpers import lab, mval, run, write_kubeconfig  # noqa: F401 (fixture)
from test_capture_tls import (CLIENT_LINES, PEER, SERVER_LINES, SKIP, TLS_PORT, cert,  # noqa: F401
                              wait_for)

pytestmark = pytest.mark.skipif(SKIP is not None, reason=f"--tls needs it: {SKIP}")

POD_A, POD_B = "10.78.0.1", "10.78.0.2"


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return kube_api.make_pki(tmp_path_factory.mktemp("kube-pki"))


@pytest.fixture
def pods():
    """Two network namespaces, "pods" A and B, with POD_A and POD_B on the two ends of a veth
    pair (a dummy interface would do, where the kernel has the module), each with a process
    that sleeps in it: the pod's sandbox ("pause") container, through which the capture finds a
    pod's namespace before its first TLS process starts."""
    names = {ip: f"nrtlspod{os.getpid()}{c}" for ip, c in ((POD_A, "a"), (POD_B, "b"))}
    a, b = names[POD_A], names[POD_B]
    pause = []
    try:
        for ns in (a, b):
            run(["ip", "netns", "add", ns])
            run(["ip", "-n", ns, "link", "set", "lo", "up"])
        run(["ip", "-n", a, "link", "add", "pod0", "type", "veth", "peer", "name", "pod0",
             "netns", b])
        for ip, ns in names.items():
            run(["ip", "-n", ns, "addr", "add", f"{ip}/32", "dev", "pod0"])
            run(["ip", "-n", ns, "link", "set", "pod0", "up"])
            pause.append(subprocess.Popen(["ip", "netns", "exec", ns, "sleep", "120"]))
        yield names
    finally:
        for p in pause:
            p.kill()
            p.wait()
        for ns in names.values():
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def converse_in(ns, ip, version, cert, tmp, errors):
    """Server and client of PEER in namespace ns, over address ip (appends failures)."""
    script = tmp / f"peer-{ip}.py"
    script.write_text(PEER)
    try:
        server = subprocess.Popen(["ip", "netns", "exec", ns, "/usr/bin/python3", script,
                                   "server", version, cert[0], cert[1], str(TLS_PORT)],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert server.stdout.readline().strip() == "listening", server.stderr.read()
        r = subprocess.run(["ip", "netns", "exec", ns, "/usr/bin/python3", script, "client",
                            version, ip, str(TLS_PORT)], capture_output=True, text=True,
                           timeout=30)
        assert r.returncode == 0, r.stderr
        server.wait(20)
        assert server.returncode == 0, server.stderr.read()
    except BaseException as e:  # noqa: B902 - reported by the caller
        errors.append(e)


def both_at_once(pods, cert, tmp):
    errors, threads = [], []
    for ip, ns in pods.items():
        t = threading.Thread(target=converse_in, args=(ns, ip, "1.3", cert, tmp, errors))
        t.start()
        threads.append(t)
    for t in threads:
        t.join(60)
    assert not errors, errors


def plaintext_by_address(snap, packets):
    """{IPv4 address of a synthetic stream on interface tls: bytes of its payloads} of packets
    (of snap)."""
    ids = [i for i, itf in enumerate(snap.interfaces) if itf.name and
           (itf.name == "tls" or itf.name.endswith("/tls"))]
    out = {}
    for p in packets:
        d = p.data
        if p.ifid not in ids or d[12:14] != b"\x86\xdd" or d[22:34] != bytes(10) + b"\xff\xff":
            continue
        src = socket.inet_ntoa(d[34:38])
        tcp = d[54:]
        out[src] = out.get(src, b"") + tcp[(tcp[12] >> 4) * 4:]
    return out


def test_only_the_targeted_pods_processes_are_traced(lab, pki, pods, cert, tmp_path):
    net = lab.netns()
    api = lab.kube_api(net, pki)
    api.add("default", "pod-a", ips=[POD_A])
    api.add("default", "pod-b", node="node-b", ips=[POD_B])  # another node's: not targeted
    store = lab.store(net)
    cap = lab.capture(net, "--kubeconfig", write_kubeconfig(lab.tmp / "kubeconfig", api), "--tls")

    def namespaces(n):
        return wait_for(lambda: ("netreel_capture_tls_pod_namespaces", frozenset()) in
                        (ms := cap.scrape()) and
                        mval(ms, "netreel_capture_tls_pod_namespaces") == n, 10)

    assert namespaces(1), cap.stderr()
    both_at_once(pods, cert, tmp_path)
    time.sleep(1.0)
    first = time.time_ns()
    # The API changes the set: B is targeted as well.
    api.add("default", "pod-b", ips=[POD_B])
    assert namespaces(2), cap.stderr()
    ms = cap.scrape()
    assert mval(ms, "netreel_capture_tls_helper_up") == 1
    both_at_once(pods, cert, tmp_path)
    time.sleep(1.0)
    cap.stop()
    _, snap, _ = lab.snapshot(net, store)

    # Before the change (split by time): A's conversation, nothing of B's; after it: both.
    early = plaintext_by_address(snap, [p for p in snap.packets if p.ts_ns < first])
    late = plaintext_by_address(snap, [p for p in snap.packets if p.ts_ns >= first])
    assert POD_B not in early, f"pod B (not targeted) was traced: {early.keys()}"
    assert POD_A in early and all(line in early[POD_A] for line in CLIENT_LINES + SERVER_LINES), \
        f"pod A's conversation is missing: {early}"
    assert POD_B in late and all(line in late[POD_B] for line in CLIENT_LINES + SERVER_LINES), \
        f"pod B's conversation after it was targeted is missing: {late}"
    assert POD_A in late, f"pod A's second conversation is missing: {late.keys()}"
