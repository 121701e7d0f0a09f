"""A fixture Kubernetes API server for the pod-targeting tests: just enough of
GET /api/v1/pods (list and watch, fieldSelector=spec.nodeName=NODE) in the real API's shape.

* HTTPS (a throwaway CA made with the openssl CLI: make_pki), HTTP/1.1, keep-alive.
* Auth: "Authorization: Bearer T" with T in .tokens, or a client certificate signed by the CA;
  else 401 with a Status body (the API server's answer to an expired token).
* List: a PodList with metadata.resourceVersion (one counter for every change, as etcd's).
* Watch: 200, chunked, one JSON event per line ({"type", "object"}) for every change after
  resourceVersion; BOOKMARK events every .bookmark_interval when allowWatchBookmarks=true; ends
  after timeoutSeconds. A resourceVersion older than the compacted history gets a 200 stream
  holding one ERROR event with a 410 Status (what the real server does), or HTTP 410 when
  .gone_as_http is set.
* Test controls: add/modify/delete pods, compact() history, cut_watches(), revoke tokens,
  inject_line() raw bytes into open watches, stop() and start() again on the same port.
"""

import json
import select
import socket
import ssl
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit


def _openssl(*args, cwd):
    r = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args)} failed: {r.stderr}")


def make_pki(d):
    """CA, a server certificate for localhost/127.0.0.1/::1 and a client certificate, in d."""
    d = Path(d)
    d.mkdir(parents=True, exist_ok=True)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    _openssl("req", "-x509", "-new", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
             "-subj", "/CN=kube fixture CA", "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)
    for name, ext in (("server", ["extendedKeyUsage=serverAuth",
                                  "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1"]),
                      ("client", ["extendedKeyUsage=clientAuth"])):
        (d / f"{name}.ext").write_text("\n".join(["basicConstraints=critical,CA:FALSE",
                                                  "keyUsage=critical,digitalSignature", *ext]))
        _openssl("req", "-new", *ec, "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj",
                 f"/CN=kube-{name}", cwd=d)
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                 "-set_serial", str(7000 + len(name)), "-days", "2", "-sha256", "-extfile",
                 f"{name}.ext", "-out", f"{name}.pem", cwd=d)
    return d


def make_pod(namespace, name, node="node-a", ips=(), host_network=False, phase="Running",
             pod_ip_only=False, annotations=None):
    """A Pod object as the API serves it (the fields that matter, plus some that do not)."""
    status = {"phase": phase, "hostIP": "192.168.0.10"}
    if ips:
        status["podIP"] = ips[0]
        if not pod_ip_only:
            status["podIPs"] = [{"ip": ip} for ip in ips]
    pod = {
        "kind": "Pod", "apiVersion": "v1",
        "metadata": {"name": name, "namespace": namespace, "uid": f"uid-{namespace}-{name}",
                     "labels": {"app": name.split("-")[0]}},
        "spec": {"nodeName": node, "hostNetwork": host_network,
                 "containers": [{"name": "main", "image": "busybox"}]},
        "status": status,
    }
    if annotations:
        pod["metadata"]["annotations"] = annotations
    return pod


def _status(code, reason, message):
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason, "code": code}


