"""`netreel tap`, `tap --local` and `clean` (docs/design.md §6, §7; issue 5).

Cluster mode runs against fake helm and kubectl on PATH that record their arguments: the chart
found beside the build, POD_REGEX/-n/-e in a values file, --set passed on, headless=true
accepted, the release namespace made when missing; helm or a kube context missing is one line
and exit 4. Local mode runs the real netreel-capture, netreel-store and netreel-hub on `-i lo`
with ports of its own: "recording" once store and hub answer, the capture never records their
ports, Ctrl-C stops all three (exit 0), and a child killed with SIGKILL makes tap exit 1 naming
it.
"""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

import cli_helpers as ch
from cli_helpers import cli_bin, fake_tools  # noqa: F401 (fixtures)

REPO = Path(__file__).resolve().parents[3]


# ---- cluster: tap and clean ----------------------------------------------------------------

def helm_calls(tools):
    return [c for c in tools.calls() if c[0] == "helm"]


def test_tap_installs_the_chart(cli_bin, fake_tools, tmp_path):
    tools = fake_tools()
    r = ch.run(cli_bin, "tap", "^(web|api)-[a-z]{1,3}\\d", "-n", "shop,payments", "-e",
               "kube-system", "--set", "pcapdump.maxTime=2h", "--set", "headless=true",
               "--set", "tap.bpfOverride=net 10.0.0.0/8", env=tools.env(TMPDIR=tmp_path),
               expect=0)
    (call,) = helm_calls(tools)
    values = call[-1]["values"]
    args = call[1:-1]
    assert args[:3] == ["upgrade", "--install", "netreel"], call
    assert Path(args[3]).resolve() == (REPO / "helm" / "netreel").resolve()
    assert args[4:6] == ["--namespace", "netreel"] and args[6] == "--values"
    assert args[8:] == ["--set", "pcapdump.maxTime=2h", "--set",
                        "tap.bpfOverride=net 10.0.0.0/8"], call  # headless=true dropped
    assert json.loads(values) == {"tap": {"regex": "^(web|api)-[a-z]{1,3}\\d",
                                          "namespaces": ["shop", "payments"],
                                          "excludedNamespaces": ["kube-system"]}}
    assert not Path(args[7]).exists(), "the values file is left behind"
    assert "netreel pcapdump --time=5m" in r.stdout
    # The namespace existed: it was not touched.
    assert not [c for c in tools.calls() if c[:2] in (["kubectl", "create"], ["kubectl", "label"])]


def test_tap_defaults_and_new_namespace(cli_bin, fake_tools):
    tools = fake_tools()
    r = ch.run(cli_bin, "tap", "--release-namespace", "rec", env=tools.env(), expect=0)
    (call,) = helm_calls(tools)
    assert call[5:7] == ["--namespace", "rec"] and json.loads(call[-1]["values"]) == {"tap": {}}
    kc = [c for c in tools.calls() if c[0] == "kubectl"]
    assert ["kubectl", "create", "namespace", "rec"] in kc
    assert ["kubectl", "label", "--overwrite", "namespace", "rec",
            "pod-security.kubernetes.io/enforce=privileged"] in kc
    assert "--release-namespace rec" in r.stdout


@pytest.mark.parametrize("args,tls", [
    (["--tls"], True),
    (["--tls=true"], True),
    (["--tls=false"], False),
    (["--tls=false", "--tls"], True),  # the last one wins
])
def test_tap_tls_flag_is_tap_tls(cli_bin, fake_tools, args, tls):
    """--tls[=true|false] is the chart's tap.tls (default true), in the values file beside
    POD_REGEX; a --set tap.tls after it wins, as helm reads --set after --values."""
    tools = fake_tools()
    ch.run(cli_bin, "tap", "web-.*", *args, "--set", "tap.snaplen=128", env=tools.env(), expect=0)
    (call,) = helm_calls(tools)
    assert json.loads(call[-1]["values"]) == {"tap": {"regex": "web-.*", "tls": tls}}
    assert call[9:-1] == ["--set", "tap.snaplen=128"]
    ch.run(cli_bin, "tap", "--tls", "--set", "tap.tls=false", env=tools.env(), expect=0)
    call = helm_calls(tools)[-1]
    assert json.loads(call[-1]["values"]) == {"tap": {"tls": True}}
    assert call[9:-1] == ["--set", "tap.tls=false"]


