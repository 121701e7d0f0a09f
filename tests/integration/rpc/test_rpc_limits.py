"""lib/rpc's server against peers that try to make it hold memory or lose state (docs/rpc.md,
"Limits against abuse"). Regression tests for defects found in review:

  1. unfinished messages  100 ClientStream streams on one connection, each announcing a 4 MiB
                          message and sending, round-robin, all of it but the last byte. The
                          connection window is given back as DATA arrives (a stream's window only
                          for whole messages), so flow control does not bound this; the server
                          counts the bytes of unfinished messages per connection instead, and the
                          stream that takes the count past 64 MiB (limits.max_unfinished) is ended
                          with RESOURCE_EXHAUSTED (Trailers-Only, then RST_STREAM(NO_ERROR)) and
                          its bytes freed. The others go on: those left hold at most 64 MiB, and
                          finish their messages. (414 MB before any bound: every stream gathered
                          its whole 4 MiB.)
     and its converse     20 honest ClientStream calls on one connection, 3 MiB each (60 MiB in
                          all, within the budget), their frames interleaved round-robin, are all
                          answered. (While unfinished messages kept the connection window, 16
                          streams x 4 MiB used it up and none could finish.)
  2. control-frame flood  a peer that never reads opens streams nonstop; the server refuses those
                          past 100 with RST_STREAMs it cannot write. It must stop reading that
                          connection instead of queueing replies without bound (860 MB before),
                          and keep serving everybody else.
  3. TLS error queue      failed mTLS handshakes (a client certificate from an untrusted CA) must
                          not leave errors in OpenSSL's per-thread queue that a healthy TLS
                          connection then takes for its own and dies of.
  4. the server's deadline a peer that sends grpc-timeout and then neither cancels nor resets
                          must still get DEADLINE_EXCEEDED from the server's own timer (a
                          Trailers-Only answer), counted by the handler as deadline_exceeded
                          and not as cancelled. (The interop deadline tests cannot show this:
                          their clients enforce the deadline themselves and cancel.)

Not here: a client call's deadline and cancellation while it waits for a stream slot (the
server's MAX_CONCURRENT_STREAMS in use). That needs a server with a small stream limit and one
client making several calls on one connection; rpc-test-client makes one call per process, so it
is covered by a C test instead.

The peers are python3-h2 on raw sockets (1, 2, 4), Python's ssl module (3) and grpcio (3). Every
wait is bounded. RSS limits are not checked under NETREEL_ASAN=1; the protocol-level assertions
(which streams were refused and what the others hold, that the flooder was pushed back) are.
"""

import select
import socket
import ssl
import struct
import threading
import time
import urllib.parse
from pathlib import Path

import grpc
import h2.config
import h2.connection
import h2.errors
import h2.events
import pytest

SERVICE_PREFIX = "/netreel.rpctest.Test/"
MIB = 1 << 20

# lib/rpc's defaults (lib/rpc/limits.c, lib/rpc/frame.h).
CONN_WINDOW = 64 * MIB
MAX_CONCURRENT = 100
MAX_MESSAGE = 4 * MIB
MAX_UNFINISHED = 64 * MIB   # limits.max_unfinished: unfinished messages on one connection


