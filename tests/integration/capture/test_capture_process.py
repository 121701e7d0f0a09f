"""netreel-capture as a process: it gives up root for good once its handles are open, and it
refuses bad flags with one clear line and exit status 2 (issue 4, docs/design.md §7, §9).
"""

import os
import pwd
import re
import subprocess
import time
from pathlib import Path

import pytest

import store_helpers as sh
from capture_helpers import (ASAN, helper_pid, kernel_lacks_tls_support, lab,  # noqa: F401
                             status_fields, wait_for)

ZERO_CAPS = "0000000000000000"


@pytest.mark.parametrize("mode", ["poll", "thread"])
def test_drops_to_nobody_without_capabilities(lab, mode):
    net = lab.netns()
    lab.store(net)
    cap = lab.capture(net, "--read-mode", mode)  # as root; --user defaults to nobody
    nobody = pwd.getpwnam("nobody")
    assert cap.started.get("uid") == str(nobody.pw_uid), cap.started

    # Every thread of the process, not only the main one: capabilities are per thread (with
    # --read-mode thread, the capture thread started after the drop must have none either).
    tasks = sorted(Path(f"/proc/{cap.pid}/task").iterdir())
    if mode == "thread":
        assert len(tasks) >= 2, "no capture thread yet?"
    for t in tasks:
        st = status_fields((t / "status").read_text())
        where = f"/proc/{cap.pid}/task/{t.name}/status"
        uids = st["Uid"].split()
        gids = st["Gid"].split()
        assert "0" not in uids and uids == [str(nobody.pw_uid)] * 4, f"{where}: Uid {uids}"
        assert gids == [str(nobody.pw_gid)] * 4, f"{where}: Gid {gids}"
        assert st.get("Groups", "") == "", f"{where}: supplementary groups {st['Groups']!r}"
        for k in ("CapInh", "CapPrm", "CapEff", "CapAmb"):
            assert st[k] == ZERO_CAPS, f"{where}: {k} {st[k]}"
        assert st["NoNewPrivs"] == "1", f"{where}: NoNewPrivs {st['NoNewPrivs']}"
    # And it still works as nobody: it captures and its store acknowledges.
    ms = cap.scrape()
    assert ms["netreel_capture_store_connected"] in (0, 1)
    stopped = cap.stop()
    assert stopped["acked"] == stopped["batches"], stopped


# The helper of --tls keeps exactly these (CAP_SYS_PTRACE 19, CAP_SYS_ADMIN 21).
HELPER_CAPS = f"{(1 << 19) | (1 << 21):016x}"


def test_with_tls_the_capture_has_no_capabilities_and_its_helper_two(lab):
    why = kernel_lacks_tls_support()
    if why:
        pytest.skip(f"--tls needs it: {why}")
    net = lab.netns()
    lab.store(net)
    cap = lab.capture(net, "--tls")
    nobody = pwd.getpwnam("nobody")
    assert "tls" in cap.started.get("interfaces", "").split(","), cap.stderr()
    for t in sorted(Path(f"/proc/{cap.pid}/task").iterdir()):
        st = status_fields((t / "status").read_text())
        for k in ("CapInh", "CapPrm", "CapEff", "CapAmb"):
            assert st[k] == ZERO_CAPS, f"capture task {t.name}: {k} {st[k]}"
    hp = helper_pid(cap)
    assert hp, "no helper process (comm netreel-tls)"
    st = status_fields(Path(f"/proc/{hp}/status").read_text())
    assert st["Uid"].split() == [str(nobody.pw_uid)] * 4, st["Uid"]
    assert st["Gid"].split() == [str(nobody.pw_gid)] * 4, st["Gid"]
    assert st.get("Groups", "") == "", st["Groups"]
    assert st["CapEff"] == HELPER_CAPS and st["CapPrm"] == HELPER_CAPS, st
    assert st["CapBnd"] == HELPER_CAPS, st["CapBnd"]
    assert st["CapInh"] == ZERO_CAPS and st["CapAmb"] == ZERO_CAPS, st
    assert st["NoNewPrivs"] == "1", st["NoNewPrivs"]
    assert st["Threads"] == "1", st["Threads"]
    # Its descriptors: 0-2, its socketpair end (one AF_UNIX socket), eBPF maps and programs;
    # no packet socket, no key log file, nothing of libuv's.
    def helper_fds():
        links = {}
        for fd in Path(f"/proc/{hp}/fd").iterdir():
            try:
                links[int(fd.name)] = os.readlink(fd)
            except OSError:
                pass
        return links

    def scanning(links):  # /proc and a maps file, open only while its rescan runs
        return any(ln == "/proc" or ln.endswith("/maps") for ln in links.values())

    links = helper_fds()
    for _ in range(50):
        if not scanning(links):
            break
        time.sleep(0.02)
        links = helper_fds()
    sockets = [ln for ln in links.values() if ln.startswith("socket:")]
    assert len(sockets) == 1, links
    inode = sockets[0][len("socket:["):-1]
    # (the helper's namespace's tables: /proc/PID/net)
    unix = [r.split() for r in Path(f"/proc/{hp}/net/unix").read_text().splitlines()[1:]]
    packet = [r.split() for r in Path(f"/proc/{hp}/net/packet").read_text().splitlines()[1:]]
    assert any(len(r) > 6 and r[6] == inode for r in unix), f"not an AF_UNIX socket: {inode}"
    assert not any(r and r[-1] == inode for r in packet), "the helper holds a packet socket"
    others = {fd: ln for fd, ln in links.items()
              if fd > 2 and not ln.startswith(("socket:", "anon_inode:bpf-map",
                                               "anon_inode:bpf-prog"))}
    assert not others, f"the helper holds more than it needs: {others}"
    # kill -9 of the capture: the helper goes with it.
    os.kill(cap.pid, 9)
    assert wait_for(lambda: not Path(f"/proc/{hp}").exists() or
                    "State:\tZ" in Path(f"/proc/{hp}/status").read_text()), \
        "the helper outlived the capture"
    cap.proc.wait()
    cap.done = True


