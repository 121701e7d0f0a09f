"""Adversarial peers for netreel-store and netreel-hub (issue 7, "Hostile input";
docs/design.md §9).

What the hostile suites (test_hostile_store.py, test_hostile_hub.py, test_hostile_stall.py)
share:

  * Wire: one TCP connection that speaks HTTP/2 by hand: frames are built byte by byte (so they
    can be wrong on purpose), the server's frames are parsed and its header blocks decoded with
    hpack, and nothing is sent that the test did not ask for (no WINDOW_UPDATE: a peer that does
    not read is one call away). Every wait is bounded.
  * expect_status / expect_goaway / expect_closed: the verdicts a case may get, each exact (the
    gRPC status code and words of its message; the GOAWAY error code; the close within a time).
  * Target: the server under attack and what must still hold after each case: it is alive, a
    well-formed call from grpcio succeeds promptly, its memory is under a stated cap, and (store)
    its data directory holds what it held before.
  * GENERIC_CASES: the HTTP/2 and gRPC framing cases run against both servers; each server's
    suite adds its own (Ingest batches, Snapshot requests).
  * the case counter behind the closing line "hostile: N cases against store, M against hub".

This module holds no tests.
"""

import os
import re
import select
import socket
import ssl
import struct
import threading
import time
import urllib.parse
from pathlib import Path

import hpack

import store_helpers as sh

ASAN = sh.ASAN
MIB = 1 << 20
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

# Frame types and flags (RFC 9113 §6).
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, \
    CONTINUATION = range(10)
END_STREAM, ACK, END_HEADERS, PADDED, PRIO = 0x1, 0x1, 0x4, 0x8, 0x20
# Error codes.
NO_ERROR, PROTOCOL_ERROR, INTERNAL_ERROR, FLOW_CONTROL_ERROR, SETTINGS_TIMEOUT, STREAM_CLOSED, \
    FRAME_SIZE_ERROR, REFUSED_STREAM, CANCEL, COMPRESSION_ERROR, CONNECT_ERROR, \
    ENHANCE_YOUR_CALM = range(12)

# gRPC status codes.
OK, CANCELLED, INVALID_ARGUMENT, DEADLINE_EXCEEDED = 0, 1, 3, 4
RESOURCE_EXHAUSTED, UNIMPLEMENTED, INTERNAL, UNAUTHENTICATED = 8, 12, 13, 16

# lib/rpc's defaults (lib/rpc/limits.c, lib/rpc/frame.h).
MAX_HEADER_LIST = 16 << 10
MAX_MESSAGE = 4 * MIB
MAX_CONCURRENT = 100

# The timeouts the suites start their servers with (short, so the cases that wait for them
# take seconds; the defaults are 10s, 5m and 1m).
HANDSHAKE_S, IDLE_S, STALL_S = 1.0, 2.0, 2.0
TIMEOUT_ARGS = ["--handshake-timeout", "1s", "--idle-timeout", "2s", "--stall-timeout", "2s"]
# How late a timeout may fire: the server checks four times per timeout (lib/rpc/conn.c), and
# the idle close waits a second after its first GOAWAY; the rest is a loaded machine.
TIMEOUT_SLACK_S = 3.0 if not ASAN else 6.0

COUNTS = {"store": 0, "hub": 0}


def count_line():
    return f"hostile: {COUNTS['store']} cases against store, {COUNTS['hub']} against hub"


def report_counts(request):
    """Writes the closing count line to the terminal (not captured, also with -q)."""
    pm = request.config.pluginmanager
    tr, capman = pm.getplugin("terminalreporter"), pm.getplugin("capturemanager")
    if tr is None or capman is None:
        print(count_line())
        return
    with capman.global_and_fixture_disabled():
        tr.write_line("")
        tr.write_line(count_line())


# ---- frames ------------------------------------------------------------------------------------

def frame(ftype, flags, sid, payload=b"", length=None):
    """One HTTP/2 frame; `length` overrides the length field (to lie about it)."""
    n = len(payload) if length is None else length
    return struct.pack(">I", n)[1:] + bytes([ftype, flags]) + struct.pack(">I", sid) + payload


def settings_frame(entries=(), flags=0):
    return frame(SETTINGS, flags, 0, b"".join(struct.pack(">HI", k, v) for k, v in entries))


def grpc_msg(body, flag=0, length=None):
    """A gRPC length-prefixed message; `length` overrides the prefix (to lie about it)."""
    return bytes([flag]) + struct.pack(">I", len(body) if length is None else length) + body


def grpc_headers(path, extra=()):
    return [(":method", "POST"), (":scheme", "http"), (":path", path),
            (":authority", "netreel-hostile"), ("content-type", "application/grpc"),
            ("te", "trailers"), *extra]


def wait_fd(sock, events, timeout):
    """poll() one socket (select() cannot take descriptors past 1024)."""
    p = select.poll()
    p.register(sock, events | select.POLLERR | select.POLLHUP)
    return bool(p.poll(max(timeout, 0) * 1000))


