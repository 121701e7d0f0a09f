"""Pod targeting (lib/kube) against a fixture Kubernetes API server (kube_api.py): the
kube-watch test program lists and watches node-a's pods and prints the target set and its
capture filter on every change, and the API's health on every change of it."""

import json
import os
import queue
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

import kube_api

REPO = Path(__file__).resolve().parents[3]
ASAN = os.environ.get("NETREEL_ASAN", "0") not in ("", "0")
SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "runtime error:", "LeakSanitizer")
FAST = ["--backoff-min", "100ms", "--backoff-max", "400ms"]


@pytest.fixture(scope="module")
def kube_watch_bin():
    d = Path(os.environ.get("NETREEL_BUILD") or REPO / "build" / "release")
    p = d / "tests" / "kube-watch"
    if not (p.is_file() and os.access(p, os.X_OK)):
        pytest.fail(f"missing {p} -- build it with `make`", pytrace=False)
    return p


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return kube_api.make_pki(tmp_path_factory.mktemp("kube-pki"))


@pytest.fixture
def api(pki):
    a = kube_api.KubeAPI(pki)
    a.add("default", "web-1", ips=["10.0.0.1"])
    a.add("default", "db-1", ips=["10.0.0.2", "fd00::2"])
    a.add("default", "web-9", node="node-b", ips=["10.0.9.9"])
    a.start()
    yield a
    a.stop()


def write_kubeconfig(path, server, ca=None, ca_data=None, user=None):
    """A kubeconfig with one context; user is the user mapping (dict)."""
    cluster = {"server": server}
    if ca:
        cluster["certificate-authority"] = str(ca)
    if ca_data:
        import base64
        cluster["certificate-authority-data"] = base64.b64encode(ca_data).decode()
    cfg = {"apiVersion": "v1", "kind": "Config", "current-context": "test",
           "clusters": [{"name": "fixture", "cluster": cluster}],
           "contexts": [{"name": "test", "context": {"cluster": "fixture", "user": "me"}}],
           "users": [{"name": "me", "user": user or {}}]}
    path.write_text(json.dumps(cfg))  # JSON is YAML
    return path


class KubeWatch:
    def __init__(self, argv, stderr_path, env=None):
        self.argv = [str(a) for a in argv]
        self.stderr_path = stderr_path
        with open(stderr_path, "wb") as err:
            self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL,
                                         stdout=subprocess.PIPE, stderr=err, env=env)
        self.lines = queue.Queue()
        self.seen = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for raw in self.proc.stdout:
            self.lines.put(json.loads(raw))
        self.lines.put(None)

    def next(self, pred, timeout=5.0, what="a matching line"):
        """The next line for which pred(line) holds (earlier ones are kept in .seen)."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            try:
                line = self.lines.get(timeout=max(0.01, left))
            except queue.Empty:
                line = False
            if line is None or line is False or left <= 0:
                pytest.fail(f"no {what} within {timeout} s; lines so far: {self.seen[-8:]}\n"
                            f"stderr:\n{self.stderr()[-3000:]}", pytrace=False)
            self.seen.append(line)
            if pred(line):
                return line

    def next_set(self, timeout=5.0):
        return self.next(lambda l: "pods" in l, timeout, "target set")

    def stderr(self):
        return self.stderr_path.read_text(errors="replace")

    def stop(self):
        """SIGTERM: exits 0 after printing its counters; no sanitizer report."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
            pytest.fail("kube-watch did not exit within 15 s of SIGTERM", pytrace=False)
        stats = self.next(lambda l: "stats" in l, 2, "stats line")["stats"]
        err = self.stderr()
        assert rc == 0, f"kube-watch exited {rc}\n{err[-3000:]}"
        if ASAN:
            found = [m for m in SANITIZER_MARKERS if m in err]
            assert not found, f"sanitizer reports: {found}\n{err[-6000:]}"
        return stats


@pytest.fixture
def kube_watch(kube_watch_bin, api, tmp_path):
    """start(*args, user=None, kubeconfig=None, env=None) -> KubeWatch for node-a against
    api with token-1 (from a token file, tmp_path/token) unless user says otherwise."""
    started = []
    token_file = tmp_path / "token"
    token_file.write_text("token-1\n")

    def start(*args, user=None, kubeconfig=None, env=None):
        if kubeconfig is None:
            kubeconfig = write_kubeconfig(tmp_path / f"kubeconfig-{len(started)}", api.url,
                                          ca=api.pki / "ca.pem",
                                          user=user or {"tokenFile": str(token_file)})
        argv = [kube_watch_bin, "--node", "node-a", *FAST, *args]
        if kubeconfig:
            argv += ["--kubeconfig", kubeconfig]
        w = KubeWatch(argv, tmp_path / f"kube-watch-{len(started)}.stderr", env=env)
        w.token_file = token_file
        started.append(w)
        return w

    yield start
    for w in started:
        if w.proc.poll() is None:
            w.proc.kill()
            w.proc.wait(5)


