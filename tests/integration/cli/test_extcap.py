"""netreel as Wireshark's capture interface "netreel: cluster" (docs/cli.md, "Wireshark: netreel
as a capture interface"; cli/extcap.c).

netreel goes into a personal extcap folder of the test's own, as a user would put it there (a
symbolic link named netreel): Wireshark 4.0 reads $XDG_CONFIG_HOME/wireshark/extcap also as root,
where it ignores $WIRESHARK_EXTCAP_DIR. Then, as a user at a terminal: `tshark -D` lists
`netreel (netreel: cluster)` and `tshark -L` its link type; the options of --extcap-config parse,
tshark turns them into its preferences, and their validation patterns take what the parser takes;
a capture's options become exactly pcapdump's command line (NETREEL_EXTCAP_DRY_RUN=1 prints it
instead of running it); a bad value is exit 2 with one line, which tshark shows as "Error by
extcap pipe"; Wireshark's capture filter check gets its answer on stdout.

The last test captures for real, `tshark -i netreel -a duration:5 -w out.pcapng`, through the
hub of a `netreel tap --local -i lo`: the window before and the packets after its start are in
the file, which tshark and capinfos read without a warning. It needs `pcapdump --follow`, and
skips itself until `netreel pcapdump --help` mentions it.
"""

import os
import re
import signal
import socket
import subprocess
import threading
import time

import pytest

import cli_helpers as ch
from cli_helpers import cli_bin  # noqa: F401 (fixture)
from capture_helpers import datagram, udp_datagrams
from hub_helpers import wireshark_ok
from test_cli_tap import local_bins, tap_local  # noqa: F401 (fixtures)

OPTIONS = ["--time", "--lateness", "--clock", "--filter", "--sightings", "--namespace", "--pod",
           "--selector", "--hub"]
FIELD = re.compile(r"\{([a-z]+)=(.*?)\}(?=\{|$)")
CAPTURE = ["--capture", "--extcap-interface", "netreel", "--fifo", "/tmp/wireshark_extcap_x"]


@pytest.fixture
def wireshark_env(cli_bin, tmp_path):
    """An environment whose Wireshark finds netreel in its personal extcap folder."""
    if subprocess.run(["sh", "-c", "command -v tshark"], capture_output=True).returncode != 0:
        pytest.skip("tshark is missing (apt-get install tshark)")
    xdg = tmp_path / "xdg"
    (xdg / "wireshark" / "extcap").mkdir(parents=True)
    os.symlink(cli_bin.resolve(), xdg / "wireshark" / "extcap" / "netreel")
    (tmp_path / "home").mkdir()
    env = ch.base_env(XDG_CONFIG_HOME=xdg, HOME=tmp_path / "home")
    for k in [k for k in env if k.startswith("WIRESHARK_")]:
        del env[k]
    return env


def tshark(env, *args, timeout=60):
    r = subprocess.run(["tshark", *map(str, args)], capture_output=True, text=True, env=env,
                       stdin=subprocess.DEVNULL, timeout=timeout)
    return r


def lines_of(text):
    """[(keyword, {key: value})] of extcap sentences."""
    out = []
    for ln in text.splitlines():
        kw, _, rest = ln.partition(" ")
        fields = FIELD.findall(rest)
        assert "".join(f"{{{k}={v}}}" for k, v in fields) == rest, f"does not parse: {ln!r}"
        out.append((kw, dict(fields)))
    return out


