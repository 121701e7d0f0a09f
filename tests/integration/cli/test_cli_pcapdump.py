"""`netreel pcapdump` against a fake hub (grpcio) (docs/design.md §5, §7; issue 5): the exact window
it asks for, the file's name, the .part that only becomes the file when the hub's last message says
it is whole, a hub dying mid-stream (no file, non-zero), a missing store (named, exit 0; with
--strict exit 3 and no file; every store missing: exit 3), -o -, the token and TLS, Ctrl-C, and bad usage (one line, exit 2).
"""

import os
import re
import signal
import subprocess
import time

import grpc
import pytest

import cli_helpers as ch
from cli_helpers import cli_bin, fake_hub, hub_pb, fake_tools  # noqa: F401 (fixtures)

NS = 1_000_000_000


def files(d):
    return sorted(p.name for p in d.iterdir())


@pytest.fixture
def hub(fake_hub, hub_pb):
    h = fake_hub()
    h.chunks = [ch.pcapng_bytes(3)[:100], ch.pcapng_bytes(3)[100:]]
    h.summary = ch.summary(hub_pb, packets=3, nbytes=len(ch.pcapng_bytes(3)))
    return h


def test_time_sends_the_exact_window_and_names_the_file(cli_bin, hub, tmp_path):
    t0 = time.time_ns()
    r = ch.run(cli_bin, "pcapdump", "--time=5m", "--hub", hub.addr, "--dest", tmp_path,
               "--filter", "udp port 53", "--snaplen", "128", env=ch.base_env(), expect=0)
    t1 = time.time_ns()
    (req,) = hub.requests
    assert t0 <= req.until_ns <= t1, r.where()
    assert req.until_ns - req.since_ns == 300 * NS
    assert req.filter == "udp port 53" and req.snaplen == 128 and req.format == 0
    name = f"netreel-{ch.stamp(req.since_ns)}-{ch.stamp(req.until_ns)}.pcapng"
    assert files(tmp_path) == [name], r.where()
    assert (tmp_path / name).read_bytes() == ch.pcapng_bytes(3)
    assert re.fullmatch(r"netreel-\d{8}T\d{6}Z-\d{8}T\d{6}Z\.pcapng", name)
    # One closing line: path, packets, bytes, nodes.
    out = r.stdout.strip().splitlines()
    assert len(out) == 1 and out[0].startswith(str(tmp_path / name) + ":"), r.where()
    assert "3 packets" in out[0] and f"{len(ch.pcapng_bytes(3))} bytes" in out[0]
    assert "1 node (node-a)" in out[0]
    assert r.stderr == "", r.where()  # not a terminal: no progress line


def test_since_until_rfc3339(cli_bin, hub, tmp_path):
    r = ch.run(cli_bin, "pcapdump", "--since", "2026-11-26T06:30:00Z", "--until",
               "2026-11-26T07:35:00.5+01:00", "--hub", hub.addr, "--dest", tmp_path,
               env=ch.base_env(), expect=0)
    (req,) = hub.requests
    assert req.since_ns == 1795674600 * NS
    assert req.until_ns == 1795674900 * NS + 500_000_000
    assert files(tmp_path) == ["netreel-20261126T063000Z-20261126T063500Z.pcapng"], r.where()
    # The same window again: the first file is kept, the second takes the next name.
    ch.run(cli_bin, "pcapdump", "--since", "2026-11-26T06:30:00Z", "--until",
           "2026-11-26T06:35:00Z", "--hub", hub.addr, "--dest", tmp_path, env=ch.base_env(),
           expect=0)
    assert files(tmp_path) == ["netreel-20261126T063000Z-20261126T063500Z-2.pcapng",
                               "netreel-20261126T063000Z-20261126T063500Z.pcapng"]


