"""lib/rpc's client against misbehaving and non-gRPC HTTP/2 servers.

rpc-test-client makes one unary call to a small scripted HTTP/2 server (python3-h2 on a raw
socket, a thread per server) that answers the way a proxy, an overloaded server or a broken
peer would. The client must turn each answer into the status gRPC's PROTOCOL-HTTP2.md (and
http-grpc-status-mapping.md) prescribes and docs/rpc.md "Client statuses" promises:

  0. the fake server itself              a stop cutting a waiting script short is no failure;
                                          any other exception of a script is one
  1. HTTP status without grpc-status      400/401/403/404/429/502/503/504 -> mapped, else UNKNOWN
  2. RST_STREAM before response headers   REFUSED_STREAM/CANCEL/ENHANCE_YOUR_CALM/... -> mapped
  3. trailers without grpc-status         INTERNAL ("stream ended without a gRPC status")
  4. Trailers-Only, grpc-message          percent-decoded; a bad escape stays literal
  5. unary cardinality                    OK with 0 or 2 messages -> UNIMPLEMENTED
  6. oversized length prefix              RESOURCE_EXHAUSTED at once, from the prefix
  7. GOAWAY(last_stream_id=0)             UNAVAILABLE, without waiting for the socket
  8. connection lost mid-response         UNAVAILABLE
  9. the request itself                   :method/:scheme/:path/:authority/content-type/te and
                                          grpc-timeout from --deadline-ms
"""

import select
import socket
import threading
import time
import traceback

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import pytest

UNARY_PATH = "/netreel.rpctest.Test/Unary"
E = h2.errors.ErrorCodes

OK, CANCELLED, UNKNOWN, NOT_FOUND = 0, 1, 2, 5
PERMISSION_DENIED, RESOURCE_EXHAUSTED, UNIMPLEMENTED, INTERNAL, UNAVAILABLE = 7, 8, 12, 13, 14
UNAUTHENTICATED = 16

GRPC_HEADERS = [(":status", "200"), ("content-type", "application/grpc")]


def grpc_frame(msg, compressed=False, length=None):
    """The 5-byte gRPC prefix + msg; `length` overrides the announced length."""
    n = len(msg) if length is None else length
    return bytes([1 if compressed else 0]) + n.to_bytes(4, "big") + msg


def response_msg(payload):
    """A serialized netreel.rpctest.TestResponse{payload} (field 1, bytes)."""
    assert len(payload) < 128
    return b"\x0a" + bytes([len(payload)]) + payload



GRPC_TIMEOUT_UNITS = {"H": 3600.0, "M": 60.0, "S": 1.0, "m": 1e-3, "u": 1e-6, "n": 1e-9}


def parse_grpc_timeout(value):
    """grpc-timeout per PROTOCOL-HTTP2: 1-8 ASCII digits and a unit; seconds, or None."""
    if (not 2 <= len(value) <= 9 or not value[:-1].isdigit()
            or value[-1] not in GRPC_TIMEOUT_UNITS):
        return None
    return int(value[:-1]) * GRPC_TIMEOUT_UNITS[value[-1]]


# ---- the fake server ---------------------------------------------------------------------------

class ServerStopping(Exception):
    """A script's wait cut short because the fixture stopped the server: the test is over and
    has its answer (a client that already closed is still seen: see FakeH2Conn._recv). The
    server drops it when, and only when, its close() asked for the stop; every other exception
    of a script stays an error. Not a TimeoutError: a script that catches its own timeouts does
    not catch this."""