def test_tshark_lists_the_interface(wireshark_env, cli_bin):
    r = tshark(wireshark_env, "-D")
    assert r.returncode == 0, r.stderr
    found = [ln for ln in r.stdout.splitlines() if re.fullmatch(r"\d+\. netreel \(.*\)", ln)]
    assert len(found) == 1 and found[0].endswith(". netreel (netreel: cluster)"), r.stdout
    r = tshark(wireshark_env, "-L", "-i", "netreel")
    assert r.returncode == 0 and re.search(r"^\s+LINUX_SLL2 \(Linux cooked v2", r.stdout, re.M), \
        r.stdout + r.stderr

    # What Wireshark asks, as it asks it.
    r = ch.run(cli_bin, "--extcap-interfaces", "--extcap-version=4.0", expect=0)
    got = lines_of(r.stdout)
    assert got[0][0] == "extcap" and re.fullmatch(r"\d+\.\d+\.\d+.*", got[0][1]["version"])
    assert got[1:] == [("interface", {"value": "netreel", "display": "netreel: cluster"})]
    r = ch.run(cli_bin, "--extcap-dlts", "--extcap-interface", "netreel", expect=0)
    assert lines_of(r.stdout) == [("dlt", {
        "number": "276", "name": "LINUX_SLL2",
        "display": "Linux cooked v2, with Ethernet where a node records a named device"})]


def test_config_parses(wireshark_env, cli_bin):
    r = ch.run(cli_bin, "--extcap-config", "--extcap-interface", "netreel", expect=0)
    assert r.stderr == ""
    got = lines_of(r.stdout)
    args = [f for kw, f in got if kw == "arg"]
    values = [f for kw, f in got if kw == "value"]
    assert [a["call"] for a in args] == OPTIONS
    assert [a["number"] for a in args] == [str(i) for i in range(len(OPTIONS))]
    by_number = {a["number"]: a for a in args}
    for a in args:
        assert a["display"] and a["tooltip"] and a["group"], a
        assert a["type"] in ("string", "radio", "selector"), a
    for a in args:
        choices = [v for v in values if v["arg"] == a["number"]]
        assert bool(choices) == (a["type"] != "string"), a
        if choices:
            assert [v["default"] for v in choices].count("true") == 1, choices
    assert {by_number[v["arg"]]["call"]: None for v in values}.keys() == {"--clock", "--sightings"}
    assert by_number["1"]["default"] == "1s"

    # Each pattern is anchored and takes what the parser takes (Wireshark checks fields with it).
    pattern = {a["call"]: re.compile(a["validation"]) for a in args if "validation" in a}
    assert set(pattern) == {"--time", "--lateness", "--namespace", "--hub"}
    for call, good, bad in [("--time", ["5m", "1h30m", "1.5s", "2d"], ["5x", "0", "5m ", "m"]),
                            ("--lateness", ["1s", "250ms"], ["-1s", "1 s", "0"]),
                            ("--namespace", ["shop", "a, b", "kube-system"], ["Shop", "a;b"]),
                            ("--hub", ["127.0.0.1:8898", "[::1]:8898", "hub.example:1"],
                             ["hub", "hub:port", "a b:1"])]:
        for v in good:
            assert pattern[call].search(v), (call, v)
            ch.run(cli_bin, *CAPTURE, call, v, env=ch.base_env(NETREEL_EXTCAP_DRY_RUN=1),
                   expect=0)
        for v in bad:
            assert not pattern[call].search(v), (call, v)

    # Wireshark read them: each is a preference of tshark's.
    r = tshark(wireshark_env, "-G", "currentprefs")
    assert r.returncode == 0, r.stderr
    prefs = dict(re.findall(r"^#?(extcap\.netreel\.[a-z]+):\s?(.*)$", r.stdout, re.M))
    assert set(prefs) == {f"extcap.netreel.{c[2:]}" for c in OPTIONS}, prefs
    assert prefs["extcap.netreel.lateness"] == "1s"


def dry_run(cli_bin, *args):
    r = ch.run(cli_bin, *CAPTURE, *args, env=ch.base_env(NETREEL_EXTCAP_DRY_RUN=1), expect=0)
    assert r.stderr == "", r.where()
    return r.stdout.splitlines()


