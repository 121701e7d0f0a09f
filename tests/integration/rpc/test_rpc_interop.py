"""lib/rpc against stock gRPC (grpcio), in both directions, and against itself.

  a. grpcio client  -> rpc-test-server (lib/rpc)   plaintext, TLS, mTLS
  b. raw HTTP/2 (python3-h2) -> rpc-test-server    what a non-gRPC peer gets
  c. rpc-test-client (lib/rpc) -> grpcio server
  d. rpc-test-client -> rpc-test-server

The service is tests/proto/rpctest.proto; the programs' command lines are described in
tests/integration/conftest.py's fixtures and tests/integration/bin/.
"""

import queue
import socket
import threading
import time

import grpc
import h2.config
import h2.connection
import h2.events
import pytest

MODES = ["plaintext", "tls", "mtls"]
TEST = "/netreel.rpctest.Test/"
STATUS_MESSAGE = "no such thing: 100% ü\n"  # '%', non-ASCII and a control byte: percent-encoded
# Deadline tests: the handler would answer only after SLOW_MS, so a call that ends within
# DEADLINE_BOUND_S was ended by its deadline. The bound only has to tell "ended by the deadline"
# from "waited for the handler": it is not a performance threshold.
SLOW_MS = 30000
DEADLINE_BOUND_S = 10.0


@pytest.fixture(params=MODES)
def mode(request):
    return request.param


@pytest.fixture
def lib_server(rpc_server, tls_args):
    """start(mode='plaintext', *extra_args) -> RpcServer with the test certificates."""
    def start(mode="plaintext", *extra):
        return rpc_server(*tls_args.server(mode), *extra)
    return start


