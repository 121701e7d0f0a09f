#!/usr/bin/python3
"""mkpcapng.py OUT.pcapng [--real CAP.pcap] [--keys KEYLOG] [--dump DUMP --offset NS] [--no-dedup]

Writes one pcapng: SHB; IDB 0 = the real capture's interface (if --real); IDB 1 = "tls"
(Ethernet, synthetic); a Decryption Secrets Block (TLSK) with the keylog text (if --keys) AHEAD
of the packets; then all packets as EPBs in timestamp order:
  * the real packets of CAP.pcap (classic pcap, as tcpdump -w writes),
  * synthetic TCP for every (pid, SSL*) of the loader's raw dump (-w): a faked three-way
    handshake, then one data segment per record with correct seq/ack per direction, the real
    4-tuple (v4-mapped IPv6 turned into IPv4), pid/comm as a packet comment on the SYN.
The ISNs are derived from the connection's client->server 4-tuple only, so the two ends of one
connection traced on the same or different nodes produce byte-identical seq numbers (Wireshark
then sees duplicates as retransmissions and Follow TCP Stream shows each byte once).
"""
import argparse, ipaddress, struct, zlib

HDR = struct.Struct("<IIII QQQQ Ii Q HHHH16s16s 16s")


def pad4(b):
    return b + b"\0" * (-len(b) % 4)


def opt(code, val):
    return struct.pack("<HH", code, len(val)) + pad4(val)


def block(btype, body):
    n = 12 + len(body)
    return struct.pack("<II", btype, n) + body + struct.pack("<I", n)


def shb():
    return block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1) + opt(0, b""))


def idb(linktype, name):
    opts = opt(2, name.encode()) + opt(9, b"\x09") + opt(0, b"")  # if_name, if_tsresol=ns
    return block(1, struct.pack("<HHI", linktype, 0, 262144) + opts)


def dsb(keylog):
    """Decryption Secrets Block: type 0x0000000A, secrets type 'TLSK' (0x544c534b)."""
    return block(0x0A, struct.pack("<II", 0x544C534B, len(keylog)) + pad4(keylog))


def epb(ifid, ts_ns, data, comment=None):
    opts = (opt(1, comment.encode()) + opt(0, b"")) if comment else b""
    body = struct.pack("<IIIII", ifid, ts_ns >> 32, ts_ns & 0xFFFFFFFF, len(data), len(data))
    return block(6, body + pad4(data) + opts)


def csum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def tcp_packet(src, dst, sport, dport, seq, ack, flags, payload=b""):
    """Ethernet + IPv4/IPv6 + TCP with correct checksums."""
    tcp = struct.pack("!HHIIBBHHH", sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, 5 << 4,
                      flags, 65535, 0, 0) + payload
    if src.version == 4:
        pseudo = src.packed + dst.packed + struct.pack("!BBH", 0, 6, len(tcp))
        tcp = tcp[:16] + struct.pack("!H", csum(pseudo + tcp)) + tcp[18:]
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 0, 0x4000, 64, 6, 0,
                         src.packed, dst.packed)
        ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
        eth = b"\x02\0\0\0\0\x02" + b"\x02\0\0\0\0\x01" + b"\x08\x00"
    else:
        pseudo = src.packed + dst.packed + struct.pack("!I3xB", len(tcp), 6)
        tcp = tcp[:16] + struct.pack("!H", csum(pseudo + tcp)) + tcp[18:]
        ip = struct.pack("!IHBB16s16s", 6 << 28, len(tcp), 6, 64, src.packed, dst.packed)
        eth = b"\x02\0\0\0\0\x02" + b"\x02\0\0\0\0\x01" + b"\x86\xdd"
    return eth + ip + tcp


def addr(family, raw):
    a = ipaddress.ip_address(raw[:4] if family == 2 else raw)
    if a.version == 6 and a.ipv4_mapped:
        a = a.ipv4_mapped
    return a


def read_dump(path):
    conns = {}
    buf = open(path, "rb").read()
    pos = 0
    while pos + HDR.size <= len(buf):
        f = HDR.unpack_from(buf, pos)
        (typ, pid, tid, d, ts, ssl, total, off, ln, fd, lost, fam, sp, dp, _, sa, da, comm) = f
        data = buf[pos + HDR.size:pos + HDR.size + ln]
        pos += HDR.size + ln
        c = conns.setdefault((pid, ssl), {"recs": [], "comm": comm.rstrip(b"\0").decode()})
        c["recs"].append((ts, d, data, lost, fam, sp, dp, sa, da))
    return conns