class FakeH2Conn:
    """One accepted connection, driven by a script: read the request, answer however the test
    wants. Every wait is bounded by `timeout` seconds (and by the server being stopped)."""

    def __init__(self, server, sock, timeout):
        self.server = server
        self.sock = sock
        self.timeout = timeout
        self.h2 = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=False, header_encoding="utf-8"))
        self.events = []       # every h2 event seen, in order
        self.next_event = 0    # the first one pump_until has not looked at
        self.bodies = {}       # stream id -> request body bytes
        self.h2.initiate_connection()
        self.flush()

    def flush(self):
        out = self.h2.data_to_send()
        if out:
            self.sock.sendall(out)

    def _recv(self, until):
        """One recv of at most 0.2 s; b'' on EOF, None when nothing came. Once the server is
        stopping it does not wait: what already came (an EOF too) is still read, and with
        nothing there it raises ServerStopping."""
        wait = max(0.01, min(0.2, until - time.monotonic()))
        if self.server.stopping.is_set():
            p = select.poll()
            p.register(self.sock, select.POLLIN)
            if not p.poll(0):
                raise ServerStopping("the fake server was stopped while the script waited")
        self.sock.settimeout(wait)
        try:
            return self.sock.recv(65536)
        except socket.timeout:
            return None
        except (ConnectionResetError, BrokenPipeError):
            return b""

    def pump_until(self, cond, what, timeout=None):
        """Reads and feeds h2 until cond(event) holds for an event not looked at by an earlier
        pump_until; returns that event (later ones stay for the next call)."""
        until = time.monotonic() + (timeout or self.timeout)
        while True:
            while self.next_event < len(self.events):
                ev = self.events[self.next_event]
                self.next_event += 1
                if cond(ev):
                    return ev
            if time.monotonic() >= until:
                raise TimeoutError(f"fake server: no {what} within {timeout or self.timeout:g} s; "
                                   f"events: {self.events}")
            data = self._recv(until)
            if data is None:
                continue
            if not data:
                raise ConnectionError(f"fake server: client closed before {what}; "
                                      f"events: {self.events}")
            for ev in self.h2.receive_data(data):
                self.events.append(ev)
                if isinstance(ev, h2.events.DataReceived):
                    self.bodies[ev.stream_id] = self.bodies.get(ev.stream_id, b"") + ev.data
                    if ev.flow_controlled_length:
                        self.h2.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            self.flush()

    def wait_request(self, whole=True):
        """Waits for a request (its end too when whole); records and returns (stream id,
        headers as a list of (name, value))."""
        req = self.pump_until(lambda ev: isinstance(ev, h2.events.RequestReceived),
                              "request headers")
        sid = req.stream_id
        if whole and not req.stream_ended:
            self.pump_until(lambda ev: isinstance(ev, h2.events.StreamEnded) and
                            ev.stream_id == sid, "end of the request stream")
        self.server.requests.append(list(req.headers))
        return sid, list(req.headers)

    def send_headers(self, sid, headers, end=False):
        self.h2.send_headers(sid, headers, end_stream=end)
        self.flush()

    def send_data(self, sid, data, end=False):
        self.h2.send_data(sid, data, end_stream=end)
        self.flush()

    def reset(self, sid, code):
        self.h2.reset_stream(sid, error_code=code)
        self.flush()

    def goaway(self, last_stream_id=0, code=E.NO_ERROR):
        self.h2.close_connection(error_code=code, last_stream_id=last_stream_id)
        self.flush()

    def wait_closed(self, timeout=None):
        """Reads (and drops) whatever comes until the client closes the connection; returns
        True when it did within timeout seconds. The client must not rely on us closing."""
        until = time.monotonic() + (timeout or self.timeout)
        while time.monotonic() < until:
            if self._recv(until) == b"":
                return True
        return False

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


