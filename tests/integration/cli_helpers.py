"""Helpers for the `netreel` CLI tests (test_cli_*.py): a fake hub on grpcio (generic handlers,
stubs from proto/ generated at test time), fake `kubectl` and `helm` programs that record their
arguments (the kubectl one also answers for Secrets and runs a real TCP port-forward to the
fake hub), and a runner that checks what every CLI run must hold: errors are one line on stderr,
no sanitizer report.

The fixtures that use these are at the end (cli_bin, hub_pb, fake_hub, fake_tools, run_cli);
conftest.py's build_dir, store_pb and certs are reused.
"""

import base64
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import types
from concurrent import futures
from pathlib import Path

import grpc
import pytest

REPO = Path(__file__).resolve().parents[2]
ASAN = os.environ.get("NETREEL_ASAN", "0") not in ("", "0")
SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "runtime error:", "LeakSanitizer")
HUB_SERVICE = "netreel.v1.Hub"


def tail(text, n=4000):
    return text if len(text) <= n else "...\n" + text[-n:]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def closed_port():
    """A port nothing listens on (bound and closed at once)."""
    return free_port()


def stamp(ns):
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(ns // 1_000_000_000))


# ---- a small valid pcapng, so the bytes the CLI writes can be compared and opened ------------

def pcapng_bytes(n_packets=5, t0_ns=1_795_000_000_000_000_000):
    def block(btype, body):
        total = 12 + len(body)
        return struct.pack("<II", btype, total) + body + struct.pack("<I", total)

    def opt(code, val):
        pad = (-len(val)) % 4
        return struct.pack("<HH", code, len(val)) + val + b"\0" * pad

    shb = block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1) + opt(0, b""))
    idb = block(1, struct.pack("<HHI", 1, 0, 65535) + opt(2, b"node-a/eth0") +
                opt(9, b"\x09") + opt(0, b""))
    out = shb + idb
    for i in range(n_packets):
        frame = bytes(range(60))
        ts = t0_ns + i * 1000
        body = struct.pack("<IIIII", 0, ts >> 32, ts & 0xFFFFFFFF, len(frame), len(frame)) + frame
        out += block(6, body)
    return out


# ---- the fake hub --------------------------------------------------------------------------

class FakeHub:
    """netreel.v1.Hub on grpcio. Snapshot streams `chunks` (bytes) as FileChunks, the last one
    carrying `summary` (None: no summary at all); with hang_after=N it stops before chunk N
    until release is set (reached is set when it gets there). Status answers `cluster`. With
    `token`, both methods want "authorization: Bearer TOKEN". Every request and its metadata are
    kept."""

    def __init__(self, pb):
        self.pb = pb
        self.requests, self.metadata = [], []
        self.chunks = [b""]
        self.summary = None
        self.cluster = pb.ClusterStatus()
        self.token = None
        self.hang_after = None
        self.reached = threading.Event()
        self.release = threading.Event()
        self.fail = None  # (grpc.StatusCode, message) after the chunks
        self.server = None
        self.addr = None

    def _auth(self, ctx):
        md = dict(ctx.invocation_metadata())
        self.metadata.append(md)
        if self.token is not None and md.get("authorization") != f"Bearer {self.token}":
            ctx.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or wrong bearer token")

    def Snapshot(self, req, ctx):
        self.requests.append(req)
        self._auth(ctx)
        n = len(self.chunks)
        for i, data in enumerate(self.chunks):
            if self.hang_after is not None and i == self.hang_after:
                self.reached.set()
                while not self.release.wait(0.05):
                    if not ctx.is_active():
                        return
            last = i == n - 1
            if last and self.summary is not None and self.fail is None:
                yield self.pb.FileChunk(data=data, summary=self.summary)
            else:
                yield self.pb.FileChunk(data=data)
        if self.fail:
            ctx.abort(*self.fail)

    def Status(self, req, ctx):
        self._auth(ctx)
        return self.cluster

    def start(self, certs=None, mode="plaintext"):
        pb = self.pb
        handler = grpc.method_handlers_generic_handler(HUB_SERVICE, {
            "Snapshot": grpc.unary_stream_rpc_method_handler(
                self.Snapshot, pb.SnapshotRequest.FromString, pb.FileChunk.SerializeToString),
            "Status": grpc.unary_unary_rpc_method_handler(
                self.Status, pb.StatusRequest.FromString, pb.ClusterStatus.SerializeToString),
        })
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=8),
                                  handlers=(handler,), options=[("grpc.so_reuseport", 0)])
        if mode == "plaintext":
            port = self.server.add_insecure_port("127.0.0.1:0")
        else:
            creds = grpc.ssl_server_credentials(
                [(certs.server_key.read_bytes(), certs.server_cert.read_bytes())],
                root_certificates=certs.ca.read_bytes() if mode == "mtls" else None,
                require_client_auth=(mode == "mtls"))
            port = self.server.add_secure_port("127.0.0.1:0", creds)
        self.server.start()
        self.port = port
        self.addr = f"127.0.0.1:{port}"
        return self

    def stop(self):
        if self.server:
            self.release.set()
            self.server.stop(grace=None).wait(10)
            self.server = None


