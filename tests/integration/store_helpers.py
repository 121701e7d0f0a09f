"""Helpers for the netreel-store integration tests (test_store_*.py): a strict pcapng reader of
our own (so a snapshot can be compared with the feeder's --dump packet by packet, byte for byte),
an EPB/PacketBatch builder for hand-made (and hostile) batches, the store process, the
store-feeder and store-snapshot programs, grpcio stubs for netreel.v1.Store, and the tshark /
capinfos / du checks a user would run at a terminal.

The fixtures that use these live in conftest.py (stores, feeder, snapshot_tool, store_pb,
store_channel); everything here is plain functions and classes.
"""

import ctypes
import ctypes.util
import hashlib
import json
import os
import re
import signal
import struct
import subprocess
import time
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path

import grpc

ASAN = os.environ.get("NETREEL_ASAN", "0") not in ("", "0")
SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "runtime error:", "LeakSanitizer")
# Under ASan the heavy tests are scaled down by this factor (volumes, not limits).
SCALE = 0.25 if ASAN else 1.0
# The one line tshark prints on stderr when it runs as root; anything else is a warning.
TSHARK_ROOT_LINE = 'Running as user "root" and group "root". This could be dangerous.'

STORE_SERVICE = "netreel.v1.Store"
MIB = 1 << 20
CHUNK_MAX = 1 << 20  # a Snapshot message carries at most 1 MiB of blocks

BT_SHB, BT_IDB, BT_SPB, BT_NRB, BT_ISB, BT_EPB = 0x0A0D0D0A, 1, 3, 4, 5, 6
BOM = 0x1A2B3C4D
BLOCK_NAMES = {BT_SHB: "SHB", BT_IDB: "IDB", BT_SPB: "SPB", BT_NRB: "NRB", BT_ISB: "ISB",
               BT_EPB: "EPB"}


def sanitizer_reports(text):
    return [m for m in SANITIZER_MARKERS if m in text]


def tail(text, n=4000):
    return text if len(text) <= n else "...\n" + text[-n:]


def now_ns():
    return time.time_ns()


def pad4(n):
    return (n + 3) & ~3


# ---- pcapng: a strict reader ---------------------------------------------------------------

class PcapngError(ValueError):
    pass


@dataclass(frozen=True)
class Packet:
    ifid: int
    ts_ns: int
    caplen: int
    origlen: int
    data: bytes
    flags: int = field(default=0, compare=False)      # epb_flags (direction: bits 0-1)
    packet_id: int = field(default=0, compare=False)  # epb_packetid

    def key(self):
        """What a packet is, whatever interface numbering the file uses."""
        return (self.ts_ns, self.caplen, self.origlen, self.data)


@dataclass
class Interface:
    link_type: int
    snaplen: int
    name: str = None
    tsresol: int = 6  # power of ten (pcapng's default: microseconds)
    description: str = None


@dataclass
class Pcapng:
    blocks: list = field(default_factory=list)      # block type names in file order
    interfaces: list = field(default_factory=list)  # Interface, in IDB order
    packets: list = field(default_factory=list)     # Packet, in file order
    names: list = field(default_factory=list)       # (ip bytes, name) from NRBs
    isbs: list = field(default_factory=list)        # interface ids of the ISBs
    shb_comment: str = None

    def keys(self):
        return [p.key() for p in self.packets]


def _options(buf, off, end, where):
    """Yields (code, value) of a pcapng option list in buf[off:end]."""
    while off < end:
        if end - off < 4:
            raise PcapngError(f"{where}: option header runs past the block")
        code, length = struct.unpack_from("<HH", buf, off)
        off += 4
        if code == 0:
            return
        if off + length > end:
            raise PcapngError(f"{where}: option {code} of {length} bytes runs past the block")
        yield code, bytes(buf[off:off + length])
        off += pad4(length)