class FakeH2Server:
    """A scripted HTTP/2 server on 127.0.0.1 (port 0) in its own thread.

    script(conn: FakeH2Conn) runs for each accepted connection, one after the other, up to
    `connections` of them. What went wrong in the thread (an exception in a script, a wait that
    timed out) is collected in .errors and reported by close(). A script still waiting when
    close() stops the server is not an error (its wait raises ServerStopping, noted in
    .cut_by_stop): the test has its answer by then, and one that depends on the script's end
    waits for it itself."""

    def __init__(self, script, connections=1, timeout=10.0):
        self.script = script
        self.connections = connections
        self.timeout = timeout
        self.requests = []   # headers of each request, in order
        self.conns = []
        self.errors = []
        self.cut_by_stop = []  # connections whose script the stop ended (not errors)
        self.stopping = threading.Event()
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(8)
        self.lsock.settimeout(0.2)
        self.port = self.lsock.getsockname()[1]
        self.addr = f"127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self._run, name=f"fake-h2-{self.port}", daemon=True)
        self.thread.start()

    def _run(self):
        accepted = 0
        while accepted < self.connections and not self.stopping.is_set():
            try:
                sock, _ = self.lsock.accept()
            except socket.timeout:
                continue
            except OSError:
                return  # the listening socket was closed
            accepted += 1
            conn = None
            try:
                conn = FakeH2Conn(self, sock, self.timeout)
                self.conns.append(conn)
                self.script(conn)
            except ServerStopping:
                if self.stopping.is_set():  # close() asked for it: the test is over
                    self.cut_by_stop.append(accepted)
                else:
                    self.errors.append(f"connection {accepted}: {traceback.format_exc()}")
            except Exception:
                self.errors.append(f"connection {accepted}: {traceback.format_exc()}")
            finally:
                if conn:
                    conn.close()
                else:
                    sock.close()

    def close(self, timeout=15.0):
        """Stops the thread, closes every socket; returns a list of problems."""
        self.stopping.set()
        self.thread.join(timeout)
        problems = list(self.errors)
        if self.thread.is_alive():
            problems.append(f"fake server thread still running {timeout:g} s after stop")
        self.lsock.close()
        for c in self.conns:
            c.close()
        return problems


@pytest.fixture
def fake_server():
    """start(script, connections=1, timeout=10) -> FakeH2Server; all closed on teardown, which
    fails the test when a script raised or a server thread did not stop."""
    servers = []

    def start(script, connections=1, timeout=10.0):
        srv = FakeH2Server(script, connections, timeout)
        servers.append(srv)
        return srv

    yield start
    problems = []
    for srv in servers:
        problems += [f"fake server {srv.addr}: {p}" for p in srv.close()]
    if problems:
        pytest.fail("\n\n".join(problems), pytrace=False)


# ---- 0. the fake server itself -----------------------------------------------------------------
# What close() (and so the fixture) reports: a script cut short by the stop is not a failure, any
# other exception of a script is, also one raised once the server is stopping.

def _connected(script, **kw):
    """A FakeH2Server running script, and a plain TCP client connected to it (never closed by
    the client side until the caller does)."""
    srv = FakeH2Server(script, **kw)
    return srv, socket.create_connection(("127.0.0.1", srv.port), timeout=10)


def test_fake_server_stop_while_script_waits_is_not_an_error():
    waiting = threading.Event()

    def script(c):
        waiting.set()
        c.wait_closed()  # the client never closes: only the stop ends this wait

    srv, cli = _connected(script)
    try:
        assert waiting.wait(10), "the script never ran"
        problems = srv.close()
    finally:
        cli.close()
        srv.close()
    assert problems == [], problems
    assert srv.cut_by_stop == [1]


def test_fake_server_stop_still_reads_what_came():
    """A client that closed before the stop, and a script that looks only after it: the
    script sees the close (the race of issue 19 the other way round), nothing is cut short."""
    started, seen = threading.Event(), []

    def script(c):
        started.set()
        c.server.stopping.wait(10)
        seen.append(c.wait_closed())

    srv, cli = _connected(script)
    try:
        assert started.wait(10), "the script never ran"
        cli.close()
        p = select.poll()
        p.register(srv.conns[0].sock, select.POLLIN)
        assert p.poll(10000), "the client's close never reached the server's socket"
        problems = srv.close()
    finally:
        cli.close()
        srv.close()
    assert (problems, srv.cut_by_stop, seen) == ([], [], [True])


@pytest.mark.parametrize("when", ["before-stop", "after-stop"])
def test_fake_server_script_assertion_is_an_error(when):
    started, done = threading.Event(), threading.Event()

    def script(c):
        started.set()
        try:
            if when == "after-stop":
                assert c.server.stopping.wait(10)
            raise AssertionError("the script saw something wrong")
        finally:
            done.set()

    srv, cli = _connected(script)
    try:
        assert (done if when == "before-stop" else started).wait(10), "the script never ran"
        problems = srv.close()
    finally:
        cli.close()
        srv.close()
    assert len(problems) == 1 and "AssertionError: the script saw something wrong" in problems[0], \
        problems


