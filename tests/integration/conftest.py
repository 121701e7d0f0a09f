"""Fixtures for the lib/rpc interop tests: the C test programs, protos generated at test time,
a throwaway PKI made with the openssl CLI, and a stock grpcio server that implements
netreel.rpctest.Test with the same semantics as tests/integration/bin/rpc-test-server.c.

Environment:
  NETREEL_BUILD  build dir holding tests/rpc-test-server and tests/rpc-test-client
                 (default: <repo>/build/release). Missing binaries fail the tests.
  NETREEL_ASAN   1 when those binaries are ASan/UBSan builds: RSS limits are not checked and
                 every process's stderr is checked for sanitizer reports.
"""

import importlib.util
import json
import os
import re
import select
import subprocess
import sys
import threading
import time
import types
from concurrent import futures
from pathlib import Path

import grpc
import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
# The tests live in one directory per part (README.md); the helper modules they import
# (*_helpers.py, kube_api.py) live here, beside this file, which applies to every directory
# below it. pytest's default import mode puts this directory on sys.path when it loads this
# file; saying so here keeps `import store_helpers` working whichever directory a test is in.
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import store_helpers  # noqa: E402  (beside this file: on sys.path, see HERE above)

ASAN = os.environ.get("NETREEL_ASAN", "0") not in ("", "0")
SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "runtime error:", "LeakSanitizer")

SERVICE = "netreel.rpctest.Test"
HEALTH_SERVICE = "grpc.health.v1.Health"


# ---- helpers shared by the tests (through the `rpctest` fixture) ---------------------------------

FNV_OFFSET = 0xCBF29CE484222325
FNV_PRIME = 0x100000001B3
MASK64 = 0xFFFFFFFFFFFFFFFF


def fnv1a64(data, h=FNV_OFFSET):
    """FNV-1a 64 over data, continuing from h."""
    for b in data:
        h = ((h ^ b) * FNV_PRIME) & MASK64
    return h