def test_capture_options_become_pcapdump_flags(cli_bin):
    # Every option, as Wireshark passes them: "--call value", a capture filter of its own.
    assert dry_run(cli_bin, "--time", "5m", "--lateness", "2s", "--clock", "raw", "--filter",
                   "udp", "--sightings", "all", "--namespace", " shop, pay,", "--pod", "^web-",
                   "--selector", "app=web,tier!=db", "--hub", "127.0.0.1:8898",
                   "--extcap-capture-filter", "port 53") == [
        "netreel", "pcapdump", "--follow", "-q", "--time", "5m", "--lateness", "2s",
        "--filter", "(udp) and (port 53)", "--namespace", "shop,pay", "--pod", "^web-",
        "--selector", "app=web,tier!=db", "--hub", "127.0.0.1:8898", "--sightings", "all",
        "--clock", "raw", "-o", "-"]
    # Nothing set but Wireshark's default lateness: from now, said as the time it is.
    before = time.time()
    argv = dry_run(cli_bin, "--lateness", "1s", "--time", "")
    assert argv[:5] == ["netreel", "pcapdump", "--follow", "-q", "--since"], argv
    assert argv[6:] == ["--lateness", "1s", "-o", "-"], argv
    m = re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)\.(\d{9})Z", argv[5])
    assert m, argv
    since = time.mktime(time.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S")) - time.timezone
    assert before - 1 <= since + int(m.group(2)) / 1e9 <= time.time() + 1, argv[5]
    # A value that looks like a flag stays a value.
    assert dry_run(cli_bin, "--time", "1m", "--pod", "--hub")[6:8] == ["--pod", "--hub"]


@pytest.mark.parametrize("args,want", [
    (["--time", "5x"], 'extcap: --time: invalid duration "5x"'),
    (["--lateness", "-1s"], "extcap: --lateness: invalid duration"),
    (["--sightings", "twice"], 'extcap: --sightings "twice": one or all'),
    (["--clock", "utc"], 'extcap: --clock "utc": aligned or raw'),
    (["--namespace", "Shop"], 'extcap: --namespace: "Shop" is not a namespace name'),
    (["--pod", "(web"], "extcap: --pod: missing closing parenthesis"),
    (["--selector", "app in (a"], "extcap: --selector: label selector"),
    (["--hub", "hub"], 'extcap: --hub: invalid address "hub"'),
    (["--filter", "tcp port"], 'extcap: filter "tcp port": '),
    (["--pod", "a" * 5000], "extcap: --pod: longer than 4096 bytes"),
    (["--filter", "tcp\nport 80"], "extcap: --filter: a control character at byte 3"),
    (["--bogus"], "extcap: unknown option --bogus"),
])
def test_bad_values_refused(cli_bin, args, want):
    r = ch.run(cli_bin, *CAPTURE, *args, env=ch.base_env(NETREEL_EXTCAP_DRY_RUN=1), expect=2)
    assert want in ch.one_error_line(r), r.where()
    assert r.stdout == "", r.where()


def test_wireshark_shows_the_refusal(wireshark_env, tmp_path):
    """Set in tshark's preferences, the bad value never reaches pcapdump: tshark shows why."""
    r = tshark(wireshark_env, "-i", "netreel", "-o", "extcap.netreel.time:5x", "-a", "duration:5",
               "-w", tmp_path / "x.pcapng")
    assert 'Error by extcap pipe: netreel: extcap: --time: invalid duration "5x"' in r.stderr, \
        r.stderr
    assert "pcapdump" not in r.stderr, r.stderr


def test_refusal_releases_the_reader(cli_bin, tmp_path):
    """Wireshark's reader may wait in open() already: a refused capture ends it with an empty
    stream (tshark would hang otherwise). Without a reader, the refusal waits at most a second."""
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    got = []
    reader = threading.Thread(target=lambda: got.append(open(fifo, "rb").read()), daemon=True)
    reader.start()
    time.sleep(0.2)  # the reader is in open()
    r = ch.run(cli_bin, "--capture", "--extcap-interface", "netreel", "--fifo", fifo,
               "--time", "5x", expect=2)
    assert "--time: invalid duration" in ch.one_error_line(r)
    reader.join(10)
    assert got == [b""], "the reader still waits"
    r = ch.run(cli_bin, "--capture", "--extcap-interface", "netreel", "--fifo", fifo,
               "--clock", "utc", expect=2)
    assert "--clock" in ch.one_error_line(r) and r.wall < 5, r.where()
    # Something else than a fifo is neither opened nor written.
    plain = tmp_path / "plain"
    plain.write_bytes(b"keep")
    r = ch.run(cli_bin, "--capture", "--extcap-interface", "netreel", "--fifo", plain,
               "--time", "1m", expect=2)
    assert "is not a fifo" in ch.one_error_line(r) and plain.read_bytes() == b"keep"


def test_capture_filter_check(cli_bin):
    """Wireshark's capture filter field: nothing on stdout is valid, a line says why not."""
    r = ch.run(cli_bin, "--extcap-interface", "netreel", "--extcap-capture-filter",
               "tcp port 443 and not host 10.0.0.1", expect=0)
    assert r.stdout == "" and r.stderr == "", r.where()
    r = ch.run(cli_bin, "--extcap-interface", "netreel", "--extcap-capture-filter", "tcp port",
               expect=0)
    assert re.fullmatch(r'filter "tcp port": .+\n', r.stdout) and r.stderr == "", r.where()


def pcapdump_follows(cli_bin):
    r = ch.run(cli_bin, "pcapdump", "--help", expect=0)
    return "--follow" in r.stdout


def test_capture_through_tshark(wireshark_env, cli_bin, tap_local, tmp_path):
    if not pcapdump_follows(cli_bin):
        pytest.skip("needs pcapdump --follow")
    t = tap_local()
    t.wait_recording()
    env = dict(wireshark_env, NETREEL_DATA=str(t.data))
    duration = 15 if ch.ASAN else 5  # the live half, then time for --lateness and the batches
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind(("127.0.0.1", 0))
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sent_at = {}

    def send(seq):
        tx.sendto(datagram(seq, 100), rx.getsockname())
        sent_at[seq] = time.monotonic()

    try:
        # The window: datagrams before the capture starts (its --time is 1m).
        for seq in range(50):
            send(seq)
        time.sleep(1.0)  # the capture's batch time and more
        out = tmp_path / "out.pcapng"
        start = time.monotonic()
        proc = subprocess.Popen(["tshark", "-i", "netreel", "-o", "extcap.netreel.time:1m",
                                 "-a", f"duration:{duration}", "-w", str(out)],
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=env)
        # Live: one datagram every 50 ms for the first half of the capture.
        stop = threading.Event()

        def live():
            seq = 1000
            while not stop.is_set() and time.monotonic() < start + duration / 2:
                send(seq)
                seq += 1
                time.sleep(0.05)

        th = threading.Thread(target=live, daemon=True)
        th.start()
        try:
            stdout, stderr = proc.communicate(timeout=duration + 60)
        except subprocess.TimeoutExpired:
            proc.kill()
            stdout, stderr = proc.communicate()
            raise AssertionError(f"tshark did not stop after {duration} s:\n{stderr}")
        finally:
            stop.set()
            th.join(5)
    finally:
        rx.close()
        tx.close()

    assert proc.returncode == 0, stderr
    # Neither the extcap nor pcapdump failed (their error lines start so).
    assert "netreel: extcap:" not in stderr and "netreel: pcapdump:" not in stderr, stderr
    f = wireshark_ok(out)
    assert f.packets, stderr
    seqs = {seq for src, seq, _ in udp_datagrams(f.packets) if src == "127.0.0.1"}
    assert set(range(50)) <= seqs, f"window: {sorted(s for s in seqs if s < 1000)}\n{stderr}"
    # Sent a second into the capture: after pcapdump's window, so only --follow brings them.
    late = {s for s, at in sent_at.items() if s >= 1000 and at >= start + 1.0}
    assert late and seqs & late, f"no datagram sent after {start + 1.0}: live " \
        f"{sorted(s for s in seqs if s >= 1000)} of {sorted(late)}\n{stderr}"

    t.proc.send_signal(signal.SIGINT)
    assert t.wait() == 0, t.stderr()