def _ts_to_ns(units, tsresol):
    if tsresol & 0x80:
        raise PcapngError(f"binary timestamp resolution {tsresol:#x} not supported")
    if tsresol <= 9:
        return units * 10 ** (9 - tsresol)
    q, r = divmod(units, 10 ** (tsresol - 9))
    if r:
        raise PcapngError(f"timestamp {units} at 10^-{tsresol} s is not a whole nanosecond")
    return q


def _epb(buf, off, total, ifaces, where, snaplen_check=True):
    if total < 32:
        raise PcapngError(f"{where}: EPB of {total} bytes is shorter than 32")
    ifid, hi, lo, caplen, origlen = struct.unpack_from("<IIIII", buf, off + 8)
    room = total - 32
    if caplen > room:
        raise PcapngError(f"{where}: captured length {caplen} runs past the block ({total})")
    if caplen > origlen:
        raise PcapngError(f"{where}: captured length {caplen} > original length {origlen}")
    if ifaces is not None:
        if ifid >= len(ifaces):
            raise PcapngError(f"{where}: interface id {ifid} but {len(ifaces)} IDBs")
        itf = ifaces[ifid]
        if snaplen_check and itf.snaplen and caplen > itf.snaplen:
            raise PcapngError(f"{where}: captured length {caplen} > snaplen {itf.snaplen}")
        ts = _ts_to_ns(hi << 32 | lo, itf.tsresol)
    else:
        ts = hi << 32 | lo  # bare batch blocks: nanoseconds
    data = bytes(buf[off + 28:off + 28 + caplen])
    flags = packet_id = 0
    for code, val in _options(buf, off + 28 + pad4(caplen), off + total - 4, where):
        if code == 2 and len(val) == 4:
            flags = struct.unpack("<I", val)[0]
        elif code == 5 and len(val) == 8:
            packet_id = struct.unpack("<Q", val)[0]
    return Packet(ifid, ts, caplen, origlen, data, flags, packet_id)


def _block_header(buf, off, where):
    if len(buf) - off < 12:
        raise PcapngError(f"{where}: {len(buf) - off} bytes left, too few for a block "
                          "(a torn block at the end?)")
    btype, total = struct.unpack_from("<II", buf, off)
    if total % 4 or total < 12:
        raise PcapngError(f"{where}: block total length {total} is not a multiple of 4 >= 12")
    if off + total > len(buf):
        raise PcapngError(f"{where}: block of {total} bytes runs past the end "
                          f"({len(buf) - off} left; a torn block at the end?)")
    (trail,) = struct.unpack_from("<I", buf, off + total - 4)
    if trail != total:
        raise PcapngError(f"{where}: trailing length {trail} differs from leading {total}")
    return btype, total