def pattern(i, size):
    """rpc-test-client's client-stream payload of message i: byte j is (i*7 + j*13) & 0xff."""
    row = bytes(((i * 7) + (j * 13)) & 0xFF for j in range(256))
    return (row * (size // 256 + 1))[:size]


def pattern_checksum(count, size):
    h = FNV_OFFSET
    for i in range(count):
        h = fnv1a64(pattern(i, size), h)
    return h


def sanitizer_reports(text):
    return [m for m in SANITIZER_MARKERS if m in text]


def tail(text, n=4000):
    return text if len(text) <= n else "...\n" + text[-n:]


# ---- build dir and binaries ----------------------------------------------------------------

@pytest.fixture(scope="session")
def build_dir():
    d = Path(os.environ.get("NETREEL_BUILD") or REPO / "build" / "release")
    missing = [p for p in (d / "tests" / "rpc-test-server", d / "tests" / "rpc-test-client")
               if not (p.is_file() and os.access(p, os.X_OK))]
    if missing:
        pytest.fail("missing test program(s): " + ", ".join(map(str, missing)) +
                    " -- build them with `make` (or point NETREEL_BUILD at a build dir)",
                    pytrace=False)
    return d


@pytest.fixture(scope="session")
def server_bin(build_dir):
    return build_dir / "tests" / "rpc-test-server"


@pytest.fixture(scope="session")
def client_bin(build_dir):
    return build_dir / "tests" / "rpc-test-client"


# ---- protos generated at test time ---------------------------------------------------------

def _load_module(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="session")
def protos(tmp_path_factory):
    """Namespace with .rpctest (rpctest_pb2) and .health (grpc/health/v1/health_pb2)."""
    out = tmp_path_factory.mktemp("pb")
    cmd = ["protoc", f"--python_out={out}", "-Itests/proto", "-Iproto",
           "tests/proto/rpctest.proto", "proto/grpc/health/v1/health.proto"]
    r = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        pytest.fail(f"{' '.join(cmd)} failed ({r.returncode}):\n{r.stderr}", pytrace=False)
    # Loaded by path under private names: "grpc.health..." would collide with grpcio's package.
    return types.SimpleNamespace(
        rpctest=_load_module("netreel_rpctest_pb2", out / "rpctest_pb2.py"),
        health=_load_module("netreel_health_pb2", out / "grpc" / "health" / "v1" / "health_pb2.py"),
    )


class TestStub:
    """Client stub for netreel.rpctest.Test built with grpcio's generic API."""

    __test__ = False  # not a pytest test class

    def __init__(self, channel, pb):
        req, resp = pb.TestRequest, pb.TestResponse
        ser, de = req.SerializeToString, resp.FromString
        p = "/" + SERVICE + "/"
        self.Unary = channel.unary_unary(p + "Unary", ser, de)
        self.ServerStream = channel.unary_stream(p + "ServerStream", ser, de)
        self.ClientStream = channel.stream_unary(p + "ClientStream", ser, de)
        self.Bidi = channel.stream_stream(p + "Bidi", ser, de)
        self.GetCounters = channel.unary_unary(p + "GetCounters",
                                               pb.CountersRequest.SerializeToString,
                                               pb.Counters.FromString)


class HealthStub:
    def __init__(self, channel, hpb):
        ser = hpb.HealthCheckRequest.SerializeToString
        de = hpb.HealthCheckResponse.FromString
        p = "/" + HEALTH_SERVICE + "/"
        self.Check = channel.unary_unary(p + "Check", ser, de)
        self.Watch = channel.unary_stream(p + "Watch", ser, de)


@pytest.fixture(scope="session")
def rpctest(protos):
    """Everything a test needs to speak netreel.rpctest.Test from Python."""
    return types.SimpleNamespace(
        pb=protos.rpctest,
        hpb=protos.health,
        stub=lambda ch: TestStub(ch, protos.rpctest),
        health_stub=lambda ch: HealthStub(ch, protos.health),
        fnv1a64=fnv1a64,
        pattern=pattern,
        pattern_checksum=pattern_checksum,
        asan=ASAN,
    )


# ---- certificates ----------------------------------------------------------------------------

def _openssl(*args, cwd):
    r = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        pytest.fail(f"openssl {' '.join(args)} failed ({r.returncode}):\n{r.stderr}", pytrace=False)


def _make_ca(d, name, cn):
    _openssl("req", "-x509", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
             "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.pem", "-days", "2",
             "-subj", f"/CN={cn}",
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)


def _make_leaf(d, name, cn, ca, serial, exts):
    (d / f"{name}.ext").write_text("\n".join(exts) + "\n")
    _openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={cn}", cwd=d)
    _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key",
             "-set_serial", str(serial), "-days", "2", "-sha256", "-extfile", f"{name}.ext",
             "-out", f"{name}.pem", cwd=d)


@pytest.fixture(scope="session")
def certs(tmp_path_factory):
    """A CA, a server cert (localhost, 127.0.0.1) and a client cert signed by it, plus an
    unrelated CA with its own client cert for the negative tests. Paths, and .read(name)."""
    d = tmp_path_factory.mktemp("pki")
    _make_ca(d, "ca", "netreel test CA")
    _make_ca(d, "other-ca", "unrelated test CA")
    leaf = ["basicConstraints=critical,CA:FALSE", "keyUsage=critical,digitalSignature"]
    _make_leaf(d, "server", "localhost", "ca", 1001,
               leaf + ["extendedKeyUsage=serverAuth", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
    _make_leaf(d, "client", "netreel-test-client", "ca", 1002,
               leaf + ["extendedKeyUsage=clientAuth"])
    _make_leaf(d, "other-client", "netreel-test-client", "other-ca", 2001,
               leaf + ["extendedKeyUsage=clientAuth"])
    for name in ("server", "client", "other-client"):
        ca = "other-ca" if name.startswith("other") else "ca"
        _openssl("verify", "-CAfile", f"{ca}.pem", f"{name}.pem", cwd=d)
    return types.SimpleNamespace(
        dir=d,
        ca=d / "ca.pem",
        server_cert=d / "server.pem", server_key=d / "server.key",
        client_cert=d / "client.pem", client_key=d / "client.key",
        other_ca=d / "other-ca.pem",
        other_client_cert=d / "other-client.pem", other_client_key=d / "other-client.key",
        read=lambda p: Path(p).read_bytes(),
    )


def server_tls_args(certs, mode):
    """rpc-test-server arguments for mode 'plaintext', 'tls' or 'mtls'."""
    if mode == "plaintext":
        return []
    args = ["--tls-cert", str(certs.server_cert), "--tls-key", str(certs.server_key)]
    if mode == "mtls":
        args += ["--tls-ca", str(certs.ca)]
    return args


@pytest.fixture(scope="session")
def tls_args(certs):
    """.server(mode) and .client(mode, client_cert=True|False|'other'): command-line TLS
    arguments of rpc-test-server and rpc-test-client for 'plaintext', 'tls' or 'mtls'."""
    return types.SimpleNamespace(server=lambda mode: server_tls_args(certs, mode),
                                 client=lambda mode, client_cert=True:
                                 client_tls_args(certs, mode, client_cert))


# ---- rpc-test-server ---------------------------------------------------------------------------

class RpcServer:
    """A running rpc-test-server."""

    def __init__(self, proc, host, port, stderr_path, argv):
        self.proc = proc
        self.pid = proc.pid
        self.host = host
        self.port = port
        self.addr = f"{host}:{port}"
        self.stderr_path = stderr_path
        self.argv = argv
        self.extra_stdout = b""
        self.drainer = None  # the thread that reads stdout after the first line

    def stderr(self):
        return self.stderr_path.read_text(errors="replace")

    def vm_hwm_kb(self):
        """Peak resident set size so far (VmHWM), in KiB."""
        status = Path(f"/proc/{self.pid}/status").read_text()
        m = re.search(r"^VmHWM:\s+(\d+) kB", status, re.M)
        assert m, f"no VmHWM in /proc/{self.pid}/status"
        return int(m.group(1))


def _read_listening_line(proc, argv, stderr_path, timeout=10.0):
    fd = proc.stdout.fileno()
    deadline = time.monotonic() + timeout
    buf = b""

    def die(why):
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
        pytest.fail(f"{' '.join(argv)}: {why}\nstdout: {buf!r}\nstderr:\n"
                    f"{tail(stderr_path.read_text(errors='replace'))}", pytrace=False)

    while b"\n" not in buf:
        left = deadline - time.monotonic()
        if left <= 0:
            die(f"no 'listening on' line within {timeout:g} s")
        ready, _, _ = select.select([fd], [], [], min(left, 0.2))
        if ready:
            chunk = os.read(fd, 4096)
            if not chunk:
                try:
                    rc = proc.wait(2)
                except subprocess.TimeoutExpired:
                    rc = None
                die(f"closed stdout before 'listening on' (exit status {rc})")
            buf += chunk
        elif proc.poll() is not None:
            die(f"exited with status {proc.returncode} before 'listening on'")
    line, _, rest = buf.partition(b"\n")
    m = re.fullmatch(r"listening on (\[[0-9a-fA-F:.]+\]|[^\s:]+):(\d+)", line.decode(errors="replace"))
    if not m or int(m.group(2)) == 0:
        die(f"first stdout line is not 'listening on HOST:PORT' with a real port: {line!r}")
    return m.group(1), int(m.group(2)), rest


def _stop_server(srv, timeout=15.0):
    """SIGTERM srv; returns a list of problems (empty when it exited 0 and cleanly, and printed
    nothing after its one line)."""

    def stdout_problems(err):
        if srv.drainer is not None:
            # What the server printed last is read by that thread: let it finish before looking.
            srv.drainer.join(5)
        if srv.extra_stdout.strip():
            return [f"printed more than one line on stdout: {srv.extra_stdout[:200]!r}"]
        return []

    cmdline = " ".join([Path(srv.argv[0]).name, *srv.argv[1:]])
    return store_helpers.stop_process(srv.proc, cmdline, srv.stderr, timeout, more=stdout_problems)


@pytest.fixture
def rpc_server(server_bin, tmp_path):
    """start(*args) -> RpcServer: runs rpc-test-server ARGS, waits for its 'listening on' line.
    On teardown each server gets SIGTERM and must exit 0 (and, under ASan, report nothing)."""
    started = []

    def start(*args):
        argv = [str(server_bin), *map(str, args)]
        stderr_path = tmp_path / f"rpc-test-server-{len(started)}.stderr"
        with open(stderr_path, "wb") as errf:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                    stderr=errf)
        host, port, rest = _read_listening_line(proc, argv, stderr_path)
        srv = RpcServer(proc, host, port, stderr_path, argv)
        srv.extra_stdout = rest

        def drain():  # keep stdout from filling up; anything more than the line is a fault
            while True:
                chunk = os.read(proc.stdout.fileno(), 65536)
                if not chunk:
                    return
                srv.extra_stdout += chunk

        srv.drainer = threading.Thread(target=drain, daemon=True)
        srv.drainer.start()
        started.append(srv)
        return srv

    yield start

    problems = []
    for srv in started:
        problems += _stop_server(srv)
    if problems:
        pytest.fail("\n\n".join(problems), pytrace=False)


# ---- rpc-test-client ---------------------------------------------------------------------------

class ClientResult(dict):
    """rpc-test-client's JSON object, plus .returncode, .stderr and .wall_s."""


@pytest.fixture
def run_client(client_bin):
    """run_client(*args, expect_rc=0, timeout=120) -> ClientResult (a dict of its JSON output)."""

    def run(*args, expect_rc=0, timeout=120):
        argv = [str(client_bin), *map(str, args)]
        t0 = time.monotonic()
        try:
            r = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True,
                               timeout=timeout)
        except subprocess.TimeoutExpired as e:
            pytest.fail(f"{' '.join(argv)}: no exit within {timeout} s\nstderr:\n"
                        f"{tail((e.stderr or b'').decode(errors='replace'))}", pytrace=False)
        wall = time.monotonic() - t0
        out = r.stdout.decode(errors="replace")
        err = r.stderr.decode(errors="replace")
        where = f"{' '.join(argv)} (exit {r.returncode})\nstdout: {out!r}\nstderr:\n{tail(err)}"
        if ASAN and sanitizer_reports(err):
            pytest.fail(f"sanitizer report: {where}", pytrace=False)
        if r.returncode != expect_rc:
            pytest.fail(f"want exit status {expect_rc}: {where}", pytrace=False)
        if expect_rc != 0:
            res = ClientResult()
        else:
            try:
                obj = json.loads(out)
            except ValueError as e:
                pytest.fail(f"stdout is not one JSON object ({e}): {where}", pytrace=False)
            if not isinstance(obj, dict):
                pytest.fail(f"stdout is JSON but not an object: {where}", pytrace=False)
            for key, typ in (("status", int), ("message", str), ("max_rss_kb", int)):
                if not isinstance(obj.get(key), typ):
                    pytest.fail(f"key {key!r} missing or not {typ.__name__}: {where}",
                                pytrace=False)
            res = ClientResult(obj)
        res.returncode = r.returncode
        res.stderr = err
        res.wall_s = wall
        return res

    return run


def client_tls_args(certs, mode, client_cert=True):
    """rpc-test-client arguments for mode 'plaintext', 'tls' or 'mtls'."""
    if mode == "plaintext":
        return []
    args = ["--tls-ca", str(certs.ca)]
    if mode == "mtls" and client_cert == "other":
        args += ["--tls-cert", str(certs.other_client_cert),
                 "--tls-key", str(certs.other_client_key)]
    elif mode == "mtls" and client_cert:
        args += ["--tls-cert", str(certs.client_cert), "--tls-key", str(certs.client_key)]
    return args


# ---- grpcio channels -------------------------------------------------------------------------

@pytest.fixture
def grpc_channel(certs):
    """channel(port, mode='plaintext', client='client'|'other'|None) -> grpc.Channel.
    TLS channels connect to localhost:PORT and verify the server against the test CA.
    Closed on teardown."""
    chans = []

    def make(port, mode="plaintext", client="client"):
        if mode == "plaintext":
            ch = grpc.insecure_channel(f"127.0.0.1:{port}")
        else:
            kw = {}
            if mode == "mtls" and client is not None:
                cert, key = {"client": (certs.client_cert, certs.client_key),
                             "other": (certs.other_client_cert, certs.other_client_key)}[client]
                kw = dict(private_key=key.read_bytes(), certificate_chain=cert.read_bytes())
            creds = grpc.ssl_channel_credentials(root_certificates=certs.ca.read_bytes(), **kw)
            ch = grpc.secure_channel(f"localhost:{port}", creds)
        chans.append(ch)
        return ch

    yield make
    for ch in chans:
        ch.close()


# ---- a stock grpcio server with the same semantics as rpc-test-server ----------------------------

class _Counters:
    def __init__(self):
        self.lock = threading.Lock()
        self.calls = self.cancelled = self.deadline_exceeded = self.active = 0


def _status_code(n):
    for c in grpc.StatusCode:
        if c.value[0] == n:
            return c
    return grpc.StatusCode.UNKNOWN


class PyTestServicer:
    """netreel.rpctest.Test and grpc.health.v1.Health on grpcio, as documented in the proto."""

    def __init__(self, pb, hpb):
        self.pb, self.hpb = pb, hpb
        self.c = _Counters()
        self.unary_deadlines = []  # ctx.time_remaining() at the start of each Unary call

    # Every handler runs inside _call(): counts it, and notes how it ended.
    def _call(self, ctx, body):
        with self.c.lock:
            self.c.calls += 1
            self.c.active += 1
        done = threading.Event()
        if not ctx.add_callback(done.set):
            done.set()
        try:
            return body(done)
        finally:
            if done.is_set() and not ctx.is_active():
                with self.c.lock:
                    left = ctx.time_remaining()
                    if left is not None and left <= 0:
                        self.c.deadline_exceeded += 1
                    else:
                        self.c.cancelled += 1
            with self.c.lock:
                self.c.active -= 1

    def _gen_call(self, ctx, body):
        # A streaming response handler: the body is a generator, so keep the counting around it.
        with self.c.lock:
            self.c.calls += 1
            self.c.active += 1
        done = threading.Event()
        if not ctx.add_callback(done.set):
            done.set()
        try:
            yield from body(done)
        finally:
            if done.is_set() and not ctx.is_active():
                with self.c.lock:
                    left = ctx.time_remaining()
                    if left is not None and left <= 0:
                        self.c.deadline_exceeded += 1
                    else:
                        self.c.cancelled += 1
            with self.c.lock:
                self.c.active -= 1

    @staticmethod
    def _finish(req, ctx):
        if req.fail_code != 0:
            ctx.abort(_status_code(req.fail_code), req.fail_message)

    def Unary(self, req, ctx):
        self.unary_deadlines.append(ctx.time_remaining())

        def body(done):
            if req.delay_ms and done.wait(req.delay_ms / 1000):
                return self.pb.TestResponse()
            self._finish(req, ctx)
            return self.pb.TestResponse(payload=req.payload)
        return self._call(ctx, body)

    def ServerStream(self, req, ctx):
        def body(done):
            for i in range(req.count):
                if i > 0 and req.delay_ms and done.wait(req.delay_ms / 1000):
                    return
                if done.is_set():
                    return
                yield self.pb.TestResponse(payload=bytes(req.size))
            self._finish(req, ctx)
        return self._gen_call(ctx, body)

    def ClientStream(self, it, ctx):
        def body(done):
            n = nbytes = 0
            h = FNV_OFFSET
            for req in it:
                n += 1
                nbytes += len(req.payload)
                h = fnv1a64(req.payload, h)
                if req.recv_delay_ms and done.wait(req.recv_delay_ms / 1000):
                    return self.pb.TestResponse()
            return self.pb.TestResponse(count=n, bytes=nbytes, checksum=h)
        return self._call(ctx, body)

    def Bidi(self, it, ctx):
        def body(done):
            for req in it:
                yield self.pb.TestResponse(payload=req.payload)
        return self._gen_call(ctx, body)

    def GetCounters(self, req, ctx):
        def body(done):
            with self.c.lock:
                return self.pb.Counters(calls=self.c.calls, cancelled=self.c.cancelled,
                                        deadline_exceeded=self.c.deadline_exceeded,
                                        active=self.c.active)
        return self._call(ctx, body)

    # grpc.health.v1.Health
    _KNOWN = ("", SERVICE)

    def Check(self, req, ctx):
        if req.service not in self._KNOWN:
            ctx.abort(grpc.StatusCode.NOT_FOUND, f"unknown service {req.service!r}")
        return self.hpb.HealthCheckResponse(status=self.hpb.HealthCheckResponse.SERVING)

    def Watch(self, req, ctx):
        H = self.hpb.HealthCheckResponse
        yield H(status=H.SERVING if req.service in self._KNOWN else H.SERVICE_UNKNOWN)
        done = threading.Event()
        if ctx.add_callback(done.set):
            done.wait()

    def handlers(self):
        pb, hpb = self.pb, self.hpb
        req_de, resp_ser = pb.TestRequest.FromString, pb.TestResponse.SerializeToString
        test = grpc.method_handlers_generic_handler(SERVICE, {
            "Unary": grpc.unary_unary_rpc_method_handler(self.Unary, req_de, resp_ser),
            "ServerStream": grpc.unary_stream_rpc_method_handler(self.ServerStream, req_de,
                                                                 resp_ser),
            "ClientStream": grpc.stream_unary_rpc_method_handler(self.ClientStream, req_de,
                                                                 resp_ser),
            "Bidi": grpc.stream_stream_rpc_method_handler(self.Bidi, req_de, resp_ser),
            "GetCounters": grpc.unary_unary_rpc_method_handler(
                self.GetCounters, pb.CountersRequest.FromString, pb.Counters.SerializeToString),
        })
        hreq, hresp = hpb.HealthCheckRequest.FromString, hpb.HealthCheckResponse.SerializeToString
        health = grpc.method_handlers_generic_handler(HEALTH_SERVICE, {
            "Check": grpc.unary_unary_rpc_method_handler(self.Check, hreq, hresp),
            "Watch": grpc.unary_stream_rpc_method_handler(self.Watch, hreq, hresp),
        })
        return (test, health)


@pytest.fixture
def start_grpc_server(rpctest, certs):
    """start(mode='plaintext'|'tls'|'mtls') -> namespace(addr, port, servicer): a grpcio server
    on 127.0.0.1, port 0. Stopped on teardown."""
    servers = []

    def start(mode="plaintext"):
        servicer = PyTestServicer(rpctest.pb, rpctest.hpb)
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=32),
                             handlers=servicer.handlers(),
                             options=[("grpc.so_reuseport", 0)])
        if mode == "plaintext":
            port = server.add_insecure_port("127.0.0.1:0")
        else:
            creds = grpc.ssl_server_credentials(
                [(certs.server_key.read_bytes(), certs.server_cert.read_bytes())],
                root_certificates=certs.ca.read_bytes() if mode == "mtls" else None,
                require_client_auth=(mode == "mtls"))
            port = server.add_secure_port("127.0.0.1:0", creds)
        assert port > 0, "grpcio could not bind 127.0.0.1:0"
        server.start()
        servers.append(server)
        return types.SimpleNamespace(addr=f"127.0.0.1:{port}", port=port, servicer=servicer,
                                     server=server)

    yield start
    for s in servers:
        s.stop(grace=None).wait(10)