class Wire:
    """One HTTP/2 connection by hand. `preface` sends the client preface and an empty SETTINGS;
    the server's SETTINGS are acknowledged as they come (ack_settings) and nothing else is sent
    on the peer's own account: no WINDOW_UPDATE, no PING answer."""

    def __init__(self, port, preface=True, rcvbuf=None, settings=(), ack_settings=True,
                 host="127.0.0.1", source=None):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if source:
            self.sock.bind((source, 0))
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(5)
        self.sock.connect((host, port))
        self.t0 = time.monotonic()
        self.enc = hpack.Encoder()
        self.dec = hpack.Decoder()
        self.dec.max_header_list_size = 1 << 24
        self.ack_settings = ack_settings and preface  # an ACK before the preface is garbage
        self.buf = b""
        self.eof = False
        self.eof_at = None
        self.reset_by_peer = False
        self.goaway = None      # (last stream id, error code, debug data)
        self.goaways = []
        self.rst = {}           # stream id -> error code
        self.headers = {}       # stream id -> [dict, ...] (decoded header blocks)
        self.data = {}          # stream id -> bytes
        self.ended = set()      # streams the server ended (END_STREAM)
        self.settings_seen = 0
        self.ping_acks = 0
        self.frames_in = 0
        self._hdr = None        # (stream id, flags, block so far) while a block continues
        if preface:
            self.send(PREFACE + settings_frame(settings))

    # -- sending

    def send(self, data, timeout=5):
        """Sends all of data; False (and .eof) if the server closed or reset the connection."""
        if self.eof:
            return False
        self.sock.settimeout(timeout)
        try:
            self.sock.sendall(data)
            return True
        except (BrokenPipeError, ConnectionResetError):
            self._closed(reset=True)
            return False

    def headers_frame(self, sid, hdrs, end_stream=False, raw_block=None, end_headers=True):
        block = raw_block if raw_block is not None else self.enc.encode(hdrs)
        flags = (END_HEADERS if end_headers else 0) | (END_STREAM if end_stream else 0)
        return frame(HEADERS, flags, sid, block)

    def request(self, sid, path, body=None, extra=(), end_stream=True, hdrs=None):
        """HEADERS for a gRPC call, then body (bytes, already framed as gRPC) in DATA frames of
        at most 16 KiB, the last with END_STREAM when end_stream."""
        h = hdrs if hdrs is not None else grpc_headers(path, extra)
        if body is not None and len(body) > 65535:
            # The stream window is 65535 until the server's SETTINGS are acknowledged.
            self.until(lambda: self.settings_seen, 5)
        out = [self.headers_frame(sid, h, end_stream=end_stream and body is None)]
        if body is not None:
            chunks = [body[i:i + 16384] for i in range(0, len(body), 16384)] or [b""]
            for k, c in enumerate(chunks):
                last = k == len(chunks) - 1
                out.append(frame(DATA, END_STREAM if last and end_stream else 0, sid, c))
        return self.send(b"".join(out))

    # -- receiving

    def _closed(self, reset=False):
        if not self.eof:
            self.eof = True
            self.eof_at = time.monotonic()
        self.reset_by_peer |= reset

    def pump(self, wait):
        """Reads what comes within `wait` seconds (one recv) and parses it."""
        if self.eof:
            return False
        if not wait_fd(self.sock, select.POLLIN, wait):
            return False
        try:
            data = self.sock.recv(1 << 20)
        except ConnectionResetError:
            self._closed(reset=True)
            return True
        except socket.timeout:
            return False
        if not data:
            self._closed()
            return True
        self.buf += data
        self._parse()
        return True

    def _parse(self):
        while len(self.buf) >= 9:
            n = int.from_bytes(self.buf[:3], "big")
            if len(self.buf) < 9 + n:
                return
            ftype, flags = self.buf[3], self.buf[4]
            sid = int.from_bytes(self.buf[5:9], "big") & 0x7FFFFFFF
            payload = self.buf[9:9 + n]
            self.buf = self.buf[9 + n:]
            self.frames_in += 1
            self._frame(ftype, flags, sid, payload)

    def _frame(self, ftype, flags, sid, p):
        if ftype == SETTINGS and not flags & ACK:
            self.settings_seen += 1
            if self.ack_settings:
                self.send(settings_frame(flags=ACK))
        elif ftype == PING and flags & ACK:
            self.ping_acks += 1
        elif ftype == GOAWAY:
            last, code = struct.unpack(">II", p[:8])
            self.goaway = (last & 0x7FFFFFFF, code, p[8:])
            self.goaways.append(self.goaway)
        elif ftype == RST_STREAM:
            self.rst[sid] = struct.unpack(">I", p[:4])[0]
        elif ftype == DATA:
            if flags & PADDED:
                p = p[1:len(p) - p[0]]
            self.data[sid] = self.data.get(sid, b"") + p
            if flags & END_STREAM:
                self.ended.add(sid)
        elif ftype in (HEADERS, CONTINUATION):
            if ftype == HEADERS:
                if flags & PADDED:
                    p = p[1:len(p) - p[0]]
                if flags & PRIO:
                    p = p[5:]
                self._hdr = (sid, flags, p)
            else:
                s0, f0, b0 = self._hdr
                self._hdr = (s0, f0 | (flags & END_HEADERS), b0 + p)
            s0, f0, block = self._hdr
            if f0 & END_HEADERS:
                self._hdr = None
                hdrs = {k: v for k, v in self.dec.decode(block, raw=False)}
                self.headers.setdefault(s0, []).append(hdrs)
                if f0 & END_STREAM:
                    self.ended.add(s0)

    def until(self, cond, timeout):
        """Reads until cond() or EOF or timeout; returns cond()."""
        deadline = time.monotonic() + timeout
        while not cond():
            left = deadline - time.monotonic()
            if left <= 0 or self.eof:
                return cond()
            self.pump(min(left, 0.2))
        return True

    def drain_until_closed(self, timeout):
        """Reads (and throws away) until the server closes; True if it did within timeout."""
        return self.until(lambda: self.eof, timeout)

    # -- what came

    def status(self, sid):
        """(grpc-status, grpc-message) of the stream, or None."""
        for h in reversed(self.headers.get(sid, [])):
            if "grpc-status" in h:
                return int(h["grpc-status"]), urllib.parse.unquote(h.get("grpc-message", ""))
        return None

    def http_status(self, sid):
        hs = self.headers.get(sid, [])
        return hs[0].get(":status") if hs else None

    def answered(self, sid):
        return self.status(sid) is not None or sid in self.rst or sid in self.ended

    def describe(self, sid=None):
        what = [f"eof={self.eof}", f"goaway={self.goaway}", f"frames_in={self.frames_in}"]
        if sid is not None:
            what += [f"headers={self.headers.get(sid)}", f"rst={self.rst.get(sid)}",
                     f"data={len(self.data.get(sid, b''))}B"]
        return ", ".join(what)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


