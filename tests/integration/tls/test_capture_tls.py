"""netreel-capture --tls: the plaintext of OpenSSL connections, as TCP on interface `tls`
(issue 8, docs/capture-tls.md).

A /usr/bin/python3 `ssl` server in namespace A and a client in namespace B (both use the
system's libssl through SSL_read_ex/SSL_write_ex) exchange known lines in both directions over
TLS 1.2 and TLS 1.3 while the capture runs with --tls in A. The snapshot must hold that
plaintext on interface `tls`, complete and in order, and `tshark -q -z follow,tcp,ascii,N` on
the file must print the exact conversation. Both processes are traced (uprobes attach to the
library file), so the file holds each direction twice: the copies carry the same sequence
numbers, and Follow shows each byte once.

Without the privilege to make uprobes (CAP_SYS_ADMIN removed from the bounding set with
setpriv) the capture must say so in one warning and still record the ordinary packets.

Skipped, with the reason, only where the kernel itself lacks what --tls needs: BTF, uprobes.
"""

import hashlib
import os
import re
import shutil
import socket
import struct
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

import store_helpers as sh

from cli_helpers import cli_bin  # noqa: F401 (fixture)
from hub_helpers import hub_bin, hubs, pcapdump  # noqa: F401 (fixtures)
from capture_helpers import (A_IP, B_IP, CaptureProc, STORE_PORT, UdpReceiver, lab,  # noqa: F401
                             helper_pid, kernel_lacks_tls_support, mval, run, send_udp,
                             udp_seqs, wait_for)

# The server's port, one per test run: the probes trace every OpenSSL user of the machine, so two
# runs at once (same addresses in their own namespaces) would see each other's conversations.
TLS_PORT = 20000 + os.getpid() % 12000  # below the ephemeral range (32768-)
CLIENT_LINES = [b"hello from client 1\nclient line 2\n", b"client bye\n"]
SERVER_LINES = [b"hello from server 1\nserver line 2\n", b"server bye\n"]

# One script for both ends: `server VERSION CERT KEY PORT` / `client VERSION HOST PORT`. Each
# message is read whole (the lengths are known) before the answer goes out, so the conversation
# has one order.
PEER = r'''
import socket, ssl, sys
C = [b"hello from client 1\nclient line 2\n", b"client bye\n"]
S = [b"hello from server 1\nserver line 2\n", b"server bye\n"]
def recv_exact(s, n):
    out = b""
    while len(out) < n:
        d = s.recv(n - len(out))
        if not d:
            raise SystemExit("peer closed early")
        out += d
    return out
if len(sys.argv) > 6 or (sys.argv[1] == "client" and len(sys.argv) > 5):
    # bulk: the client sends N bytes of a known pattern in one sendall, the server answers
    # with their sha256
    n = int(sys.argv[-1])
    C = [bytes((i * 7 + i // 251) & 0xFF for i in range(n))]
    import hashlib
    S = [hashlib.sha256(C[0]).hexdigest().encode()]
ver = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}[sys.argv[2]]
if sys.argv[1] == "server":
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ctx.maximum_version = ver
    ctx.load_cert_chain(sys.argv[3], sys.argv[4])
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("0.0.0.0", int(sys.argv[5])))
    ls.listen(1)
    print("listening", flush=True)
    c, _ = ls.accept()
    s = ctx.wrap_socket(c, server_side=True)
    for mine, theirs in zip(S, C):
        assert recv_exact(s, len(theirs)) == theirs
        s.sendall(mine)
    s.close()
else:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.minimum_version = ctx.maximum_version = ver
    s = ctx.wrap_socket(socket.create_connection((sys.argv[3], int(sys.argv[4]))))
    for mine, theirs in zip(C, S):
        s.sendall(mine)
        assert recv_exact(s, len(theirs)) == theirs
    print(s.version(), flush=True)
    s.close()
'''


SKIP = kernel_lacks_tls_support()
pytestmark = pytest.mark.skipif(SKIP is not None, reason=f"--tls needs it: {SKIP}")


@pytest.fixture(scope="module")
def cert(tmp_path_factory):
    d = tmp_path_factory.mktemp("tls-cert")
    run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", d / "key.pem", "-out", d / "cert.pem", "-days", "2", "-subj",
         "/CN=netreel-test"])
    return d / "cert.pem", d / "key.pem"