class KubeAPI:
    def __init__(self, pki, require_client_cert=False):
        self.pki = Path(pki)
        self.cond = threading.Condition()
        self.pods = {}            # (namespace, name) -> pod
        self.rv = 1000
        self.history = []         # (rv, type, pod)
        self.compacted_rv = 0     # a watch from an older resourceVersion gets 410
        self.tokens = {"token-1"}
        self.gone_as_http = False
        self.bookmark_interval = 0.3
        self.generation = 0       # bumped by cut_watches() and compact(): open watches end
        self.watch_seq = 0
        self.injected = []        # raw lines for the next watch stream to send
        self.requests = []        # (kind, query dict, auth ok) of every request
        self.require_client_cert = require_client_cert
        self.server = None
        self.port = 0
        self.conns = set()
        self.stopping = False

    # ---- state ------------------------------------------------------------------------------

    def _event(self, type_, pod):
        self.rv += 1
        pod = json.loads(json.dumps(pod))
        pod["metadata"]["resourceVersion"] = str(self.rv)
        self.history.append((self.rv, type_, pod))
        self.cond.notify_all()
        return pod

    def add(self, *args, **kw):
        pod = make_pod(*args, **kw)
        with self.cond:
            key = (pod["metadata"]["namespace"], pod["metadata"]["name"])
            self.pods[key] = self._event("MODIFIED" if key in self.pods else "ADDED", pod)

    def delete(self, namespace, name):
        with self.cond:
            pod = self.pods.pop((namespace, name))
            self._event("DELETED", pod)

    def compact(self):
        """Forget history: a watch from a resourceVersion older than the current one gets 410."""
        with self.cond:
            self.compacted_rv = self.rv
            self.history.clear()
            self.generation += 1
            self.cond.notify_all()

    def cut_watches(self):
        with self.cond:
            self.generation += 1
            self.cond.notify_all()

    def inject_line(self, raw):
        with self.cond:
            self.injected.append(raw)
            self.cond.notify_all()

    def count(self, kind):
        with self.cond:
            return sum(1 for k, _, _ in self.requests if k == kind)

    # ---- server -----------------------------------------------------------------------------

    def start(self):
        api = self

        class Handler(_Handler):
            pass

        Handler.api = api
        srv = ThreadingHTTPServer(("127.0.0.1", self.port), Handler, bind_and_activate=False)
        srv.daemon_threads = True
        srv.allow_reuse_address = True
        srv.server_bind()
        srv.server_activate()
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self.pki / "server.pem", self.pki / "server.key")
        ctx.load_verify_locations(self.pki / "ca.pem")
        ctx.verify_mode = ssl.CERT_REQUIRED if self.require_client_cert else ssl.CERT_OPTIONAL
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True,
                                     do_handshake_on_connect=False)
        self.port = srv.server_address[1]
        self.stopping = False
        self.server = srv
        threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05},
                         daemon=True).start()
        return self

    @property
    def url(self):
        return f"https://127.0.0.1:{self.port}"

    def stop(self):
        """The API goes away: no listener, every open connection closed."""
        with self.cond:
            self.stopping = True
            self.cond.notify_all()
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None
        for c in list(self.conns):
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    api = None  # set per server

    def log_message(self, fmt, *args):
        pass

    def setup(self):
        super().setup()
        self.api.conns.add(self.connection)

    def finish(self):
        self.api.conns.discard(self.connection)
        try:
            super().finish()
        except OSError:
            pass

    def handle(self):
        try:
            self.connection.do_handshake()
        except (ssl.SSLError, OSError):
            return
        try:
            super().handle()
        except (ssl.SSLError, OSError):
            pass

    def _json(self, code, obj):
        body = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _authorized(self):
        auth = self.headers.get("Authorization", "")
        if auth.startswith("Bearer ") and auth[7:] in self.api.tokens:
            return True
        try:
            return bool(self.connection.getpeercert())
        except (ValueError, OSError):
            return False

    def do_GET(self):
        api = self.api
        url = urlsplit(self.path)
        q = {k: v[-1] for k, v in parse_qs(url.query).items()}
        kind = "watch" if q.get("watch") in ("1", "true") else "list"
        ok = self._authorized()
        with api.cond:
            api.requests.append((kind, q, ok))
        if api.stopping:
            self.close_connection = True
            return
        if url.path != "/api/v1/pods":
            return self._json(404, _status(404, "NotFound", f"no {url.path}"))
        if not ok:
            return self._json(401, _status(401, "Unauthorized", "Unauthorized"))
        sel = q.get("fieldSelector", "")
        if not sel.startswith("spec.nodeName="):
            return self._json(400, _status(400, "BadRequest", "want a spec.nodeName selector"))
        node = sel[len("spec.nodeName="):]
        if kind == "list":
            with api.cond:
                items = [p for p in api.pods.values() if p["spec"]["nodeName"] == node]
                rv = api.rv
            return self._json(200, {"kind": "PodList", "apiVersion": "v1",
                                    "metadata": {"resourceVersion": str(rv)}, "items": items})
        return self._watch(node, q)

    def _alive(self):
        """A watch client sends nothing after its request: readable means it has gone."""
        r, _, _ = select.select([self.connection], [], [], 0)
        return not r

    def _chunk(self, data):
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def _watch(self, node, q):
        api = self.api
        try:
            since = int(q.get("resourceVersion", "0"))
        except ValueError:
            return self._json(400, _status(400, "BadRequest", "bad resourceVersion"))
        timeout = float(q.get("timeoutSeconds", "300"))
        bookmarks = q.get("allowWatchBookmarks") == "true"
        with api.cond:  # the 410 check and the generation must agree
            gone = since < api.compacted_rv
            gen = api.generation
            api.watch_seq += 1
            me = api.watch_seq
        if gone and api.gone_as_http:
            return self._json(410, _status(410, "Expired", f"too old resource version: {since}"))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        if gone:
            ev = {"type": "ERROR", "object": _status(
                410, "Expired", f"too old resource version: {since} ({api.compacted_rv})")}
            self._chunk(json.dumps(ev).encode() + b"\n")
            self._chunk(b"")
            return
        end = time.monotonic() + timeout
        next_bookmark = time.monotonic() + api.bookmark_interval
        sent = since
        while True:
            with api.cond:
                now = time.monotonic()
                # A cut (or compacted) watch ends before it sends anything more.
                done = api.stopping or api.generation != gen or now >= end
                out = []
                if not done:
                    out = [json.dumps({"type": t, "object": p}).encode() + b"\n"
                           for rv, t, p in api.history
                           if rv > sent and p["spec"]["nodeName"] == node]
                    sent = max(sent, api.rv)  # the history is whole up to api.rv
                    if me == api.watch_seq and self._alive():  # injected: newest watch only
                        out += api.injected
                        api.injected = []
                    if bookmarks and now >= next_bookmark:
                        out.append(json.dumps({"type": "BOOKMARK", "object": {
                            "kind": "Pod", "apiVersion": "v1",
                            "metadata": {"resourceVersion": str(sent)}}}).encode() + b"\n")
                        next_bookmark = now + api.bookmark_interval
                if not out and not done:
                    api.cond.wait(min(0.1, max(0.0, end - now)))
                    continue
            try:
                for line in out:
                    self._chunk(line)
                if done:
                    if not api.stopping:
                        self._chunk(b"")
                    else:
                        self.close_connection = True
                    return
            except OSError:
                self.close_connection = True
                return