# ---- verdicts ----------------------------------------------------------------------------------

def expect_status(w, sid, code, *words, timeout=5.0):
    """The stream ends with grpc-status `code` and a grpc-message holding every word."""
    w.until(lambda: w.status(sid) is not None or sid in w.rst, timeout)
    st = w.status(sid)
    assert st is not None, f"stream {sid}: no grpc-status within {timeout:g} s ({w.describe(sid)})"
    assert st[0] == code, f"stream {sid}: grpc-status {st[0]} {st[1]!r}, want {code}"
    missing = [x for x in words if x not in st[1]]
    assert not missing, f"stream {sid}: grpc-message {st[1]!r} does not say {missing}"
    raw = next(h for h in reversed(w.headers[sid]) if "grpc-status" in h).get("grpc-message", "")
    assert all(0x20 <= ord(ch) <= 0x7E for ch in raw), f"grpc-message not percent-encoded: {raw!r}"
    return st


def expect_goaway(w, code, timeout=5.0):
    """A GOAWAY with this error code, then the connection closed, within timeout."""
    w.until(lambda: w.goaway is not None and w.goaway[1] != NO_ERROR or w.eof, timeout)
    assert w.goaway is not None, f"no GOAWAY within {timeout:g} s ({w.describe()})"
    assert w.goaway[1] == code, f"GOAWAY error code {w.goaway[1]} ({w.goaway}), want {code}"
    assert w.drain_until_closed(timeout), f"GOAWAY {w.goaway} but no close within {timeout:g} s"
    return w.goaway


def expect_closed(w, timeout, at_least=0.0):
    """The server closes (FIN or reset) within timeout s of the connection, not before
    at_least s."""
    closed = w.drain_until_closed(timeout - (time.monotonic() - w.t0))
    took = time.monotonic() - w.t0
    assert closed, f"connection still open after {took:.1f} s ({w.describe()})"
    took = w.eof_at - w.t0
    assert took >= at_least, f"closed after {took:.2f} s, before the {at_least:g} s it had"
    return took


def expect_rst(w, sid, code, timeout=5.0):
    w.until(lambda: sid in w.rst or w.eof, timeout)
    assert w.rst.get(sid) == code, f"stream {sid}: want RST_STREAM {code}: {w.describe(sid)}"


# ---- process checks ----------------------------------------------------------------------------

