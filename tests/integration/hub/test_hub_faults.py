"""A store or the hub dying (issue 5, "What must hold", third point; docs/design.md §5,
docs/cli.md).

Three stores filled by store-feeder (interleaved timestamps), the real hub and the real CLI:

  * one store killed with SIGKILL: `netreel pcapdump` still writes the file, holding exactly the
    other two stores' packets; stderr names the missing node and its store; exit 0. With
    --strict: exit 3 and no file at all;
  * the hub killed with SIGKILL in the middle of a large window, while the CLI writes a file
    (the CLI held still meanwhile, so the hub is surely mid-stream): a non-zero exit and no file,
    not even the .part; the same with `-o -` into a pipe read slowly: a non-zero exit and no
    closing line.
"""

import os
import signal
import subprocess
import time

import pytest

import cli_helpers as ch
from cli_helpers import cli_bin  # noqa: F401 (fixture)
from hub_helpers import (SCALE, by_interface, closing_line, dispose, feed,  # noqa: F401
                         feed_stores, hub_bin, hubs, non_decreasing, only_file, pcapdump,
                         shb_window, start_stores, store_list, store_window, wireshark_ok)

MIB = 1 << 20


def test_store_killed_is_named_and_left_out(stores, feeder, hubs, cli_bin, store_bins,
                                            tmp_path):
    ss, fed, _ = feed_stores(stores, feeder, tmp_path, n=3, packets=int(20000 * SCALE))
    hub = hubs(store_list(ss))
    # A first snapshot with all three: the hub has met every store and its node.
    d = tmp_path / "all"
    d.mkdir()
    r = pcapdump(cli_bin, hub, "--dest", d, expect=0)
    assert closing_line(r)[0] == sum(f["packets"] for f in fed), r.where()
    assert "MISSING" not in r.stderr, r.where()

    victim = ss[1]
    victim.kill9()
    d = tmp_path / "two"
    d.mkdir()
    r = pcapdump(cli_bin, hub, "--dest", d, expect=0)
    f = wireshark_ok(only_file(d))
    assert not non_decreasing(f.packets), non_decreasing(f.packets)
    # The other two stores' packets, all of them, and nothing else.
    mine = by_interface(f)
    assert sorted(mine) == ["node-1/eth0", "node-3/eth0"], sorted(mine)
    until = shb_window(f)[1]
    for k in (0, 2):
        _, theirs = store_window(store_bins, ss[k].addr, 0, until, tmp_path / f"s{k}.pcapng")
        assert mine[f"node-{k + 1}/eth0"] == theirs.keys(), f"node-{k + 1}"
        assert len(theirs.packets) == fed[k]["packets"]
    assert len(f.packets) == fed[0]["packets"] + fed[2]["packets"]
    # Loud on stderr: the node and its store, and why.
    warn = [ln for ln in r.stderr.splitlines() if "MISSING" in ln]
    assert len(warn) == 1 and warn[0].startswith("netreel: WARNING: "), r.where()
    assert victim.addr in warn[0], f"the missing store's address is not named: {warn[0]!r}"
    assert closing_line(r)[2] == "2 of 3 nodes (node-1, node-3)", r.where()
    assert "missing" in f.shb_comment and victim.addr in f.shb_comment, f.shb_comment

    # --strict: a missing store fails the snapshot, and no file is left.
    d = tmp_path / "strict"
    d.mkdir()
    r = pcapdump(cli_bin, hub, "--strict", "--dest", d, expect=3)
    assert victim.addr in r.stderr, r.where()
    assert list(d.iterdir()) == [], f"--strict left {list(d.iterdir())}"
    r = pcapdump(cli_bin, hub, "--strict", "-o", d / "x.pcapng", expect=3)
    assert list(d.iterdir()) == [], f"--strict -o left {list(d.iterdir())}"

    # The node is named too (docs/cli.md: "node node-b (store 10.0.0.2:8897) is MISSING"): the
    # hub has had this store's node name from the first snapshot.
    assert "node-2" in warn[0], f"the missing node is not named: {warn[0]!r}"


