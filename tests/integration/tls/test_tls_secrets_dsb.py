"""TLS secrets in the output (issue 8, slice 2b): key log lines a capture sends with its batches
travel through the store and the hub into the file as Decryption Secrets Blocks ahead of the
packets, so tshark decrypts the real encrypted packets with nothing but the file.

A /usr/bin/python3 `ssl` server and client on loopback exchange known plaintext over TLS 1.2
and 1.3 while tcpdump records the packets; store-feeder sends that recording with the client's
key log (--keylog) to a store; `netreel pcapdump` takes the window through a hub; tshark's
`follow,tls` must print the plaintext — and must not without --keylog. Then the store's side:
hostile key logs are refused whole with nothing on disk, and a store killed with -9 after the
ack still serves the secrets.
"""

import os
import signal
import socket
import ssl
import subprocess
import threading
import time

import pytest

import store_helpers as sh
from cli_helpers import cli_bin, hub_pb  # noqa: F401 (fixtures)
from hub_helpers import (NS, FakeSnapshotStore, hub_bin, hub_client, hubs,  # noqa: F401
                         pcapdump, rfc3339)

REQUEST = b"GET /netreel-secret-request HTTP/1.1 plaintext-from-the-client\r\n\r\n"
RESPONSE = b"HTTP/1.1 200 OK netreel-secret-response plaintext-from-the-server\r\n\r\n"


@pytest.fixture(scope="module")
def cert(tmp_path_factory):
    d = tmp_path_factory.mktemp("tls-cert")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=localhost", "-keyout", d / "key.pem", "-out", d / "cert.pem"],
                   check=True, capture_output=True, timeout=60)
    return d / "cert.pem", d / "key.pem"


def _tls_conversation(cert, version, keylog, port_box, ready):
    """Server in a thread, client here; both pinned to `version`; the client writes keylog."""
    sctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    sctx.load_cert_chain(*map(str, cert))
    sctx.minimum_version = sctx.maximum_version = version
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", port_box[0]))
    lsock.listen(1)

    def serve():
        conn, _ = lsock.accept()
        with sctx.wrap_socket(conn, server_side=True) as c:
            got = b""
            while not got.endswith(b"\r\n\r\n"):
                got += c.recv(4096)
            c.sendall(RESPONSE)

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    ready.wait(10)
    cctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    cctx.check_hostname = False
    cctx.verify_mode = ssl.CERT_NONE
    cctx.minimum_version = cctx.maximum_version = version
    cctx.keylog_filename = str(keylog)
    with socket.create_connection(("127.0.0.1", port_box[0])) as raw:
        with cctx.wrap_socket(raw, server_hostname="localhost") as c:
            c.sendall(REQUEST)
            got = b""
            while not got.endswith(b"\r\n\r\n"):
                got += c.recv(4096)
            assert got == RESPONSE
    t.join(10)
    lsock.close()


def _free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def record_tls(tmp_path, cert, version, tag):
    """tcpdump -i lo of one TLS conversation -> (pcap path, key log path with only its lines,
    the server's port)."""
    pcap, raw_keylog, keylog = (tmp_path / f"{tag}.pcap", tmp_path / f"{tag}.keylog.raw",
                                tmp_path / f"{tag}.keylog")
    port = _free_port()
    err = open(tmp_path / f"{tag}.tcpdump.stderr", "w+")
    td = subprocess.Popen(["tcpdump", "-i", "lo", "-U", "--immediate-mode", "-Z", "root", "-w", pcap,
                           f"tcp port {port}"], stderr=err)
    try:
        deadline = time.time() + 15
        while time.time() < deadline:
            err.seek(0)
            if "listening on" in err.read():
                break
            time.sleep(0.05)
        else:
            pytest.fail("tcpdump did not start", pytrace=False)
        ready = threading.Event()
        ready.set()
        _tls_conversation(cert, version, raw_keylog, [port], ready)
        time.sleep(0.5)
    finally:
        td.send_signal(signal.SIGINT)
        td.wait(15)
        err.close()
    # Python writes a "# ..." header line: a capture sends key log lines only.
    lines = [ln for ln in raw_keylog.read_text().splitlines() if ln and not ln.startswith("#")]
    assert lines, "the client wrote no key log lines"
    keylog.write_text("".join(ln + "\n" for ln in lines))
    return pcap, keylog, port