def proc_kb(pid, field):
    m = re.search(rf"^{field}:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text(), re.M)
    assert m, f"no {field} in /proc/{pid}/status"
    return int(m.group(1))


def metric(proc, name, **labels):
    """A sample from the process's /metrics (it must have a metrics port)."""
    status, body, _ = sh.scrape(proc)
    assert status == 200, f"/metrics answered {status}"
    return sh.metric_value(body, name, **labels)


def wait_metric(proc, want, name, timeout=STALL_S + TIMEOUT_SLACK_S + 1, **labels):
    """Polls a sample of proc's /metrics until it is `want` or timeout s have passed; returns
    the last value (the caller asserts it). For counts the server updates on its own time."""
    deadline = time.monotonic() + timeout
    while True:
        v = metric(proc, name, **labels)
        if v == want or time.monotonic() > deadline:
            return v
        time.sleep(0.05)


class Target:
    """The server under attack. good() makes a well-formed call on a fresh grpcio channel and
    asserts its result; data_dir (store) is compared with its state when the suite began."""

    def __init__(self, name, proc, good, rss_cap_kb, data_dir=None, snapshot_path=None,
                 unary_path=None, unary_body=b""):
        self.name, self.proc, self.good_call = name, proc, good
        self.port, self.pid = proc.port, proc.pid
        self.rss_cap_kb = rss_cap_kb
        self.data_dir = Path(data_dir) if data_dir else None
        self.disk = sh.dir_state(data_dir) if data_dir else None
        self.snapshot_path = snapshot_path
        self.unary_path = unary_path      # a unary method of the service (Stats, Status)
        self.unary_body = unary_body      # a valid request for it
        self.rss_peak = 0

    def wire(self, **kw):
        return Wire(self.port, **kw)

    def good(self, what="a well-formed call", within=5.0):
        t0 = time.monotonic()
        self.good_call()
        took = time.monotonic() - t0
        assert took < within * (3 if ASAN else 1), f"{what} took {took:.2f} s"
        return took

    def rss_kb(self):
        return proc_kb(self.pid, "VmRSS")

    def check(self, case):
        """After a case: alive, serving, memory under the cap, nothing written."""
        assert self.proc.alive(), f"{self.name} exited after {case}:\n{sh.tail(self.proc.stderr())}"
        self.good(f"a well-formed call after {case}")
        rss, hwm = self.rss_kb(), proc_kb(self.pid, "VmHWM")
        self.rss_peak = max(self.rss_peak, hwm)
        if not ASAN:
            assert rss < self.rss_cap_kb, f"after {case}: VmRSS {rss} KiB >= {self.rss_cap_kb}"
            assert hwm < self.rss_cap_kb, f"after {case}: VmHWM {hwm} KiB >= {self.rss_cap_kb}"
        if self.disk is not None:
            now = sh.dir_state(self.data_dir)
            assert now == self.disk, (f"after {case} the data directory changed:\n" +
                                      sh.state_diff(self.disk, now))


def during(target, flood, what, min_calls=1):
    """Runs flood() in a thread and well-formed calls in this one until it ends: every call
    succeeds promptly while the flood goes on. Returns flood()'s result."""
    out, err = [], []

    def run():
        try:
            out.append(flood())
        except BaseException as e:  # reported below
            err.append(e)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    calls = 0
    try:
        time.sleep(0.05)
        while t.is_alive() or calls < min_calls:
            target.good(f"a well-formed call during {what}")
            calls += 1
            if t.is_alive():
                time.sleep(0.1)
    finally:
        # Also when a call failed: the flood ends here, not during the next case (the suites
        # share one server per module).
        t.join(30)
    assert not t.is_alive(), f"{what} still running 30 s after the last call"
    if err:
        raise err[0]
    return out[0] if out else None


# ---- cases every gRPC server must survive -------------------------------------------------------
# Each takes the Target and asserts the verdict; the suites run Target.check after each.

def bytes_before_preface(t):
    w = t.wire(preface=False)
    w.send(b"GET / HTTP/1.1\r\nHost: netreel\r\n\r\n")
    expect_closed(w, 3)
    w.close()


def garbage_before_preface(t):
    w = t.wire(preface=False)
    w.send(bytes(range(256)) * 4)
    expect_closed(w, 3)
    w.close()


def tls_hello_to_plaintext(t):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(inc, out)
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    hello = out.read()
    assert hello[:1] == b"\x16", hello[:8]
    w = t.wire(preface=False)
    w.send(hello)
    expect_closed(w, 3)
    w.close()


def silent_tcp_peer(t):
    """Connects and says nothing: closed after --handshake-timeout, not before."""
    w = t.wire(preface=False)
    took = expect_closed(w, HANDSHAKE_S + TIMEOUT_SLACK_S, at_least=HANDSHAKE_S - 0.1)
    assert w.goaway is None or w.goaway[1] in (NO_ERROR, SETTINGS_TIMEOUT), w.goaway
    w.close()
    return f"closed after {took:.2f} s"


MAX_CONNECTIONS = 1024   # rpc_server_config's default


def silent_peers_fill_every_slot(t):
    """1024 silent connections take every slot the server has: the next one is closed at once.
    The handshake timeout gives them all back, and a well-formed call is served again. (Before
    it, a silent peer held its slot forever.) They come from 17 loopback addresses, 60 from
    each: one address may hold only 64 (max_connections_per_peer)."""
    socks = []
    try:
        for i in range(MAX_CONNECTIONS):
            socks.append(socket.create_connection(("127.0.0.1", t.port), timeout=5,
                                                  source_address=(f"127.0.1.{1 + i // 60}", 0)))
        # Every one accepted (the kernel completes a connect before the server accepts it): a
        # fixed 0.2 s was too short on a busy machine. Past the handshake timeout the first
        # ones are closed and the count never gets there.
        deadline = time.monotonic() + HANDSHAKE_S + TIMEOUT_SLACK_S
        while (held := metric(t.proc, "netreel_rpc_connections")) < MAX_CONNECTIONS:
            assert time.monotonic() < deadline, (
                f"the server took {held:g} of the {MAX_CONNECTIONS} connections within "
                f"{HANDSHAKE_S + TIMEOUT_SLACK_S:g} s")
            time.sleep(0.02)
        extra = Wire(t.port, preface=False, source="127.0.2.1")  # its address holds none
        took = expect_closed(extra, 2.0)
        extra.close()
        assert took < HANDSHAKE_S, f"the connection past the limit was closed after {took:.2f} s"
        deadline = time.monotonic() + HANDSHAKE_S + TIMEOUT_SLACK_S + 1.5
        for s in socks:   # each is closed by the server (FIN, or RST once it saw our SETTINGS)
            s.settimeout(max(deadline - time.monotonic(), 0.01))
            try:
                while s.recv(65536):
                    pass
            except ConnectionResetError:
                pass
            except socket.timeout:
                raise AssertionError(f"a silent connection is still open {HANDSHAKE_S:g} s "
                                     "after the handshake timeout")
    finally:
        for s in socks:
            s.close()
    return f"{MAX_CONNECTIONS} slots taken and given back, one past them closed after {took:.2f} s"


def half_preface_then_silence(t):
    w = t.wire(preface=False)
    w.send(PREFACE[:10])
    took = expect_closed(w, HANDSHAKE_S + TIMEOUT_SLACK_S, at_least=HANDSHAKE_S - 0.1)
    w.close()
    return f"closed after {took:.2f} s"


def idle_after_preface(t):
    """A connection that never opens a stream: GOAWAY(NO_ERROR) after --idle-timeout, closed."""
    w = t.wire()
    w.until(lambda: w.goaway is not None, IDLE_S + TIMEOUT_SLACK_S)
    took = time.monotonic() - w.t0
    assert w.goaway is not None, f"no GOAWAY after {took:.1f} s idle ({w.describe()})"
    assert took >= IDLE_S - 0.1, f"GOAWAY after {took:.2f} s, before --idle-timeout"
    assert w.goaway[1] == NO_ERROR, w.goaway
    expect_closed(w, IDLE_S + 2 * TIMEOUT_SLACK_S)
    assert w.goaways[-1][0] == 0, f"final GOAWAY names stream {w.goaways[-1][0]}, none was opened"
    w.close()


def headers_left_open(t):
    """HEADERS without END_HEADERS, then nothing: the block blocks the whole connection (RFC
    9113 §6.10), so the server closes it after --handshake-timeout."""
    w = t.wire()
    w.until(lambda: w.settings_seen, 2)
    block = w.enc.encode(grpc_headers(t.unary_path))
    w.send(frame(HEADERS, 0, 1, block[:5]))
    t0 = time.monotonic()
    assert w.drain_until_closed(HANDSHAKE_S + TIMEOUT_SLACK_S), w.describe()
    assert time.monotonic() - t0 >= HANDSHAKE_S - 0.2
    w.close()


def _conn_error(t, payload, code, settings=True):
    w = t.wire()
    if settings:
        w.until(lambda: w.settings_seen, 2)
    w.send(payload)
    g = expect_goaway(w, code)
    w.close()
    return g


def data_on_stream_0(t):
    _conn_error(t, frame(DATA, 0, 0, b"x" * 10), PROTOCOL_ERROR)


def ping_wrong_length(t):
    _conn_error(t, frame(PING, 0, 0, b"1234567"), FRAME_SIZE_ERROR)


def window_update_zero(t):
    _conn_error(t, frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", 0)), PROTOCOL_ERROR)


def window_overflow(t):
    wu = frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", 0x7FFFFFFF))
    _conn_error(t, wu + wu, FLOW_CONTROL_ERROR)


def headers_on_even_stream(t):
    w = t.wire()
    w.until(lambda: w.settings_seen, 2)
    w.send(w.headers_frame(2, grpc_headers(t.unary_path)))
    expect_goaway(w, PROTOCOL_ERROR)
    w.close()


def frame_larger_than_allowed(t):
    # 2 MiB announced; the server allows 1 MiB (16 KiB before its SETTINGS are acknowledged).
    _conn_error(t, frame(DATA, 0, 1, b"x" * 64, length=2 * MIB), FRAME_SIZE_ERROR)


def settings_bad_enable_push(t):
    _conn_error(t, settings_frame([(2, 2)]), PROTOCOL_ERROR)


def settings_bad_window(t):
    _conn_error(t, settings_frame([(4, 1 << 31)]), FLOW_CONTROL_ERROR)


def settings_bad_frame_size(t):
    _conn_error(t, settings_frame([(5, 1 << 24)]), PROTOCOL_ERROR)


def settings_too_many_entries(t):
    # nghttp2_option_set_max_settings(32) in lib/rpc: 100 entries in one frame is a flood.
    _conn_error(t, settings_frame([(3, 100 + i) for i in range(100)]), ENHANCE_YOUR_CALM)


def settings_ack_with_payload(t):
    _conn_error(t, frame(SETTINGS, ACK, 0, struct.pack(">HI", 3, 1)), FRAME_SIZE_ERROR)


def window_update_wrong_length(t):
    _conn_error(t, frame(WINDOW_UPDATE, 0, 0, b"\0\0\1"), FRAME_SIZE_ERROR)


def padding_longer_than_frame(t):
    w = t.wire()
    w.until(lambda: w.settings_seen, 2)
    block = w.enc.encode(grpc_headers(t.unary_path))
    # PADDED with a pad length past the end of the frame
    w.send(frame(HEADERS, END_HEADERS | PADDED, 1, bytes([len(block) + 10]) + block))
    expect_goaway(w, PROTOCOL_ERROR)
    w.close()


def continuation_without_headers(t):
    _conn_error(t, frame(CONTINUATION, END_HEADERS, 1, b"\x82"), PROTOCOL_ERROR)


def rst_on_idle_stream(t):
    _conn_error(t, frame(RST_STREAM, 0, 99, struct.pack(">I", CANCEL)), PROTOCOL_ERROR)


def push_promise_from_client(t):
    _conn_error(t, frame(PUSH_PROMISE, END_HEADERS, 1, struct.pack(">I", 2) + b"\x82"),
                PROTOCOL_ERROR)


def hpack_bad_index(t):
    w = t.wire()
    w.until(lambda: w.settings_seen, 2)
    # An indexed field far past the static and dynamic tables.
    w.send(w.headers_frame(1, None, raw_block=b"\xff\xff\xff\x7f"))
    expect_goaway(w, COMPRESSION_ERROR)
    w.close()


def hpack_table_size_too_big(t):
    w = t.wire()
    w.until(lambda: w.settings_seen, 2)
    # A dynamic table size update to 1 MiB: above the 4096 the server allows.
    w.send(w.headers_frame(1, None, raw_block=b"\x3f\xe1\xff\x3f" + b"\x82"))
    expect_goaway(w, COMPRESSION_ERROR)
    w.close()


def unknown_frame_type_ignored(t):
    """RFC 9113 §4.1: unknown frame types are ignored; the connection goes on."""
    w = t.wire()
    w.send(frame(0xFA, 0xFF, 0, b"junk" * 10) + frame(0xFB, 0, 1, b""))
    w.request(1, t.unary_path, grpc_msg(t.unary_body))
    expect_status(w, 1, OK)
    w.close()


def priority_on_itself(t):
    """A stream that depends on itself: stream error PROTOCOL_ERROR; the connection goes on."""
    w = t.wire()
    w.until(lambda: w.settings_seen, 2)
    w.send(frame(PRIORITY, 0, 3, struct.pack(">IB", 3, 16)))
    w.until(lambda: 3 in w.rst or w.goaway is not None, 3)
    if w.goaway is not None:
        expect_goaway(w, PROTOCOL_ERROR)
    else:
        assert w.rst.get(3) == PROTOCOL_ERROR, w.describe(3)
        w.request(5, t.unary_path, grpc_msg(t.unary_body))
        expect_status(w, 5, OK)
    w.close()


# -- floods

def rapid_reset(t):
    """CVE-2023-44487: HEADERS + RST_STREAM(CANCEL) as fast as the socket takes them. The
    server's reset-rate limit (1000 at once, then 33/s) ends the connection with GOAWAY, and
    everybody else is served meanwhile."""
    w = t.wire()
    w.until(lambda: w.settings_seen, 2)
    hdrs = grpc_headers(t.unary_path)
    w.send(w.headers_frame(1, hdrs) + frame(RST_STREAM, 0, 1, struct.pack(">I", CANCEL)))
    block = w.enc.encode(hdrs)  # all indexed now: a few bytes, valid for any stream

    def flood():
        sid, sent = 3, 0
        deadline = time.monotonic() + 8
        while not w.eof and time.monotonic() < deadline:
            batch = b"".join(frame(HEADERS, END_HEADERS, s, block) +
                             frame(RST_STREAM, 0, s, struct.pack(">I", CANCEL))
                             for s in range(sid, sid + 2000, 2))
            if not w.send(batch):
                break
            sid += 2000
            sent += 1000
            w.pump(0)
        return sent

    sent = during(t, flood, "a rapid-reset flood")
    # nghttp2's limit (CVE-2023-44487 fix, back-ported by Debian) answers INTERNAL_ERROR.
    g = expect_goaway(w, INTERNAL_ERROR, timeout=5)
    assert g[0] < 2 * 1000 + 200, f"GOAWAY after stream {g[0]}: more than the burst of 1000"
    w.close()
    return f"{sent} resets sent, GOAWAY {g[:2]}"


def continuation_flood(t):
    """CVE-2024-28182: one header block spread over endless CONTINUATION frames."""
    w = t.wire()
    w.until(lambda: w.settings_seen, 2)
    block = w.enc.encode(grpc_headers(t.unary_path))
    w.send(frame(HEADERS, 0, 1, block))

    def flood():
        n = 0
        while not w.eof and n < 100_000:
            if not w.send(b"".join(frame(CONTINUATION, 0, 1, b"\x40\x01a\x01b")
                                   for _ in range(1000))):
                break
            n += 1000
            w.pump(0)
        return n

    n = during(t, flood, "a CONTINUATION flood")
    g = expect_goaway(w, ENHANCE_YOUR_CALM, timeout=5)
    w.close()
    return f"{n} CONTINUATION frames sent, GOAWAY {g[:2]}"


def _control_flood(t, one, what):
    """Sends `one` (a frame that wants an ACK) nonstop on a connection that never reads. The
    server's queue of ACKs passes nghttp2's max_outbound_ack: it closes the connection."""
    w = t.wire(rcvbuf=4096)
    w.until(lambda: w.settings_seen, 2)
    w.sock.setblocking(False)
    chunk = one * 4096

    def flood():
        sent, t0 = 0, time.monotonic()
        while time.monotonic() - t0 < 15:
            try:
                sent += w.sock.send(chunk)
            except BlockingIOError:
                wait_fd(w.sock, select.POLLOUT, 0.2)
            except (BrokenPipeError, ConnectionResetError):
                return sent, True, time.monotonic() - t0
        return sent, False, time.monotonic() - t0

    sent, closed, took = during(t, flood, what)
    w.sock.setblocking(True)
    if not closed:
        w.sock.settimeout(1)
        closed = w.drain_until_closed(5)
    assert closed, f"{what}: {sent} bytes in {took:.1f} s and the connection is still open"
    w.close()
    return f"{sent >> 20} MiB sent until the server closed after {took:.2f} s"


def settings_flood(t):
    return _control_flood(t, settings_frame(), "a SETTINGS flood")


def ping_flood(t):
    return _control_flood(t, frame(PING, 0, 0, b"12345678"), "a PING flood")


def ten_thousand_streams_at_once(t):
    """10 000 streams opened at once, none finished, after the server's SETTINGS (100
    concurrent streams) were acknowledged: nghttp2 takes 100 and ends the connection at the
    101st with GOAWAY(PROTOCOL_ERROR) naming the limit (RFC 9113 §5.1.2 allows a stream or a
    connection error). Memory stays flat."""
    w = t.wire()
    w.until(lambda: w.settings_seen, 2)
    hdrs = grpc_headers(t.unary_path)
    first = w.headers_frame(1, hdrs)
    block = w.enc.encode(hdrs)
    ids = list(range(1, 20001, 2))
    w.send(first + b"".join(frame(HEADERS, END_HEADERS, s, block) for s in ids[1:]), timeout=20)
    g = expect_goaway(w, PROTOCOL_ERROR)
    assert g[0] == 2 * MAX_CONCURRENT - 1, f"GOAWAY names stream {g[0]}: not the 100th stream"
    assert b"max concurrent streams exceeded" in g[2], g
    w.close()


def ten_thousand_streams_in_turn(t):
    """10 000 calls on one connection, 100 at a time (what the server allows): all answered OK,
    and nothing is kept per finished stream (memory is checked after the case)."""
    w = t.wire()
    w.until(lambda: w.settings_seen, 2)
    hdrs = grpc_headers(t.unary_path)
    req = grpc_msg(t.unary_body)
    # The answers' DATA would use up our connection window: open it wide.
    w.send(frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", 0x7FFFFFFF - 65535)))
    sid, done = 1, 0
    while done < 10_000:
        wave = list(range(sid, sid + 2 * MAX_CONCURRENT, 2))
        w.send(b"".join(w.headers_frame(s, hdrs) + frame(DATA, END_STREAM, s, req)
                        for s in wave))
        w.until(lambda: all(w.status(s) is not None for s in wave), 10)
        bad = {s: (w.status(s), w.rst.get(s)) for s in wave if (w.status(s) or (-1,))[0] != OK}
        assert not bad, f"after {done} calls: {list(bad.items())[:5]} ({w.describe()})"
        for s in wave:   # keep the bookkeeping small
            w.headers.pop(s, None)
            w.data.pop(s, None)
        done += len(wave)
        sid += 2 * MAX_CONCURRENT
    assert w.goaway is None and not w.eof, w.describe()
    w.close()
    return f"{done} calls answered"


# -- header bombs

def header_frames(block, sid):
    """A header block as HEADERS and CONTINUATION frames of at most 16 KiB, END_HEADERS last."""
    parts = [block[i:i + 16384] for i in range(0, len(block), 16384)]
    frames = [frame(HEADERS, END_HEADERS if len(parts) == 1 else 0, sid, parts[0])]
    for k, p in enumerate(parts[1:], 1):
        frames.append(frame(CONTINUATION, END_HEADERS if k == len(parts) - 1 else 0, sid, p))
    return b"".join(frames)


def header_one_huge_value(t):
    w = t.wire()
    w.until(lambda: w.settings_seen, 2)
    block = w.enc.encode(grpc_headers(t.unary_path, [("x-junk", "j" * (40 << 10))]))
    w.send(header_frames(block, 1) + frame(DATA, END_STREAM, 1, grpc_msg(t.unary_body)))
    expect_status(w, 1, RESOURCE_EXHAUSTED, f"larger than {MAX_HEADER_LIST} bytes")
    w.close()


def header_many_small(t):
    w = t.wire()
    w.until(lambda: w.settings_seen, 2)
    extra = [(f"x-{i}", "v") for i in range(3000)]
    block = w.enc.encode(grpc_headers(t.unary_path, extra))
    w.send(header_frames(block, 1) + frame(DATA, END_STREAM, 1, grpc_msg(t.unary_body)))
    expect_status(w, 1, RESOURCE_EXHAUSTED, f"larger than {MAX_HEADER_LIST} bytes")
    w.close()


def hpack_bomb(t):
    """One 4000-byte header put in the dynamic table, then referenced 1000 times (one byte
    each): 4 MB of headers from a 5 KB block."""
    w = t.wire()
    w.until(lambda: w.settings_seen, 2)
    hdrs = grpc_headers(t.unary_path, [("x-bomb", "b" * 4000)] * 1000)
    block = w.enc.encode(hdrs)
    assert len(block) < 6000, len(block)
    w.send(w.headers_frame(1, None, raw_block=block) +
           frame(DATA, END_STREAM, 1, grpc_msg(t.unary_body)))
    expect_status(w, 1, RESOURCE_EXHAUSTED, f"larger than {MAX_HEADER_LIST} bytes")
    # The connection is fine for the next call (HPACK's state was kept).
    w.request(3, t.unary_path, grpc_msg(t.unary_body))
    expect_status(w, 3, OK)
    w.close()


# -- gRPC framing on a real method

def _one_call(t, path, body, code, *words, extra=(), end_stream=True):
    w = t.wire()
    w.request(1, path, body, extra=extra, end_stream=end_stream)
    st = expect_status(w, 1, code, *words)
    w.close()
    return st


def prefix_4gib(t):
    _one_call(t, t.snapshot_path, grpc_msg(b"", length=0xFFFFFFFF), RESOURCE_EXHAUSTED,
              "larger than max (4294967295 vs. 4194304)", end_stream=False)


def prefix_4gib_unary(t):
    _one_call(t, t.unary_path, grpc_msg(b"", length=0xFFFFFFFF), RESOURCE_EXHAUSTED,
              "larger than max (4294967295 vs.", end_stream=False)


def message_over_4mib(t):
    body = b"\x1a" + b"\xff\xff\xff\x02" + b"a" * (4 * MIB + 100)  # filter, 5 MB
    _one_call(t, t.snapshot_path, grpc_msg(body), RESOURCE_EXHAUSTED, "larger than max")


def truncated_message(t):
    _one_call(t, t.snapshot_path, grpc_msg(b"\x08\x01" * 5, length=100), INTERNAL,
              "stream ended in the middle of a message")


def truncated_prefix(t):
    _one_call(t, t.snapshot_path, b"\x00\x00\x00", INTERNAL,
              "stream ended in the middle of a message")


def malformed_protobuf(t):
    # field 3 (filter) announcing 2^31 bytes, 3 of which follow
    _one_call(t, t.snapshot_path, grpc_msg(b"\x1a\x80\x80\x80\x80\x08abc"), INVALID_ARGUMENT,
              "cannot parse SnapshotRequest")


def wrong_wire_type(t):
    # field 1 (since_ns, an int64) sent as a length-delimited field
    _one_call(t, t.snapshot_path, grpc_msg(b"\x0a\x02ab"), INVALID_ARGUMENT,
              "cannot parse SnapshotRequest")


def compressed_without_encoding(t):
    _one_call(t, t.snapshot_path, grpc_msg(b"\x08\x01", flag=1), INTERNAL,
              "compressed message without grpc-encoding")


def unsupported_encoding(t):
    _one_call(t, t.snapshot_path, grpc_msg(b""), UNIMPLEMENTED, "grpc-encoding gzip",
              extra=[("grpc-encoding", "gzip")])


def unknown_method(t):
    _one_call(t, "/netreel.v1.Nope/Nothing", grpc_msg(b""), UNIMPLEMENTED,
              "unknown method /netreel.v1.Nope/Nothing")


def method_name_needs_escaping(t):
    """The unknown path comes back in grpc-message percent-encoded (UTF-8 and '%' escaped),
    and decodes to what was sent."""
    path = "/netreel.v1.Nöpe/100%-ünicode"
    _one_call(t, path, grpc_msg(b""), UNIMPLEMENTED, f"unknown method {path}")


def path_traversal_method(t):
    _one_call(t, "/../../etc/passwd", grpc_msg(b""), UNIMPLEMENTED, "unknown method")


def no_message_unary(t):
    _one_call(t, t.unary_path, None, UNIMPLEMENTED, "missing request message")


def bad_grpc_timeout(t):
    _one_call(t, t.unary_path, grpc_msg(t.unary_body), INTERNAL, "malformed grpc-timeout",
              extra=[("grpc-timeout", "123456789S")])


def not_grpc_content_type(t):
    w = t.wire()
    h = [(k, v if k != "content-type" else "text/html") for k, v in grpc_headers(t.unary_path)]
    w.request(1, None, grpc_msg(t.unary_body), hdrs=h)
    w.until(lambda: w.answered(1), 5)
    assert w.http_status(1) == "415", w.describe(1)
    w.close()


def get_instead_of_post(t):
    w = t.wire()
    h = [(k, v if k != ":method" else "GET") for k, v in grpc_headers(t.unary_path)]
    w.request(1, None, None, hdrs=h)
    w.until(lambda: w.answered(1), 5)
    assert w.http_status(1) == "405", w.describe(1)
    w.close()


GENERIC_CASES = [
    bytes_before_preface, garbage_before_preface, tls_hello_to_plaintext, silent_tcp_peer,
    half_preface_then_silence, silent_peers_fill_every_slot, idle_after_preface, headers_left_open,
    data_on_stream_0, ping_wrong_length, window_update_zero, window_overflow,
    headers_on_even_stream, frame_larger_than_allowed, settings_bad_enable_push,
    settings_bad_window, settings_bad_frame_size, settings_too_many_entries,
    settings_ack_with_payload, window_update_wrong_length, padding_longer_than_frame,
    continuation_without_headers, rst_on_idle_stream, push_promise_from_client, hpack_bad_index,
    hpack_table_size_too_big, unknown_frame_type_ignored, priority_on_itself,
    rapid_reset, continuation_flood, settings_flood, ping_flood, ten_thousand_streams_at_once,
    ten_thousand_streams_in_turn,
    header_one_huge_value, header_many_small, hpack_bomb,
    prefix_4gib, prefix_4gib_unary, message_over_4mib, truncated_message, truncated_prefix,
    malformed_protobuf, wrong_wire_type, compressed_without_encoding, unsupported_encoding,
    unknown_method, method_name_needs_escaping, path_traversal_method, no_message_unary,
    bad_grpc_timeout, not_grpc_content_type, get_instead_of_post,
]


# ---- a store with a little in it -----------------------------------------------------------------

SEED_IFACES = [("eth0", 1, 256)]


def seed_store(store, pb, capture_id="good", batches=3, per_batch=20):
    """Ingests `batches` honest batches from grpcio; returns [(ifid, ts_ns, data), ...] sent."""
    import grpc
    t = (sh.now_ns() // 10**9 - 300) * 10**9
    sent, msgs = [], []
    for seq in range(1, batches + 1):
        pk = []
        for _ in range(per_batch):
            t += 1000
            pk.append((0, t, sh.frame(len(sent) + len(pk) + 1, 60 + 50 * (len(pk) % 4))))
        msgs.append(sh.make_batch(pb, capture_id, seq, pk,
                                  interfaces=SEED_IFACES if seq == 1 else None))
        sent += pk
    channel = grpc.insecure_channel(store.addr)
    try:
        acks, err = sh.ingest(sh.StoreStub(channel, pb, pb.health), msgs)
    finally:
        channel.close()
    assert err is None and acks and acks[-1].seq == batches, (acks, err)
    return sent


# ---- TLS: a handshake that never finishes --------------------------------------------------------

def tls_silent(port):
    """TCP connect to a TLS server and say nothing: closed after --handshake-timeout."""
    w = Wire(port, preface=False)
    took = expect_closed(w, HANDSHAKE_S + TIMEOUT_SLACK_S, at_least=HANDSHAKE_S - 0.1)
    w.close()
    return took


def _client_hello():
    """A TLS client in memory that has written its ClientHello: (ssl object, in, out BIOs)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(["h2"])
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(inc, out)
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return obj, inc, out


def tls_half_hello(port):
    """Half a ClientHello, then nothing: closed after --handshake-timeout."""
    _, _, out = _client_hello()
    hello = out.read()
    w = Wire(port, preface=False)
    w.send(hello[:len(hello) // 2])
    took = expect_closed(w, HANDSHAKE_S + TIMEOUT_SLACK_S, at_least=HANDSHAKE_S - 0.1)
    w.close()
    return took


def tls_hello_then_silence(port):
    """A whole ClientHello, the server's answer read, and then nothing more from us."""
    _, _, out = _client_hello()
    w = Wire(port, preface=False)
    w.send(out.read())
    took = expect_closed(w, HANDSHAKE_S + TIMEOUT_SLACK_S, at_least=HANDSHAKE_S - 0.1)
    w.close()
    return took