def poll(get, cond, what, timeout=10.0, interval=0.05):
    """Calls get() until cond(value) holds; fails with the last value after timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = get()
        if cond(value):
            return value
        if time.monotonic() >= deadline:
            pytest.fail(f"{what} did not happen within {timeout:g} s; last value: {value}",
                        pytrace=False)
        time.sleep(interval)


def counters_str(c):
    return (f"calls={c.calls} cancelled={c.cancelled} deadline_exceeded={c.deadline_exceeded} "
            f"active={c.active}")


# =============================================================================================
# a. grpcio client -> lib/rpc server
# =============================================================================================

@pytest.fixture
def lib_stub(mode, lib_server, grpc_channel, rpctest):
    """(server, Test stub) for a lib/rpc server in `mode`, grpcio client with the right creds."""
    srv = lib_server(mode)
    return srv, rpctest.stub(grpc_channel(srv.port, mode))


def test_grpcio_unary_echo(lib_stub, rpctest):
    _, stub = lib_stub
    Req = rpctest.pb.TestRequest
    for payload in (b"hello \xc3\xbc \x00\xff", b""):
        assert stub.Unary(Req(payload=payload), timeout=10).payload == payload
    # A deferred answer: the handler replies 50 ms later.
    assert stub.Unary(Req(payload=b"later", delay_ms=50), timeout=10).payload == b"later"


@pytest.mark.parametrize("count,size", [(100, 1000), (10, 3 * 1024 * 1024)],
                         ids=["100x1000", "10x3MiB"])
def test_grpcio_server_stream(lib_stub, rpctest, count, size):
    _, stub = lib_stub
    call = stub.ServerStream(rpctest.pb.TestRequest(count=count, size=size), timeout=60)
    sizes = [len(r.payload) for r in call]
    assert sizes == [size] * count
    assert call.code() == grpc.StatusCode.OK


def test_grpcio_client_stream(lib_stub, rpctest):
    _, stub = lib_stub
    count, size = 50, 10000
    reqs = (rpctest.pb.TestRequest(payload=rpctest.pattern(i, size)) for i in range(count))
    resp = stub.ClientStream(reqs, timeout=30)
    assert (resp.count, resp.bytes) == (count, count * size)
    assert resp.checksum == rpctest.pattern_checksum(count, size)


def test_grpcio_bidi_ping_pong(lib_stub, rpctest):
    """Send one, read one: the server must answer each message before the next is sent."""
    _, stub = lib_stub
    q = queue.Queue()

    def requests():
        while True:
            item = q.get(timeout=10)  # an exception here cancels the call
            if item is None:
                return
            yield item

    call = stub.Bidi(requests(), timeout=30)
    for i in range(20):
        payload = f"ping {i} ".encode() * (i + 1)
        q.put(rpctest.pb.TestRequest(payload=payload))
        assert next(call).payload == payload
    q.put(None)
    assert list(call) == []
    assert call.code() == grpc.StatusCode.OK


@pytest.mark.parametrize("client", [None, "other"], ids=["no-client-cert", "untrusted-client-cert"])
def test_grpcio_mtls_rejects_client(lib_server, grpc_channel, rpctest, client):
    srv = lib_server("mtls")
    Req = rpctest.pb.TestRequest
    bad = rpctest.stub(grpc_channel(srv.port, "mtls", client=client))
    with pytest.raises(grpc.RpcError) as e:
        bad.Unary(Req(payload=b"x"), timeout=10)
    assert e.value.code() == grpc.StatusCode.UNAVAILABLE, e.value
    # The server keeps serving clients with a good certificate.
    good = rpctest.stub(grpc_channel(srv.port, "mtls"))
    assert good.Unary(Req(payload=b"ok"), timeout=10).payload == b"ok"


def test_grpcio_deadline(lib_server, grpc_channel, rpctest):
    srv = lib_server()
    stub = rpctest.stub(grpc_channel(srv.port))
    Req = rpctest.pb.TestRequest
    assert stub.Unary(Req(payload=b"warm"), timeout=10).payload == b"warm"  # connected
    t0 = time.monotonic()
    with pytest.raises(grpc.RpcError) as e:
        stub.Unary(Req(payload=b"slow", delay_ms=SLOW_MS), timeout=0.3)
    elapsed = time.monotonic() - t0
    assert e.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED, e.value
    assert elapsed < DEADLINE_BOUND_S, f"took {elapsed:.2f} s: not ended by its 0.3 s deadline"
    c = poll(lambda: stub.GetCounters(rpctest.pb.CountersRequest(), timeout=5),
             lambda c: c.deadline_exceeded + c.cancelled >= 1,
             "server counting the call as deadline_exceeded or cancelled")
    assert c.calls >= 3, counters_str(c)


def test_grpcio_cancel_server_stream(lib_server, grpc_channel, rpctest):
    srv = lib_server()
    stub = rpctest.stub(grpc_channel(srv.port))
    call = stub.ServerStream(rpctest.pb.TestRequest(count=1000, size=100, delay_ms=20), timeout=60)
    for _ in range(3):
        assert len(next(call).payload) == 100
    call.cancel()
    assert call.code() == grpc.StatusCode.CANCELLED
    # `active` includes the GetCounters call that reads it: 1 means the stream's handler is gone.
    c = poll(lambda: stub.GetCounters(rpctest.pb.CountersRequest(), timeout=5),
             lambda c: c.cancelled >= 1 and c.active == 1,
             "server seeing the cancel (cancelled >= 1, active == 1)")
    assert c.calls >= 2, counters_str(c)


def test_grpcio_oversize_message(lib_server, grpc_channel, rpctest):
    srv = lib_server("plaintext", "--max-recv", 1024)
    stub = rpctest.stub(grpc_channel(srv.port))
    Req = rpctest.pb.TestRequest
    with pytest.raises(grpc.RpcError) as e:
        stub.Unary(Req(payload=b"x" * 2000), timeout=10)
    assert e.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, e.value
    assert stub.Unary(Req(payload=b"y" * 500), timeout=10).payload == b"y" * 500


@pytest.mark.parametrize("path", [TEST + "Nope", "/no.Such/Service"])
def test_grpcio_unknown_method(lib_server, grpc_channel, rpctest, path):
    srv = lib_server()
    ch = grpc_channel(srv.port)
    Req, Resp = rpctest.pb.TestRequest, rpctest.pb.TestResponse
    with pytest.raises(grpc.RpcError) as e:
        ch.unary_unary(path, Req.SerializeToString, Resp.FromString)(Req(payload=b"x"), timeout=10)
    assert e.value.code() == grpc.StatusCode.UNIMPLEMENTED, e.value
    # A streaming call to it: the server must answer without waiting for the client's end.
    call = ch.stream_stream(path, Req.SerializeToString, Resp.FromString)(
        iter([Req(payload=b"a"), Req(payload=b"b")]), timeout=10)
    with pytest.raises(grpc.RpcError) as e:
        list(call)
    assert e.value.code() == grpc.StatusCode.UNIMPLEMENTED, e.value
    assert rpctest.stub(ch).Unary(Req(payload=b"still here"), timeout=10).payload == b"still here"


def test_grpcio_statuses(lib_server, grpc_channel, rpctest):
    srv = lib_server()
    stub = rpctest.stub(grpc_channel(srv.port))
    Req = rpctest.pb.TestRequest
    with pytest.raises(grpc.RpcError) as e:
        stub.Unary(Req(payload=b"x", fail_code=5, fail_message=STATUS_MESSAGE), timeout=10)
    assert e.value.code() == grpc.StatusCode.NOT_FOUND
    assert e.value.details() == STATUS_MESSAGE
    # Deferred failure.
    with pytest.raises(grpc.RpcError) as e:
        stub.Unary(Req(delay_ms=50, fail_code=10, fail_message="aborted later"), timeout=10)
    assert (e.value.code(), e.value.details()) == (grpc.StatusCode.ABORTED, "aborted later")
    # A stream that ends with an error after its messages.
    call = stub.ServerStream(Req(count=3, size=10, fail_code=9, fail_message="stream: 3/3 done"),
                             timeout=10)
    got = []
    with pytest.raises(grpc.RpcError) as e:
        for r in call:
            got.append(len(r.payload))
    assert got == [10, 10, 10]
    assert (e.value.code(), e.value.details()) == (grpc.StatusCode.FAILED_PRECONDITION,
                                                   "stream: 3/3 done")


def test_grpcio_health(lib_server, grpc_channel, rpctest):
    srv = lib_server()
    health = rpctest.health_stub(grpc_channel(srv.port))
    HReq, HResp = rpctest.hpb.HealthCheckRequest, rpctest.hpb.HealthCheckResponse
    assert health.Check(HReq(service=""), timeout=10).status == HResp.SERVING
    assert health.Check(HReq(service="netreel.rpctest.Test"), timeout=10).status == HResp.SERVING
    with pytest.raises(grpc.RpcError) as e:
        health.Check(HReq(service="nope"), timeout=10)
    assert e.value.code() == grpc.StatusCode.NOT_FOUND, e.value

    watch = health.Watch(HReq(service=""), timeout=30)
    assert next(watch).status == HResp.SERVING
    watch.cancel()

    watch = health.Watch(HReq(service="nope"), timeout=30)
    assert next(watch).status == HResp.SERVICE_UNKNOWN
    done = threading.Event()
    watch.add_done_callback(lambda _: done.set())
    assert not done.wait(0.5), f"Watch('nope') ended instead of staying open: {watch.code()}"
    watch.cancel()
    assert done.wait(5)
    assert watch.code() == grpc.StatusCode.CANCELLED


# =============================================================================================
# b. raw HTTP/2 -> lib/rpc server
# =============================================================================================

EMPTY_GRPC_MESSAGE = b"\x00\x00\x00\x00\x00"


def h2_request(port, content_type, timeout=5.0):
    """POST /netreel.rpctest.Test/Unary with one empty gRPC message; returns the response
    headers of stream 1 as a dict."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        conn = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
        conn.initiate_connection()
        sid = conn.get_next_available_stream_id()
        conn.send_headers(sid, [(":method", "POST"), (":scheme", "http"),
                                (":path", TEST + "Unary"), (":authority", f"127.0.0.1:{port}"),
                                ("content-type", content_type), ("te", "trailers")])
        conn.send_data(sid, EMPTY_GRPC_MESSAGE, end_stream=True)
        sock.sendall(conn.data_to_send())
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                pytest.fail(f"no response headers within {timeout:g} s", pytrace=False)
            sock.settimeout(left)
            try:
                data = sock.recv(65536)
            except socket.timeout:
                continue
            if not data:
                pytest.fail("server closed the connection before responding", pytrace=False)
            for ev in conn.receive_data(data):
                if isinstance(ev, h2.events.ResponseReceived) and ev.stream_id == sid:
                    return dict(ev.headers)
                if isinstance(ev, h2.events.StreamReset) and ev.stream_id == sid:
                    pytest.fail(f"stream reset ({ev.error_code!r}) before a response",
                                pytrace=False)
                if isinstance(ev, h2.events.ConnectionTerminated):
                    pytest.fail(f"GOAWAY ({ev.error_code!r}) before a response", pytrace=False)
            out = conn.data_to_send()
            if out:
                sock.sendall(out)
    finally:
        sock.close()


