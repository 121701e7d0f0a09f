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
from cli_helpers import cli_bin  # noqa: F401 (fixture)
from hub_helpers import NS, hub_bin, hubs, pcapdump, rfc3339  # noqa: F401 (fixtures)

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
