#!/usr/bin/python3
"""Latency of a live pcapng stream: from a datagram sent (its send time is in its payload) to
its packet's bytes read from the stream. Used by bench/follow.sh.

  follow_latency.py send PORT RATE SECONDS   UDP to 127.0.0.1:PORT, RATE datagrams a second,
                                             each "NRLAT" + seq (4 bytes) + send ns (8 bytes)
  follow_latency.py read LABEL               pcapng on stdin (as it comes): prints one line,
                                             LABEL packets median_ms p99_ms max_ms, at EOF
"""
import socket
import struct
import sys
import time

MARK = b"NRLAT"


def send(port, rate, seconds):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    n = int(rate * seconds)
    start = time.monotonic()
    for i in range(n):
        due = start + i / rate
        while time.monotonic() < due:
            time.sleep(max(0.0, min(0.01, due - time.monotonic())))
        s.sendto(MARK + struct.pack("<IQ", i, time.time_ns()), ("127.0.0.1", port))


def pcap_records(f, magic):
    """(6, data, read time) of each classic pcap record (tcpdump -w -), as blocks() does."""
    order = "<" if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    f.read(20)
    while True:
        head = f.read(16)
        if len(head) < 16:
            return
        _, _, incl, _ = struct.unpack(order + "IIII", head)
        data = f.read(incl)
        if len(data) < incl:
            return
        yield 6, data, time.time_ns()


def blocks(f):
    """(type, body, read time) of each pcapng block as it comes; the byte order from the SHB.
    A classic pcap stream goes to pcap_records."""
    order = "<"
    first = f.read(4)
    if first != b"\x0a\x0d\x0d\x0a":
        yield from pcap_records(f, first)
        return
    pending = first
    while True:
        head = pending + f.read(8 - len(pending))
        pending = b""
        if len(head) < 8:
            return
        if head[:4] == b"\x0a\x0d\x0d\x0a":
            bom = f.read(4)
            order = "<" if bom == b"\x4d\x3c\x2b\x1a" else ">"
            (length,) = struct.unpack(order + "I", head[4:])
            body = bom + f.read(length - 12)
        else:
            btype, length = struct.unpack(order + "II", head)
            body = f.read(length - 8)
        if len(body) < length - 8:
            return  # the stream ended mid-block
        yield struct.unpack(order + "I", head[:4])[0], body, time.time_ns()


def read(label):
    lat, seen = [], set()
    for btype, body, now in blocks(sys.stdin.buffer):
        if btype != 6:
            continue
        k = body.find(MARK)
        if k < 0 or len(body) < k + 17:
            continue
        seq, sent = struct.unpack("<IQ", body[k + 5:k + 17])
        if seq in seen:
            continue
        seen.add(seq)
        lat.append((now - sent) / 1e6)
    lat.sort()
    if not lat:
        print(f"{label} 0 - - -")
        return
    p = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))]  # noqa: E731
    print(f"{label} {len(lat)} {p(0.5):.0f} {p(0.99):.0f} {lat[-1]:.0f}", flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "send":
        send(int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]))
    else:
        read(sys.argv[2])