def proc_status_kb(pid, field):
    """VmRSS / VmHWM of a live process, in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} in /proc/{pid}/status")


def rss_report(srv):
    return (f"server pid {srv.pid}: VmRSS {proc_status_kb(srv.pid, 'VmRSS')} KiB, "
            f"VmHWM {proc_status_kb(srv.pid, 'VmHWM')} KiB")


def assert_unary_ok(run_client, srv, payload, *tls):
    """A normal unary call from rpc-test-client (its own connection) answers OK, promptly."""
    r = run_client("--target", srv.addr, *tls, "--deadline-ms", 5000, "unary",
                   "--payload", payload, timeout=20)
    assert (r["status"], r.get("payload")) == (0, payload), r
    assert r.wall_s < 5, f"unary call took {r.wall_s:.2f} s"


def grpc_request_headers(method):
    return [(":method", "POST"), (":scheme", "http"), (":path", SERVICE_PREFIX + method),
            (":authority", "netreel-test"), ("content-type", "application/grpc"),
            ("te", "trailers")]


class H2Peer:
    """A python3-h2 client connection on a raw socket whose every wait is bounded."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.h2 = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
        self.events = []
        self.closed = False
        self.h2.initiate_connection()

    def flush(self, timeout=10):
        """Sends what h2 has queued; fails if the server does not take it within timeout s."""
        out = self.h2.data_to_send()
        if out:
            self.sock.settimeout(timeout)
            try:
                self.sock.sendall(out)
            except socket.timeout:
                pytest.fail(f"server took no data for {timeout} s (sendall of {len(out)} bytes)",
                            pytrace=False)

    def pump(self, wait):
        """Reads and feeds h2 whatever comes within `wait` seconds (one recv); returns the new
        events. EOF sets .closed."""
        if self.closed:
            return []
        ready, _, _ = select.select([self.sock], [], [], wait)
        if not ready:
            return []
        self.sock.settimeout(1)
        try:
            data = self.sock.recv(1 << 20)
        except (ConnectionResetError, socket.timeout):
            data = b""
        if not data:
            self.closed = True
            return []
        evs = self.h2.receive_data(data)
        for e in evs:
            if isinstance(e, h2.events.DataReceived) and e.flow_controlled_length:
                self.h2.acknowledge_received_data(e.flow_controlled_length, e.stream_id)
        self.events += evs
        self.flush()
        return evs

    def pump_until(self, cond, what, timeout=5.0):
        deadline = time.monotonic() + timeout
        while not cond():
            left = deadline - time.monotonic()
            if left <= 0 or self.closed:
                pytest.fail(f"{what}: not within {timeout:g} s (closed={self.closed}); "
                            f"last events: {self.events[-20:]}", pytrace=False)
            self.pump(min(left, 0.2))

    def settle(self, quiet=0.5, timeout=10.0):
        """A PING round trip (the server has read everything sent before it), then reads until
        nothing more comes for `quiet` s: the answers to what it read are in."""
        opaque = struct.pack(">Q", len(self.events))
        self.h2.ping(opaque)
        self.flush()
        self.pump_until(lambda: any(isinstance(e, h2.events.PingAckReceived) and
                                    e.ping_data == opaque for e in self.events),
                        "PING acknowledged", timeout)
        deadline = time.monotonic() + timeout
        while not self.closed and self.pump(quiet):
            assert time.monotonic() < deadline, f"server still talking after {timeout:g} s"

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


class StreamState:
    """What the server sent on one stream, from h2's events."""

    def __init__(self):
        self.headers = self.trailers = self.reset = None
        self.data = b""
        self.ended = False

    @property
    def status(self):
        """(grpc-status, grpc-message) from the trailers, or the headers of a Trailers-Only
        answer; None before either."""
        h = self.trailers if self.trailers is not None else self.headers
        if h is None or "grpc-status" not in h:
            return None
        return int(h["grpc-status"]), urllib.parse.unquote(h.get("grpc-message", ""))

    def response(self, pb):
        """(count, bytes, checksum) of the one TestResponse in the DATA; (None,)*3 if none."""
        if len(self.data) < 5:
            return None, None, None
        flag, n = self.data[0], struct.unpack(">I", self.data[1:5])[0]
        assert (flag, len(self.data)) == (0, 5 + n), f"not one uncompressed message: {self.data!r}"
        r = pb.TestResponse.FromString(self.data[5:])
        return r.count, r.bytes, r.checksum


def open_client_streams(peer, n):
    """Opens n ClientStream calls on the peer's connection; returns their stream ids."""
    ids = []
    for _ in range(n):
        sid = peer.h2.get_next_available_stream_id()
        peer.h2.send_headers(sid, grpc_request_headers("ClientStream"))
        ids.append(sid)
    peer.flush()
    return ids