def parse_pcapng(data, where="pcapng"):
    """Reads a whole little-endian pcapng file strictly: every block whole and consistent, every
    EPB on a known interface within its snaplen. Raises PcapngError saying where it is wrong."""
    buf = memoryview(data)
    out = Pcapng()
    ifaces = None
    off = 0
    index = 0
    while off < len(buf):
        w = f"{where}: block {index} at offset {off}"
        btype, total = _block_header(buf, off, w)
        name = BLOCK_NAMES.get(btype, f"0x{btype:08x}")
        if btype == BT_SHB:
            (bom,) = struct.unpack_from("<I", buf, off + 8)
            if bom != BOM:
                raise PcapngError(f"{w}: SHB byte-order magic {bom:#x} (only little-endian)")
            major, minor = struct.unpack_from("<HH", buf, off + 12)
            if (major, minor) != (1, 0):
                raise PcapngError(f"{w}: SHB version {major}.{minor}")
            for code, val in _options(buf, off + 24, off + total - 4, w):
                if code == 1 and out.shb_comment is None:
                    out.shb_comment = val.decode(errors="replace")
            ifaces = []
        elif ifaces is None:
            raise PcapngError(f"{w}: {name} before any SHB")
        elif btype == BT_IDB:
            link_type, _, snaplen = struct.unpack_from("<HHI", buf, off + 8)
            itf = Interface(link_type, snaplen)
            for code, val in _options(buf, off + 16, off + total - 4, w):
                if code == 2:
                    itf.name = val.rstrip(b"\0").decode(errors="replace")
                elif code == 3:
                    itf.description = val.rstrip(b"\0").decode(errors="replace")
                elif code == 9:
                    itf.tsresol = val[0]
            ifaces.append(itf)
            out.interfaces.append(itf)
        elif btype == BT_EPB:
            out.packets.append(_epb(buf, off, total, ifaces, w))
        elif btype == BT_NRB:
            p, end = off + 8, off + total - 4
            while p < end:
                rtype, rlen = struct.unpack_from("<HH", buf, p)
                p += 4
                if rtype == 0:
                    break
                if p + rlen > end:
                    raise PcapngError(f"{w}: NRB record runs past the block")
                val = bytes(buf[p:p + rlen])
                alen = {1: 4, 2: 16}.get(rtype)
                if alen:
                    for n in val[alen:].split(b"\0"):
                        if n:
                            out.names.append((val[:alen], n.decode(errors="replace")))
                p += pad4(rlen)
        elif btype == BT_ISB:
            (ifid,) = struct.unpack_from("<I", buf, off + 8)
            if ifid >= len(ifaces):
                raise PcapngError(f"{w}: ISB for interface {ifid} but {len(ifaces)} IDBs")
            out.isbs.append(ifid)
        out.blocks.append(name)
        off += total
        index += 1
    if not out.blocks or out.blocks[0] != "SHB":
        raise PcapngError(f"{where}: does not start with an SHB")
    return out


def read_pcapng(path):
    return parse_pcapng(Path(path).read_bytes(), where=str(path))


def parse_epbs(blob, where="blocks"):
    """Bare concatenated EPBs (a batch, a Snapshot chunk): nanosecond timestamps. Strict."""
    buf = memoryview(blob)
    out = []
    off = 0
    while off < len(buf):
        w = f"{where}: block {len(out)} at offset {off}"
        btype, total = _block_header(buf, off, w)
        if btype != BT_EPB:
            raise PcapngError(f"{w}: block type {btype:#x}, not an EPB")
        out.append(_epb(buf, off, total, None, w))
        off += total
    return out


def epb(ifid, ts_ns, data, caplen=None, origlen=None, trailing=None, total=None):
    """One EPB. caplen/origlen/trailing/total override the honest values (for lies)."""
    caplen = len(data) if caplen is None else caplen
    origlen = len(data) if origlen is None else origlen
    body = data + b"\0" * (pad4(len(data)) - len(data))
    honest = 32 + len(body)
    total = honest if total is None else total
    trailing = total if trailing is None else trailing
    return (struct.pack("<IIIIIII", BT_EPB, total, ifid, (ts_ns >> 32) & 0xFFFFFFFF,
                        ts_ns & 0xFFFFFFFF, caplen, origlen) + body + struct.pack("<I", trailing))


