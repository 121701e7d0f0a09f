"""netreel-capture --tls: the TLS secrets of the traced OpenSSL connections (issue 8, slice 2a;
docs/capture-tls.md "TLS secrets").

A /usr/bin/python3 `ssl` server in namespace A and a client in namespace B talk over TLS 1.2 and
TLS 1.3; the client writes OpenSSL's own key log (SSLContext.keylog_filename) as the reference.
The capture runs with --tls --tls-keylog-file F. F must hold, for that connection's client
random, exactly the lines OpenSSL logged (same labels, same secrets); and tshark given F must
decrypt the real encrypted packets of the connection, recorded by the capture itself on the
namespace's interface, back to the conversation.
"""

import os
import re
import socket
import stat
import subprocess
import threading
import time
from concurrent import futures
from pathlib import Path

import grpc

import pytest
import test_capture_tls as tls
from test_capture_tls import own_libssl, wait_for

from conftest import REPO, _load_module
from capture_helpers import A_IP, CaptureProc, lab, mval, run  # noqa: F401 (fixture)
from test_capture_tls import (CLIENT_LINES, PEER, SERVER_LINES, SKIP, TLS_PORT, cert,  # noqa: F401
                              tshark)

pytestmark = pytest.mark.skipif(SKIP is not None, reason=f"--tls needs it: {SKIP}")

# The slice-1 peer, whose client also writes OpenSSL's key log to $PY_KEYLOG.
PEER_KEYLOG = "import os\n" + PEER.replace(
    "    s = ctx.wrap_socket(socket.create_connection(",
    "    ctx.keylog_filename = os.environ['PY_KEYLOG']\n"
    "    s = ctx.wrap_socket(socket.create_connection(")
assert PEER_KEYLOG.count("keylog_filename") == 1


def converse(net, version, cert, tmp, keylog, env=(), before_client=None,  # noqa: F811
             client_env_extra=(), server_wrap=()):
    """test_capture_tls's conversation, with the client writing its own key log to keylog."""
    return tls.converse(net, version, cert, tmp, env=env, before_client=before_client,
                        peer=PEER_KEYLOG, server_wrap=server_wrap,
                        client_env=(f"PY_KEYLOG={keylog}", *client_env_extra))


def keylog_lines(path):
    """{(label, client random, secret)} of an NSS key log file (comments skipped); every line
    must be of the format."""
    out = set()
    for ln in path.read_text().splitlines():
        if ln.startswith("#") or not ln:
            continue
        assert len(ln) + 1 <= 200, ln
        m = re.fullmatch(r"([A-Z_0-9]+) ([0-9a-f]{64}) ([0-9a-f]{64,128})", ln)
        assert m, f"not a key log line: {ln!r}"
        out.add(m.groups())
    return out