def test_h2_wrong_content_type_is_415(lib_server, grpc_channel, rpctest):
    srv = lib_server()
    # Control: the same request as application/grpc is an ordinary call.
    ok = h2_request(srv.port, "application/grpc")
    assert ok[":status"] == "200", ok
    assert ok.get("content-type", "").startswith("application/grpc"), ok
    bad = h2_request(srv.port, "text/plain")
    assert bad[":status"] == "415", bad
    stub = rpctest.stub(grpc_channel(srv.port))
    assert stub.Unary(rpctest.pb.TestRequest(payload=b"after"), timeout=10).payload == b"after"


def test_h2_bad_preface_closes_connection(lib_server, grpc_channel, rpctest):
    srv = lib_server()
    sock = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
    try:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: keep-alive\r\n\r\n")
        deadline = time.monotonic() + 5
        closed = False
        while not closed:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            sock.settimeout(left)
            try:
                closed = sock.recv(65536) == b""  # a SETTINGS or GOAWAY frame may come first
            except socket.timeout:
                break
            except ConnectionResetError:
                closed = True
        assert closed, "server did not close a connection that began with HTTP/1.1 within 5 s"
    finally:
        sock.close()
    stub = rpctest.stub(grpc_channel(srv.port))
    assert stub.Unary(rpctest.pb.TestRequest(payload=b"after"), timeout=10).payload == b"after"