@pytest.fixture
def grpc_server(start_grpc_server):
    """A plaintext grpcio server implementing netreel.rpctest.Test (and Health)."""
    return start_grpc_server("plaintext")


# ---- netreel-store (tests/integration/store/) ---------------------------------------------------
# The processes, tools and pcapng reader are in store_helpers.py; these fixtures own their
# lifetimes: every store is stopped on teardown (SIGTERM, exit 0, no sanitizer report).


@pytest.fixture(scope="session")
def store_bins(build_dir):
    """Paths of netreel-store, store-feeder and store-snapshot in NETREEL_BUILD."""
    b = types.SimpleNamespace(store=build_dir / "bin" / "netreel-store",
                              feeder=build_dir / "tests" / "store-feeder",
                              snapshot=build_dir / "tests" / "store-snapshot")
    missing = [str(p) for p in vars(b).values() if not (p.is_file() and os.access(p, os.X_OK))]
    if missing:
        pytest.fail("missing program(s): " + ", ".join(missing) + " -- build them with `make`",
                    pytrace=False)
    return b


@pytest.fixture(scope="session")
def store_pb(tmp_path_factory, protos):
    """netreel.v1 messages (common.proto and store.proto) as one namespace, generated with protoc
    at test time; .health is grpc.health.v1."""
    out = tmp_path_factory.mktemp("pb-store")
    cmd = ["protoc", f"--python_out={out}", "-Iproto", "proto/netreel/v1/common.proto",
           "proto/netreel/v1/store.proto"]
    r = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        pytest.fail(f"{' '.join(cmd)} failed ({r.returncode}):\n{r.stderr}", pytrace=False)
    # store_pb2 imports "netreel.v1.common_pb2": make the generated tree importable.
    sys.path.insert(0, str(out))
    import importlib
    mods = [importlib.import_module("netreel.v1.common_pb2"),
            importlib.import_module("netreel.v1.store_pb2")]
    ns = types.SimpleNamespace(health=protos.health)
    for m in mods:
        for name in list(m.DESCRIPTOR.message_types_by_name) + list(m.DESCRIPTOR.enum_types_by_name):
            setattr(ns, name, getattr(m, name))
    return ns