def stream_states(events, ids=None):
    """{stream id: StreamState} over h2 events; every id in `ids` is present."""
    st = {sid: StreamState() for sid in ids or ()}
    for e in events:
        sid = getattr(e, "stream_id", None)
        if not sid:
            continue
        s = st.setdefault(sid, StreamState())
        if isinstance(e, h2.events.ResponseReceived):
            s.headers = dict(e.headers)
        elif isinstance(e, h2.events.TrailersReceived):
            s.trailers = dict(e.headers)
        elif isinstance(e, h2.events.DataReceived):
            s.data += e.data
        elif isinstance(e, h2.events.StreamEnded):
            s.ended = True
        elif isinstance(e, h2.events.StreamReset):
            s.reset = e.error_code
    return st


@pytest.fixture
def h2_peer():
    """connect(port) -> H2Peer; every socket closed on teardown."""
    peers = []

    def connect(port):
        p = H2Peer(port)
        peers.append(p)
        return p

    yield connect
    for p in peers:
        p.close()


# ---- 1. unfinished messages are bounded per connection ------------------------------------------

PARTIAL_STREAMS = 100
PARTIAL_CHUNK = 16384               # one DATA frame per stream per turn
PARTIAL_BUDGET_S = 15.0
PARTIAL_RSS_LIMIT_KB = 128 * 1024   # the 64 MiB of unfinished messages plus the program itself
EXHAUSTED = (8, f"more than {MAX_UNFINISHED // MIB} MiB of unfinished messages on this connection")