# =============================================================================================
# c. lib/rpc client -> grpcio server
# =============================================================================================

def py_target(gs, mode):
    return gs.addr if mode == "plaintext" else f"localhost:{gs.port}"


def test_client_to_grpcio_unary(start_grpc_server, run_client, tls_args, mode):
    gs = start_grpc_server(mode)
    r = run_client("--target", py_target(gs, mode), *tls_args.client(mode),
                   "unary", "--payload", "hello, grpcio ü")
    assert (r["status"], r["payload"]) == (0, "hello, grpcio ü"), r
    r = run_client("--target", py_target(gs, mode), *tls_args.client(mode),
                   "unary", "--payload", "deferred", "--delay-ms", 50)
    assert (r["status"], r["payload"]) == (0, "deferred"), r


@pytest.mark.parametrize("count,size", [(100, 1000), (10, 3 * 1024 * 1024)],
                         ids=["100x1000", "10x3MiB"])
def test_client_to_grpcio_server_stream(grpc_server, run_client, count, size):
    r = run_client("--target", grpc_server.addr, "server-stream", "--count", count, "--size", size)
    assert (r["status"], r["responses"], r["bytes"]) == (0, count, count * size), r


def test_client_to_grpcio_client_stream(grpc_server, run_client, rpctest):
    count, size = 50, 10000
    r = run_client("--target", grpc_server.addr, "client-stream", "--count", count, "--size", size)
    want = rpctest.pattern_checksum(count, size)
    assert r["status"] == 0, r
    assert (r["count"], r["bytes"], r["sent_bytes"]) == (count, count * size, count * size), r
    assert r["expected_checksum"] == want, f"client's own checksum is off: {r}"
    assert r["checksum"] == want, r


def test_client_to_grpcio_bidi(grpc_server, run_client):
    r = run_client("--target", grpc_server.addr, "bidi", "--count", 20, "--size", 100)
    assert (r["status"], r["responses"], r["bytes"]) == (0, 20, 2000), r


def test_client_to_grpcio_deadline(grpc_server, run_client):
    # 2 s leaves room for connecting first: the call must still have time left when it arrives.
    r = run_client("--target", grpc_server.addr, "--deadline-ms", 2000,
                   "unary", "--payload", "slow", "--delay-ms", SLOW_MS)
    assert r["status"] == 4, r
    assert r.wall_s < DEADLINE_BOUND_S, f"took {r.wall_s:.2f} s: not ended by its 2 s deadline"
    # The deadline travelled as grpc-timeout: grpcio's handler saw it (no more than was given).
    seen = grpc_server.servicer.unary_deadlines
    assert len(seen) == 1 and seen[0] is not None and 0 < seen[0] <= 2, seen


def test_client_to_grpcio_status(grpc_server, run_client):
    r = run_client("--target", grpc_server.addr, "unary", "--payload", "x",
                   "--fail-code", 7, "--fail-message", "denied: 50% ü")
    assert (r["status"], r["message"]) == (7, "denied: 50% ü"), r
    r = run_client("--target", grpc_server.addr, "server-stream", "--count", 3, "--size", 10,
                   "--fail-code", 9)
    assert (r["status"], r["responses"], r["bytes"]) == (9, 3, 30), r