def test_whole_window_and_current_folder(cli_bin, hub, hub_pb, tmp_path):
    """No --time/--since: since_ns 0 (everything retained), until now; the name starts at the
    oldest packet as the hub's summary says; the default folder is the current one."""
    oldest = 1795670000 * NS + 123
    hub.summary = ch.summary(hub_pb, packets=3, since=oldest)
    t0 = time.time_ns()
    r = ch.run(cli_bin, "pcapdump", "--hub", hub.addr, cwd=tmp_path, env=ch.base_env(),
               expect=0)
    (req,) = hub.requests
    assert req.since_ns == 0 and req.until_ns >= t0
    name = f"netreel-20261126T051320Z-{ch.stamp(req.until_ns)}.pcapng"
    assert files(tmp_path) == [name], r.where()
    assert r.stdout.startswith(name + ":"), r.where()


def test_format_pcap_and_output_file(cli_bin, hub, tmp_path):
    ch.run(cli_bin, "pcapdump", "--time=1m", "--format", "pcap", "--hub", hub.addr,
           "--dest", tmp_path, env=ch.base_env(), expect=0)
    assert hub.requests[0].format == 1
    (name,) = files(tmp_path)
    assert name.endswith(".pcap") and not name.endswith(".pcapng")
    out = tmp_path / "sub" / "mine.pcapng"
    out.parent.mkdir()
    r = ch.run(cli_bin, "pcapdump", "-o", out, "--hub", hub.addr, env=ch.base_env(), expect=0)
    assert files(out.parent) == ["mine.pcapng"], r.where()
    assert out.read_bytes() == ch.pcapng_bytes(3)


def test_output_to_stdout(cli_bin, hub, tmp_path):
    """-o -: the file's bytes on stdout, the closing line on stderr, nothing on disk."""
    r = ch.run(cli_bin, "pcapdump", "--time=1m", "-o", "-", "--hub", hub.addr, cwd=tmp_path,
               env=ch.base_env(), expect=0)
    assert r.out == ch.pcapng_bytes(3)
    assert "3 packets" in r.stderr and len(r.stderr.splitlines()) == 1, r.where()
    assert files(tmp_path) == []


def start_cli(cli_bin, *args, cwd=None, env=None):
    return subprocess.Popen([str(cli_bin), *map(str, args)], stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=cwd,
                            env=env or ch.base_env())


def test_part_file_until_complete(cli_bin, hub, tmp_path):
    """While the stream runs only a .part exists; the named file appears when it is whole."""
    hub.hang_after = 1
    p = start_cli(cli_bin, "pcapdump", "--time=1m", "--hub", hub.addr, "--dest", tmp_path)
    assert hub.reached.wait(20), "the CLI never asked"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        names = files(tmp_path)
        if names and (tmp_path / names[0]).stat().st_size == 100:
            break
        time.sleep(0.02)
    assert len(names) == 1 and names[0].endswith(".part"), names
    hub.release.set()
    out, err = p.communicate(timeout=30)
    assert p.returncode == 0, err
    (name,) = files(tmp_path)
    assert name.endswith(".pcapng") and (tmp_path / name).read_bytes() == ch.pcapng_bytes(3)


def test_hub_dies_mid_stream(cli_bin, hub, tmp_path):
    hub.hang_after = 1
    p = start_cli(cli_bin, "pcapdump", "--time=1m", "--hub", hub.addr, "--dest", tmp_path)
    assert hub.reached.wait(20)
    time.sleep(0.2)
    hub.stop()
    out, err = p.communicate(timeout=30)
    res = ch.CliResult(p.args, p.returncode, out, err, 0)
    ch.check_sanitizer(res.stderr, res.where())
    assert p.returncode == 1, res.where()
    assert files(tmp_path) == [], res.where()  # no final file, no .part
    assert hub.addr in ch.one_error_line(res)


@pytest.mark.parametrize("how", ["error status", "no summary"])
def test_incomplete_stream_leaves_no_file(cli_bin, hub, tmp_path, how):
    if how == "error status":
        hub.fail = (grpc.StatusCode.INTERNAL, "merge failed: link types differ")
    else:
        hub.summary = None
    r = ch.run(cli_bin, "pcapdump", "--time=1m", "--hub", hub.addr, "--dest", tmp_path,
               env=ch.base_env(), expect=1)
    line = ch.one_error_line(r)
    assert ("link types differ" in line) if how == "error status" else ("summary" in line)
    assert files(tmp_path) == []