def test_unfinished_messages_bounded_per_connection(rpc_server, run_client, h2_peer, rpctest):
    srv = rpc_server()
    peer = h2_peer(srv.port)
    peer.flush()
    # The server's preface: SETTINGS, and a WINDOW_UPDATE that widens the connection window to
    # 64 MiB. Everything below relies on those numbers, so check them first.
    peer.pump_until(lambda: any(isinstance(e, h2.events.RemoteSettingsChanged)
                                for e in peer.events) and
                    peer.h2.outbound_flow_control_window == CONN_WINDOW,
                    f"server SETTINGS and a {CONN_WINDOW}-byte connection window")
    assert peer.h2.remote_settings.max_concurrent_streams == MAX_CONCURRENT
    # A stream's window holds its largest message: streams are not the limit here.
    assert peer.h2.remote_settings.initial_window_size >= MAX_MESSAGE + 5

    # 100 streams, each to carry one valid 4 MiB message (the server's limit: accepted), of which
    # all but the last byte is sent: nothing is ever whole, unless we finish it below.
    payload = b"\xab" * (MAX_MESSAGE - 5)
    body = b"\0" + struct.pack(">I", MAX_MESSAGE) + \
        rpctest.pb.TestRequest(payload=payload).SerializeToString()
    assert len(body) == 5 + MAX_MESSAGE
    held = len(body) - 1                                  # unfinished bytes a stream ends with
    ids = open_client_streams(peer, PARTIAL_STREAMS)
    pos = dict.fromkeys(ids, 0)
    stopped = set()   # streams the server ended or reset: we send them nothing more
    seen = 0
    t0 = time.monotonic()
    while True:
        for e in peer.events[seen:]:
            if isinstance(e, (h2.events.StreamEnded, h2.events.StreamReset)):
                stopped.add(e.stream_id)
        seen = len(peer.events)
        live = [sid for sid in ids if sid not in stopped and pos[sid] < held]
        if not live:
            break
        elapsed = time.monotonic() - t0
        assert elapsed < PARTIAL_BUDGET_S, (
            f"still sending after {elapsed:.1f} s: {sum(pos.values())} bytes so far, "
            f"{len(live)} streams neither done nor ended, {len(stopped)} ended")
        progressed = False
        for sid in live:   # round-robin, one frame each, what flow control allows
            n = min(peer.h2.local_flow_control_window(sid), peer.h2.max_outbound_frame_size,
                    PARTIAL_CHUNK, held - pos[sid])
            if n > 0:
                peer.h2.send_data(sid, body[pos[sid]:pos[sid] + n])
                pos[sid] += n
                progressed = True
        peer.flush()
        peer.pump(0 if progressed else 0.1)
        assert not peer.closed, f"server closed the connection after {sum(pos.values())} bytes"
    send_s = time.monotonic() - t0
    peer.settle()   # everything sent was read, and its answers are in
    sent = sum(pos.values())

    st = stream_states(peer.events, ids)
    assert not any(isinstance(e, h2.events.ConnectionTerminated) for e in peer.events), peer.events
    ended = {sid for sid in ids if st[sid].ended or st[sid].reset is not None}
    survivors = [sid for sid in ids if sid not in ended]
    # Every stream the server stopped got RESOURCE_EXHAUSTED for this, Trailers-Only, and then
    # RST_STREAM(NO_ERROR): nothing else ends a stream here.
    wrong = {sid: (st[sid].status, st[sid].reset, st[sid].ended, len(st[sid].data))
             for sid in ended
             if (st[sid].status, st[sid].reset, st[sid].ended, st[sid].data) !=
             (EXHAUSTED, h2.errors.ErrorCodes.NO_ERROR, True, b"")}
    assert not wrong, (f"streams ended otherwise than {EXHAUSTED} + RST_STREAM(NO_ERROR): "
                       f"{dict(list(wrong.items())[:5])} ({len(wrong)} of {len(ended)})")
    assert ended, (f"no stream was refused: the server holds {PARTIAL_STREAMS} x {held} bytes "
                   f"of unfinished messages ({sent} bytes sent)")
    # What the server is left holding: the streams it did not end, each with all but one byte.
    assert all(pos[sid] == held for sid in survivors)
    assert len(survivors) * held <= MAX_UNFINISHED + PARTIAL_CHUNK, (
        f"{len(survivors)} streams hold {len(survivors) * held} bytes of unfinished messages")
    # ...and it ended only streams that took it past its budget: whoever was left when the last
    # one went holds more than the budget less that one (at most a whole message) and a frame.
    assert len(survivors) * held > MAX_UNFINISHED - held - PARTIAL_CHUNK, (
        f"only {len(survivors)} streams left holding {len(survivors) * held} bytes: the server "
        f"ended more streams ({len(ended)}) than its {MAX_UNFINISHED}-byte budget needs")
    assert all(st[sid].headers is None for sid in survivors)

    # Still serving, with the connection open and the survivors' bytes held.
    assert_unary_ok(run_client, srv, "after-partial")
    peer.settle()
    assert not peer.closed, "server closed the connection during the unary call"
    assert srv.proc.poll() is None, "server exited"
    report = rss_report(srv)
    print(f"partial: {sent} bytes in {send_s:.2f} s; {len(ended)} streams refused, "
          f"{len(survivors)} hold {len(survivors) * held} bytes; {report}")
    if not rpctest.asan:
        hwm = proc_status_kb(srv.pid, "VmHWM")
        assert hwm < PARTIAL_RSS_LIMIT_KB, f"{report}: over {PARTIAL_RSS_LIMIT_KB} KiB"

    # The survivors go on: their last byte makes a whole message each, answered in full.
    for sid in survivors:
        peer.h2.send_data(sid, body[held:], end_stream=True)
    peer.flush()
    peer.pump_until(lambda: all(s.ended or s.reset is not None
                                for s in stream_states(peer.events, survivors).values()),
                    f"answers to the {len(survivors)} finished streams", timeout=10)
    st = stream_states(peer.events, survivors)
    want = (0, 1, len(payload), rpctest.fnv1a64(payload))
    got = {sid: (st[sid].status, st[sid].reset, *st[sid].response(rpctest.pb))
           for sid in survivors}
    got = {sid: (g[0][0], *g[2:]) if g[0] and g[1] is None else g for sid, g in got.items()}
    assert all(g == want for g in got.values()), f"want {want}: {got}"


# ---- 1b. honest large messages, interleaved, within the budget -----------------------------------

INTERLEAVED_STREAMS = 20
INTERLEAVED_MESSAGE = 3 * MIB       # 20 x 3 MiB: 60 MiB unfinished at most, under the 64 MiB budget
INTERLEAVED_CHUNK = 16384           # like grpc-go's loopy writer: 16 KiB per stream per turn
INTERLEAVED_BUDGET_S = 20.0