def test_fake_server_own_timeout_is_an_error():
    """A wait that timed out on its own (not by the stop) is reported."""
    done = threading.Event()

    def script(c):
        try:
            c.pump_until(lambda ev: False, "event that never comes", timeout=0.3)
        finally:
            done.set()

    srv, cli = _connected(script)
    try:
        assert done.wait(10), "the script never ended"
        problems = srv.close()
    finally:
        cli.close()
        srv.close()
    assert len(problems) == 1 and "no event that never comes within 0.3 s" in problems[0], problems


def test_fake_server_stopping_without_a_stop_is_an_error():
    """ServerStopping is forgiven only when close() asked for the stop."""
    done = threading.Event()

    def script(c):
        try:
            raise ServerStopping("raised with no stop")
        finally:
            done.set()

    srv, cli = _connected(script)
    try:
        assert done.wait(10), "the script never ended"
        problems = srv.close()
    finally:
        cli.close()
        srv.close()
    assert len(problems) == 1 and "raised with no stop" in problems[0], problems


@pytest.fixture
def unary(run_client):
    """unary(srv, *global_args) -> ClientResult of `rpc-test-client --target srv ... unary
    --payload x`."""
    def call(srv, *args, timeout=30):
        return run_client("--target", srv.addr, *args, "unary", "--payload", "x", timeout=timeout)
    return call


# ---- 1. HTTP status without grpc-status ----------------------------------------------------------

HTTP_CASES = [(400, INTERNAL), (401, UNAUTHENTICATED), (403, PERMISSION_DENIED),
              (404, UNIMPLEMENTED), (429, UNAVAILABLE), (502, UNAVAILABLE), (503, UNAVAILABLE),
              (504, UNAVAILABLE), (418, UNKNOWN), (500, UNKNOWN)]


@pytest.mark.parametrize("http,code", HTTP_CASES, ids=[str(h) for h, _ in HTTP_CASES])
def test_http_status_without_grpc_status(fake_server, unary, http, code):
    def script(c):
        sid, _ = c.wait_request()
        c.send_headers(sid, [(":status", str(http)), ("content-type", "text/plain")], end=True)
        c.wait_closed()

    r = unary(fake_server(script))
    assert r["status"] == code, r
    assert str(http) in r["message"], r


@pytest.mark.parametrize("http,code", [(404, UNIMPLEMENTED), (503, UNAVAILABLE)],
                         ids=["404", "503"])
def test_http_status_with_body(fake_server, unary, http, code):
    """A proxy's error page: the body is not gRPC-framed and must not decide the status; the
    HTTP status does (grpc's clients decide from the headers alone)."""
    def script(c):
        sid, _ = c.wait_request()
        c.send_headers(sid, [(":status", str(http)), ("content-type", "text/html")])
        c.send_data(sid, b"<html><body>no gRPC here</body></html>\n", end=True)
        c.wait_closed()

    r = unary(fake_server(script))
    assert r["status"] == code, r
    assert str(http) in r["message"], r


# ---- 2. RST_STREAM before response headers -----------------------------------------------------

RST_CASES = [(E.REFUSED_STREAM, UNAVAILABLE), (E.ENHANCE_YOUR_CALM, RESOURCE_EXHAUSTED),
             (E.CANCEL, CANCELLED), (E.PROTOCOL_ERROR, INTERNAL),
             (E.INTERNAL_ERROR, INTERNAL), (E.INADEQUATE_SECURITY, PERMISSION_DENIED)]


@pytest.mark.parametrize("h2code,code", RST_CASES, ids=[e.name for e, _ in RST_CASES])
def test_rst_stream_before_headers(fake_server, unary, h2code, code):
    def script(c):
        sid, _ = c.wait_request()
        c.reset(sid, h2code)
        c.wait_closed()

    r = unary(fake_server(script))
    assert r["status"] == code, r
    assert r.wall_s < 5, f"took {r.wall_s:.2f} s"


