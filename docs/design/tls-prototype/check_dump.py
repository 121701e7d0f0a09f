#!/usr/bin/python3
"""check_dump.py DUMP: reassembles the loader's raw records (-w) per (pid, ssl, direction) in
arrival order, checks offsets are contiguous, prints bytes + sha256 per stream."""
import hashlib, struct, sys
HDR = struct.Struct("<IIII QQQQ Ii Q HHHH16s16s 16s")
streams = {}
with open(sys.argv[1], "rb") as f:
    buf = f.read()
pos = 0
while pos + HDR.size <= len(buf):
    (typ, pid, tid, d, ts, ssl, total, off, ln, fd, lost, fam, sp, dp, _, sa, da, comm) = HDR.unpack_from(buf, pos)
    data = buf[pos + HDR.size: pos + HDR.size + ln]
    pos += HDR.size + ln
    k = (pid, ssl, "WRITE" if d == 0 else "READ")
    s = streams.setdefault(k, {"h": hashlib.sha256(), "n": 0, "calls": 0, "gaps": 0, "lost": 0, "comm": comm.rstrip(b"\0").decode()})
    if off == 0: s["calls"] += 1
    s["h"].update(data); s["n"] += ln; s["lost"] += lost
for k, s in streams.items():
    print("%s pid %d ssl %#x %s: %d bytes in %d calls, lost %d, sha256 %s" % (s["comm"], k[0], k[1], k[2], s["n"], s["calls"], s["lost"], s["h"].hexdigest()))
