#!/usr/bin/python3
"""py_tls.py VERSION TOTAL WRITE [PORT]: python ssl client+server on 127.0.0.1 (SSL_read_ex /
SSL_write_ex). The client sends TOTAL bytes of a known pattern with sendall() in WRITE-byte
pieces; the server reads it all and answers "got N bytes sha256 H". Prints timing."""
import hashlib, socket, ssl, sys, threading, time, os
ver = sys.argv[1] if len(sys.argv) > 1 else "1.3"
total = int(sys.argv[2]) if len(sys.argv) > 2 else 1 << 20
piece = int(sys.argv[3]) if len(sys.argv) > 3 else 16384
port = int(sys.argv[4]) if len(sys.argv) > 4 else 4440
d = os.path.dirname(os.path.abspath(__file__))
pattern = bytes((i * 7 + (i >> 8)) & 0xff for i in range(1 << 16))
data = (pattern * (total // len(pattern) + 1))[:total]
tv = ssl.TLSVersion.TLSv1_3 if ver == "1.3" else ssl.TLSVersion.TLSv1_2

sctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
sctx.load_cert_chain(d + "/cert.pem", d + "/key.pem")
sctx.minimum_version = sctx.maximum_version = tv
ls = socket.socket(); ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("127.0.0.1", port)); ls.listen(1)

def serve():
    c, _ = ls.accept()
    s = sctx.wrap_socket(c, server_side=True)
    h, n = hashlib.sha256(), 0
    while n < total:
        b = s.recv(1 << 16)
        if not b: break
        h.update(b); n += len(b)
    s.sendall(b"got %d bytes sha256 %s\n" % (n, h.hexdigest().encode()))
    s.close()

t = threading.Thread(target=serve); t.start()
cctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT); cctx.check_hostname = False
cctx.verify_mode = ssl.CERT_NONE; cctx.minimum_version = cctx.maximum_version = tv
s = cctx.wrap_socket(socket.create_connection(("127.0.0.1", port)))
t0 = time.time()
mv = memoryview(data)
for i in range(0, total, piece):
    s.sendall(mv[i:i + piece])
reply = s.recv(200)
dt = time.time() - t0
t.join(); s.close()
print("client sent %d bytes sha256 %s in %.3fs (%.1f MB/s); server: %s" % (
    total, hashlib.sha256(data).hexdigest(), dt, total / dt / 1e6, reply.decode().strip()))