# ---- 3. trailers without grpc-status ---------------------------------------------------------

@pytest.mark.parametrize("messages", [0, 1])
def test_trailers_without_grpc_status(fake_server, unary, messages):
    """HTTP 200 + application/grpc, then trailers (END_STREAM) with no grpc-status: lib/rpc's
    on_stream_close ends such a stream with INTERNAL "stream ended without a gRPC status"."""
    def script(c):
        sid, _ = c.wait_request()
        c.send_headers(sid, GRPC_HEADERS)
        for _ in range(messages):
            c.send_data(sid, grpc_frame(response_msg(b"x")))
        c.send_headers(sid, [("x-trailer", "no status here")], end=True)
        c.wait_closed()

    r = unary(fake_server(script))
    assert r["status"] == INTERNAL, r
    assert "without a gRPC status" in r["message"], r


# ---- 4. Trailers-Only and grpc-message decoding ------------------------------------------------

@pytest.mark.parametrize("raw,decoded", [("gone%20away%21", "gone away!"), ("50%zz", "50%zz"),
                                         ("100%", "100%"), ("%C3%BC%2", "ü%2")],
                         ids=["escapes", "bad-escape", "trailing-percent", "utf8-and-short"])
def test_trailers_only_status_and_message(fake_server, unary, raw, decoded):
    def script(c):
        sid, _ = c.wait_request()
        c.send_headers(sid, GRPC_HEADERS + [("grpc-status", "5"), ("grpc-message", raw)],
                       end=True)
        c.wait_closed()

    r = unary(fake_server(script))
    assert (r["status"], r["message"]) == (NOT_FOUND, decoded), r


# ---- 5. unary cardinality ----------------------------------------------------------------------

@pytest.mark.parametrize("messages", [0, 2])
def test_unary_wrong_message_count(fake_server, unary, messages):
    def script(c):
        sid, _ = c.wait_request()
        c.send_headers(sid, GRPC_HEADERS)
        for i in range(messages):
            c.send_data(sid, grpc_frame(response_msg(b"m%d" % i)))
        c.send_headers(sid, [("grpc-status", "0")], end=True)
        c.wait_closed()

    r = unary(fake_server(script))
    assert r["status"] == UNIMPLEMENTED, r
    assert "one response message" in r["message"], r


def test_unary_ok_control(fake_server, unary):
    """The same fake server answering properly: OK and the payload (checks the fake itself)."""
    def script(c):
        sid, _ = c.wait_request()
        c.send_headers(sid, GRPC_HEADERS)
        c.send_data(sid, grpc_frame(response_msg(b"pong")))
        c.send_headers(sid, [("grpc-status", "0")], end=True)
        c.wait_closed()

    r = unary(fake_server(script))
    assert (r["status"], r["payload"]) == (OK, "pong"), r


# ---- 6. oversized message, refused from its prefix ---------------------------------------------

def test_oversized_prefix_is_resource_exhausted(fake_server, unary):
    """The prefix announces 100000 bytes to a client that takes 1024: the client refuses the
    message from its prefix alone (RESOURCE_EXHAUSTED, without waiting for a body that never
    comes) and gives the stream up on the wire with RST_STREAM(CANCEL) (docs/rpc.md,
    "Cancellation"), so the server stops sending it."""
    seen = {}
    recorded = threading.Event()

    def script(c):
        sid, _ = c.wait_request()
        c.send_headers(sid, GRPC_HEADERS)
        c.send_data(sid, grpc_frame(b"", length=100000))  # the prefix only, and no more
        try:
            ev = c.pump_until(lambda ev: isinstance(ev, h2.events.StreamReset) and
                              ev.stream_id == sid, "RST_STREAM from the client", timeout=10)
            seen["reset"] = ev.error_code
        except (TimeoutError, ConnectionError) as e:
            seen["reset"] = f"none ({e.__class__.__name__})"
        finally:
            recorded.set()
        c.wait_closed()

    r = unary(fake_server(script), "--max-recv", 1024)
    assert r["status"] == RESOURCE_EXHAUSTED, (r, seen)
    assert r.wall_s < 3, f"took {r.wall_s:.2f} s: waited for the message instead of refusing it"
    # The fake server's thread records the reset (or its absence) on its own time: wait for it.
    assert recorded.wait(15), "the fake server never finished looking for the client's RST_STREAM"
    assert seen["reset"] == E.CANCEL, (
        f"want the client to reset the refused stream with RST_STREAM(CANCEL): {seen}")