def test_missing_store_is_named_and_strict_fails(cli_bin, hub, hub_pb, tmp_path):
    hub.summary = ch.summary(hub_pb, packets=3, stores=[
        ("node-a", True, ""), ("node-b", False, "connect: connection refused"),
        ("node-c", True, "")])
    r = ch.run(cli_bin, "pcapdump", "--time=1m", "--hub", hub.addr, "--dest", tmp_path,
               env=ch.base_env(), expect=0)
    assert "node-b" in r.stderr and "MISSING" in r.stderr and "connection refused" in r.stderr
    assert "node-a" not in r.stderr
    assert "2 of 3 nodes (node-a, node-c)" in r.stdout, r.where()
    assert len(files(tmp_path)) == 1
    strict = tmp_path / "strict"
    strict.mkdir()
    r = ch.run(cli_bin, "pcapdump", "--time=1m", "--strict", "--hub", hub.addr, "--dest",
               strict, env=ch.base_env(), expect=3)
    assert "node-b" in r.stderr and "--strict" in r.stderr.splitlines()[-1]
    assert files(strict) == []


def test_no_store_answering_fails(cli_bin, hub, hub_pb, tmp_path):
    # Every store missing: the hub's file holds no node at all, which a script must not take for
    # a snapshot of the cluster (exit 3, as with --strict, and no file).
    hub.summary = ch.summary(hub_pb, packets=0, stores=[
        ("node-a", False, "connect: connection refused"),
        ("node-b", False, "no answer within 10s (--store-timeout)")])
    r = ch.run(cli_bin, "pcapdump", "--time=1m", "--hub", hub.addr, "--dest", tmp_path,
               env=ch.base_env(), expect=3)
    assert "node-a" in r.stderr and "node-b" in r.stderr, r.where()
    assert r.stderr.splitlines()[-1] == \
        "netreel: pcapdump: no store answered (2 missing): no file written", r.where()
    assert files(tmp_path) == []
    r = ch.run(cli_bin, "pcapdump", "--time=1m", "--hub", hub.addr, "-o", "-",
               env=ch.base_env(), expect=3)
    assert r.stderr.splitlines()[-1] == "netreel: pcapdump: no store answered (2 missing)"
    # One cut short mid-stream sent packets: they are the file (exit 0).
    cut = ch.summary(hub_pb, packets=0, stores=[("node-a", False, "it stopped sending")])
    cut.stores[0].packets = 7
    hub.summary = cut
    ch.run(cli_bin, "pcapdump", "--time=1m", "--hub", hub.addr, "--dest", tmp_path,
           env=ch.base_env(), expect=0)
    assert len(files(tmp_path)) == 1


def test_token(cli_bin, hub, tmp_path):
    hub.token = "s3cret-token"
    r = ch.run(cli_bin, "pcapdump", "--time=1m", "--hub", hub.addr, "--dest", tmp_path,
               env=ch.base_env(), expect=1)
    line = ch.one_error_line(r)
    assert "UNAUTHENTICATED" in line and "--token-file" in line
    assert files(tmp_path) == []
    tf = tmp_path / "token"
    tf.write_text("s3cret-token\n")
    out = tmp_path / "out"
    out.mkdir()
    ch.run(cli_bin, "pcapdump", "--time=1m", "--hub", hub.addr, "--dest", out,
           "--token-file", tf, env=ch.base_env(), expect=0)
    assert hub.metadata[-1]["authorization"] == "Bearer s3cret-token"
    ch.run(cli_bin, "pcapdump", "--time=1m", "--hub", hub.addr, "--dest", out,
           env=ch.base_env(NETREEL_TOKEN="s3cret-token"), expect=0)
    assert len(files(out)) >= 1