def test_interleaved_large_messages_complete(rpc_server, h2_peer, rpctest):
    """N ClientStream calls on one connection, one whole message each, their DATA frames
    interleaved round-robin: every one is answered, intact. 60 MiB in all is within the budget
    for unfinished messages. (16 x 4 MiB is not: that now costs one stream RESOURCE_EXHAUSTED,
    where withholding the connection window deadlocked them all. That design passes this test
    too; test 1 is the one it fails.)"""
    assert INTERLEAVED_STREAMS * (5 + INTERLEAVED_MESSAGE) <= MAX_UNFINISHED
    # Stream i's payload is rpc-test-client's pattern i: no two streams agree at any offset that
    # a mix-up of frames could land on.
    payloads = [rpctest.pattern(i, INTERLEAVED_MESSAGE - 5) for i in range(INTERLEAVED_STREAMS)]
    bodies = []
    for p in payloads:
        m = rpctest.pb.TestRequest(payload=p).SerializeToString()
        assert len(m) == INTERLEAVED_MESSAGE
        bodies.append(b"\0" + struct.pack(">I", len(m)) + m)
    want = [(0, 1, len(p), rpctest.fnv1a64(p)) for p in payloads]

    srv = rpc_server()
    peer = h2_peer(srv.port)
    peer.flush()
    peer.pump_until(lambda: any(isinstance(e, h2.events.RemoteSettingsChanged)
                                for e in peer.events), "server SETTINGS")
    ids = open_client_streams(peer, INTERLEAVED_STREAMS)
    body = dict(zip(ids, bodies))
    pos = dict.fromkeys(ids, 0)

    def answered():
        return sum(s.ended or s.reset is not None for s in stream_states(peer.events, ids).values())

    t0 = time.monotonic()
    while any(pos[sid] < len(body[sid]) and not (s.ended or s.reset is not None)
              for sid, s in stream_states(peer.events, ids).items()):
        elapsed = time.monotonic() - t0
        assert elapsed < INTERLEAVED_BUDGET_S, (
            f"still sending after {elapsed:.1f} s: {sum(pos.values())} of "
            f"{sum(map(len, bodies))} bytes; connection window "
            f"{peer.h2.outbound_flow_control_window}; {answered()} calls answered")
        progressed = False
        states = stream_states(peer.events, ids)
        for sid in ids:
            if states[sid].ended or states[sid].reset is not None:
                continue   # answered early: wrong, and reported below
            left = len(body[sid]) - pos[sid]
            n = min(peer.h2.local_flow_control_window(sid), peer.h2.max_outbound_frame_size,
                    INTERLEAVED_CHUNK, left)
            if left > 0 and n > 0:
                peer.h2.send_data(sid, body[sid][pos[sid]:pos[sid] + n], end_stream=n == left)
                pos[sid] += n
                progressed = True
        peer.flush()
        peer.pump(0 if progressed else 0.1)   # WINDOW_UPDATEs, answers
        assert not peer.closed, f"server closed the connection after {sum(pos.values())} bytes"
    send_s = time.monotonic() - t0
    peer.pump_until(lambda: answered() == INTERLEAVED_STREAMS,
                    f"answers to all {INTERLEAVED_STREAMS} calls",
                    timeout=max(1.0, INTERLEAVED_BUDGET_S - send_s))
    took = time.monotonic() - t0
    st = stream_states(peer.events, ids)
    got = [(st[sid].status and st[sid].status[0], *st[sid].response(rpctest.pb))
           if st[sid].reset is None else ("reset", st[sid].reset, st[sid].status) for sid in ids]
    bad = {sid: (g, w) for sid, g, w in zip(ids, got, want) if g != w}
    assert not bad, f"{len(bad)} of {INTERLEAVED_STREAMS} calls wrong (got, want): {bad}"
    print(f"interleaved: {INTERLEAVED_STREAMS} x {INTERLEAVED_MESSAGE} bytes sent in "
          f"{send_s:.2f} s, all answered in {took:.2f} s; {rss_report(srv)}")