def synth(conns, offset_ns, dedup=True, mapped=False):
    out = []  # (ts, bytes, comment)
    for (pid, ssl), c in conns.items():
        recs = c["recs"]
        known = [r for r in recs if r[4]]
        if known:
            _, _, _, _, fam, sp, dp, sa, da = known[0]
            local, remote = (addr(fam, sa), sp), (addr(fam, da), dp)
        else:  # no 4-tuple: a stable placeholder from pid and SSL*
            local = (ipaddress.ip_address("127.255.%d.%d" % ((pid >> 8) & 255, pid & 255)), 40000 + (ssl >> 4) % 20000)
            remote = (ipaddress.ip_address("127.255.255.254"), 443)
        if mapped and local[0].version == 4:
            local = (ipaddress.ip_address("::ffff:" + str(local[0])), local[1])
            remote = (ipaddress.ip_address("::ffff:" + str(remote[0])), remote[1])
        # the side whose first record is a WRITE is taken as the client
        client_is_local = recs[0][1] == 0
        cli, srv = (local, remote) if client_is_local else (remote, local)
        key = ("%s:%d>%s:%d" % (cli[0], cli[1], srv[0], srv[1])).encode()
        isn_c = zlib.crc32(key + b"c") if dedup else zlib.crc32(key + b"c%d" % pid)
        isn_s = zlib.crc32(key + b"s") if dedup else zlib.crc32(key + b"s%d" % pid)
        nxt = {"c": isn_c + 1, "s": isn_s + 1}
        t0 = recs[0][0] + offset_ns
        comment = "netreel tls: pid %d %s SSL* %#x (%s side)" % (pid, c["comm"], ssl, "client" if client_is_local else "server")
        out.append((t0 - 3000, tcp_packet(cli[0], srv[0], cli[1], srv[1], isn_c, 0, 0x02), comment))
        out.append((t0 - 2000, tcp_packet(srv[0], cli[0], srv[1], cli[1], isn_s, isn_c + 1, 0x12), None))
        out.append((t0 - 1000, tcp_packet(cli[0], srv[0], cli[1], srv[1], isn_c + 1, isn_s + 1, 0x10), None))
        for ts, d, data, lost, *_ in recs:
            # WRITE of the local side or READ of the remote side: who sent these bytes
            from_client = (d == 0) == client_is_local
            s, o = ("c", "s") if from_client else ("s", "c")
            a, b = (cli, srv) if from_client else (srv, cli)
            out.append((ts + offset_ns, tcp_packet(a[0], b[0], a[1], b[1], nxt[s], nxt[o], 0x18, data), None))
            nxt[s] += len(data) + lost  # a cut call leaves a seq gap: "previous segment not captured"
    return out


def read_pcap(path):
    buf = open(path, "rb").read()
    magic, _, _, _, _, _, linktype = struct.unpack_from("<IHHiIII", buf, 0)
    scale = 1000 if magic == 0xA1B2C3D4 else 1  # usec or nsec pcap
    pos, pkts = 24, []
    while pos + 16 <= len(buf):
        sec, frac, incl, orig = struct.unpack_from("<IIII", buf, pos)
        pkts.append((sec * 10**9 + frac * scale, buf[pos + 16:pos + 16 + incl], None))
        pos += 16 + incl
    return linktype, pkts


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--real")
    ap.add_argument("--keys")
    ap.add_argument("--dump")
    ap.add_argument("--offset", type=int, default=0)
    ap.add_argument("--no-dedup", action="store_true")
    ap.add_argument("--mapped", action="store_true",
                    help="IPv4 tuples as v4-mapped IPv6 (::ffff:a.b.c.d): a conversation apart from the real packets")
    a = ap.parse_args()
    blocks = [shb()]
    pkts = []
    if a.real:
        lt, real = read_pcap(a.real)
        blocks.append(idb(lt, "lo"))
        pkts += [(ts, 0, d, c) for ts, d, c in real]
    else:
        blocks.append(idb(1, "unused"))
    blocks.append(idb(1, "tls"))
    if a.keys:
        lines = sorted(set(open(a.keys, "rb").read().splitlines()))
        blocks.append(dsb(b"\n".join(lines) + b"\n"))
    if a.dump:
        pkts += [(ts, 1, d, c) for ts, d, c in synth(read_dump(a.dump), a.offset, not a.no_dedup, a.mapped)]
    pkts.sort(key=lambda p: p[0])
    blocks += [epb(i, ts, d, c) for ts, i, d, c in pkts]
    open(a.out, "wb").write(b"".join(blocks))
    print("%s: %d packets" % (a.out, len(pkts)))


main()
