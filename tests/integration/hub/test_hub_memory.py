"""A 2 GiB window in flat memory (issue 5, "What must hold", fifth point; docs/design.md §5, "Flat
memory").

Four stores hold 512 MiB each of IMIX packets from store-feeder, their timestamps interleaved
packet by packet (store k at t0 + k*250 + i*1000 ns), so the hub's merge takes turns among all
four for the whole window. `netreel pcapdump` of the whole window into a file, then:

  * the file is whole: the closing line's packets are every packet fed, its bytes the file's
    size, and capinfos counts the same packets;
  * the peak resident set (VmHWM) of netreel-hub and of the netreel CLI process are each under
    64 MiB. The CLI's is read from /proc while it is held at its very end: its stdout is a pipe
    filled up beforehand, so the closing line blocks it once all else is done. (Not wait4's
    ru_maxrss: Linux carries the parent's peak over into it across fork and exec.)

Under ASan (NETREEL_ASAN=1) the window is 256 MiB and RSS is not checked (the sanitizer's
shadow memory and quarantine are not the program's). The stores' data and the file go away at
the end, also when the test fails.
"""

import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import cli_helpers as ch
import store_helpers as sh
from cli_helpers import cli_bin  # noqa: F401 (fixture)
from hub_helpers import (ASAN, closing_line, dispose, feed, hub_bin, hubs,  # noqa: F401
                         start_stores, store_list, vm_hwm_kib)

MIB = 1 << 20
TOTAL = (256 if ASAN else 2048) * MIB
STORES = 4
RSS_LIMIT_KIB = 64 * 1024


def pcapdump_peak_rss(cli_bin, hub, out, err_path, timeout=300):
    """`netreel pcapdump --hub HUB -o OUT`, held before it exits -> (ch.CliResult, its VmHWM in
    KiB at that moment)."""
    r, w = os.pipe()
    os.set_blocking(w, False)
    filler = 0
    try:
        while True:
            filler += os.write(w, b"#" * 65536)
    except BlockingIOError:
        pass
    os.set_blocking(w, True)  # the file description is the child's stdout too
    argv = [str(cli_bin), "pcapdump", "--hub", hub.addr, "-o", str(out)]
    p = None
    try:
        with open(err_path, "wb") as e:
            p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=w, stderr=e,
                                 env=ch.base_env())
        os.close(w)
        w = None
        deadline = time.monotonic() + timeout
        kib = None
        while p.poll() is None and time.monotonic() < deadline:
            try:
                # Asleep in write(1, ...): wchan (anon_)pipe_write, or the syscall itself.
                wchan = Path(f"/proc/{p.pid}/wchan").read_text()
                call = Path(f"/proc/{p.pid}/syscall").read_text()
                if out.exists() and ("pipe_write" in wchan or call.startswith("1 0x1 ")):
                    kib = vm_hwm_kib(p.pid)
                    break
            except OSError:
                pass
            time.sleep(0.01)
        with os.fdopen(r, "rb") as rf:
            r = None
            text = rf.read()[filler:]
        p.wait(60)
    finally:
        for fd in (r, w):
            if fd is not None:
                os.close(fd)
        if p is not None and p.poll() is None:
            p.kill()
            p.wait(10)
    res = ch.CliResult(argv, p.returncode, text, Path(err_path).read_bytes(), 0)
    assert kib is not None, f"pcapdump was never seen held at its closing line: {res.where()}"
    return res, kib


def test_two_gib_window_in_flat_memory(stores, feeder, hubs, cli_bin, tmp_path):
    free = shutil.disk_usage(tmp_path).free
    assert free > 3 * TOTAL, f"{tmp_path}: {free >> 20} MiB free, the test needs {3 * TOTAL >> 20}"
    ss = []
    problems = []
    out = tmp_path / "window.pcapng"
    try:
        ss = start_stores(stores, tmp_path, STORES)
        fed, t0 = feed(ss, feeder, nbytes=f"{TOTAL // STORES // MIB}MiB", batch="1MiB")
        packets = sum(f["packets"] for f in fed)
        hub = hubs(store_list(ss))
        res, cli_kib = pcapdump_peak_rss(cli_bin, hub, out, tmp_path / "cli.stderr")
        ch.check_sanitizer(res.stderr, res.where())
        assert res.rc == 0, res.where()
        n, nbytes, nodes = closing_line(res)
        assert (n, nbytes) == (packets, out.stat().st_size), res.where()
        assert nodes == "4 nodes (node-1, node-2, node-3, node-4)", res.where()
        assert nbytes > TOTAL, f"the window is {nbytes} bytes, want more than {TOTAL}"
        problems_, count = sh.capinfos_problems(out)
        assert not problems_ and count == packets, problems_ or f"capinfos counts {count}"
        out.unlink()

        hub_kib = hub.vm_hwm_kib()
        print(f"{nbytes >> 20} MiB, {packets} packets: peak RSS hub {hub_kib >> 10} MiB, "
              f"netreel {cli_kib >> 10} MiB")
        if not ASAN:
            assert hub_kib < RSS_LIMIT_KIB, f"netreel-hub peaked at {hub_kib >> 10} MiB (VmHWM)"
            assert cli_kib < RSS_LIMIT_KIB, f"netreel pcapdump peaked at {cli_kib >> 10} MiB"
        assert hub.log_lines("snapshot served"), hub.stderr()
        assert re.search(rf"packets={packets} ", hub.stderr()), hub.stderr()
    finally:
        if out.exists():
            out.unlink()
        problems += dispose(ss)
    assert not problems, "\n\n".join(problems)
