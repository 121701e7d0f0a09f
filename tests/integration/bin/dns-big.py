#!/usr/bin/python3
"""A DNS server for one name with more A records than a UDP answer holds, as a Kubernetes
headless Service of a thousand nodes gives: over UDP it answers with the truncated flag (TC) and
no records, so the resolver asks again over TCP, where it gets them all.

    dns-big.py NAME COUNT [--listen 127.0.0.1] [--port 53]

The records are 127.77.(k / 250).(k % 250 + 1) for k in 0..COUNT-1 (loopback addresses: a
connection to one fails at once). AAAA and other names: no records. Prints "ready" once it
listens; counts the queries it answered on stderr when it ends (SIGTERM)."""

import signal
import socket
import struct
import sys
import threading


def parse_question(msg):
    """(id, flags, qname bytes as on the wire, qtype, end offset) of a query's first question."""
    qid, flags, qd = struct.unpack_from("!HHH", msg, 0)
    if qd < 1:
        raise ValueError("no question")
    off = 12
    while True:
        n = msg[off]
        if n == 0:
            off += 1
            break
        if n & 0xC0:
            raise ValueError("compressed name in a question")
        off += 1 + n
    qtype, _qclass = struct.unpack_from("!HH", msg, off)
    return qid, flags, msg[12:off], qtype, off + 4


def name_of(wire):
    labels, off = [], 0
    while wire[off]:
        labels.append(wire[off + 1:off + 1 + wire[off]].decode("ascii", "replace"))
        off += 1 + wire[off]
    return ".".join(labels).lower()


def answer(msg, name, count, tcp):
    qid, flags, qname, qtype, end = parse_question(msg)
    rd = flags & 0x0100
    ours = name_of(qname) == name
    records = []
    if ours and qtype == 1:
        for k in range(count):
            addr = bytes([127, 77, k // 250, k % 250 + 1])
            records.append(b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 30, 4) + addr)
    tc = 0
    if not tcp and records:
        tc, records = 0x0200, []  # too large for UDP: truncated, ask over TCP
    rcode = 0 if ours else 3  # NXDOMAIN for any other name
    head = struct.pack("!HHHHHH", qid, 0x8000 | 0x0400 | rd | 0x0080 | tc | rcode, 1,
                       len(records), 0, 0)
    return head + msg[12:end] + b"".join(records)


def main():
    args = sys.argv[1:]
    listen, port = "127.0.0.1", 53
    if "--listen" in args:
        i = args.index("--listen")
        listen = args[i + 1]
        del args[i:i + 2]
    if "--port" in args:
        i = args.index("--port")
        port = int(args[i + 1])
        del args[i:i + 2]
    name, count = args[0].lower().rstrip("."), int(args[1])
    served = {"udp": 0, "tcp": 0}

    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind((listen, port))
    tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    tcp.bind((listen, port))
    tcp.listen(64)

    def serve_udp():
        while True:
            msg, peer = udp.recvfrom(4096)
            try:
                udp.sendto(answer(msg, name, count, False), peer)
                served["udp"] += 1
            except (ValueError, IndexError, struct.error):
                pass

    def serve_conn(c):
        with c:
            c.settimeout(5)
            try:
                while True:
                    head = c.recv(2, socket.MSG_WAITALL)
                    if len(head) < 2:
                        return
                    (n,) = struct.unpack("!H", head)
                    msg = c.recv(n, socket.MSG_WAITALL)
                    out = answer(msg, name, count, True)
                    c.sendall(struct.pack("!H", len(out)) + out)
                    served["tcp"] += 1
            except (OSError, ValueError, IndexError, struct.error):
                return

    def serve_tcp():
        while True:
            c, _ = tcp.accept()
            threading.Thread(target=serve_conn, args=(c,), daemon=True).start()

    threading.Thread(target=serve_udp, daemon=True).start()
    threading.Thread(target=serve_tcp, daemon=True).start()
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    print("ready", flush=True)
    done.wait()
    print(f"served udp={served['udp']} tcp={served['tcp']}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