# ---- 7. GOAWAY refusing the stream -------------------------------------------------------------

def test_goaway_last_stream_zero_is_unavailable(fake_server, unary):
    def script(c):
        c.wait_request()
        c.goaway(last_stream_id=0)
        c.wait_closed()  # keep the socket open: the GOAWAY alone must end the call

    r = unary(fake_server(script), "--deadline-ms", 20000)
    assert r["status"] == UNAVAILABLE, r
    assert r.wall_s < 3, f"took {r.wall_s:.2f} s after a GOAWAY that refused the stream"


# ---- 8. connection lost mid-response -----------------------------------------------------------

@pytest.mark.parametrize("sent", ["headers", "half-message"])
def test_connection_closed_mid_response(fake_server, unary, sent):
    def script(c):
        sid, _ = c.wait_request()
        c.send_headers(sid, GRPC_HEADERS)
        if sent == "half-message":
            c.send_data(sid, grpc_frame(response_msg(b"abcdef"))[:6])
        c.sock.shutdown(socket.SHUT_RDWR)
        c.close()

    r = unary(fake_server(script), "--deadline-ms", 20000)
    assert r["status"] == UNAVAILABLE, r
    assert r.wall_s < 3, f"took {r.wall_s:.2f} s"


# ---- 9. the request ----------------------------------------------------------------------------

def test_request_headers(fake_server, unary):
    bodies = []

    def script(c):
        sid, _ = c.wait_request()
        bodies.append(c.bodies.get(sid, b""))
        c.send_headers(sid, GRPC_HEADERS)
        c.send_data(sid, grpc_frame(response_msg(b"x")))
        c.send_headers(sid, [("grpc-status", "0")], end=True)
        c.wait_closed()

    srv = fake_server(script)
    r = unary(srv, "--deadline-ms", 5000)
    assert (r["status"], r["payload"]) == (OK, "x"), r
    assert len(srv.requests) == 1, srv.requests
    hdrs = srv.requests[0]
    names = [n for n, _ in hdrs]
    h = dict(hdrs)
    assert len(set(names)) == len(names), f"repeated headers: {hdrs}"
    want = {":method": "POST", ":scheme": "http", ":path": UNARY_PATH,
            ":authority": srv.addr, "content-type": "application/grpc", "te": "trailers"}
    assert {k: h.get(k) for k in want} == want, hdrs
    # Pseudo-headers come first (RFC 9113 8.3).
    pseudo = [n.startswith(":") for n in names]
    assert pseudo == sorted(pseudo, reverse=True), hdrs
    assert "grpc-timeout" in h, hdrs
    t = parse_grpc_timeout(h["grpc-timeout"])
    assert t is not None, f"grpc-timeout {h['grpc-timeout']!r} does not parse"
    assert 3 < t <= 5, f"grpc-timeout {h['grpc-timeout']!r} = {t} s for --deadline-ms 5000"
    # The one request message: TestRequest{payload: "x"}, uncompressed.
    assert bodies == [grpc_frame(b"\x0a\x01x")], bodies


def test_request_without_deadline_has_no_grpc_timeout(fake_server, unary):
    def script(c):
        sid, _ = c.wait_request()
        c.send_headers(sid, GRPC_HEADERS + [("grpc-status", "5")], end=True)
        c.wait_closed()

    srv = fake_server(script)
    r = unary(srv)
    assert r["status"] == NOT_FOUND, r
    assert "grpc-timeout" not in dict(srv.requests[0]), srv.requests