def frame(i, size):
    """An Ethernet/IPv4/UDP frame of `size` bytes (>= 42) whose payload names packet i."""
    size = max(size, 42)
    ip_len = size - 14
    eth = b"\x02\x00\x00\x00\x00\x02\x02\x00\x00\x00\x00\x01\x08\x00"
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, ip_len, i & 0xFFFF, 0, 64, 17, 0,
                     bytes([10, 9, 0, 1]), bytes([10, 9, 0, 2]))
    udp = struct.pack("!HHHH", 5000 + i % 7, 6000, ip_len - 20, 0)
    payload = (struct.pack("<Q", i) * (size // 8 + 1))[:size - 42]
    return eth + ip + udp + payload


def split_batches(packets, batch_bytes):
    """The feeder's batches of `packets` (in send order): a batch is closed as soon as its EPBs
    reach batch_bytes. Returns a list of lists of packets; batch k (0-based) has seq k+1."""
    out, cur, size = [], [], 0
    for p in packets:
        cur.append(p)
        size += 32 + pad4(p.caplen)
        if size >= batch_bytes:
            out.append(cur)
            cur, size = [], 0
    if cur:
        out.append(cur)
    return out


# ---- libpcap's own verdict on a filter ------------------------------------------------------

def libpcap_compile_error(expr, link_type=1, snaplen=65535):
    """libpcap's error message for expr (None when it compiles), from pcap_compile itself."""
    lib = ctypes.CDLL(ctypes.util.find_library("pcap") or "libpcap.so.0.8")
    lib.pcap_open_dead.restype = ctypes.c_void_p
    lib.pcap_open_dead.argtypes = [ctypes.c_int, ctypes.c_int]
    lib.pcap_compile.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int,
                                 ctypes.c_uint32]
    lib.pcap_geterr.restype = ctypes.c_char_p
    lib.pcap_geterr.argtypes = [ctypes.c_void_p]
    lib.pcap_freecode.argtypes = [ctypes.c_void_p]
    lib.pcap_close.argtypes = [ctypes.c_void_p]
    p = lib.pcap_open_dead(link_type, snaplen)
    prog = ctypes.create_string_buffer(64)  # struct bpf_program
    try:
        if lib.pcap_compile(p, prog, expr.encode(), 1, 0xFFFFFFFF) != 0:
            return lib.pcap_geterr(p).decode(errors="replace")
        lib.pcap_freecode(prog)
        return None
    finally:
        lib.pcap_close(p)


# ---- command-line tools ----------------------------------------------------------------------

def tshark_problems(path):
    """`tshark -r path` as a user runs it: exit 0 and nothing on stderr but the root notice.
    Returns (problems, packets read)."""
    r = subprocess.run(["tshark", "-n", "-r", str(path), "-T", "fields", "-e", "frame.number"],
                       capture_output=True, text=True, timeout=120)
    err = [ln for ln in r.stderr.splitlines() if ln.strip() and ln.strip() != TSHARK_ROOT_LINE]
    problems = []
    if r.returncode != 0:
        problems.append(f"tshark -r {path}: exit status {r.returncode}")
    if err:
        problems.append(f"tshark -r {path} warns: " + " | ".join(err)[:2000])
    return problems, len([ln for ln in r.stdout.splitlines() if ln.strip()])


def capinfos_problems(path):
    """`capinfos path`: exit 0, nothing on stderr. Returns (problems, packet count)."""
    r = subprocess.run(["capinfos", "-M", "-c", str(path)], capture_output=True, text=True,
                       timeout=60)
    problems = []
    if r.returncode != 0:
        problems.append(f"capinfos {path}: exit status {r.returncode}")
    if r.stderr.strip():
        problems.append(f"capinfos {path} warns: {r.stderr.strip()[:2000]}")
    m = re.search(r"^Number of packets:\s*(\d+)\s*$", r.stdout, re.M)
    if not m:
        problems.append(f"capinfos {path}: no packet count in {r.stdout!r}")
    return problems, int(m.group(1)) if m else None


def wireshark_check(paths):
    """tshark -r, capinfos and our strict reader on every path (in parallel: tshark starts
    slowly). Returns (problems, {path: Pcapng}). Packet counts must agree among the three."""
    paths = [Path(p) for p in paths]
    problems, parsed = [], {}

    def one(p):
        probs = []
        tp, tn = tshark_problems(p)
        cp, cn = capinfos_problems(p)
        probs += tp + cp
        try:
            f = read_pcapng(p)
        except PcapngError as e:
            return probs + [f"not whole, consistent pcapng: {e}"], None
        n = len(f.packets)
        if not tp and tn != n:
            probs.append(f"tshark -r {p} read {tn} packets, the file holds {n}")
        if not cp and cn != n:
            probs.append(f"capinfos {p} counts {cn} packets, the file holds {n}")
        return probs, f

    with futures.ThreadPoolExecutor(max_workers=4) as ex:
        for p, (probs, f) in zip(paths, ex.map(one, paths)):
            problems += probs
            if f is not None:
                parsed[p] = f
    return problems, parsed


def tcpdump_timestamps(path, bpf):
    """Timestamps (ns) of the packets of path that match bpf, by `tcpdump -r`."""
    r = subprocess.run(["tcpdump", "-n", "-tt", "--time-stamp-precision=nano", "-r", str(path),
                        bpf], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, f"tcpdump -r {path} {bpf!r}: exit {r.returncode}: {r.stderr}"
    out = []
    for ln in r.stdout.splitlines():
        m = re.match(r"(\d+)\.(\d{9}) ", ln)
        assert m, f"tcpdump line without a nanosecond timestamp: {ln!r}"
        out.append(int(m.group(1)) * 10**9 + int(m.group(2)))
    return out


def du(path):
    """(`du -sb path`, `du -s -B1 path`): apparent bytes and allocated bytes."""
    res = []
    for args in (["-sb"], ["-s", "-B1"]):
        r = subprocess.run(["du", *args, str(path)], capture_output=True, text=True, timeout=30)
        # A file deleted while du walks is a harmless race (du says "cannot access").
        m = re.match(r"(\d+)\s", r.stdout)
        assert m, f"du {' '.join(args)} {path}: {r.stdout!r} {r.stderr!r}"
        res.append(int(m.group(1)))
    return tuple(res)


def segment_files(data_dir):
    return sorted(Path(data_dir).glob("*/*.pcapng"))


def build_shim(tmp_path, name, source):
    """Compiles an LD_PRELOAD shim from C source into tmp_path/NAME.so; returns its path."""
    src = Path(tmp_path) / f"{name}.c"
    src.write_text(source)
    so = Path(tmp_path) / f"{name}.so"
    r = subprocess.run(["cc", "-shared", "-fPIC", "-O1", "-o", so, src, "-ldl"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return so


# C for an LD_PRELOAD shim that watches open(): the shim defines
#   static int opened(const char *sym, const char *path, int flags, va_list ap)
# (sym: the real function to call, "open" or "open64") and appends this.
OPEN_WRAPPERS = r"""
int open(const char *path, int flags, ...)
{
    va_list ap;
    int rc;
    va_start(ap, flags);
    rc = opened("open", path, flags, ap);
    va_end(ap);
    return rc;
}

int open64(const char *path, int flags, ...)
{
    va_list ap;
    int rc;
    va_start(ap, flags);
    rc = opened("open64", path, flags, ap);
    va_end(ap);
    return rc;
}
"""


def shim_env(so, **extra):
    """The environment of a program run with the shim so preloaded."""
    return dict(os.environ, LD_PRELOAD=str(so), **{k: str(v) for k, v in extra.items()},
                # the shim comes before the sanitizer runtime in an ASan build
                ASAN_OPTIONS=os.environ.get("ASAN_OPTIONS", "") + ":verify_asan_link_order=0")


def dir_state(data_dir):
    """Every file under data_dir: relative path -> (size, sha256). A directory maps to 'dir'."""
    out = {}
    root = Path(data_dir)
    for p in sorted(root.rglob("*")):
        rel = str(p.relative_to(root))
        if p.is_dir():
            out[rel] = "dir"
        else:
            b = p.read_bytes()
            out[rel] = (len(b), hashlib.sha256(b).hexdigest())
    return out


def state_diff(before, after):
    lines = []
    for k in sorted(set(before) | set(after)):
        if before.get(k) != after.get(k):
            lines.append(f"  {k}: {before.get(k, 'absent')} -> {after.get(k, 'absent')}")
    return "\n".join(lines)


# ---- the store process ------------------------------------------------------------------------

def stop_process(proc, cmdline, stderr, timeout, more=None):
    """Stops a program under test the way its teardown does: SIGTERM, then up to timeout s for
    it to exit 0 (SIGKILL after that). It must still have been running. Its stderr() is read once
    it has exited: under NETREEL_ASAN it must hold no sanitizer report, and more(stderr text),
    when given, returns any further problems. Returns [] when all is well, else one text:
    "CMDLINE (pid N): the problems", and the tail of its stderr. Every process class of these
    tests (the store and the hub, the capture, rpc-test-server) stops through here."""
    problems = []
    rc = proc.poll()
    if rc is not None:
        problems.append(f"had already exited with status {rc} (signal {-rc})" if rc < 0
                        else f"had already exited with status {rc}")
    else:
        proc.send_signal(signal.SIGTERM)
        try:
            rc = proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
            problems.append(f"did not exit within {timeout:g} s of SIGTERM")
            rc = 0
        if rc != 0:
            problems.append(f"exited with status {rc} after SIGTERM (want 0)")
    err = stderr()
    if ASAN and sanitizer_reports(err):
        problems.append("sanitizer reports on stderr: " + ", ".join(sanitizer_reports(err)))
    if more is not None:
        problems += more(err)
    if problems:
        return [f"{cmdline} (pid {proc.pid}): " + "; ".join(problems) + f"\nstderr:\n{tail(err)}"]
    return []


class StoreProc:
    """A running netreel-store. port/metrics_port come from its msg=serving log line."""

    def __init__(self, argv, data_dir, stderr_path, env=None):
        self.argv = [str(a) for a in argv]
        self.data_dir = Path(data_dir)
        self.stderr_path = Path(stderr_path)
        self.killed = False
        self.stopped = False
        with open(self.stderr_path, "wb") as errf:
            self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL,
                                         stdout=subprocess.DEVNULL, stderr=errf, env=env)
        self.pid = self.proc.pid
        self.port = self.metrics_port = None

    def stderr(self):
        return self.stderr_path.read_text(errors="replace")

    def wait_serving(self, timeout=30.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for ln in self.stderr().splitlines():
                if "msg=serving" in ln:
                    m = re.search(r"\bport=(\d+)", ln)
                    mm = re.search(r"\bmetrics_port=(-?\d+)", ln)
                    if not m or int(m.group(1)) <= 0:
                        raise AssertionError(f"serving line without a real port=N: {ln}")
                    self.port = int(m.group(1))
                    self.metrics_port = int(mm.group(1)) if mm else None
                    return self
            if self.proc.poll() is not None:
                raise AssertionError(f"{self.cmdline()} exited with status {self.proc.returncode}"
                                     f" before serving\nstderr:\n{tail(self.stderr())}")
            time.sleep(0.02)
        raise AssertionError(f"{self.cmdline()}: no msg=serving line within {timeout:g} s\n"
                             f"stderr:\n{tail(self.stderr())}")

    @property
    def addr(self):
        return f"127.0.0.1:{self.port}"

    def cmdline(self):
        return " ".join([Path(self.argv[0]).name, *self.argv[1:]])

    def kill9(self):
        self.killed = True
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def alive(self):
        return self.proc.poll() is None

    def log_lines(self, msg):
        """The log lines with msg="..." (or msg=word) equal to msg."""
        want = f'msg="{msg}"' if " " in msg else f"msg={msg} "
        return [ln for ln in self.stderr().splitlines() if want in ln + " "]

    def stop(self, timeout=30.0):
        """SIGTERM; returns a list of problems (empty: exited 0, no sanitizer report)."""
        if self.stopped or self.killed:
            return []
        self.stopped = True
        return stop_process(self.proc, self.cmdline(), self.stderr, timeout)


def run_tool(argv, timeout=180, env=None):
    """Runs a C test program; returns (CompletedProcess, JSON object or None). Under ASan a
    sanitizer report fails right away."""
    argv = [str(a) for a in argv]
    try:
        r = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                           timeout=timeout, env=env)
    except subprocess.TimeoutExpired as e:
        raise AssertionError(f"{' '.join(argv)}: no exit within {timeout} s\nstderr:\n"
                             f"{tail((e.stderr or b'').decode(errors='replace'))}")
    if ASAN and sanitizer_reports(r.stderr):
        raise AssertionError(f"sanitizer report from {' '.join(argv)}:\n{tail(r.stderr)}")
    obj = None
    lines = [ln for ln in r.stdout.splitlines() if ln.strip()]
    if lines:
        try:
            obj = json.loads(lines[-1])
        except ValueError:
            obj = None
    return r, obj


# ---- grpcio ------------------------------------------------------------------------------------

class StoreStub:
    """netreel.v1.Store and grpc.health.v1.Health for grpcio, by the generic API."""

    def __init__(self, channel, pb, hpb):
        p = f"/{STORE_SERVICE}/"
        self.pb = pb
        self.Ingest = channel.stream_stream(p + "Ingest", pb.PacketBatch.SerializeToString,
                                            pb.IngestAck.FromString)
        # Raw bytes on the wire, for malformed messages.
        self.IngestRaw = channel.stream_stream(p + "Ingest", lambda b: b,
                                               pb.IngestAck.FromString)
        self.Snapshot = channel.unary_stream(p + "Snapshot",
                                             pb.SnapshotRequest.SerializeToString,
                                             pb.StoreChunk.FromString)
        self.Stats = channel.unary_unary(p + "Stats", pb.StatsRequest.SerializeToString,
                                         pb.StoreStats.FromString)
        self.Check = channel.unary_unary("/grpc.health.v1.Health/Check",
                                         hpb.HealthCheckRequest.SerializeToString,
                                         hpb.HealthCheckResponse.FromString)

    def stats(self):
        return self.Stats(self.pb.StatsRequest(), timeout=30)

    def snapshot(self, since_ns=0, until_ns=0, filter="", snaplen=0, timeout=120,
                 max_chunk_bytes=0):
        """Calls Snapshot and checks the shape of the stream: one header first, then TLS key
        log messages, then blocks (whole EPBs), then one summary last; key log and blocks
        messages each hold at most the chunk size (1 MiB, or max_chunk_bytes within [2 KiB,
        1 MiB]) or a single block. Returns SnapshotResult."""
        req = self.pb.SnapshotRequest(since_ns=since_ns, until_ns=until_ns, filter=filter,
                                      snaplen=snaplen, max_chunk_bytes=max_chunk_bytes)
        chunk = min(max(max_chunk_bytes, 2048), CHUNK_MAX) if max_chunk_bytes else CHUNK_MAX
        msgs = list(self.Snapshot(req, timeout=timeout))
        kinds = [m.WhichOneof("kind") for m in msgs]
        assert kinds and kinds[0] == "header", f"first message is not the header: {kinds[:5]}"
        assert kinds[-1] == "summary", f"last message is not the summary: {kinds[-5:]}"
        nkeys = 0
        while kinds[1 + nkeys] == "tls_keylog":
            nkeys += 1
        assert all(k == "blocks" for k in kinds[1 + nkeys:-1]), \
            f"between header and summary only key logs, then blocks: {kinds[1:-1][:8]}"
        res = SnapshotResult(header=msgs[0].header, summary=msgs[-1].summary)
        for m in msgs[1:1 + nkeys]:
            assert 0 < len(m.tls_keylog) <= CHUNK_MAX, len(m.tls_keylog)
            res.keylog.append(m.tls_keylog)
        for i, m in enumerate(msgs[1 + nkeys:-1]):
            b = m.blocks
            epbs = parse_epbs(b, where=f"blocks message {i}")
            assert len(b) <= chunk or len(epbs) == 1, \
                f"blocks message {i} holds {len(b)} bytes in {len(epbs)} blocks (> {chunk})"
            res.chunk_sizes.append(len(b))
            res.packets += epbs
        return res


@dataclass
class SnapshotResult:
    header: object
    summary: object
    chunk_sizes: list = field(default_factory=list)
    packets: list = field(default_factory=list)
    keylog: list = field(default_factory=list)  # the tls_keylog messages' bytes

    def keys(self):
        return [p.key() for p in self.packets]

    def timestamps(self):
        return [p.ts_ns for p in self.packets]


def make_batch(pb, capture_id, seq, packets, interfaces=None, node="node-py", pods=None,
               **override):
    """A PacketBatch of honest EPBs for packets = [(ifid, ts_ns, data), ...] or raw EPB bytes.
    override sets fields directly (packet_count, first_ts_ns, ... for lies)."""
    if isinstance(packets, (bytes, bytearray)):
        blocks = bytes(packets)
        eps = parse_epbs(blocks)
    else:
        blocks = b"".join(epb(i, t, d) for i, t, d in packets)
        eps = parse_epbs(blocks)
    b = pb.PacketBatch(capture_id=capture_id, seq=seq, node=node, blocks=blocks,
                       packet_count=len(eps),
                       first_ts_ns=eps[0].ts_ns if eps else 0,
                       last_ts_ns=eps[-1].ts_ns if eps else 0)
    for i, (name, link_type, snaplen) in enumerate(interfaces or []):
        b.interfaces.add(id=i, name=name, link_type=link_type, snaplen=snaplen)
    if pods is not None:
        b.pods_update = True
        for ip, ns, name in pods:
            b.pods.add(ip=ip, namespace=ns, name=name)
    for k, v in override.items():
        setattr(b, k, v)
    return b


def ingest(stub, batches, timeout=30, raw=False):
    """Sends batches on one Ingest call; returns (acks, grpc.RpcError or None)."""
    call = (stub.IngestRaw if raw else stub.Ingest)(iter(batches), timeout=timeout)
    acks = []
    try:
        for a in call:
            acks.append(a)
    except grpc.RpcError as e:
        return acks, e
    return acks, None


def ended_at_deadline(err):
    """Whether an Ingest call ended at its deadline: grpcio's own timer (DEADLINE_EXCEEDED), or
    the store's copy of the same deadline (grpc-timeout) when it fired first on a busy machine:
    once the store has answered headers it ends the stream with RST_STREAM CANCEL, which grpcio
    reports as CANCELLED."""
    if err is None:
        return False
    return err.code() == grpc.StatusCode.DEADLINE_EXCEEDED or (
        err.code() == grpc.StatusCode.CANCELLED and "RST_STREAM" in (err.details() or ""))


# ---- the metrics port ---------------------------------------------------------------------------

def scrape(store, path="/metrics", timeout=10):
    """GET http://127.0.0.1:METRICS_PORT/path -> (status, body text, content type)."""
    import http.client
    assert store.metrics_port and store.metrics_port > 0, "the store has no metrics port"
    conn = http.client.HTTPConnection("127.0.0.1", store.metrics_port, timeout=timeout)
    try:
        conn.request("GET", path)
        r = conn.getresponse()
        body = r.read().decode(errors="replace")
        return r.status, body, r.getheader("Content-Type", "")
    except (OSError, http.client.HTTPException) as e:
        raise AssertionError(f"GET {path} on the metrics port {store.metrics_port}: {e!r}; "
                             f"store {'alive' if store.alive() else f'exited {store.proc.returncode}'}")
    finally:
        conn.close()


def metric_value(text, name, **labels):
    """The value of the Prometheus sample `name{labels}` (labels matched as a subset)."""
    found = []
    for ln in text.splitlines():
        if ln.startswith("#") or not ln.strip():
            continue
        m = re.match(r"([A-Za-z_:][A-Za-z0-9_:]*)(\{(.*)\})?\s+(\S+)", ln)
        if not m or m.group(1) != name:
            continue
        have = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(3) or ""))
        if all(have.get(k) == str(v) for k, v in labels.items()):
            found.append(float(m.group(4)))
    assert len(found) == 1, f"{name}{labels}: {len(found)} samples in /metrics"
    return found[0]