def test_mtls(cli_bin, fake_hub, hub_pb, certs, tmp_path):
    h = fake_hub("mtls")
    h.chunks = [ch.pcapng_bytes(2)]
    h.summary = ch.summary(hub_pb, packets=2)
    ok = ["--tls-ca", certs.ca, "--tls-cert", certs.client_cert, "--tls-key", certs.client_key]
    ch.run(cli_bin, "pcapdump", "--time=1m", "--hub", f"localhost:{h.port}", "--dest",
           tmp_path, *ok, env=ch.base_env(), expect=0)
    assert len(files(tmp_path)) == 1
    # Without a client certificate, or without TLS at all: one line, exit 1, no file.
    for args in (["--tls-ca", certs.ca], []):
        d = tmp_path / f"fail{len(args)}"
        d.mkdir()
        r = ch.run(cli_bin, "pcapdump", "--time=1m", "--hub", f"localhost:{h.port}", "--dest",
                   d, *args, env=ch.base_env(), expect=1)
        ch.one_error_line(r)
        assert files(d) == []


def test_sigint_leaves_no_file(cli_bin, hub, tmp_path):
    hub.hang_after = 1
    p = start_cli(cli_bin, "pcapdump", "--time=1m", "--hub", hub.addr, "--dest", tmp_path)
    assert hub.reached.wait(20)
    time.sleep(0.2)
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=30)
    assert p.returncode == 130, err
    assert files(tmp_path) == []
    assert "interrupted" in err.decode()


def test_unreachable_hub(cli_bin, tmp_path):
    r = ch.run(cli_bin, "pcapdump", "--time=1m", "--hub", f"127.0.0.1:{ch.closed_port()}",
               "--dest", tmp_path, env=ch.base_env(), expect=1)
    assert "cannot reach the hub" in ch.one_error_line(r)
    assert files(tmp_path) == []


BAD = [
    (["--time", "5x"], "--time"),
    (["--time", "0"], "--time"),
    (["--since", "yesterday"], "--since"),
    (["--since", "2026-11-26T06:30:00"], "--since"),  # no time zone
    (["--until", "2026-11-26T06:30:00Z"], "--until"),
    (["--time", "5m", "--since", "2026-11-26T06:30:00Z"], "--time"),
    (["--since", "2026-11-26T07:00:00Z", "--until", "2026-11-26T06:00:00Z"], "--since"),
    (["--format", "json"], "--format"),
    (["--dest", "/", "-o", "../x"], "--dest"),  # -o with --dest: a name inside DIR
    (["--dest", "d", "-o", "-"], "--dest"),
    (["--snaplen", "-1"], "--snaplen"),
    (["--tls-cert", "/x.pem"], "--tls-key"),
    (["--hub", "nowhere"], "--hub"),
    (["--no-such-flag"], "--no-such-flag"),
    (["--time"], "--time"),
    (["stray"], "stray"),
]


@pytest.mark.parametrize("args,word", BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_usage_is_one_line_exit_2(cli_bin, tmp_path, args, word):
    r = ch.run(cli_bin, "pcapdump", *args, cwd=tmp_path, env=ch.base_env(), expect=2)
    assert word in ch.one_error_line(r)
    assert files(tmp_path) == []


def test_help(cli_bin):
    for cmd in ("pcapdump", "status", "tap", "clean", "version"):
        r = ch.run(cli_bin, cmd, "--help", env=ch.base_env(), expect=0)
        assert r.stdout.startswith(f"usage: netreel {cmd}"), r.where()
    r = ch.run(cli_bin, "--help", env=ch.base_env(), expect=0)
    for cmd in ("tap", "pcapdump", "status", "clean", "version"):
        assert f"  {cmd} " in r.stdout
    r = ch.run(cli_bin, "frobnicate", env=ch.base_env(), expect=2)
    assert "frobnicate" in ch.one_error_line(r)
    r = ch.run(cli_bin, "version", env=ch.base_env(), expect=0)
    assert re.fullmatch(r"netreel \S+\n", r.stdout)