def converse(net, version, cert, tmp, bulk=None, env=(), before_client=None, server_wrap=(),
             peer=PEER, client_env=()):
    """Runs the server in A and the client in B; returns the client's stdout (the version).
    With bulk=N the client sends N bytes of bulk_data(N) and the server answers their sha256.
    env: VAR=VALUE strings for both (client_env: for the client only); before_client() runs
    once the server listens; server_wrap: a command the server runs under (its arguments
    follow); peer: the peers' script."""
    script = tmp / "tls_peer.py"
    script.write_text(peer)
    extra = [str(bulk)] if bulk else []
    server = subprocess.Popen(["ip", "netns", "exec", net.a, *server_wrap, "env", *env,
                               "/usr/bin/python3",
                               script, "server", version, cert[0], cert[1], str(TLS_PORT),
                               *extra],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert server.stdout.readline().strip() == "listening", server.stderr.read()
        if before_client:
            before_client()
        client = run(["ip", "netns", "exec", net.b, "env", *env, *client_env, "/usr/bin/python3",
                      script, "client", version, A_IP, str(TLS_PORT), *extra])
        server.wait(20)
        assert server.returncode == 0, server.stderr.read()
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    return client.stdout.strip()


def bulk_data(n):
    return bytes((i * 7 + i // 251) & 0xFF for i in range(n))


def mapped(ip):
    return bytes(10) + b"\xff\xff" + socket.inet_aton(ip)


def tls_segments(snap):
    """The TCP segments on interface tls between the test's two addresses (v4-mapped) and to or
    from its server's port: (src port, dst port, seq, flags, payload, packet). Other processes
    of this machine that use OpenSSL are traced too: their connections are left out."""
    ours = {mapped(A_IP), mapped(B_IP)}
    ids = [i for i, itf in enumerate(snap.interfaces) if itf.name and
           (itf.name == "tls" or itf.name.endswith("/tls"))]
    out = []
    for p in snap.packets:
        if p.ifid not in ids:
            continue
        d = p.data
        assert d[12:14] == b"\x86\xdd", f"not IPv6 on interface tls: {d[:14].hex()}"
        plen = struct.unpack_from("!H", d, 18)[0]
        assert d[20] == 6 and len(d) == 54 + plen, "not one whole TCP segment"
        if d[22:38] not in ours or d[38:54] not in ours:
            continue
        tcp = d[54:]
        sport, dport, seq = struct.unpack_from("!HHI", tcp, 0)
        if TLS_PORT not in (sport, dport):
            continue  # not this run's server
        out.append((sport, dport, seq, tcp[13], tcp[(tcp[12] >> 4) * 4:], p))
    return out


def stream_bytes(segs, sport):
    """What the side with port `sport` sent, rebuilt by sequence number (a copy of a segment,
    from the other traced end, counts once). Fails on a gap."""
    syn = [s for s in segs if s[0] == sport and s[3] & 0x02]
    assert syn, f"no SYN from port {sport}"
    isn = syn[0][2] + 1
    data = {}
    for sp, _, seq, _, payload, _ in segs:
        if sp == sport and payload:
            off = (seq - isn) & 0xFFFFFFFF
            if off in data:
                assert data[off] == payload, f"two different segments at offset {off}"
            data[off] = payload
    out = b""
    for off in sorted(data):
        assert off <= len(out), f"a gap of {off - len(out)} bytes at offset {len(out)}"
        out += data[off][len(out) - off:]
    return out


def conversation(snap, stderr=""):
    """What the client and the server sent, each rebuilt by sequence number from the
    snapshot's interface tls."""
    segs = tls_segments(snap)
    assert segs, f"nothing on interface tls\n{stderr}"
    client_port = next(s[0] for s in segs if s[1] == TLS_PORT)
    return stream_bytes(segs, client_port), stream_bytes(segs, TLS_PORT)


THE_CONVERSATION = (b"".join(CLIENT_LINES), b"".join(SERVER_LINES))


def tshark(*args):
    """tshark, with the run's server port decoded as TLS (Wireshark knows 443 and 8443 as TLS
    ports, not the one this run picked)."""
    args = ("-d", f"tcp.port=={TLS_PORT},tls", *args)
    r = subprocess.run(["tshark", *map(str, args)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, f"tshark {' '.join(map(str, args))}: {r.stderr}"
    return r.stdout


def tls_streams(path):
    """tcp.stream numbers of the packets on interface `tls` (node-a/tls) to or from A."""
    out = tshark("-r", path, "-Y", f'frame.interface_name matches "(^|/)tls$" && '
                 f'ipv6.addr == ::ffff:{A_IP}', "-T", "fields", "-e", "tcp.stream")
    return sorted({int(x) for x in out.split()})


def follow_text(path, stream):
    """`tshark -q -z follow,tcp,ascii,N` -> (its output, [(direction, bytes)...]) where direction
    0 is "Node 0" (the client: it sent the first packet, the synthetic SYN)."""
    out = tshark("-r", path, "-q", "-z", f"follow,tcp,ascii,{stream}")
    lines = out.splitlines()
    i = next((k + 1 for k, ln in enumerate(lines) if ln.startswith("Node 1:")), len(lines))
    chunks = []
    # Each chunk: its length on a line (tab-indented for node 1), then its text.
    while i < len(lines) and not lines[i].startswith("====="):
        m = re.match(r"^(\t?)(\d+)$", lines[i])
        i += 1
        if not m:
            continue
        n, text = int(m.group(2)), b""
        while len(text) < n and i < len(lines):
            text += lines[i].encode() + b"\n"
            i += 1
        chunks.append((1 if m.group(1) else 0, text[:n]))
    return out, chunks


def merged(chunks):
    """Consecutive chunks of one direction joined: segment boundaries are not the content."""
    out = []
    for d, t in chunks:
        if out and out[-1][0] == d:
            out[-1] = (d, out[-1][1] + t)
        else:
            out.append((d, t))
    return out


def follows_as_the_conversation(path):
    """Whether a stream on interface tls follows as the test's conversation; the outputs."""
    want = ([(0, CLIENT_LINES[0]), (1, SERVER_LINES[0]), (0, CLIENT_LINES[1]),
             (1, SERVER_LINES[1])])
    convs = []
    for s in tls_streams(path):
        out, chunks = follow_text(path, s)
        convs.append(out)
        if merged(chunks) == want:
            return True, convs
    return False, convs


@pytest.mark.parametrize("version", ["1.2", "1.3"])
def test_plaintext_on_interface_tls_follows_in_order(lab, cert, tmp_path, version):
    net = lab.netns()
    store = lab.store(net)
    cap = lab.capture(net, "--tls")
    assert not cap.lines("tls: decrypted TLS is OFF; recording everything else as before"), \
        cap.stderr()
    assert "tls" in cap.started.get("interfaces", "").split(","), cap.started
    got = converse(net, version, cert, tmp_path)
    assert got == f"TLSv{version}", got
    time.sleep(1.0)  # the ring and a batch-time of 200 ms
    cap.stop()
    _, snap, path = lab.snapshot(net, store)

    # The bytes themselves, from the file: each direction complete and in order ...
    assert conversation(snap, cap.stderr()) == THE_CONVERSATION
    # ... and the two interleaved as they were said, as Wireshark's Follow shows them.
    ok, convs = follows_as_the_conversation(path)
    assert ok, "no stream on interface tls follows as the conversation:\n" + "\n".join(convs)


def test_bulk_write_is_complete_and_in_order(lab, cert, tmp_path):
    # One 300 KB SSL_write_ex: the probe sends it in 16 KiB chunks (19 records), the reader's
    # SSL_read_ex calls see it in TLS records; the file must hold every byte once, in order.
    n = 300_000
    net = lab.netns()
    store = lab.store(net)
    cap = lab.capture(net, "--tls")
    converse(net, "1.3", cert, tmp_path, bulk=n)
    time.sleep(1.0)
    m = cap.scrape()
    assert mval(m, "netreel_capture_tls_libraries") >= 1
    # both ends traced: 19 chunks written, at least as many read, plus two handshakes
    assert mval(m, "netreel_capture_tls_packets_total") >= 2 * (19 + 3), m
    assert mval(m, "netreel_capture_tls_lost_total", what="malformed") == 0
    cap.stop()
    _, snap, path = lab.snapshot(net, store)
    segs = tls_segments(snap)
    assert segs, f"nothing on interface tls\n{cap.stderr()}"
    assert all(len(s[4]) <= 16384 for s in segs), max(len(s[4]) for s in segs)
    client_port = next(s[0] for s in segs if s[1] == TLS_PORT)
    sent = stream_bytes(segs, client_port)
    assert len(sent) == n and sent == bulk_data(n), (len(sent), n)
    answer = stream_bytes(segs, TLS_PORT)
    assert answer == hashlib.sha256(bulk_data(n)).hexdigest().encode(), answer
    # The SYN names the process.
    comments = tshark("-r", path, "-Y", "frame.comment", "-T", "fields", "-e", "frame.comment")
    assert re.search(r"netreel tls: pid \d+ python3, SSL\* 0x[0-9a-f]+ \(client side\)",
                     comments), comments


def test_without_the_privilege_one_warning_and_the_rest_is_recorded(lab, tmp_path):
    # Root without CAP_SYS_ADMIN in its bounding set: the program loads (CAP_BPF, CAP_PERFMON)
    # but the kernel refuses to make uprobes. The capture must say so once and record the rest.
    net = lab.netns()
    store = lab.store(net)
    argv = ["--bounding-set=-sys_admin", "--", lab.capture_bin, "-i", net.iface, "--store",
            f"127.0.0.1:{STORE_PORT}", "--metrics-listen", "off", "--node", "node-a", "--tls"]
    cap = CaptureProc("setpriv", argv, tmp_path / "capture.stderr", ns=net.a)
    lab.captures.append(cap)
    cap.wait_capturing()
    off = cap.lines("tls: decrypted TLS is OFF; recording everything else as before")
    assert len(off) == 1, cap.stderr()
    assert "CAP_SYS_ADMIN" in off[0], off[0]
    warnings = [ln for ln in cap.stderr().splitlines() if "level=warn" in ln and "tls" in ln]
    assert warnings == off, warnings
    assert cap.started.get("interfaces") == net.iface, cap.started

    rx = UdpReceiver(lab, net.a)
    send_udp(lab, net.b, range(200), 2000)
    rx.stop()
    time.sleep(0.5)
    cap.stop()
    _, snap, _ = lab.snapshot(net, store)
    assert [i.name for i in snap.interfaces] == [f"node-a/{net.iface}"], snap.interfaces
    assert udp_seqs(snap.packets) == list(range(200))


def own_libssl(tmp):
    """A copy of the system's libssl (another file: another inode) in tmp/lib, for
    LD_LIBRARY_PATH: a library no process mapped when the capture started. tmp must be
    searchable by the capture's --user for its helper to reach the copy (see public_tmp)."""
    import ssl
    system = next(ln.split()[-1] for ln in Path("/proc/self/maps").read_text().splitlines()
                  if re.search(r"/libssl\.so[.0-9]*$", ln))
    assert ssl.OPENSSL_VERSION
    d = tmp / "lib"
    d.mkdir()
    shutil.copy(system, d / Path(system).name)
    return d, d / Path(system).name


@pytest.fixture
def public_tmp():
    """A directory every user may search (pytest's tmp_path is root's alone): the helper runs
    as the capture's --user and names a library by its path, as a container's own libssl under
    /usr/lib is, world-readable."""
    d = Path(tempfile.mkdtemp(prefix="nr-tls-lib-"))
    d.chmod(0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def test_as_root_the_rescan_attaches_a_library_that_appears_later(lab, cert, tmp_path):
    net = lab.netns()
    store = lab.store(net)
    cap = lab.capture(net, "--tls", "--user", "root")
    libdir, lib = own_libssl(tmp_path)

    def attached():
        assert wait_for(lambda: any(str(lib) in ln for ln in cap.lines("tls: attached"))), \
            f"the rescan did not attach {lib}\n{cap.stderr()}"

    converse(net, "1.3", cert, tmp_path, env=[f"LD_LIBRARY_PATH={libdir}"],
             before_client=attached)
    time.sleep(1.0)
    cap.stop()
    _, snap, path = lab.snapshot(net, store)
    assert conversation(snap, cap.stderr()) == THE_CONVERSATION


HELPER_EXITED = "tls: the helper exited; libraries and pods that appear now are not traced"


def test_after_the_privilege_drop_the_helper_attaches_a_library_that_appears_later(
        lab, cert, tmp_path, public_tmp):
    # The capture runs as nobody with no capabilities; its helper keeps the two it needs to
    # attach a libssl file first mapped after the start: that conversation is recorded, and its
    # secrets come too (the copy has the calibrated file's build-id).
    net = lab.netns()
    store = lab.store(net)
    keylog = tmp_path / "keys.log"
    cap = lab.capture(net, "--tls", "--tls-keylog-file", keylog)
    assert cap.started.get("uid") != "0", cap.started
    assert not cap.lines("tls: libssl files first mapped after the start are not traced"), \
        cap.stderr()
    libdir, lib = own_libssl(public_tmp)

    def attached():
        assert wait_for(lambda: any(str(lib) in ln and "secrets=yes" in ln
                                    for ln in cap.lines("tls: attached"))), \
            f"the helper did not attach {lib}\n{cap.stderr()}"

    converse(net, "1.3", cert, tmp_path, env=[f"LD_LIBRARY_PATH={libdir}"],
             before_client=attached)
    time.sleep(1.0)
    assert mval(cap.scrape(), "netreel_capture_tls_libraries") >= 2
    cap.stop()
    _, snap, _ = lab.snapshot(net, store)
    assert conversation(snap, cap.stderr()) == THE_CONVERSATION
    labels = [ln.split()[0] for ln in keylog.read_text().splitlines()]
    for want in ("CLIENT_HANDSHAKE_TRAFFIC_SECRET", "CLIENT_TRAFFIC_SECRET_0", "EXPORTER_SECRET"):
        assert want in labels, f"no {want} for the copy's connection: {labels}"


def test_when_the_helper_dies_attached_libraries_stay_traced(lab, cert, tmp_path, public_tmp):
    # kill -9 of the helper: one error, helper_up 0, the capture goes on, and libraries attached
    # before -- by the capture (the system's) and by the helper (a copy, whose probes the
    # capture holds) -- are still recorded.
    net = lab.netns()
    store = lab.store(net)
    cap = lab.capture(net, "--tls")
    libdir, lib = own_libssl(public_tmp)
    holder = subprocess.Popen(["env", f"LD_LIBRARY_PATH={libdir}", "/usr/bin/python3", "-c",
                               "import ssl, time; time.sleep(60)"])
    try:
        assert wait_for(lambda: any(str(lib) in ln for ln in cap.lines("tls: attached"))), \
            cap.stderr()
        # The helper logs each attach as it scans and hands the links over when its scan ends:
        # the capture holds the copy's probes once its status counts two libraries.
        assert wait_for(lambda: mval(cap.scrape(), "netreel_capture_tls_libraries") >= 2), \
            cap.stderr()
        hp = helper_pid(cap)
        assert hp, "no helper process"
        assert mval(cap.scrape(), "netreel_capture_tls_helper_up") == 1
        os.kill(hp, 9)
        assert wait_for(lambda: cap.lines(HELPER_EXITED)), cap.stderr()
        assert wait_for(lambda: mval(cap.scrape(), "netreel_capture_tls_helper_up") == 0)
        converse(net, "1.3", cert, tmp_path)  # the system's libssl
        converse(net, "1.2", cert, tmp_path, env=[f"LD_LIBRARY_PATH={libdir}"])  # the copy
    finally:
        holder.kill()
        holder.wait()
    time.sleep(1.0)
    assert cap.alive()
    assert len(cap.lines(HELPER_EXITED)) == 1, cap.stderr()
    assert not Path(f"/proc/{hp}").exists(), "the helper was not reaped"
    cap.stop()
    _, snap, _ = lab.snapshot(net, store)
    segs = tls_segments(snap)
    syns = [s for s in segs if s[3] & 0x02 and not s[3] & 0x10]
    # two conversations, each traced at both ends
    assert len(syns) == 4, f"{len(syns)} SYNs on interface tls\n{cap.stderr()}"


def test_through_the_hub_the_tls_interface_is_kept(lab, hubs, cli_bin, cert, tmp_path):
    # What users get: `netreel pcapdump` through the hub. The hub must pass interface tls (its
    # link type, its packets, their comments) into the merged file as the store served it.
    net = lab.netns()
    lab.store(net)
    cap = lab.capture(net, "--tls")
    converse(net, "1.2", cert, tmp_path)
    time.sleep(1.0)
    cap.stop()
    hub = hubs(f"127.0.0.1:{STORE_PORT}", ns=net.a)
    out = tmp_path / "hub.pcapng"
    pcapdump(cli_bin, hub, "-o", out, ns=net.a, expect=0)
    ok, convs = follows_as_the_conversation(out)
    assert ok, "through the hub, no tls stream follows as the conversation:\n" + "\n".join(convs)
    comments = tshark("-r", out, "-Y", "frame.comment", "-T", "fields", "-e", "frame.comment")
    assert "netreel tls: pid" in comments, comments
    # Issue 8's whole promise in one file: the real encrypted packets decrypt too, with only
    # the Decryption Secrets Blocks the hub wrote ahead of them (no key log given to tshark).
    streams = tshark("-r", out, "-Y", f"ip.addr == {A_IP} && tcp.port == {TLS_PORT}",
                     "-T", "fields", "-e", "tcp.stream")
    (real,) = sorted({int(x) for x in streams.split()})
    plain = tshark("-r", out, "-q", "-z", f"follow,tls,ascii,{real}")
    for text in CLIENT_LINES + SERVER_LINES:
        for line in text.decode().splitlines():
            assert line in plain, f"{line!r} not decrypted with the file's own secrets:\n{plain}"


def test_beside_any_the_tls_interface_is_linux_sll2(lab, hubs, cli_bin, cert, tmp_path):
    # A capture recording "any" writes LINUX_SLL2 for every device; its `tls` interface must
    # too: libpcap-based readers (tcpdump, Zeek) refuse a file whose interfaces differ in link
    # type, and --format pcap can hold only one.
    net = lab.netns()
    lab.store(net)
    cap = lab.capture(net, "--tls", iface="any")
    converse(net, "1.2", cert, tmp_path)
    time.sleep(1.0)
    cap.stop()
    hub = hubs(f"127.0.0.1:{STORE_PORT}", ns=net.a)
    out = tmp_path / "hub.pcapng"
    pcapdump(cli_bin, hub, "-o", out, ns=net.a, expect=0)
    f = sh.read_pcapng(out)
    assert {i.link_type for i in f.interfaces} == {276}, f.interfaces
    assert "node-a/tls" in [i.name for i in f.interfaces], f.interfaces
    ok, convs = follows_as_the_conversation(out)
    assert ok, "beside any, no tls stream follows as the conversation:\n" + "\n".join(convs)
    # One link type: the same window as classic pcap, which tcpdump reads.
    pcap = tmp_path / "hub.pcap"
    pcapdump(cli_bin, hub, "-o", pcap, "--format", "pcap", ns=net.a, expect=0)
    r = subprocess.run(["tcpdump", "-nr", str(pcap)], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0 and "LINUX_SLL2" in r.stderr, r.stderr


def test_a_library_of_another_mount_namespace_is_reached_through_proc_root(lab, cert, tmp_path):
    # A container's libssl is a file of its own mount namespace, at a path that names another
    # file (or none) in the capture's. The server runs in a private mount namespace where a
    # copy of libssl is bind-mounted over the system's path: the capture (root, rescanning)
    # must attach that copy through /proc/PID/root, and the server's side be recorded.
    net = lab.netns()
    store = lab.store(net)
    cap = lab.capture(net, "--tls", "--user", "root")
    _, copy = own_libssl(tmp_path)
    system = next(ln.split()[-1] for ln in Path("/proc/self/maps").read_text().splitlines()
                  if re.search(r"/libssl\.so[.0-9]*$", ln))
    wrap = ["unshare", "--mount", "--propagation", "private", "sh", "-c",
            f'mount --bind "{copy}" "{system}" && exec "$0" "$@"']
    before = len(cap.lines("tls: attached"))

    def attached():
        assert wait_for(lambda: any(re.search(rf"library=/proc/\d+/root{re.escape(system)} ", ln)
                                    for ln in cap.lines("tls: attached")[before:])), \
            f"the server's own libssl was not attached through /proc/PID/root\n{cap.stderr()}"

    converse(net, "1.3", cert, tmp_path, before_client=attached, server_wrap=wrap)
    time.sleep(1.0)
    cap.stop()
    _, snap, path = lab.snapshot(net, store)
    syns = [p for p in tls_segments(snap) if p[3] & 0x02 and not p[3] & 0x10]
    assert len(syns) == 2, f"want a SYN from each traced end, got {len(syns)}"
    sides = tshark("-r", path, "-Y", f"frame.comment && ipv6.addr == ::ffff:{A_IP}", "-T",
                   "fields", "-e", "frame.comment")
    assert "(server side)" in sides and "(client side)" in sides, sides
    assert conversation(snap)[0] == THE_CONVERSATION[0]