def summary(pb, packets=5, nbytes=0, since=0, until=0, stores=(("node-a", True, ""),)):
    """A SnapshotSummary; stores are (node, ok, error)."""
    res = [pb.StoreResult(store=f"10.0.0.{i + 1}:8897", node=node, ok=ok, error=err,
                          packets=packets if ok else 0)
           for i, (node, ok, err) in enumerate(stores)]
    return pb.SnapshotSummary(packets=packets, bytes=nbytes, since_ns=since, until_ns=until,
                              stores=res)


# ---- fake kubectl and helm -----------------------------------------------------------------

FAKE_KUBECTL = r'''#!/usr/bin/python3
# A kubectl stand-in for the CLI tests: logs its arguments, answers from a JSON state file.
import json, os, signal, socket, sys, threading
state = json.load(open(os.environ["FAKE_KUBE_STATE"]))
with open(os.environ["FAKE_KUBE_LOG"], "a") as f:
    f.write(json.dumps(["kubectl"] + sys.argv[1:]) + "\n")
args = sys.argv[1:]
ns = None
if "--namespace" in args:
    i = args.index("--namespace"); ns = args[i + 1]; del args[i:i + 2]
def fail(msg):
    sys.stderr.write(msg + "\n"); sys.exit(1)
if args[:2] == ["config", "current-context"]:
    if state.get("context"):
        print(state["context"]); sys.exit(0)
    fail("error: current-context is not set")
if args[:2] == ["get", "secret"]:
    sec = state.get("secrets", {}).get(f"{ns}/{args[2]}")
    if sec is None:
        fail(f'Error from server (NotFound): secrets "{args[2]}" not found')
    jp = args[args.index("-o") + 1]
    if jp == "jsonpath={.data.token}":
        sys.stdout.write(sec["token"])
    elif jp == 'jsonpath={.data.ca\\.crt}{"\\n"}{.data.client\\.crt}{"\\n"}{.data.client\\.key}':
        sys.stdout.write("\n".join(sec[k] for k in ("ca.crt", "client.crt", "client.key")))
    else:
        fail(f"fake kubectl: unexpected jsonpath {jp}")
    sys.exit(0)
if args[:2] == ["get", "namespace"]:
    if args[2] in state.get("namespaces", []):
        print(f"namespace/{args[2]}"); sys.exit(0)
    fail(f'Error from server (NotFound): namespaces "{args[2]}" not found')
if args[:1] in (["create"], ["label"]):
    sys.exit(0)
if args[:1] == ["port-forward"]:
    target = state.get("forward_to")
    if not target or args[-2] != "service/netreel-hub":
        fail(f'Error from server (NotFound): services "netreel-hub" not found')
    host, port = target.rsplit(":", 1)
    ls = socket.socket(); ls.bind(("127.0.0.1", 0)); ls.listen(16)
    print(f"Forwarding from 127.0.0.1:{ls.getsockname()[1]} -> 8898", flush=True)
    signal.signal(signal.SIGTERM, lambda *a: os._exit(0))
    def pipe(a, b):
        try:
            while True:
                d = a.recv(65536)
                if not d: break
                b.sendall(d)
        except OSError:
            pass
        for s in (a, b):
            try: s.shutdown(socket.SHUT_RDWR)
            except OSError: pass
    while True:
        c, _ = ls.accept()
        print(f"Handling connection for {ls.getsockname()[1]}", flush=True)
        u = socket.create_connection((host, int(port)))
        threading.Thread(target=pipe, args=(c, u), daemon=True).start()
        threading.Thread(target=pipe, args=(u, c), daemon=True).start()
fail(f"fake kubectl: unexpected arguments {args}")
'''

FAKE_HELM = r'''#!/usr/bin/python3
# A helm stand-in: logs its arguments and the content of every --values file.
import json, os, sys
args = sys.argv[1:]
values = None
if "--values" in args:
    path = args[args.index("--values") + 1]
    values = {"values": open(path).read(), "values_mode": oct(os.stat(path).st_mode & 0o777)}
with open(os.environ["FAKE_KUBE_LOG"], "a") as f:
    f.write(json.dumps(["helm"] + args + ([values] if values is not None else [])) + "\n")
state = json.load(open(os.environ["FAKE_KUBE_STATE"]))
if args[:1] == ["uninstall"] and not state.get("installed", True):
    sys.stderr.write("Error: uninstall: Release not loaded: netreel: release: not found\n")
    sys.exit(1)
sys.exit(state.get("helm_exit", 0))
'''