def test_client_to_grpcio_max_recv(grpc_server, run_client):
    r = run_client("--target", grpc_server.addr, "--max-recv", 1024, "unary", "--size", 2000)
    assert r["status"] == 8, r  # RESOURCE_EXHAUSTED: the response is bigger than the client takes
    r = run_client("--target", grpc_server.addr, "--max-recv", 1024, "unary", "--size", 500)
    assert r["status"] == 0, r


def test_client_to_grpcio_health(grpc_server, run_client):
    r = run_client("--target", grpc_server.addr, "health")
    assert (r["status"], r["health"]) == (0, "SERVING"), r
    r = run_client("--target", grpc_server.addr, "health", "--service", "nope")
    assert r["status"] == 5, r


def test_client_nothing_listening_is_unavailable(run_client):
    # A bound socket that does not listen: connections to it are refused, and nobody else
    # can take the port while we hold it.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        r = run_client("--target", f"127.0.0.1:{port}", "--deadline-ms", 10000,
                       "unary", "--payload", "x")
    assert r["status"] == 14, r
    assert r.wall_s < 3, f"took {r.wall_s:.2f} s to give up on a refused connection"


# =============================================================================================
# d. lib/rpc client -> lib/rpc server
# =============================================================================================

def lib_target(srv, mode):
    """Plaintext by address; TLS by name, so the client checks the certificate for 'localhost'."""
    return srv.addr if mode == "plaintext" else f"localhost:{srv.port}"


def test_lib_unary(lib_server, run_client, tls_args, mode):
    srv = lib_server(mode)
    args = ("--target", lib_target(srv, mode), *tls_args.client(mode))
    r = run_client(*args, "unary", "--payload", "hello, lib/rpc ü")
    assert (r["status"], r["payload"]) == (0, "hello, lib/rpc ü"), r
    r = run_client(*args, "unary", "--payload", "deferred", "--delay-ms", 50)
    assert (r["status"], r["payload"]) == (0, "deferred"), r


def test_lib_server_stream(lib_server, run_client, tls_args, mode):
    srv = lib_server(mode)
    r = run_client("--target", lib_target(srv, mode), *tls_args.client(mode),
                   "server-stream", "--count", 100, "--size", 1000)
    assert (r["status"], r["responses"], r["bytes"]) == (0, 100, 100000), r


def test_lib_client_stream(lib_server, run_client, tls_args, mode, rpctest):
    srv = lib_server(mode)
    count, size = 50, 10000
    r = run_client("--target", lib_target(srv, mode), *tls_args.client(mode),
                   "client-stream", "--count", count, "--size", size)
    want = rpctest.pattern_checksum(count, size)
    assert r["status"] == 0, r
    assert (r["count"], r["bytes"], r["sent_bytes"]) == (count, count * size, count * size), r
    assert (r["checksum"], r["expected_checksum"]) == (want, want), r


def test_lib_bidi(lib_server, run_client, tls_args, mode):
    srv = lib_server(mode)
    r = run_client("--target", lib_target(srv, mode), *tls_args.client(mode),
                   "bidi", "--count", 20, "--size", 100)
    assert (r["status"], r["responses"], r["bytes"]) == (0, 20, 2000), r


@pytest.mark.parametrize("client_cert", [False, "other"], ids=["no-client-cert", "untrusted-client-cert"])
def test_lib_mtls_rejects_client(lib_server, run_client, tls_args, client_cert):
    srv = lib_server("mtls")
    r = run_client("--target", lib_target(srv, "mtls"), *tls_args.client("mtls", client_cert),
                   "unary", "--payload", "x")
    assert r["status"] == 14, r
    r = run_client("--target", lib_target(srv, "mtls"), *tls_args.client("mtls"),
                   "unary", "--payload", "ok")
    assert (r["status"], r["payload"]) == (0, "ok"), r


def test_lib_tls_authority(lib_server, run_client, tls_args, certs):
    srv = lib_server("tls")
    ca = ("--tls-ca", certs.ca)
    r = run_client("--target", srv.addr, *ca, "--authority", "wronghost", "unary", "--payload", "x")
    assert r["status"] == 14, f"certificate for localhost accepted as 'wronghost': {r}"
    r = run_client("--target", srv.addr, *ca, "--authority", "localhost", "unary", "--payload", "x")
    assert (r["status"], r["payload"]) == (0, "x"), r