@pytest.fixture
def stores(store_bins, tmp_path):
    """start(*args, data_dir=None, node='node-a', metrics=True, wait=True) -> StoreProc:
    netreel-store --listen 127.0.0.1:0 --metrics-listen 127.0.0.1:0 (or off) --node NODE
    --data-dir DATA_DIR(tmp_path/data) ARGS, waited for until its msg=serving line."""
    started = []

    def start(*args, data_dir=None, node="node-a", metrics=True, wait=True):
        data_dir = Path(data_dir or tmp_path / "data")
        argv = [store_bins.store, "--listen", "127.0.0.1:0",
                "--metrics-listen", "127.0.0.1:0" if metrics else "off",
                "--node", node, "--data-dir", data_dir, *args]
        s = store_helpers.StoreProc(argv, data_dir, tmp_path / f"store-{len(started)}.stderr")
        started.append(s)
        if wait:
            s.wait_serving()
        return s

    yield start
    problems = []
    for s in started:
        problems += s.stop()
    if problems:
        pytest.fail("\n\n".join(problems), pytrace=False)


@pytest.fixture
def feeder(store_bins):
    """feed(store, *args, capture_id='cap-1', node='node-a', expect_ok=True, timeout=300) ->
    dict: runs store-feeder --store ADDR --capture-id ID --node NODE ARGS and returns its JSON
    line (plus 'rc' and 'stderr'). expect_ok: exit 0, status OK, every batch acked."""

    def feed(store, *args, capture_id="cap-1", node="node-a", expect_ok=True, timeout=300,
             addr=None):
        argv = [store_bins.feeder, "--store", addr or store.addr, "--capture-id", capture_id,
                "--node", node, *args]
        r, obj = store_helpers.run_tool(argv, timeout=timeout)
        where = (f"{' '.join(map(str, argv))} (exit {r.returncode})\nstdout: {r.stdout!r}\n"
                 f"stderr:\n{tail(r.stderr)}")
        if obj is None:
            pytest.fail(f"store-feeder printed no JSON line: {where}", pytrace=False)
        if expect_ok and (r.returncode != 0 or obj["status"] != 0 or
                          obj["acked_seq"] != obj["last_seq"]):
            pytest.fail(f"store-feeder did not get everything acked: {where}", pytrace=False)
        obj["rc"] = r.returncode
        obj["stderr"] = r.stderr
        return obj

    return feed