class FakeTools:
    """A bin folder with fake kubectl/helm (each may be left out), their shared state (JSON)
    and log; env() is an environment whose PATH has that folder and the system's basics."""

    def __init__(self, d, kubectl=True, helm=True):
        self.dir = Path(d)
        self.bin = self.dir / "bin"
        self.bin.mkdir(parents=True, exist_ok=True)
        self.state_path = self.dir / "state.json"
        self.log_path = self.dir / "log.jsonl"
        self.state = {"context": "kind-test", "secrets": {}, "namespaces": ["netreel"]}
        if kubectl:
            self._write("kubectl", FAKE_KUBECTL)
        if helm:
            self._write("helm", FAKE_HELM)
        self.save()

    def _write(self, name, text):
        p = self.bin / name
        p.write_text(text)
        p.chmod(0o755)

    def save(self):
        self.state_path.write_text(json.dumps(self.state))

    def calls(self):
        if not self.log_path.exists():
            return []
        return [json.loads(ln) for ln in self.log_path.read_text().splitlines() if ln.strip()]

    def env(self, **extra):
        # Only our folder: a real kubectl or helm on this machine must not be found.
        env = {k: v for k, v in os.environ.items() if not k.startswith("NETREEL_")}
        env["PATH"] = str(self.bin)
        env["FAKE_KUBE_STATE"] = str(self.state_path)
        env["FAKE_KUBE_LOG"] = str(self.log_path)
        env["NETREEL_LOCAL_HUB"] = "off"
        env.update({k: str(v) for k, v in extra.items()})
        return env

    def set_secret(self, ns, name, **data):
        self.state["secrets"][f"{ns}/{name}"] = {
            k.replace("_", "."): base64.b64encode(v if isinstance(v, bytes) else v.encode())
            .decode() for k, v in data.items()}
        self.save()


# ---- running the CLI -----------------------------------------------------------------------

def base_env(**extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("NETREEL_")}
    env["NETREEL_LOCAL_HUB"] = "off"  # a hub running on this machine must not answer the tests
    env["PATH"] = "/usr/bin:/bin"
    env.update({k: str(v) for k, v in extra.items()})
    return env


class CliResult:
    def __init__(self, argv, rc, out, err, wall):
        self.argv, self.rc, self.out, self.err, self.wall = argv, rc, out, err, wall

    @property
    def stdout(self):
        return self.out.decode(errors="replace")

    @property
    def stderr(self):
        return self.err.decode(errors="replace")

    def where(self):
        return (f"{' '.join(map(str, self.argv))} (exit {self.rc})\nstdout: "
                f"{tail(self.stdout, 2000)!r}\nstderr:\n{tail(self.stderr)}")


def check_sanitizer(text, where):
    found = [m for m in SANITIZER_MARKERS if m in text]
    assert not found, f"sanitizer report ({', '.join(found)}): {where}"


def run(cli, *args, env=None, cwd=None, timeout=60, expect=None):
    argv = [str(cli), *map(str, args)]
    t0 = time.monotonic()
    try:
        r = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, env=env,
                           cwd=cwd, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        raise AssertionError(f"{' '.join(argv)}: no exit within {timeout} s\nstderr:\n"
                             f"{tail((e.stderr or b'').decode(errors='replace'))}")
    res = CliResult(argv, r.returncode, r.stdout, r.stderr, time.monotonic() - t0)
    check_sanitizer(res.stderr, res.where())
    if expect is not None:
        assert res.rc == expect, f"want exit {expect}: {res.where()}"
    return res


def one_error_line(res):
    """A failing run's stderr: exactly one line, "netreel: ...". Returns it."""
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, f"want one line on stderr: {res.where()}"
    assert lines[0].startswith("netreel: "), res.where()
    return lines[0]


# ---- fixtures (imported by the test modules) ---------------------------------------------------

@pytest.fixture(scope="session")
def cli_bin(build_dir):
    p = build_dir / "bin" / "netreel"
    if not (p.is_file() and os.access(p, os.X_OK)):
        pytest.fail(f"missing {p} -- build it with `make`", pytrace=False)
    return p


@pytest.fixture(scope="session")
def hub_pb(tmp_path_factory, store_pb):
    """netreel.v1 messages of common, store and hub.proto as one namespace."""
    out = tmp_path_factory.mktemp("pb-hub")
    cmd = ["protoc", f"--python_out={out}", "-Iproto", "proto/netreel/v1/hub.proto"]
    r = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        pytest.fail(f"{' '.join(cmd)} failed ({r.returncode}):\n{r.stderr}", pytrace=False)
    sys.path.insert(0, str(out))
    import importlib
    importlib.invalidate_caches()
    mod = importlib.import_module("netreel.v1.hub_pb2")
    ns = types.SimpleNamespace(**vars(store_pb))
    for name in mod.DESCRIPTOR.message_types_by_name:
        setattr(ns, name, getattr(mod, name))
    return ns


@pytest.fixture
def fake_hub(hub_pb, certs):
    """start(mode='plaintext'|'tls'|'mtls') -> FakeHub, started on 127.0.0.1:0; stopped on
    teardown."""
    hubs = []

    def start(mode="plaintext"):
        h = FakeHub(hub_pb).start(certs, mode)
        hubs.append(h)
        return h

    yield start
    for h in hubs:
        h.stop()


@pytest.fixture
def fake_tools(tmp_path):
    """make(kubectl=True, helm=True) -> FakeTools in tmp_path/tools."""
    def make(kubectl=True, helm=True):
        return FakeTools(tmp_path / "tools", kubectl=kubectl, helm=helm)
    return make