@pytest.fixture
def big_window(stores, feeder, tmp_path):
    """Three stores holding a window far larger than what the sockets and the flow-control
    windows between stores, hub and CLI can hold: (stores, feeder results). Deleted after the
    test."""
    ss = start_stores(stores, tmp_path, 3)
    try:
        fed, _ = feed(ss, feeder, nbytes=f"{max(int(32 * SCALE), 16)}MiB", batch="1MiB")
        yield ss, fed
    finally:
        problems = dispose(ss)
    if problems:
        pytest.fail("\n\n".join(problems), pytrace=False)


def served(hub):
    return hub.log_lines("snapshot served")


def test_hub_killed_mid_stream_leaves_no_file(big_window, hubs, cli_bin, tmp_path):
    ss, fed = big_window
    hub = hubs(store_list(ss))
    d = tmp_path / "out"
    d.mkdir()
    err = tmp_path / "cli.stderr"
    with open(err, "wb") as ef:
        p = subprocess.Popen([str(cli_bin), "pcapdump", "--hub", hub.addr, "--dest", str(d)],
                             stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=ef,
                             env=ch.base_env())
    try:
        deadline = time.monotonic() + 60
        while True:
            parts = list(d.glob("*.part"))
            if parts and parts[0].stat().st_size > MIB:
                break
            assert p.poll() is None, \
                f"pcapdump ended (exit {p.returncode}) before 1 MiB was written: {err.read_text()}"
            assert time.monotonic() < deadline, f"no .part of 1 MiB in {d}: {list(d.iterdir())}"
            time.sleep(0.002)
        os.kill(p.pid, signal.SIGSTOP)
        time.sleep(0.3)  # the hub fills what the sockets hold, then waits
        size = parts[0].stat().st_size
        assert not served(hub), "the hub had finished: the test needs a larger window"
        hub.kill9()
        os.kill(p.pid, signal.SIGCONT)
        out, _ = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait(10)
    text = err.read_text(errors="replace")
    ch.check_sanitizer(text, "netreel pcapdump")
    assert p.returncode == 1, f"exit {p.returncode} after the hub died mid-stream:\n{text}"
    assert list(d.iterdir()) == [], \
        f"after the hub died with {size} bytes written, {list(d.iterdir())} is left"
    lines = [ln for ln in text.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("netreel: "), text
    assert out == b"", f"a closing line on stdout: {out[:300]!r}"


def test_hub_killed_mid_stream_to_a_pipe(big_window, hubs, cli_bin, tmp_path):
    ss, fed = big_window
    hub = hubs(store_list(ss))
    err = tmp_path / "cli.stderr"
    with open(err, "wb") as ef:
        p = subprocess.Popen([str(cli_bin.resolve()), "pcapdump", "--hub", hub.addr, "-o", "-"],
                             stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=ef,
                             env=ch.base_env(), cwd=tmp_path)
    try:
        got = 0
        while got < 2 * MIB:  # a slow reader: 64 KiB at a time
            chunk = p.stdout.read(64 << 10)
            assert chunk, f"the stream ended after {got} bytes: {err.read_text()}"
            got += len(chunk)
            time.sleep(0.005)
        time.sleep(0.3)
        assert not served(hub), "the hub had finished: the test needs a larger window"
        hub.kill9()
        rest = p.stdout.read()
        p.wait(60)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait(10)
    text = err.read_text(errors="replace")
    ch.check_sanitizer(text, "netreel pcapdump -o -")
    total = sum(f["bytes"] for f in fed)
    assert got + len(rest) < total, "the whole window came through: the hub was not killed mid-stream"
    assert p.returncode == 1, f"exit {p.returncode} after the hub died mid-stream:\n{text}"
    lines = [ln for ln in text.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("netreel: ") and "packets," not in text, text
    assert list(tmp_path.glob("netreel-*")) == []