@pytest.fixture
def snapshot_tool(store_bins):
    """snap(store, out, *args, expect_ok=True) -> dict: store-snapshot --store ADDR -o OUT ARGS,
    its JSON line (plus 'rc' and 'stderr')."""

    def snap(store, out, *args, expect_ok=True, timeout=300):
        argv = [store_bins.snapshot, "--store", store.addr, "-o", out, *args]
        r, obj = store_helpers.run_tool(argv, timeout=timeout)
        where = (f"{' '.join(map(str, argv))} (exit {r.returncode})\nstdout: {r.stdout!r}\n"
                 f"stderr:\n{tail(r.stderr)}")
        if obj is None:
            pytest.fail(f"store-snapshot printed no JSON line: {where}", pytrace=False)
        if expect_ok and (r.returncode != 0 or obj["status"] != 0 or not obj["header"] or
                          not obj["summary"]):
            pytest.fail(f"store-snapshot failed: {where}", pytrace=False)
        obj["rc"] = r.returncode
        obj["stderr"] = r.stderr
        return obj

    return snap


@pytest.fixture
def store_client(grpc_channel, store_pb):
    """client(store, mode='plaintext', client='client') -> store_helpers.StoreStub (grpcio)."""

    def make(store, mode="plaintext", client="client"):
        return store_helpers.StoreStub(grpc_channel(store.port, mode, client), store_pb,
                                       store_pb.health)

    return make


# ---- fault injection (faults/test_faults_*.py) --------------------------------------------------
# Long fault tests carry @pytest.mark.faults: `make test` skips them, `make test-faults`
# (NETREEL_FAULTS=1, -m faults) runs them.

def pytest_configure(config):
    config.addinivalue_line("markers", "faults: a long fault-injection test; runs only with "
                            "NETREEL_FAULTS=1 (make test-faults)")


def pytest_collection_modifyitems(config, items):
    if os.environ.get("NETREEL_FAULTS", "0") not in ("", "0"):
        return
    skip = pytest.mark.skip(reason="long fault test: NETREEL_FAULTS=1 (make test-faults)")
    for item in items:
        if "faults" in item.keywords:
            item.add_marker(skip)