def test_lib_tls_ip_target(lib_server, run_client, certs):
    """--target 127.0.0.1:PORT without --authority: checked against the certificate's IP SAN."""
    srv = lib_server("tls")
    r = run_client("--target", srv.addr, "--tls-ca", certs.ca, "unary", "--payload", "x")
    assert (r["status"], r["payload"]) == (0, "x"), r


def test_lib_tls_untrusted_server(lib_server, run_client, certs):
    srv = lib_server("tls")
    r = run_client("--target", lib_target(srv, "tls"), "--tls-ca", certs.other_ca,
                   "unary", "--payload", "x")
    assert r["status"] == 14, f"server certificate from an unknown CA accepted: {r}"


def test_lib_tls_plaintext_mismatch(lib_server, run_client, tls_args, certs):
    tls_srv = lib_server("tls")
    plain_srv = lib_server("plaintext")
    r = run_client("--target", tls_srv.addr, "--deadline-ms", 10000, "unary", "--payload", "x")
    assert r["status"] == 14, f"plaintext client -> TLS server: {r}"
    r = run_client("--target", f"localhost:{plain_srv.port}", "--tls-ca", certs.ca,
                   "--deadline-ms", 10000, "unary", "--payload", "x")
    assert r["status"] == 14, f"TLS client -> plaintext server: {r}"
    for srv, mode in ((tls_srv, "tls"), (plain_srv, "plaintext")):
        r = run_client("--target", lib_target(srv, mode), *tls_args.client(mode),
                       "unary", "--payload", "ok")
        assert (r["status"], r["payload"]) == (0, "ok"), r


def test_lib_cancel_after(lib_server, run_client):
    srv = lib_server()
    r = run_client("--target", srv.addr, "server-stream", "--count", 1000, "--size", 100,
                   "--delay-ms", 20, "--cancel-after", 5)
    assert (r["status"], r["responses"]) == (1, 5), r
    c = poll(lambda: run_client("--target", srv.addr, "counters"),
             lambda c: c["status"] == 0 and c["cancelled"] >= 1 and c["active"] == 1,
             "server seeing the cancel (cancelled >= 1, active == 1)")
    assert c["calls"] >= 2, c


def test_lib_deadline(lib_server, run_client):
    srv = lib_server()
    r = run_client("--target", srv.addr, "--deadline-ms", 200,
                   "unary", "--payload", "slow", "--delay-ms", SLOW_MS)
    assert r["status"] == 4, r
    assert r.wall_s < DEADLINE_BOUND_S, f"took {r.wall_s:.2f} s: not ended by its 0.2 s deadline"
    poll(lambda: run_client("--target", srv.addr, "counters"),
         lambda c: c["status"] == 0 and c["deadline_exceeded"] + c["cancelled"] >= 1
         and c["active"] == 1,
         "server ending the call (deadline_exceeded + cancelled >= 1, active == 1)")


def test_lib_statuses(lib_server, run_client):
    srv = lib_server()
    r = run_client("--target", srv.addr, "unary", "--payload", "x",
                   "--fail-code", 5, "--fail-message", STATUS_MESSAGE)
    assert (r["status"], r["message"]) == (5, STATUS_MESSAGE), r
    r = run_client("--target", srv.addr, "server-stream", "--count", 3, "--size", 10,
                   "--fail-code", 9)
    assert (r["status"], r["responses"], r["bytes"]) == (9, 3, 30), r


def test_lib_max_recv(lib_server, run_client):
    srv = lib_server("plaintext", "--max-recv", 1024)
    r = run_client("--target", srv.addr, "unary", "--size", 2000)
    assert r["status"] == 8, r
    r = run_client("--target", srv.addr, "unary", "--payload", "fits")
    assert (r["status"], r["payload"]) == (0, "fits"), r


def test_lib_counters_and_health(lib_server, run_client):
    srv = lib_server()
    r = run_client("--target", srv.addr, "counters")
    assert r["status"] == 0, r
    assert (r["calls"], r["cancelled"], r["deadline_exceeded"], r["active"]) == (1, 0, 0, 1), r
    for service in ("", "netreel.rpctest.Test"):
        r = run_client("--target", srv.addr, "health", "--service", service)
        assert (r["status"], r["health"]) == (0, "SERVING"), r
    r = run_client("--target", srv.addr, "health")
    assert (r["status"], r["health"]) == (0, "SERVING"), r
    r = run_client("--target", srv.addr, "health", "--service", "nope")
    assert r["status"] == 5, r