# ---- 2. a peer that never reads cannot make the server queue without bound ----------------------

FLOOD_STREAMS = 1_500_000
FLOOD_SECONDS = 8.0
FLOOD_STALL_S = 2.0         # no room in the socket for this long: the server stopped reading
FLOOD_BATCH = 10_000
FLOOD_RSS_LIMIT_KB = 64 * 1024


def test_control_frame_flood_from_peer_that_never_reads(rpc_server, run_client, rpctest):
    srv = rpc_server()
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect: a tiny window
        s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)  # what stalls is the server
        s.settimeout(5)
        s.connect(("127.0.0.1", srv.port))
        c = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
        c.initiate_connection()
        hdrs = grpc_request_headers("Unary")
        c.send_headers(1, hdrs)
        c.send_headers(3, hdrs)
        raw = c.data_to_send()
        # The second HEADERS is all indexed fields from the dynamic table the first one filled: a
        # block that can be replayed for any new stream id.
        frames, i = [], 24  # after the client preface
        while i < len(raw):
            length = int.from_bytes(raw[i:i + 3], "big")
            frames.append(raw[i:i + 9 + length])
            i += 9 + length
        last = frames[-1]
        assert (last[3], last[4], int.from_bytes(last[5:9], "big")) == (1, 4, 3), last.hex()
        block = last[9:]
        assert len(block) < 16, f"replayable header block is {len(block)} bytes: {block.hex()}"
        s.setblocking(False)

        def batch(first_sid, n):
            head = struct.pack(">I", len(block))[1:] + bytes([1, 4])
            return b"".join(head + struct.pack(">I", first_sid + 2 * k) + block for k in range(n))

        # Never read; send through select() so the bytes that went out are known exactly.
        buf = memoryview(raw)
        streams = 0
        sid = 5
        sent = 0
        stalled_at = closed = None
        t0 = last_progress = time.monotonic()
        while True:
            now = time.monotonic()
            assert now - t0 < FLOOD_SECONDS + FLOOD_STALL_S + 5, "flood loop overran its budget"
            if not buf:
                if streams >= FLOOD_STREAMS or now - t0 >= FLOOD_SECONDS:
                    break
                n = min(FLOOD_BATCH, FLOOD_STREAMS - streams)
                buf = memoryview(batch(sid, n))
                sid += 2 * n
                streams += n
            _, w, _ = select.select([], [s], [], 0.2)
            if not w:
                if time.monotonic() - last_progress >= FLOOD_STALL_S:
                    stalled_at = last_progress - t0
                    break
                continue
            try:
                k = s.send(buf)
            except BlockingIOError:
                continue
            except (BrokenPipeError, ConnectionResetError) as e:
                closed = e
                break
            sent += k
            buf = buf[k:]
            last_progress = time.monotonic()
        flood_s = time.monotonic() - t0
        headers_sent = sent // (9 + len(block))
        print(f"flood: {sent} bytes (~{headers_sent} HEADERS) in {flood_s:.2f} s; stalled at "
              f"{stalled_at if stalled_at is None else round(stalled_at, 2)} s; closed: {closed!r}")
        assert closed is None, f"server dropped the flooder ({closed!r}) instead of pausing it"
        # The server stops reading a connection whose replies pile up: the flood stalls well
        # before 1.5 million streams (before the fix it read all of them, queueing RST_STREAMs).
        assert stalled_at is not None, (
            f"server read {sent} bytes (~{headers_sent} HEADERS) of a peer that never reads, in "
            f"{flood_s:.2f} s, without pushing back")

        # The flooder is still connected and still not reading: everybody else is served.
        assert_unary_ok(run_client, srv, "during-flood")
        assert srv.proc.poll() is None, "server exited"
        report = rss_report(srv)
        print(f"flood: {report}")
        if not rpctest.asan:
            hwm = proc_status_kb(srv.pid, "VmHWM")
            assert hwm < FLOOD_RSS_LIMIT_KB, f"{report}: over {FLOOD_RSS_LIMIT_KB} KiB"
    finally:
        s.close()