def pods_of(line):
    return sorted((p["namespace"], p["name"], p["ip"]) for p in line["pods"])


def test_list_then_watch_changes_within_a_second(api, kube_watch):
    w = kube_watch("--watch-timeout", "1s")
    first = w.next_set()
    assert pods_of(first) == [("default", "db-1", "10.0.0.2"), ("default", "db-1", "fd00::2"),
                              ("default", "web-1", "10.0.0.1")]
    assert first["filter"] == "ip host 10.0.0.1 or ip host 10.0.0.2 or ip6 host fd00::2"

    t0 = time.monotonic()
    api.add("shop", "cart-1", ips=["10.0.0.3"])
    line = w.next_set(timeout=1.0)
    assert ("shop", "cart-1", "10.0.0.3") in pods_of(line), line
    assert time.monotonic() - t0 < 1.0

    t0 = time.monotonic()
    api.delete("default", "web-1")
    line = w.next_set(timeout=1.0)
    assert ("default", "web-1", "10.0.0.1") not in pods_of(line)
    assert time.monotonic() - t0 < 1.0

    # A pod that finished leaves the set; a change elsewhere (node-b) prints nothing.
    api.add("default", "web-9", node="node-b", ips=["10.0.9.10"])
    api.add("shop", "cart-1", ips=["10.0.0.3"], phase="Succeeded")
    line = w.next_set(timeout=1.0)
    assert pods_of(line) == [("default", "db-1", "10.0.0.2"), ("default", "db-1", "fd00::2")]

    # Watches end after timeoutSeconds and start again from the last resourceVersion: no
    # relist, no change printed, nothing missed.
    time.sleep(2.5)
    api.add("shop", "cart-2", ips=["10.0.0.4"])
    line = w.next_set(timeout=1.0)
    assert ("shop", "cart-2", "10.0.0.4") in pods_of(line)
    stats = w.stop()
    assert api.count("list") == 1
    assert api.count("watch") >= 3
    assert stats["relists"] == 0 and stats["errors"] == 0 and stats["healthy"]
    assert not [l for l in w.seen if "api" in l]
    # Every printed set differs from the one before it.
    sets = [pods_of(l) for l in w.seen if "pods" in l]
    assert all(a != b for a, b in zip(sets, sets[1:]))


def test_selection_rules(api, kube_watch):
    api.add("prod", "web-2", ips=["10.0.1.2"])
    api.add("kube-system", "web-proxy", ips=["192.168.0.10"], host_network=True)
    api.add("default", "web-pending")                                   # no IP yet
    api.add("default", "web-old", ips=["10.0.1.3"], pod_ip_only=True)    # podIP only
    api.add("default", "myweb", ips=["10.0.1.4"])                        # unanchored match
    api.add("other", "web-3", ips=["10.0.1.5"])                          # not in --namespaces
    api.add("default", "web-failed", ips=["10.0.1.6"], phase="Failed")
    w = kube_watch("--pod-regex", "web", "--namespaces", "default, prod,kube-system",
                   "--excluded-namespaces", "prod")
    assert pods_of(w.next_set()) == [("default", "myweb", "10.0.1.4"),
                                     ("default", "web-1", "10.0.0.1"),
                                     ("default", "web-old", "10.0.1.3")]
    # The pending pod gets its address: in.
    api.add("default", "web-pending", ips=["10.0.1.7"])
    assert ("default", "web-pending", "10.0.1.7") in pods_of(w.next_set(1.0))
    w.stop()

    w = kube_watch("--pod-regex", "^web-[0-9]+$")
    assert pods_of(w.next_set()) == [("default", "web-1", "10.0.0.1"),
                                     ("other", "web-3", "10.0.1.5"),
                                     ("prod", "web-2", "10.0.1.2")]
    w.stop()