@pytest.mark.parametrize("version", ["1.2", "1.3"])
def test_secrets_are_openssls_own_and_decrypt_the_recorded_packets(lab, cert, tmp_path,  # noqa: F811
                                                                     version):
    net = lab.netns()
    store = lab.store(net)
    capkeys = tmp_path / "capture.keys"
    pykeys = tmp_path / "python.keys"
    cap = lab.capture(net, "--tls", "--tls-keylog-file", capkeys)
    assert cap.lines("tls: secrets calibrated"), cap.stderr()
    assert not cap.lines("tls: TLS secrets are OFF (plaintext is still recorded)"), cap.stderr()
    assert stat.S_IMODE(os.stat(capkeys).st_mode) == 0o600
    got = converse(net, version, cert, tmp_path, pykeys)
    assert got == f"TLSv{version}", got
    time.sleep(1.0)  # the ring, and a batch time of 200 ms
    m = cap.scrape()
    cap.stop()

    want = keylog_lines(pykeys)
    randoms = {cr for _, cr, _ in want}
    assert len(randoms) == 1, want
    ours = {ln for ln in keylog_lines(capkeys) if ln[1] in randoms}
    labels = {lab_ for lab_, _, _ in want}
    if version == "1.2":
        assert labels == {"CLIENT_RANDOM"}, want
    else:
        assert {"CLIENT_TRAFFIC_SECRET_0", "SERVER_TRAFFIC_SECRET_0"} <= labels, want
    # Exactly OpenSSL's lines: the TLS 1.3 handshake secrets (derived by the capture) too.
    assert ours == want, f"capture:\n{sorted(ours)}\npython:\n{sorted(want)}"
    # Both ends are traced: their identical lines go out once.
    mine = [ln for ln in capkeys.read_text().splitlines() if next(iter(randoms)) in ln]
    assert len(mine) == len(want), mine
    assert mval(m, "netreel_capture_tls_keylog_lines_total") >= len(want), m
    assert mval(m, "netreel_capture_tls_secrets_total", result="bad") == 0, m

    # The real encrypted packets, as the capture recorded them, decrypt with the snapshot file
    # alone: the store sends the secrets the capture found ahead of the packets, and the
    # snapshot holds them as Decryption Secrets Blocks (no key log file given to tshark).
    _, _, path = lab.snapshot(net, store)
    streams = tshark("-r", path, "-Y", f"ip.addr == {A_IP} && tcp.port == {TLS_PORT}",
                     "-T", "fields", "-e", "tcp.stream")
    real = sorted({int(x) for x in streams.split()})
    assert len(real) == 1, streams

    def decrypted(f, *opts):
        return tshark("-r", f, *opts, "-q", "-z", f"follow,tls,ascii,{real[0]}")

    plain = decrypted(path)
    for text in CLIENT_LINES + SERVER_LINES:
        for line in text.decode().splitlines():
            assert line in plain, f"{line!r} not decrypted by the file's own secrets:\n{plain}"
    # Without its secrets the same file does not decrypt (the test can tell) ...
    bare = tmp_path / "bare.pcapng"
    run(["editcap", "--discard-all-secrets", str(path), str(bare)])
    assert "hello from client 1" not in decrypted(bare)
    # ... and the capture's key log file decrypts it as well.
    assert "hello from client 1" in decrypted(bare, "-o", f"tls.keylog_file:{capkeys}")


def other_build_libssl(tmp):
    """A copy of the system's libssl with its ELF build-id altered: another build, as far as
    the capture can tell (its structs may be laid out otherwise), whose secrets must come from
    OpenSSL 3's key derivation in libcrypto, not from calibrated offsets."""
    libdir, lib = own_libssl(tmp)
    data = bytearray(lib.read_bytes())
    note = b"\x04\x00\x00\x00\x14\x00\x00\x00\x03\x00\x00\x00GNU\x00"
    at = data.find(note)
    assert at > 0, "the system's libssl has no 20-byte GNU build-id"
    for i in range(at + len(note), at + len(note) + 20):
        data[i] ^= 0xFF
    lib.write_bytes(bytes(data))
    return libdir, lib