# ---- 3. failed handshakes do not break other TLS connections ------------------------------------

GOOD_MESSAGES = 10
GOOD_INTERVAL_S = 0.1
BAD_HANDSHAKES = 3


def untrusted_handshake(port, certs):
    """One TLS connection with a client certificate from an unrelated CA. Returns how the server
    ended it: 'handshake: REASON' (TLS 1.2), 'alert: REASON' (TLS 1.3, on the first read) or
    'eof'; raises AssertionError if the server let it through to HTTP/2 (sent it data)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(cafile=str(certs.ca))
    ctx.load_cert_chain(str(certs.other_client_cert), str(certs.other_client_key))
    ctx.set_alpn_protocols(["h2"])
    raw = socket.create_connection(("127.0.0.1", port), timeout=5)
    try:
        tls = ctx.wrap_socket(raw, server_hostname="localhost", do_handshake_on_connect=False)
        try:
            tls.do_handshake()
        except ssl.SSLError as e:
            return f"handshake: {e.reason}"
        # TLS 1.3: the client is done before the server has checked its certificate; the
        # verdict comes as an alert on the first read.
        tls.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0")
        try:
            data = tls.recv(65536)
        except ssl.SSLError as e:
            return f"alert: {e.reason}"
        except ConnectionResetError:
            return "eof"
        assert not data, f"server accepted an untrusted client certificate and sent {data[:40]!r}"
        return "eof"
    finally:
        raw.close()


def test_failed_tls_handshakes_do_not_break_other_connections(rpc_server, tls_args, certs,
                                                              grpc_channel, rpctest):
    srv = rpc_server(*tls_args.server("mtls"))
    pb = rpctest.pb
    stub = rpctest.stub(grpc_channel(srv.port, "mtls"))
    # The good connection is up (handshake done) before anything else happens.
    assert stub.Unary(pb.TestRequest(payload=b"warm"), timeout=10).payload == b"warm"

    outcomes, errors = [], []
    bad_done = threading.Event()

    def bad():
        try:
            outcomes.append(untrusted_handshake(srv.port, certs))
        except Exception as e:  # reported below; a thread's exception would be lost
            errors.append(repr(e))

    threads = [threading.Thread(target=bad, daemon=True) for _ in range(BAD_HANDSHAKES)]
    payloads = [b"msg-%02d" % i for i in range(GOOD_MESSAGES)]

    def requests():
        for i, p in enumerate(payloads):
            if i == 3:
                for t in threads:
                    t.start()
            if i == GOOD_MESSAGES - 1:
                # The last message goes only after every bad handshake ended: the server reads
                # it after their failures.
                for t in threads:
                    t.join(10)
                bad_done.set()
            yield pb.TestRequest(payload=p)
            time.sleep(GOOD_INTERVAL_S)

    t0 = time.monotonic()
    try:
        resp = stub.ClientStream(requests(), timeout=15)
    except grpc.RpcError as e:
        for t in threads:
            t.join(10)
        pytest.fail(f"the good stream failed after {time.monotonic() - t0:.2f} s: {e.code()} "
                    f"{e.details()!r}; bad handshakes: {outcomes} {errors}", pytrace=False)
    took = time.monotonic() - t0
    print(f"tls: good stream {took:.2f} s; bad handshakes: {outcomes}")

    assert bad_done.is_set()
    assert not any(t.is_alive() for t in threads), "a bad handshake did not end within 10 s"
    assert errors == [], errors
    # Refused for what it is: an untrusted client certificate (OpenSSL's unknown_ca alert).
    refused = {f"{how}: TLSV1_ALERT_UNKNOWN_CA" for how in ("alert", "handshake")}
    assert len(outcomes) == BAD_HANDSHAKES and set(outcomes) <= refused, outcomes
    assert resp.count == GOOD_MESSAGES, resp
    # GOOD_MESSAGES x GOOD_INTERVAL_S (1 s) is the stream's own pace; 10 s is "not stalled by the
    # failed handshakes" with room for a loaded machine, and within the call's 15 s deadline.
    assert took < 10, f"the good stream took {took:.2f} s for {GOOD_MESSAGES} messages"
    assert resp.bytes == sum(map(len, payloads)), resp
    assert resp.checksum == rpctest.fnv1a64(b"".join(payloads)), resp
    # And the same connection keeps working.
    assert stub.Unary(pb.TestRequest(payload=b"after"), timeout=10).payload == b"after"


# ---- 4. the server enforces grpc-timeout itself ------------------------------------------------

DEADLINE_TIMEOUT = "300m"       # grpc-timeout the peer sends: 300 ms
DEADLINE_TIMEOUT_S = 0.3
DEADLINE_HANDLER_DELAY_MS = 30000   # the handler would answer only after 30 s
DEADLINE_ANSWER_WITHIN_S = 5.0      # generous: the answer is due 0.3 s after the request


def test_server_enforces_grpc_timeout(rpc_server, run_client, h2_peer, rpctest):
    """A raw h2 peer calls Unary with delay_ms 30000 and grpc-timeout 300m and then only waits:
    no RST_STREAM, no GOAWAY, no close. Only the server's own timer can end the call; it must
    answer DEADLINE_EXCEEDED as one Trailers-Only HEADERS frame, and its handler must see the
    call end as deadline_exceeded, not cancelled."""
    srv = rpc_server()
    peer = h2_peer(srv.port)
    msg = rpctest.pb.TestRequest(payload=b"slow",
                                 delay_ms=DEADLINE_HANDLER_DELAY_MS).SerializeToString()
    sid = peer.h2.get_next_available_stream_id()
    peer.h2.send_headers(sid, grpc_request_headers("Unary") + [("grpc-timeout", DEADLINE_TIMEOUT)])
    peer.h2.send_data(sid, b"\0" + struct.pack(">I", len(msg)) + msg, end_stream=True)
    t0 = time.monotonic()
    peer.flush()

    def answered():
        s = stream_states(peer.events, [sid])[sid]
        return s.ended or s.reset is not None

    peer.pump_until(answered, f"the server's answer to a call with grpc-timeout {DEADLINE_TIMEOUT}",
                    timeout=DEADLINE_ANSWER_WITHIN_S)
    took = time.monotonic() - t0
    peer.settle()   # anything the server sends after the answer (it should send nothing) is in
    st = stream_states(peer.events, [sid])[sid]
    resp = [e for e in peer.events
            if isinstance(e, h2.events.ResponseReceived) and e.stream_id == sid]
    print(f"server deadline: answered after {took:.3f} s: headers {st.headers}, "
          f"reset {st.reset!r}")
    # Trailers-Only: one HEADERS frame with :status 200, grpc-status 4 and END_STREAM; no DATA,
    # no separate trailers, no RST_STREAM (the request side was already closed).
    assert st.reset is None, f"stream reset ({st.reset!r}) instead of a Trailers-Only answer"
    assert len(resp) == 1 and resp[0].stream_ended is not None, (
        f"not one HEADERS frame with END_STREAM: {peer.events}")
    assert st.headers.get(":status") == "200", st.headers
    assert st.headers.get("content-type", "").startswith("application/grpc"), st.headers
    assert st.status is not None and st.status[0] == 4, (
        f"want grpc-status 4 (DEADLINE_EXCEEDED): {st.headers}")
    assert st.trailers is None and st.data == b"", (st.trailers, st.data)
    # Not before the deadline: the 300 ms were counted (the 10 ms are libuv's ms rounding).
    assert took >= DEADLINE_TIMEOUT_S - 0.01, f"answered after {took:.3f} s, before the deadline"
    assert not peer.closed, "server closed the connection"
    assert not any(isinstance(e, h2.events.ConnectionTerminated) for e in peer.events), peer.events

    # The handler saw the deadline, and nothing was counted as a cancel. The counters call is
    # the second call (active 1: itself).
    c = run_client("--target", srv.addr, "counters", timeout=30)
    assert c["status"] == 0, c
    assert (c["deadline_exceeded"], c["cancelled"]) == (1, 0), c
    assert (c["calls"], c["active"]) == (2, 1), c