# ---- flags ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def capture_bin(build_dir):
    b = build_dir / "bin" / "netreel-capture"
    if not (b.is_file() and b.stat().st_mode & 0o111):
        pytest.fail(f"missing program {b} -- build it with `make`", pytrace=False)
    return b


def run_capture(capture_bin, *args, timeout=30):
    r = subprocess.run([str(capture_bin), *map(str, args)], stdin=subprocess.DEVNULL,
                       capture_output=True, text=True, timeout=timeout)
    if ASAN:
        assert not sh.sanitizer_reports(r.stderr), f"sanitizer report:\n{sh.tail(r.stderr)}"
    return r


def refused(capture_bin, *args):
    """Runs the capture with bad args: exit 2, nothing on stdout, one line on stderr that starts
    with 'netreel-capture: '. Returns that line."""
    r = run_capture(capture_bin, *args)
    where = f"netreel-capture {' '.join(map(str, args))}: exit {r.returncode}\nstderr: {r.stderr!r}"
    assert r.returncode == 2, where
    assert r.stdout == "", where
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("netreel-capture: "), where
    return lines[0]


@pytest.mark.parametrize("ifaces,bad", [
    (["-i", "nrnosuch0"], "nrnosuch0"),
    (["-i", "lo,nrnosuch1"], "nrnosuch1"),
    (["-i", "lo", "--interface", "nrnosuch2"], "nrnosuch2"),
])
def test_unknown_interface(capture_bin, ifaces, bad):
    line = refused(capture_bin, *ifaces, "--metrics-listen", "off")
    assert bad in line, line
    assert re.search(r"no such device", line, re.I), line
    # One clear line: it says what is wrong once.
    words = line.split(": ")
    assert len(words) == len(set(words)), f"the message repeats itself: {line!r}"


@pytest.mark.parametrize("flag,expr", [
    ("--filter", "tcp port"),
    ("--filter", "host 999.1.1.1"),
    ("--filter", "udp and ("),
    ("--bpf-override", "ether proto nosuchproto"),
])
def test_filter_that_does_not_compile(capture_bin, flag, expr):
    line = refused(capture_bin, "-i", "lo", flag, expr, "--metrics-listen", "off")
    # libpcap's own message, for the expression as the capture composes it (the user's ANDed
    # with the term that keeps its store port out) and for the user's alone: they agree.
    composed = f"({expr}) and not (tcp port 8897)"
    want = sh.libpcap_compile_error(composed)
    assert want and want == sh.libpcap_compile_error(expr), (want, expr)
    assert want in line, f"libpcap says {want!r}; the capture said {line!r}"
    assert expr in line, line


def test_version(capture_bin):
    r = run_capture(capture_bin, "--version")
    assert r.returncode == 0 and r.stderr == "", r
    assert re.fullmatch(r"netreel-capture \d+\.\d+\.\d+\S*\n", r.stdout), r.stdout


def test_help(capture_bin):
    r = run_capture(capture_bin, "--help")
    assert r.returncode == 0 and r.stderr == "", r
    assert r.stdout.startswith("usage: netreel-capture"), r.stdout[:200]
    for flag in ("--interface", "--snaplen", "--buffer-size", "--filter", "--bpf-override",
                 "--record-self", "--exclude-port", "--batch-bytes", "--batch-time", "--store",
                 "--tls-ca", "--tls-cert", "--tls-key", "--spool-size", "--metrics-listen",
                 "--user", "--node", "--log-level", "--version", "--help"):
        assert re.search(rf"(^|[\s,]){re.escape(flag)}\b", r.stdout), f"--help omits {flag}"
    r2 = run_capture(capture_bin, "-h")
    assert r2.returncode == 0 and r2.stdout == r.stdout


@pytest.mark.parametrize("args,says", [
    (["--no-such-flag"], "--no-such-flag"),
    (["--snaplen"], "snaplen"),
    (["--snaplen", "0"], "--snaplen"),
    (["--snaplen", "300000"], "--snaplen"),
    (["--snaplen", "12x"], "--snaplen"),
    (["--buffer-size", "1KiB"], "--buffer-size"),
    (["--buffer-size", "lots"], "--buffer-size"),
    (["--batch-bytes", "100"], "--batch-bytes"),
    (["--batch-time", "0s"], "--batch-time"),
    (["--batch-time", "soon"], "--batch-time"),
    (["--spool-size", "1MiB"], "--spool-size"),
    (["--exclude-port", "70000"], "--exclude-port"),
    (["--store", "no-port-here"], "--store"),
    (["--tls-cert", "/nonexistent.pem"], "--tls-key"),
    (["--log-level", "loud"], "--log-level"),
    (["--user", "nrnosuchuser"], "nrnosuchuser"),
    (["extra-argument"], "extra-argument"),
])
def test_bad_flags(capture_bin, args, says):
    line = refused(capture_bin, "-i", "lo", "--metrics-listen", "off", *args)
    assert says in line, line
