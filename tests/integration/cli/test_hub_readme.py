"""The README's sequence for a new user (issue 5, "What must hold", sixth point):

```
make run IFACE=lo                        # netreel tap --local -i lo, in one terminal
build/netreel pcapdump --time=1m          # in another, once it says "recording"
tshark -r netreel-*.pcapng | tail
build/netreel status
```

`make run` is `netreel tap --local` with the default ports and /var/lib/netreel; here the same
runs on ports of its own and a temporary data folder given as the default one ($NETREEL_DATA,
test_cli_tap's Tap), and the snapshot is taken with the command tap prints, which is the
README's with no flag at all (the hub, its CA, the client certificate and the token are found
through the data folder: tap --local runs everything with mTLS and a token), `--time=1m` as the
README has it, in an empty folder: one
./netreel-<start>-<end>.pcapng appears, which tshark and capinfos read without a warning and
which holds the traffic made meanwhile (UDP datagrams with sequence numbers and a TCP
exchange on 127.0.0.1). `status` shows the one store, ok. Ctrl-C ends it all with exit 0.

test_cli_tap.py checks tap --local's own behaviour (children, ports, stopping, a child dying);
this is the user's path through it end to end.
"""

import re
import signal
import socket
import subprocess
import threading
import time
from collections import Counter

import cli_helpers as ch
from cli_helpers import cli_bin  # noqa: F401 (fixture)
from hub_helpers import closing_line, wireshark_ok
from capture_helpers import datagram, udp_datagrams
from test_cli_tap import local_bins, tap_local  # noqa: F401 (fixtures)

N_UDP = 300


def test_readme_sequence(tap_local, cli_bin, tmp_path):
    t = tap_local(data_flag=False)
    t.wait_recording()
    m = re.search(r"take a snapshot from another terminal: (netreel pcapdump --time=5m.*)$",
                  t.stderr(), re.M)
    assert m, t.stderr()
    hint = m.group(1).split()
    assert hint == ["netreel", "pcapdump", "--time=5m"], hint
    # The other terminal: the same user, the same default data folder, no flag.
    env = ch.base_env(NETREEL_DATA=t.data)

    # Traffic: datagrams with sequence numbers, and a TCP exchange, on 127.0.0.1.
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind(("127.0.0.1", 0))
    srv = socket.create_server(("127.0.0.1", 0))
    try:
        def echo():
            c, _ = srv.accept()
            with c:
                while (d := c.recv(65536)):
                    c.sendall(d)

        th = threading.Thread(target=echo, daemon=True)
        th.start()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            for i in range(N_UDP):
                s.sendto(datagram(i, 12 + i * 5), rx.getsockname())
        with socket.create_connection(srv.getsockname()) as c:
            c.sendall(b"netreel readme " * 1000)
            c.shutdown(socket.SHUT_WR)
            back = b""
            while (d := c.recv(65536)):
                back += d
        assert back == b"netreel readme " * 1000
        th.join(10)
    finally:
        rx.close()
        srv.close()
    time.sleep(1.0)  # the ring's block timeout and the capture's batch time

    # The user's command in another terminal, with the --time=1m of the README.
    work = tmp_path / "work"
    work.mkdir()
    r = ch.run(cli_bin.resolve(), "pcapdump", "--time=1m", cwd=work, env=env, expect=0)
    files = sorted(work.glob("netreel-*.pcapng"))
    assert len(files) == 1 and list(work.iterdir()) == files, r.where()
    assert re.fullmatch(r"netreel-\d{8}T\d{6}Z-\d{8}T\d{6}Z\.pcapng", files[0].name)
    assert r.stdout.startswith(files[0].name + ":"), r.where()
    assert re.fullmatch(r"1 node \(\S+\)", closing_line(r)[2]), r.where()
    f = wireshark_ok(files[0])
    assert [i.name.split("/")[1] for i in f.interfaces] == ["lo"], f.interfaces
    seqs = Counter(seq for src, seq, _ in udp_datagrams(f.packets)
                   if src == "127.0.0.1" and seq < N_UDP)
    assert sorted(seqs) == list(range(N_UDP)) and max(seqs.values()) == 1, \
        f"{len(seqs)} of {N_UDP} datagrams in the file"
    # tshark -r netreel-*.pcapng | tail, as the README shows it.
    tail = subprocess.run(f"tshark -r {files[0].name} | tail", shell=True, cwd=work,
                          capture_output=True, text=True, timeout=120)
    assert tail.returncode == 0 and len(tail.stdout.splitlines()) == 10, tail

    # build/netreel status: one node, ok, nothing that needs attention; --all: its store.
    r = ch.run(cli_bin, "status", env=env, expect=0)
    rows = r.stdout.splitlines()
    assert rows[0] == "1 node: 1 ok" and rows[1].startswith("window ") and \
        not any("needs attention" in ln for ln in rows), r.where()
    r = ch.run(cli_bin, "status", "--all", env=env, expect=0)
    rows = r.stdout.splitlines()
    assert len(rows) == 2 and rows[0].startswith("NODE") and \
        rows[1].split()[1:3] == [f"127.0.0.1:{t.store_port}", "ok"], r.where()

    t.proc.send_signal(signal.SIGINT)
    assert t.wait() == 0, t.stderr()