def test_tap_missing_helm_kubectl_context(cli_bin, fake_tools, tmp_path):
    tools = ch.FakeTools(tmp_path / "a", helm=False)
    r = ch.run(cli_bin, "tap", env=tools.env(), expect=4)
    assert "helm is not on PATH" in ch.one_error_line(r)
    tools = ch.FakeTools(tmp_path / "b", kubectl=False)
    r = ch.run(cli_bin, "tap", env=tools.env(), expect=4)
    assert "kubectl is not on PATH" in ch.one_error_line(r)
    tools = ch.FakeTools(tmp_path / "c")
    tools.state["context"] = ""
    tools.save()
    r = ch.run(cli_bin, "tap", env=tools.env(), expect=4)
    assert "no kube context" in ch.one_error_line(r)
    assert helm_calls(tools) == []
    r = ch.run(cli_bin, "clean", env=ch.FakeTools(tmp_path / "d", helm=False).env(), expect=4)
    assert "helm is not on PATH" in ch.one_error_line(r)


def test_tap_helm_fails(cli_bin, fake_tools):
    tools = fake_tools()
    tools.state["helm_exit"] = 1
    tools.save()
    r = ch.run(cli_bin, "tap", env=tools.env(), expect=1)
    assert "helm upgrade --install failed" in r.stderr.splitlines()[-1]


@pytest.mark.parametrize("args,word", [
    (["(unclosed"], 'POD_REGEX "(unclosed": missing closing parenthesis at offset 9'),
    # Compiled as every node's capture compiles it (PCRE2, bounded): what fuzzing found to
    # take glibc's regcomp gigabytes or minutes, where PCRE2's grammar refuses it.
    (["z" + "+" * 80], "quantifier does not follow a repeatable item at offset 3"),
    (["x??????????+++++++++"], "quantifier does not follow a repeatable item"),
    (["((a?){1,100}){1,100}"], "regular expression is too large"),
    (["){1,10000}){1,10}"], "unmatched closing parenthesis at offset 0"),
    (["a" * 16385], "16385 bytes, at most 16384"),
    # GNU's word boundaries: PCRE2 would read '<' and '>', which no pod name holds.
    (["\\<web"], "\\< at offset 0 is GNU's word boundary, which PCRE2 reads as the character <: "
                 "use \\b"),
    (["-n", "Bad_Name"], "Bad_Name"),
    (["--set", "novalue"], "--set"),
    (["a", "b"], "\"b\""),
    (["--chart", "/nonexistent"], "--chart"),
    (["--bogus"], "--bogus"),
    # getopt takes an optional value only after '=': "false" would become POD_REGEX.
    (["--tls", "false"], "write --tls=false"),
    (["--tls=off"], "want --tls, --tls=true or --tls=false"),
])
def test_tap_bad_usage(cli_bin, fake_tools, args, word):
    tools = fake_tools()
    r = ch.run(cli_bin, "tap", *args, env=tools.env(), expect=2)
    assert word in ch.one_error_line(r)
    assert helm_calls(tools) == []


@pytest.mark.parametrize("regex", [
    "^api-\\d+$", "(?i)^web-(?:a|b)", "^web-.+?-x$",  # Perl/RE2 syntax, refused by glibc or the guard
    "(a*)(a*)\\1\\2b", "a{0,10\\000}", "(\\b|\\B)*" * 6,  # the guard for glibc refused these
    "(a+)+$",  # the match limit stops it on a name made for it; that pod is recorded
])
def test_tap_takes_pcre2(cli_bin, fake_tools, regex):
    tools = fake_tools()
    ch.run(cli_bin, "tap", regex, env=tools.env(), expect=0)
    (call,) = helm_calls(tools)
    assert json.loads(call[-1]["values"]) == {"tap": {"regex": regex}}


def test_clean(cli_bin, fake_tools):
    tools = fake_tools()
    r = ch.run(cli_bin, "clean", "--release-namespace", "rec", env=tools.env(), expect=0)
    assert helm_calls(tools) == [["helm", "uninstall", "netreel", "--namespace", "rec"]]
    assert "uninstalled" in r.stdout
    tools.state["installed"] = False
    tools.save()
    r = ch.run(cli_bin, "clean", env=tools.env(), expect=0)
    assert "nothing to clean" in r.stdout


# ---- local -----------------------------------------------------------------------------------

@pytest.fixture
def local_bins(build_dir):
    hub = build_dir / "bin" / "netreel-hub"
    if not os.access(hub, os.X_OK):
        pytest.skip(f"tap --local needs netreel-hub: the hub binary is missing ({hub}); "
                    "build it with `make` once services/hub exists")
    if os.geteuid() != 0:
        pytest.skip("tap --local records with libpcap: run as root")
    return build_dir / "bin"