@pytest.mark.parametrize("version", ["1.2", "1.3"])
@pytest.mark.parametrize("other", ["both", "client", "server"])
def test_another_libssl_build_gives_its_secrets_through_key_derivation(lab, cert, tmp_path,  # noqa: F811
                                                                       version, other):
    # `other`: which end loads the other build (the rest the system's, the calibrated one). The
    # lines must be exactly OpenSSL's own, each once, and decrypt the recording with the
    # snapshot's Decryption Secrets Blocks alone.
    libdir, lib = other_build_libssl(tmp_path)
    net = lab.netns()
    store = lab.store(net)
    capkeys = tmp_path / "capture.keys"
    pykeys = tmp_path / "python.keys"
    cap = lab.capture(net, "--tls", "--tls-keylog-file", capkeys, "--user", "root")
    assert cap.lines("tls: secrets calibrated"), cap.stderr()
    assert cap.lines("tls: attached key derivation"), cap.stderr()
    env = f"LD_LIBRARY_PATH={libdir}"

    def other_build_attached():
        return any(lib.name in ln and str(libdir) in ln and "secrets=kdf" in ln
                   for ln in cap.lines("tls: attached"))

    # A process mapping the copy before either end starts: its uprobes are in place from the
    # first instruction of the end that uses it (they follow the file, not the process).
    holder = subprocess.Popen(["env", env, "/usr/bin/python3", "-c",
                               "import ssl, time; time.sleep(60)"])
    try:
        assert wait_for(other_build_attached), cap.stderr()
        got = converse(net, version, cert, tmp_path, pykeys,
                       env=[env] if other == "both" else [],
                       client_env_extra=[env] if other == "client" else [],
                       server_wrap=["env", env] if other == "server" else [])
    finally:
        holder.kill()
        holder.wait()
    assert got == f"TLSv{version}", got
    time.sleep(1.0)
    m = cap.scrape()
    cap.stop()

    want = keylog_lines(pykeys)
    randoms = {cr for _, cr, _ in want}
    assert len(randoms) == 1, want
    ours = {ln for ln in keylog_lines(capkeys) if ln[1] in randoms}
    assert ours == want, f"capture:\n{sorted(ours)}\npython:\n{sorted(want)}"
    mine = [ln for ln in capkeys.read_text().splitlines() if next(iter(randoms)) in ln]
    assert len(mine) == len(want), mine  # each line once, whichever end and path made it
    assert mval(m, "netreel_capture_tls_kdf_secrets_total", result="ok") > 0, m
    assert mval(m, "netreel_capture_tls_kdf_secrets_total", result="bad") == 0, m
    assert mval(m, "netreel_capture_tls_packets_total") > 0, m

    _, _, path = lab.snapshot(net, store)
    streams = tshark("-r", path, "-Y", f"ip.addr == {A_IP} && tcp.port == {TLS_PORT}",
                     "-T", "fields", "-e", "tcp.stream")
    real = sorted({int(x) for x in streams.split()})
    assert len(real) == 1, streams
    plain = tshark("-r", path, "-q", "-z", f"follow,tls,ascii,{real[0]}")
    for text in CLIENT_LINES + SERVER_LINES:
        for line in text.decode().splitlines():
            assert line in plain, f"{line!r} not decrypted by the file's own secrets:\n{plain}"
    bare = tmp_path / "bare.pcapng"
    run(["editcap", "--discard-all-secrets", str(path), str(bare)])
    assert "hello from client 1" not in tshark("-r", bare, "-q", "-z",
                                               f"follow,tls,ascii,{real[0]}")


PBKDF2 = """
import hashlib, sys
for i in range(int(sys.argv[1])):
    hashlib.pbkdf2_hmac("sha256", b"password", b"salt%d" % i, 2)
"""


def test_key_derivation_outside_ssl_calls_gives_nothing(lab, tmp_path):  # noqa: F811
    # PBKDF2 through Python's hashlib is EVP_KDF_derive in OpenSSL 3 (the trap counter shows
    # it), in a process that makes no SSL call: no record, no line.
    net = lab.netns()
    lab.store(net)
    capkeys = tmp_path / "capture.keys"
    cap = lab.capture(net, "--tls", "--tls-keylog-file", capkeys, "--user", "root")
    assert cap.lines("tls: attached key derivation"), cap.stderr()
    time.sleep(1.0)
    m0 = cap.scrape()
    lines0 = capkeys.read_text()
    n = 500
    run(["/usr/bin/python3", "-c", PBKDF2, str(n)])
    time.sleep(1.0)
    m1 = cap.scrape()
    cap.stop()

    def delta(name, **labels):
        return mval(m1, name, **labels) - mval(m0, name, **labels)

    assert delta("netreel_capture_tls_kdf_calls_total") >= n, (m0, m1)
    for result in ("ok", "bad", "no_client_random"):
        assert delta("netreel_capture_tls_kdf_secrets_total", result=result) == 0, (m0, m1)
    assert delta("netreel_capture_tls_keylog_lines_total") == 0, (m0, m1)
    assert capkeys.read_text() == lines0