def test_match_limit_records_the_pod_once_logged(api, kube_watch):
    """A name on which --pod-regex stops at PCRE2's match limit ((a+)+$ on 31 a's: 2^31 ways)
    counts as matching, so no pod escapes the recording through its name; one warning for the
    pod, not again on its updates or when a relist finds it again."""
    limited = "a" * 31 + "-x"
    api.add("default", limited, ips=["10.0.0.7"])
    w = kube_watch("--pod-regex", "(a+)+$")
    assert pods_of(w.next_set()) == [("default", limited, "10.0.0.7")]
    api.add("default", limited, ips=["10.0.0.8"])  # MODIFIED
    assert pods_of(w.next_set(1.0)) == [("default", limited, "10.0.0.8")]
    # A relist (410 Gone) that also finds a pod that really matches.
    api.stopping = True
    api.cut_watches()
    api.add("default", "aaaa", ips=["10.0.0.9"])
    api.compact()
    api.stopping = False
    assert pods_of(w.next_set(3.0)) == [("default", "aaaa", "10.0.0.9"),
                                        ("default", limited, "10.0.0.8")]
    stats = w.stop()
    assert stats["relists"] >= 1
    warned = [l for l in w.stderr().splitlines() if "stopped at its limit" in l]
    assert len(warned) == 1, w.stderr()[-3000:]
    assert f"namespace=default pod={limited} match_limit=100000" in warned[0]


@pytest.mark.parametrize("as_http", [False, True], ids=["error-event", "http-410"])
def test_410_gone_relists(api, kube_watch, as_http):
    api.gone_as_http = as_http
    w = kube_watch()
    w.next_set()
    # While the watch is down, pods change and the history is compacted: resuming from the
    # old resourceVersion is 410 Gone, and only a relist can find the right set.
    api.stopping = True
    api.cut_watches()
    api.delete("default", "web-1")
    api.add("default", "api-1", ips=["10.0.0.5"])
    api.compact()
    api.stopping = False
    line = w.next_set(timeout=3.0)
    assert pods_of(line) == [("default", "api-1", "10.0.0.5"), ("default", "db-1", "10.0.0.2"),
                             ("default", "db-1", "fd00::2")]
    stats = w.stop()
    assert stats["relists"] >= 1
    assert api.count("list") >= 2


def test_token_rotation(api, kube_watch):
    w = kube_watch()
    w.next_set()
    # The kubelet rewrites the token file before the old token expires: the next request
    # uses the new one and nothing fails.
    w.token_file.write_text("token-2\n")
    api.tokens = {"token-2"}
    api.cut_watches()
    api.add("default", "new-1", ips=["10.0.0.6"])
    assert ("default", "new-1", "10.0.0.6") in pods_of(w.next_set(2.0))
    assert not [l for l in w.seen if "api" in l]

    # The token expires before the file is rewritten: 401, retried once with the file read
    # again, then an error; the rewritten file is picked up and all is well again.
    api.tokens = {"token-3"}
    api.cut_watches()
    err = w.next(lambda l: "api" in l, 3.0, "api error")
    assert err["api"] == "error" and "401" in err["error"], err
    w.token_file.write_text("token-3")
    assert w.next(lambda l: "api" in l, 3.0, "api ok") == {"api": "ok"}
    api.add("default", "new-2", ips=["10.0.0.7"])
    assert ("default", "new-2", "10.0.0.7") in pods_of(w.next_set(2.0))
    stats = w.stop()
    assert stats["unauthorized"] >= 2
    bearer_ok = [ok for k, q, ok in api.requests]
    assert bearer_ok[-1]


def test_api_away_keeps_last_set_and_recovers(api, kube_watch):
    w = kube_watch()
    before = pods_of(w.next_set())
    api.stop()
    err = w.next(lambda l: "api" in l, 3.0, "api error")
    assert err["api"] == "error"
    api.add("default", "late-1", ips=["10.0.0.8"])
    time.sleep(1.0)  # several failed retries: reported once, the set untouched
    assert [l for l in w.seen if "api" in l] == [err]
    assert not [l for l in w.seen[w.seen.index(err):] if "pods" in l]
    api.start()  # same port
    assert w.next(lambda l: "api" in l, 3.0, "api ok") == {"api": "ok"}
    after = pods_of(w.next_set(3.0))
    assert after == sorted(before + [("default", "late-1", "10.0.0.8")])
    stats = w.stop()
    assert stats["errors"] >= 2 and stats["healthy"]


def test_bookmarks_move_the_resume_point(api, kube_watch):
    w = kube_watch()
    w.next_set()
    api.add("default", "web-9", node="node-b", ips=["10.0.9.11"])  # not ours: rv moves on
    rv_after = api.rv
    time.sleep(0.8)  # bookmarks arrive every 0.3 s
    api.cut_watches()
    deadline = time.monotonic() + 3
    while api.count("watch") < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    stats = w.stop()
    watches = [q for k, q, ok in api.requests if k == "watch"]
    assert int(watches[-1]["resourceVersion"]) >= rv_after
    assert watches[-1]["allowWatchBookmarks"] == "true"
    assert stats["events"] >= 2 and stats["relists"] == 0