def follow_tls(path, port):
    # Decode As for the random port (no key log file: the DSB is the only secret source).
    r = subprocess.run(["tshark", "-r", path, "-d", f"tcp.port=={port},tls", "-q", "-z",
                        "follow,tls,ascii,0"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return r.stdout


def dsb_count(path):
    """DSBs of TLS key log in the file; -1 when a packet comes before the first one."""
    data = open(path, "rb").read()
    n, off = 0, 0
    while off + 8 <= len(data):
        btype, total = int.from_bytes(data[off:off + 4], "little"), \
            int.from_bytes(data[off + 4:off + 8], "little")
        if btype == 0x0000000A:
            assert int.from_bytes(data[off + 8:off + 12], "little") == 0x544C534B
            n += 1
        if btype == 6 and n == 0:
            return -1  # a packet before any DSB
        off += total
    return n


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3],
                         ids=["tls1.2", "tls1.3"])
@pytest.mark.parametrize("with_keys", [True, False], ids=["keylog", "no-keylog"])
def test_hub_file_decrypts_with_only_its_dsb(stores, feeder, hubs, cli_bin, cert, tmp_path,
                                              version, with_keys):
    pcap, keylog, port = record_tls(tmp_path, cert, version, "conv")
    store = stores()
    t0 = (sh.now_ns() // NS - 60) * NS
    feeder(store, "--pcap", pcap, *(["--keylog", keylog] if with_keys else []),
           "--ts-start", t0, "--ts-step", 1000)
    hub = hubs(store.addr)
    out = tmp_path / "out.pcapng"
    pcapdump(cli_bin, hub, "--since", rfc3339(t0 - NS), "--until", rfc3339(t0 + 10 * NS),
             "-o", out, expect=0)
    text = follow_tls(out, port)
    if with_keys:
        assert dsb_count(out) >= 1, "no DSB ahead of the packets"
        assert REQUEST.decode().strip() in text and RESPONSE.decode().strip() in text, text
    else:
        assert dsb_count(out) in (0, -1)
        assert "netreel-secret" not in text, text


def test_pcap_format_drops_the_secrets(stores, feeder, hubs, cli_bin, cert, tmp_path):
    pcap, keylog, port = record_tls(tmp_path, cert, ssl.TLSVersion.TLSv1_3, "conv")
    store = stores()
    t0 = (sh.now_ns() // NS - 60) * NS
    feeder(store, "--pcap", pcap, "--keylog", keylog, "--ts-start", t0, "--ts-step", 1000)
    hub = hubs(store.addr)
    out = tmp_path / "out.pcap"
    pcapdump(cli_bin, hub, "--since", rfc3339(t0 - NS), "--until", rfc3339(t0 + 10 * NS),
             "--format", "pcap", "-o", out, expect=0)
    r = subprocess.run(["tshark", "-r", out, "-d", f"tcp.port=={port},tls"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.strip(), r.stderr
    assert "TLS key log lines dropped" in hub.stderr()


GOOD = "CLIENT_RANDOM " + "ab" * 32 + " " + "cd" * 48 + "\n"
GOOD2 = "SERVER_TRAFFIC_SECRET_0 " + "ab" * 32 + " " + "EF" * 32 + "\n"


@pytest.mark.parametrize("bad, words", [
    ("FOO_SECRET " + "ab" * 32 + " " + "cd" * 48 + "\n", ["unknown label", "FOO_SECRET"]),
    ("CLIENT_RANDOM " + "ab" * 32 + " " + "c" * 95 + "\n", ["secret"]),
    ("CLIENT_RANDOM " + "ab" * 31 + " " + "cd" * 48 + "\n", ["client random"]),
    ("CLIENT_RANDOM " + "zz" * 32 + " " + "cd" * 48 + "\n", ["client random"]),
    (GOOD + GOOD[:-1], ["line 2", "newline"]),
    (GOOD * (1 + (1 << 20) // len(GOOD)), ["over"]),
], ids=["label", "odd-hex", "short-random", "not-hex", "no-newline", "over-1MiB"])
def test_store_refuses_a_bad_key_log_and_writes_nothing(stores, feeder, tmp_path, bad, words):
    store = stores()
    kl = tmp_path / "bad.keylog"
    kl.write_text(bad)
    r = feeder(store, "--packets", "10", "--keylog", kl, expect_ok=False)
    assert r["status"] == 3, r  # INVALID_ARGUMENT
    for w in words:
        assert w in r["message"], r
    assert "tls_keylog" in r["message"], r
    assert sh.segment_files(store.data_dir) == [], "something was written"


def test_secrets_survive_kill9(stores, feeder, snapshot_tool, cert, tmp_path):
    pcap, keylog, port = record_tls(tmp_path, cert, ssl.TLSVersion.TLSv1_3, "conv")
    data = tmp_path / "data"
    store = stores(data_dir=data)
    t0 = (sh.now_ns() // NS - 60) * NS
    feeder(store, "--pcap", pcap, "--keylog", keylog, "--ts-start", t0, "--ts-step", 1000)
    store.kill9()
    store = stores(data_dir=data)
    out = tmp_path / "snap.pcapng"
    obj = snapshot_tool(store, out)
    assert obj["keylog_bytes"] == len(keylog.read_bytes()), obj
    assert dsb_count(out) >= 1
    text = follow_tls(out, port)
    assert REQUEST.decode().strip() in text and RESPONSE.decode().strip() in text, text


def test_expired_packets_keep_their_key_log(stores, feeder, snapshot_tool, tmp_path):
    store = stores("--max-time", "1h")
    kl = tmp_path / "k.keylog"
    kl.write_text(GOOD)
    old = (sh.now_ns() // NS - 7200) * NS  # past max-time: the packets are not written
    feeder(store, "--packets", "5", "--keylog", kl, "--ts-start", old)
    out = tmp_path / "snap.pcapng"
    obj = snapshot_tool(store, out)
    assert obj["packets"] == 0 and obj["keylog_bytes"] == len(GOOD), obj


def test_two_stores_secrets_all_ahead_of_the_packets(stores, feeder, hubs, cli_bin, cert,
                                                      tmp_path):
    """Each store holds one conversation and its key log: the hub's file carries both stores'
    lines before its first packet, and both conversations decrypt."""
    convs = [record_tls(tmp_path, cert, v, tag) for v, tag in
             ((ssl.TLSVersion.TLSv1_2, "a"), (ssl.TLSVersion.TLSv1_3, "b"))]
    t0 = (sh.now_ns() // NS - 60) * NS
    ss = [stores(data_dir=tmp_path / f"data-{k}", node=f"node-{k}") for k in range(2)]
    for k, (pcap, keylog, _) in enumerate(convs):
        feeder(ss[k], "--pcap", pcap, "--keylog", keylog, "--ts-start", t0 + k * 500,
               "--ts-step", 1000, capture_id=f"cap-{k}", node=f"node-{k}")
    hub = hubs(",".join(s.addr for s in ss))
    out = tmp_path / "out.pcapng"
    pcapdump(cli_bin, hub, "--since", rfc3339(t0 - NS), "--until", rfc3339(t0 + 10 * NS),
             "-o", out, expect=0)
    assert dsb_count(out) >= 1
    decode = [a for _, _, port in convs for a in ("-d", f"tcp.port=={port},tls")]
    for stream in (0, 1):
        r = subprocess.run(["tshark", "-r", out, *decode, "-q", "-z",
                            f"follow,tls,ascii,{stream}"],
                           capture_output=True, text=True, timeout=120)
        assert REQUEST.decode().strip() in r.stdout, (stream, r.stdout, r.stderr)
        assert RESPONSE.decode().strip() in r.stdout, (stream, r.stdout)


class KeylogStore(FakeSnapshotStore):
    """netreel.v1.Store/Snapshot on grpcio: the header, then `chunks` (("keys", bytes) or
    ("blocks", n packets at t0 + i*1000)) in that order, then a summary."""

    def __init__(self, pb, t0, chunks):
        self.t0, self.chunks = t0, chunks
        super().__init__(pb)

    def Snapshot(self, req, ctx):
        pb = self.pb
        yield pb.StoreChunk(header=pb.WindowHeader(node="node-k", interfaces=[
            pb.Interface(id=0, name="eth0", link_type=1, snaplen=65535, node="node-k")]))
        for kind, what in self.chunks:
            if kind == "keys":
                yield pb.StoreChunk(tls_keylog=what)
            else:
                yield pb.StoreChunk(blocks=b"".join(
                    sh.epb(0, self.t0 + i * 1000, sh.frame(i, 100)) for i in range(what)))
        yield pb.StoreChunk(summary=pb.StoreSummary(packets=0))



def block_types(data):
    out, off = [], 0
    while off + 8 <= len(data):
        out.append(int.from_bytes(data[off:off + 4], "little"))
        off += int.from_bytes(data[off + 4:off + 8], "little")
    return out


@pytest.mark.parametrize("chunks, ok", [
    ([("keys", GOOD.encode()), ("keys", GOOD.encode() + GOOD2.encode()), ("blocks", 3)], True),
    ([("keys", b"FOO " + b"ab" * 32 + b" " + b"cd" * 48 + b"\n"), ("blocks", 3)], False),
    ([("keys", GOOD.encode()[:-1]), ("blocks", 3)], False),
    ([("blocks", 3), ("keys", GOOD.encode())], False),
], ids=["good", "bad-label", "no-newline", "after-blocks"])
def test_hub_checks_a_stores_key_log(hubs, hub_client, hub_pb, chunks, ok):
    t0 = (sh.now_ns() // NS - 60) * NS
    fake = KeylogStore(hub_pb, t0, chunks)
    try:
        hub = hubs(fake.addr)
        data, summary, _ = hub_client(hub).snapshot()
    finally:
        fake.stop()
    (res,) = summary.stores
    types = block_types(data)
    if ok:
        assert res.ok, res
        # Both messages' lines, each once, in one DSB after the head and before the first EPB.
        assert types.count(0x0A) == 1 and types.index(0x0A) < types.index(6), types
        assert b"KSLT" in data  # "TLSK", little-endian
        assert data.count(GOOD.encode()) == 1 and data.count(GOOD2.encode()) == 1
    else:
        assert not res.ok and res.error, res
        assert 0x0A not in types, types


def big_keylog(path, tag, size):
    """Distinct valid lines (the client random counts up) to about `size` bytes."""
    lines, n, i = [], 0, 0
    while True:
        ln = f"CLIENT_RANDOM {tag:02x}{i:062x} " + "cd" * 48 + "\n"
        if n + len(ln) > size:
            break
        lines.append(ln)
        n += len(ln)
        i += 1
    path.write_text("".join(lines))
    return n


def test_many_streams_of_secrets_in_bounded_messages_and_hub_cap(stores, feeder, snapshot_tool,
                                                                  hubs, cli_bin, tmp_path):
    """20 capture streams of ~900 KiB of lines each: the store sends them in messages of at most
    1 MiB of whole lines, all of them; the hub keeps 16 MiB, drops the rest and says so."""
    store = stores("--max-size", "1GB")
    t0 = (sh.now_ns() // NS - 60) * NS
    total = 0
    for k in range(20):
        kl = tmp_path / f"k{k}.keylog"
        total += big_keylog(kl, k, 900 << 10)
        feeder(store, "--packets", "5", "--keylog", kl, "--ts-start", t0 + k,
               capture_id=f"cap-{k}")
    obj = snapshot_tool(store, tmp_path / "snap.pcapng")
    assert obj["keylog_bytes"] == total, obj
    assert obj["keylog_chunks"] >= total // (1 << 20) and obj["keylog_max"] <= 1 << 20, obj
    assert dsb_count(tmp_path / "snap.pcapng") == obj["keylog_chunks"]
    hub = hubs(store.addr)
    out = tmp_path / "out.pcapng"
    pcapdump(cli_bin, hub, "--since", rfc3339(t0 - NS), "--until", rfc3339(t0 + 10 * NS),
             "-o", out, expect=0)
    data = out.read_bytes()
    kept, off = 0, 0
    while off + 8 <= len(data):
        btype, blen = (int.from_bytes(data[off:off + 4], "little"),
                       int.from_bytes(data[off + 4:off + 8], "little"))
        if btype == 0x0A:
            kept += int.from_bytes(data[off + 12:off + 16], "little")
        off += blen
    assert 15 << 20 < kept <= 16 << 20 and kept < total, (kept, total)
    assert "TLS key log lines dropped" in hub.stderr()
    r = subprocess.run(["tshark", "-r", out], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and len(r.stdout.splitlines()) == 100, r.stderr


def test_secrets_in_the_segment_after_the_window(stores, feeder, snapshot_tool, tmp_path):
    """The handshake's packets are in one segment, the lines came with the next batch, in the
    next segment, whose packets are past the window: the snapshot still carries them."""
    store = stores("--time-interval", "1s")
    t0 = (sh.now_ns() // NS - 120) * NS
    feeder(store, "--packets", "5", "--ts-start", t0)
    time.sleep(2.5)  # the quiet segment is completed; the next batch starts a new one
    kl = tmp_path / "k.keylog"
    kl.write_text(GOOD)
    feeder(store, "--packets", "5", "--keylog", kl, "--ts-start", t0 + 60 * NS,
           "--seq-start", "100")
    assert len(sh.segment_files(store.data_dir)) == 2
    out = tmp_path / "snap.pcapng"
    obj = snapshot_tool(store, out, "--since", t0 - NS, "--until", t0 + 10 * NS)
    assert obj["packets"] == 5 and obj["keylog_bytes"] == len(GOOD), obj


def test_a_batch_of_secrets_alone_is_written_and_acked(stores, store_client, store_pb):
    """A capture's first batch may carry key log lines and nothing else (no interface, no
    packet): acknowledged once on disk, and served before any packet."""
    store = stores()
    c = store_client(store)
    pb = store_pb
    acks = list(c.Ingest(iter([pb.PacketBatch(capture_id="cap-keys", seq=1, node="node-a",
                                              tls_keylog=GOOD.encode())]), timeout=30))
    assert acks and acks[-1].seq == 1, acks
    assert len(sh.segment_files(store.data_dir)) == 1
    res = c.snapshot()
    assert res.keylog == [GOOD.encode()] and res.packets == [], res
    code, text, _ = sh.scrape(store, "/metrics")
    assert code == 200 and f"netreel_store_tls_keylog_bytes_total {len(GOOD)}" in text, text
