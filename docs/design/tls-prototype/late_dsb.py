#!/usr/bin/python3
"""late_dsb.py IN.pcapng OUT.pcapng: moves every DSB of IN to just before the first EPB of the
'tls' interface (= after the real handshake, where a capture that learns secrets at the first
SSL_read/SSL_write would naturally put it). Shows whether tshark still decrypts."""
import struct, sys
buf = open(sys.argv[1], "rb").read()
pos, blocks = 0, []
while pos < len(buf):
    t, n = struct.unpack_from("<II", buf, pos)
    blocks.append((t, buf[pos:pos + n])); pos += n
dsbs = [b for t, b in blocks if t == 0x0A]
rest = [(t, b) for t, b in blocks if t != 0x0A]
out, done = [], False
for t, b in rest:
    if t == 6 and not done and struct.unpack_from("<I", b, 8)[0] == 1:
        out += dsbs; done = True
    out.append(b)
open(sys.argv[2], "wb").write(b"".join(out))