class FakeStore:
    """A grpcio netreel.v1.Store that takes the capture's Ingest stream, keeps every
    PacketBatch and acknowledges it: what the capture hands the store, as the store reads it."""

    def __init__(self, pb):
        self.pb = pb
        self.batches = []
        self.lock = threading.Lock()
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        handler = grpc.stream_stream_rpc_method_handler(
            self.ingest, request_deserializer=pb.PacketBatch.FromString,
            response_serializer=pb.IngestAck.SerializeToString)
        self.server.add_generic_rpc_handlers(
            [grpc.method_handlers_generic_handler("netreel.v1.Store", {"Ingest": handler})])
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()

    def ingest(self, batches, context):
        for b in batches:
            with self.lock:
                self.batches.append(b)
            yield self.pb.IngestAck(capture_id=b.capture_id, seq=b.seq)

    def keylog(self):
        with self.lock:
            return [b.tls_keylog for b in self.batches if b.tls_keylog]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_store_gets_the_lines_in_packet_batches(lab, cert, tmp_path):  # noqa: F811
    # Against a stand-in store (grpcio), in the host's namespace on loopback: the batches the
    # capture sends must carry, in tls_keylog, the same lines as the key log file, each batch
    # at most 1 MiB of well-formed lines.
    out = tmp_path / "pb"
    out.mkdir()
    subprocess.run(["protoc", f"--python_out={out}", "-Iproto", "proto/netreel/v1/common.proto",
                    "proto/netreel/v1/store.proto"], cwd=REPO, check=True, timeout=60)
    import sys
    sys.path.insert(0, str(out))
    try:
        pb = _load_module("netreel_store_pb2", out / "netreel" / "v1" / "store_pb2.py")
    finally:
        sys.path.remove(str(out))
    store = FakeStore(pb)
    capkeys = tmp_path / "capture.keys"
    try:
        cap = CaptureProc(lab.capture_bin, ["-i", "lo", "--store", f"127.0.0.1:{store.port}",
                                            "--metrics-listen", "off", "--node", "node-a",
                                            "--tls", "--tls-keylog-file", capkeys],
                          tmp_path / "capture.stderr")
        lab.captures.append(cap)
        cap.wait_capturing()
        port = free_port()
        script = tmp_path / "tls_peer_keylog.py"
        script.write_text(PEER_KEYLOG)
        for version in ("1.2", "1.3"):
            pykeys = tmp_path / f"python{version}.keys"
            server = subprocess.Popen(["/usr/bin/python3", script, "server", version, cert[0],
                                       cert[1], str(port)], stdout=subprocess.PIPE, text=True)
            assert server.stdout.readline().strip() == "listening"
            run(["env", f"PY_KEYLOG={pykeys}", "/usr/bin/python3", script, "client", version,
                 "127.0.0.1", str(port)])
            assert server.wait(20) == 0
            want = keylog_lines(pykeys)
            cr = next(iter(want))[1]
            assert wait_for(lambda: any(cr.encode() in k for k in store.keylog()), 10), \
                f"no batch carried the lines of {cr}\n{cap.stderr()}"
        cap.stop()
        sent = b"".join(store.keylog())
        assert all(len(k) <= 1 << 20 and k.endswith(b"\n") for k in store.keylog())
        got = Path(tmp_path / "sent.keys")
        got.write_bytes(sent)
        # Lines of the file, each sent once (other OpenSSL processes of the machine are traced
        # too: their lines may be in both).
        lines = sent.decode().splitlines()
        assert len(lines) == len(set(lines)), lines
        assert set(lines) <= set(capkeys.read_text().splitlines())
        for version in ("1.2", "1.3"):
            want = keylog_lines(tmp_path / f"python{version}.keys")
            cr = next(iter(want))[1]
            assert {ln for ln in keylog_lines(got) if ln[1] == cr} == want
    finally:
        store.server.stop(0)


def test_keylog_file_needs_tls(lab, tmp_path):  # noqa: F811
    r = subprocess.run([lab.capture_bin, "-i", "lo", "--tls-keylog-file", tmp_path / "k"],
                       capture_output=True, text=True, timeout=20)
    assert r.returncode != 0
    assert "--tls-keylog-file needs --tls" in r.stderr, r.stderr
    assert not (tmp_path / "k").exists()