def test_oversized_and_bad_lines_are_refused(api, kube_watch):
    w = kube_watch("--max-line", "64KiB")
    w.next_set()
    big = kube_api.make_pod("default", "big-1", ips=["10.0.0.9"],
                            annotations={"x": "y" * 100000})
    api.inject_line(json.dumps({"type": "ADDED", "object": big}).encode() + b"\n")
    err = w.next(lambda l: "api" in l, 3.0, "api error")
    assert "longer than 65536" in err["error"], err
    assert w.next(lambda l: "api" in l, 3.0, "api ok") == {"api": "ok"}
    api.inject_line(b'{"type":"ADDED","object":{"metadata":{"name":"X Y"}}}\n')
    err = w.next(lambda l: "api" in l, 3.0, "api error")
    assert "bad watch event" in err["error"], err
    assert w.next(lambda l: "api" in l, 3.0, "api ok") == {"api": "ok"}
    api.add("default", "after-1", ips=["10.0.0.10"])
    assert ("default", "after-1", "10.0.0.10") in pods_of(w.next_set(3.0))
    stats = w.stop()
    assert stats["relists"] >= 2 and stats["errors"] >= 2
    assert not any(p[1] == "big-1" for l in w.seen if "pods" in l for p in pods_of(l))


def test_oversized_list_is_refused(api, kube_watch):
    for i in range(40):
        api.add("default", f"many-{i}", ips=[f"10.1.0.{i}"])
    w = kube_watch("--max-list", "8KiB")
    err = w.next(lambda l: "api" in l, 3.0, "api error")
    assert "pod list longer than 8192" in err["error"], err
    assert not [l for l in w.seen if "pods" in l]
    w.stop()


def test_client_certificate_and_in_cluster(api, kube_watch, pki, tmp_path):
    import base64
    user = {"client-certificate-data": base64.b64encode((pki / "client.pem").read_bytes()).decode(),
            "client-key-data": base64.b64encode((pki / "client.key").read_bytes()).decode()}
    w = kube_watch(user=user)
    assert len(w.next_set()["pods"]) == 3
    w.stop()
    assert not any(q.get("auth") for _, q, _ in api.requests)

    sa = tmp_path / "sa"
    sa.mkdir()
    (sa / "token").write_text("token-1")
    (sa / "ca.crt").write_bytes((pki / "ca.pem").read_bytes())
    env = dict(os.environ, KUBERNETES_SERVICE_HOST="127.0.0.1",
               KUBERNETES_SERVICE_PORT=str(api.port))
    w = kube_watch("--sa-dir", sa, kubeconfig="", env=env)
    assert len(w.next_set()["pods"]) == 3
    w.stop()


def test_server_certificate_is_verified(api, kube_watch, tmp_path):
    other = kube_api.make_pki(tmp_path / "other-pki")
    cfg = write_kubeconfig(tmp_path / "kc-other", api.url, ca=other / "ca.pem",
                           user={"token": "token-1"})
    w = kube_watch(kubeconfig=cfg)
    err = w.next(lambda l: "api" in l, 3.0, "api error")
    assert "certificate" in err["error"].lower() or "SSL" in err["error"], err
    w.stop()
    assert api.count("list") == 0


@pytest.mark.parametrize("user,want", [
    ({"exec": {"command": "aws", "args": ["eks", "get-token"]}}, "exec plugin (aws)"),
    ({"auth-provider": {"name": "gcp"}}, "auth-provider"),
    ({"username": "a", "password": "b"}, "basic authentication"),
])
def test_unsupported_credentials_are_clear_errors(kube_watch_bin, api, tmp_path, user, want):
    cfg = write_kubeconfig(tmp_path / "kc", api.url, ca=api.pki / "ca.pem", user=user)
    r = subprocess.run([kube_watch_bin, "--node", "node-a", "--kubeconfig", cfg],
                       capture_output=True, text=True, timeout=10)
    assert r.returncode == 1 and want in r.stderr, r.stderr
    assert r.stdout == ""


def test_not_in_a_cluster(kube_watch_bin):
    env = {k: v for k, v in os.environ.items() if not k.startswith("KUBERNETES_")}
    r = subprocess.run([kube_watch_bin, "--node", "node-a"], capture_output=True, text=True,
                       timeout=10, env=env)
    assert r.returncode == 1 and "KUBERNETES_SERVICE_HOST" in r.stderr, r.stderr