class Tap:
    """netreel tap --local -i lo on ports of its own, its data in tmp_path/data: given with
    --data, or (data_flag=False) through $NETREEL_DATA, as the default folder. `env` adds to
    its environment."""

    def __init__(self, cli, tmp_path, *args, env=None, data_flag=True, name="tap"):
        self.store_port, self.hub_port = ch.free_port(), ch.free_port()
        self.data = tmp_path / "data"
        self.err_path = tmp_path / f"{name}.stderr"
        self.argv = [str(cli), "tap", "--local", "-i", "lo",
                     *(["--data", str(self.data)] if data_flag else []),
                     "--store-port", str(self.store_port), "--hub-port", str(self.hub_port),
                     "--metrics-ports", "off", *map(str, args)]
        self.env = ch.base_env(**(env or {}))
        if not data_flag:
            self.env["NETREEL_DATA"] = str(self.data)
        with open(self.err_path, "wb") as f:
            self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL,
                                         stdout=subprocess.DEVNULL, stderr=f,
                                         env=self.env)

    def stderr(self):
        return self.err_path.read_text(errors="replace")

    def wait_recording(self, timeout=40):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if "netreel: recording " in self.stderr():
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(f"no 'recording' line (exit {self.proc.poll()}):\n"
                             f"{ch.tail(self.stderr())}")

    def children(self):
        """{name: pid} of tap's children."""
        out = {}
        for d in Path("/proc").iterdir():
            if not d.name.isdigit():
                continue
            try:
                stat = (d / "stat").read_text()
                ppid = int(stat.rsplit(")", 1)[1].split()[1])
                if ppid == self.proc.pid:
                    args = (d / "cmdline").read_bytes().split(b"\0")
                    out[Path(args[0].decode()).name] = (int(d.name), [a.decode() for a in args])
            except (OSError, IndexError, ValueError):
                pass
        return out

    def wait(self, timeout=40):
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise AssertionError(f"tap did not exit within {timeout} s:\n{ch.tail(self.stderr())}")

    def kill(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()


@pytest.fixture
def tap_local(cli_bin, local_bins, tmp_path):
    taps = []

    def start(*args, **kw):
        t = Tap(cli_bin, tmp_path, *args, name=f"tap{len(taps)}", **kw)
        taps.append(t)
        return t

    yield start
    for t in taps:
        t.kill()
        ch.check_sanitizer(t.stderr(), " ".join(t.argv))


def gone(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # A zombie (not yet reaped) counts as alive only while it runs.
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"


def test_tap_local_records_and_stops_on_ctrl_c(cli_bin, tap_local, tmp_path):
    t = tap_local("--set", "pcapdump.maxTime=2h", "--set", "tap.snaplen=128",
                  "--set", "pcapdump.syncInterval=500ms")
    t.wait_recording()
    err = t.stderr()
    # The hint: the data folder is not the default one, so pcapdump needs --data (and nothing
    # else: DATA/hub.addr says where the hub is, DATA/.tls and DATA/hub.token how to talk to it).
    assert f"netreel pcapdump --time=5m --data {t.data}\n" in err
    kids = t.children()
    assert set(kids) == {"netreel-capture", "netreel-store", "netreel-hub"}, kids
    cap = kids["netreel-capture"][1]
    assert ["--exclude-port", str(t.store_port)] == cap[cap.index("--exclude-port"):][:2]
    assert f"--exclude-port\x00{t.hub_port}" in "\0".join(cap)
    assert "--snaplen\x00128" in "\0".join(cap)
    assert "--max-time\x002h" in "\0".join(kids["netreel-store"][1])
    assert "--sync-interval\x00500ms" in "\0".join(kids["netreel-store"][1])
    assert "--tls" not in cap  # decrypted TLS only when asked for (--tls)
    # Traffic, then a snapshot through the hub: the packets are there, the hub's port is not.
    port = ch.free_port()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for i in range(100):
            s.sendto(b"netreel %d" % i, ("127.0.0.1", port))
    time.sleep(1.5)
    out = tmp_path / "out"
    out.mkdir()
    hub = ["--data", t.data]
    r = ch.run(cli_bin, "pcapdump", "--time=1m", *hub, "--dest", out,
               "--filter", f"udp port {port}", env=ch.base_env(), expect=0)
    assert " 100 packets" in r.stdout, r.where()
    (f,) = out.iterdir()
    n = subprocess.run(["tshark", "-r", str(f), "-Y", f"udp.port == {port}"], capture_output=True,
                       text=True, timeout=60)
    assert len(n.stdout.splitlines()) == 100, n.stderr
    r = ch.run(cli_bin, "pcapdump", "--time=1m", *hub, "-o", out / "self.pcapng",
               "--filter", f"tcp port {t.hub_port} or tcp port {t.store_port}",
               env=ch.base_env(), expect=0)
    assert " 0 packets" in r.stdout, r.where()
    # Ctrl-C: all three stop, tap exits 0.
    t.proc.send_signal(signal.SIGINT)
    assert t.wait() == 0, t.stderr()
    for name, (pid, _) in kids.items():
        assert gone(pid), f"{name} (pid {pid}) still runs after tap exited"
    assert "netreel: stopped" in t.stderr()


@pytest.mark.parametrize("args,tls", [
    (["--tls"], True),
    (["--set", "tap.tls=true"], True),
    (["--tls", "--set", "tap.tls=false"], False),  # the last one wins
    (["--set", "tap.tls=true", "--tls=false"], False),
])
def test_tap_local_tls_reaches_the_capture(tap_local, args, tls):
    """tap --local --tls: the capture (root, like every child here) gets --tls once, and loads
    its probes before it drops to nobody; the store and the hub get nothing of it."""
    t = tap_local(*args)
    t.wait_recording()
    kids = t.children()
    assert kids["netreel-capture"][1].count("--tls") == (1 if tls else 0), kids["netreel-capture"]
    for name in ("netreel-store", "netreel-hub"):
        assert "--tls" not in kids[name][1], name
    if tls:
        # Either way the capture says what became of it: probes attached, or one warning.
        deadline = time.monotonic() + 20
        while not re.search(r"tls: (attached|decrypted TLS is OFF)", t.stderr()):
            assert time.monotonic() < deadline, ch.tail(t.stderr())
            time.sleep(0.1)


@pytest.mark.parametrize("victim", ["netreel-store", "netreel-capture"])
def test_tap_local_child_killed(tap_local, victim):
    t = tap_local()
    t.wait_recording()
    kids = t.children()
    os.kill(kids[victim][0], signal.SIGKILL)
    assert t.wait() == 1, t.stderr()
    err = t.stderr()
    assert re.search(rf"netreel: tap --local: {victim} was killed by signal 9", err), err
    for name, (pid, _) in kids.items():
        assert gone(pid), f"{name} (pid {pid}) still runs after tap exited"


def test_tap_local_sigterm(tap_local):
    t = tap_local()
    t.wait_recording()
    kids = t.children()
    t.proc.send_signal(signal.SIGTERM)
    assert t.wait() == 0, t.stderr()
    for name, (pid, _) in kids.items():
        assert gone(pid), name


def test_tap_local_child_fails_to_start(cli_bin, local_bins, tmp_path):
    """A store that cannot start (its port taken): tap says which and why, exit 1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        t = Tap(cli_bin, tmp_path, "--store-port", s.getsockname()[1])  # the last one counts
        rc = t.wait()
    ch.check_sanitizer(t.stderr(), " ".join(t.argv))
    assert rc == 1, t.stderr()
    line = [ln for ln in t.stderr().splitlines() if ln.startswith("netreel: tap --local:")]
    assert line and "netreel-store exited with status" in line[0], t.stderr()


@pytest.mark.parametrize("args,word", [
    (["--set", "storage.type=emptyDir"], "storage.type"),
    (["--set", "tap.regex=web"], "pod targeting needs a cluster"),
    (["--set", "pcapdump.maxTime=soon"], "pcapdump.maxTime"),
    (["--set", "pcapdump.maxSize=lots"], "pcapdump.maxSize"),
    (["--store-port", "0"], "--store-port"),
    (["--store-port", "9000", "--hub-port", "9000"], "both"),
    (["web-.*"], "POD_REGEX"),
    (["--set", "tap.tls=yes"], "want true or false"),
    (["--tls", "true"], "write --tls=true"),
])
def test_tap_local_bad_usage(cli_bin, tmp_path, args, word):
    r = ch.run(cli_bin, "tap", "--local", "-i", "lo", "--data", tmp_path, *args,
               env=ch.base_env(), expect=2)
    assert word in ch.one_error_line(r)


def test_tap_local_missing_program(cli_bin, tmp_path):
    lone = tmp_path / "bin"
    lone.mkdir()
    shutil.copy(cli_bin, lone / "netreel")
    r = ch.run(lone / "netreel", "tap", "--local", "-i", "lo", "--data", tmp_path / "d",
               env=ch.base_env(), expect=4)
    assert "netreel-capture is not beside netreel" in ch.one_error_line(r)
