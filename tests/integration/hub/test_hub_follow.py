"""`netreel pcapdump --follow` against stores fed by store-feeder (real time stamps), through the
hub: the window then live packets in one time-ordered stream, every packet once; a packet
later than the stream is counted, not written; a store killed and started again is resumed
where it was; Ctrl-C (SIGINT) or SIGTERM ends it with a whole file and exit 0; a stock gRPC
client, which closes its side with its request, gets the window alone; interfaces a store
announces while the file's head waits for a slower store are in the file, the store kept."""

import signal
import threading
import subprocess
import time
from pathlib import Path

import cli_helpers as ch
import hub_helpers as hh
import store_helpers as sh
from cli_helpers import cli_bin, hub_pb  # noqa: F401 (fixtures)
from hub_helpers import (IP, NetnsEtc, closing_line, hub_bin, hub_client,  # noqa: F401
                         hubs, rfc3339, silent_store, wireshark_ok)
from capture_helpers import STORE_PORT, lab, start_store  # noqa: F401

NS = 1_000_000_000


class Follow:
    """netreel pcapdump --hub HUB --follow ARGS, its stdout into `out` (a file)."""

    def __init__(self, cli_bin, hub, out, *args):
        self.out = Path(out)
        self.err = self.out.with_suffix(".stderr")
        with open(self.out, "wb") as o, open(self.err, "wb") as e:
            self.proc = subprocess.Popen(
                [str(Path(cli_bin).resolve()), "pcapdump", "--hub", hub.addr, "--follow", *args],
                stdin=subprocess.DEVNULL, stdout=o, stderr=e, env=ch.base_env())

    def stop(self, sig=signal.SIGINT, timeout=30):
        self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"pcapdump --follow did not end {timeout} s after {sig!r}: "
                                 f"{self.err.read_text(errors='replace')}")
        stderr = self.err.read_text(errors="replace")
        ch.check_sanitizer(stderr, "netreel pcapdump --follow")
        return rc, stderr


def feed_now(feeder, store, seq_start, packets, node, cap, step_ns=1_000_000, back_ns=0):
    """packets stamped from now - back_ns on, step_ns apart, as capture `cap` of `node`."""
    t0 = time.time_ns() - back_ns
    feeder(store, "--packets", packets, "--ts-start", t0, "--ts-step", step_ns, "--seq-start",
           seq_start, capture_id=cap, node=node)
    return [t0 + i * step_ns for i in range(packets)]


def wait_for(pred, timeout=20.0, what="condition"):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def packets_of(path):
    f = sh.parse_pcapng(Path(path).read_bytes(), str(path))
    return f, [p.ts_ns for p in f.packets]


def count(path):
    """Packets in the stream so far (it may end mid-block while it is written)."""
    data = Path(path).read_bytes()
    try:
        return len(sh.parse_pcapng(data, str(path)).packets)
    except sh.PcapngError:
        return -1


def start_stores(stores, tmp_path, n, ports=None):
    ss = []
    for k in range(n):
        args = ["--listen", f"127.0.0.1:{ports[k]}"] if ports else []
        ss.append(stores(*args, node=f"node-{k + 1}", metrics=False,
                         data_dir=tmp_path / f"data-{k + 1}"))
    return ss


def test_window_then_live_in_time_order(stores, feeder, hubs, cli_bin, tmp_path):
    ss = start_stores(stores, tmp_path, 3)
    hub = hubs(",".join(s.addr for s in ss))
    # The window: 200 packets per store, stamped over the last second.
    want = []
    for k, s in enumerate(ss):
        want += feed_now(feeder, s, 1, 200, f"node-{k + 1}", f"cap-{k + 1}", back_ns=NS)
    f = Follow(cli_bin, hub, tmp_path / "out.pcapng", "--time", "1m", "-o", "-")
    wait_for(lambda: f.out.stat().st_size > 0, what="the window's first bytes")
    # Live: more batches on every store while it follows, stamped now.
    for rnd in range(3):
        for k, s in enumerate(ss):
            want += feed_now(feeder, s, 1000 + rnd * 100, 50, f"node-{k + 1}", f"cap-{k + 1}",
                             step_ns=1000)
        time.sleep(0.3)
    # Everything written before the end is asked: the watermark passed it.
    wait_for(lambda: count(f.out) == len(want), what="every packet, live")
    rc, stderr = f.stop()
    assert rc == 0, stderr
    fl, got = packets_of(f.out)
    assert got == sorted(want), "not every packet once, in time order"
    assert len({i.name for i in fl.interfaces}) == 3, fl.interfaces
    m = closing_line(ch.CliResult([], rc, b"", stderr.encode(), 0))
    assert m[0] == len(want) and m[2] == "3 nodes (node-1, node-2, node-3)", stderr
    assert "late" not in stderr, stderr


def test_a_packet_later_than_the_stream_is_counted_not_written(stores, feeder, hubs, cli_bin,
                                                               tmp_path):
    ss = start_stores(stores, tmp_path, 2)
    hub = hubs(",".join(s.addr for s in ss))
    f = Follow(cli_bin, hub, tmp_path / "out.pcapng", "--time", "1m", "--lateness", "300ms",
               "-o", "-")
    wait_for(lambda: f.out.stat().st_size > 0, what="the file's head")
    now = feed_now(feeder, ss[0], 1, 100, "node-1", "cap-1", step_ns=1000)
    wait_for(lambda: count(f.out) == 100, what="node-1's packets")
    # node-2 sends packets stamped 5 s ago: past the lateness, behind what is written.
    feed_now(feeder, ss[1], 1, 40, "node-2", "cap-2", step_ns=1000, back_ns=5 * NS)
    more = feed_now(feeder, ss[0], 200, 10, "node-1", "cap-1", step_ns=1000)
    wait_for(lambda: count(f.out) == 110, what="node-1's later packets")
    rc, stderr = f.stop()
    assert rc == 0, stderr
    _, got = packets_of(f.out)
    assert got == sorted(now + more), "late packets written, or order broken"
    assert "40 late (over --lateness, left out)" in stderr, stderr


def test_a_store_killed_and_started_again_is_resumed(stores, feeder, hubs, cli_bin, tmp_path):
    ports = [ch.free_port(), ch.free_port()]
    ss = start_stores(stores, tmp_path, 2, ports)
    hub = hubs(",".join(s.addr for s in ss))
    want = feed_now(feeder, ss[0], 1, 100, "node-1", "cap-1", back_ns=NS // 2)
    want += feed_now(feeder, ss[1], 1, 100, "node-2", "cap-2", back_ns=NS // 2)
    f = Follow(cli_bin, hub, tmp_path / "out.pcapng", "--time", "1m", "-o", "-")
    wait_for(lambda: count(f.out) == 200, what="the window")
    want += feed_now(feeder, ss[1], 200, 30, "node-2", "cap-2", step_ns=1000)
    wait_for(lambda: count(f.out) == 230, what="node-2's live packets")
    ss[1].kill9()
    gone = time.time_ns()
    want += feed_now(feeder, ss[0], 300, 30, "node-1", "cap-1", step_ns=1000)
    time.sleep(1.5)  # the hub finds it gone and calls again, in vain, while node-1 goes on
    again = stores("--listen", f"127.0.0.1:{ports[1]}", node="node-2", metrics=False,
                   data_dir=tmp_path / "data-2")
    # What its capture spooled while it was gone comes now, stamped then: not late.
    want += feed_now(feeder, again, 400, 30, "node-2", "cap-2", step_ns=1000,
                     back_ns=time.time_ns() - gone - 100_000_000)
    want += feed_now(feeder, ss[0], 500, 30, "node-1", "cap-1", step_ns=1000)
    wait_for(lambda: count(f.out) == len(want), timeout=30,
             what="every packet after the store came back")
    rc, stderr = f.stop()
    assert rc == 0, stderr
    fl, got = packets_of(f.out)
    assert got == sorted(want), "a packet lost or written twice across the restart"
    assert "0 late" in stderr and "1 resumed" in stderr, stderr
    assert "node-2" in {i.name.split("/")[0] for i in fl.interfaces}


def test_interfaces_announced_before_the_files_head(stores, feeder, hubs, silent_store, cli_bin,
                                                   tmp_path):
    # The file's head waits for every store's header: here up to --store-timeout (3 s) for one
    # that never answers. node-1's window is empty; its capture starts while the head waits, so
    # node-1 announces the interface (StoreChunk.more) before the head is out. It goes into the
    # file right after the head, with its packets -- node-1 is not dropped and called again.
    ss = start_stores(stores, tmp_path, 1)
    quiet = silent_store()
    hub = hubs(f"{ss[0].addr},{quiet.addr}", "--store-timeout", "3s")
    f = Follow(cli_bin, hub, tmp_path / "out.pcapng", "--time", "1m", "-o", "-")
    # The clocks are measured first (the quiet store is left out of that after 3 s), then the
    # stores are called: node-1's header comes at once, the head waits for the quiet one.
    wait_for(lambda: "store left out of a snapshot" in hub.stderr(), timeout=10,
             what="the clock probe's end")
    time.sleep(0.5)
    want = feed_now(feeder, ss[0], 1, 40, "node-1", "cap-1", step_ns=1000)
    time.sleep(0.3)
    want += feed_now(feeder, ss[0], 100, 40, "node-1", "cap-2", step_ns=1000)
    assert f.out.stat().st_size == 0, "the file's head came before the quiet store's timeout"
    wait_for(lambda: count(f.out) == len(want), timeout=20, what="the packets, after the head")
    rc, stderr = f.stop()
    assert rc == 0, stderr
    fl, got = packets_of(f.out)
    assert got == sorted(want), "not every packet once, in time order"
    assert len(fl.interfaces) == 2, fl.interfaces
    dropped = [ln for ln in hub.stderr().splitlines()
               if "level=warn" in ln and f"store={ss[0].addr} " in ln]
    assert not dropped, dropped


def test_output_file_is_whole_after_ctrl_c(stores, feeder, hubs, cli_bin, tmp_path):
    ss = start_stores(stores, tmp_path, 1)
    hub = hubs(ss[0].addr)
    want = feed_now(feeder, ss[0], 1, 50, "node-1", "cap-1", back_ns=NS // 2)
    out = tmp_path / "follow.pcapng"
    f = Follow(cli_bin, hub, tmp_path / "cli.out", "--time", "1m", "-o", out)
    wait_for(lambda: (tmp_path / "follow.pcapng.part").exists() or
             any(p.name.endswith(".part") for p in tmp_path.iterdir()), what="the .part file")
    want += feed_now(feeder, ss[0], 100, 50, "node-1", "cap-1", step_ns=1000)
    time.sleep(1.5)
    rc, stderr = f.stop(signal.SIGTERM)
    assert rc == 0, stderr
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".part")]
    _, got = packets_of(out)
    assert got == sorted(want)
    wireshark_ok(out)
    assert f"{out}: 100 packets" in f.out.read_text(), f.out.read_text()


def test_stock_grpc_client_gets_the_window(stores, feeder, hubs, hub_client, tmp_path):
    # grpcio's server-streaming call closes its side with the request: the end is asked at
    # once, so a follow ends after the window (a bidi-streaming call keeps it open).
    ss = start_stores(stores, tmp_path, 1)
    hub = hubs(ss[0].addr)
    want = feed_now(feeder, ss[0], 1, 30, "node-1", "cap-1", back_ns=NS // 2)
    data, summary, _ = hub_client(hub).snapshot(since_ns=want[0] - 1, follow=True)
    f = sh.parse_pcapng(data, "Hub.Snapshot follow")
    assert [p.ts_ns for p in f.packets] == want
    assert summary.packets == 30 and summary.late == 0


def test_follow_requests_the_hub_refuses(stores, hubs, hub_client, tmp_path):
    ss = start_stores(stores, tmp_path, 1)
    hub = hubs(ss[0].addr)
    import grpc
    c = hub_client(hub)
    for kw, want in [({"until_ns": time.time_ns()}, "until_ns must be 0"),
                     ({"lateness_ns": -1}, "lateness_ns -1"),
                     ({"lateness_ns": 61 * NS}, "from 0 to 60 s")]:
        try:
            c.snapshot(since_ns=1, follow=True, **kw)
        except grpc.RpcError as e:
            assert e.code() == grpc.StatusCode.INVALID_ARGUMENT and want in e.details(), e
        else:
            raise AssertionError(f"accepted {kw}")


def test_flags(cli_bin, tmp_path):
    for args, want in [(["--follow", "--since", "2026-01-01T00:00:00Z", "--until",
                         "2026-01-01T00:01:00Z"], "--follow goes on until Ctrl-C"),
                       (["--lateness", "1s"], "--lateness is for --follow"),
                       (["--follow", "--lateness", "0"], "--lateness: above zero"),
                       (["--follow", "--lateness", "2m"], "at most 1m")]:
        r = ch.run(cli_bin, "pcapdump", "--hub", "127.0.0.1:1", *args, env=ch.base_env(),
                   expect=2)
        assert want in r.stderr, r.where()


def test_a_store_that_joins_the_dns_answer_is_followed(lab, hubs, cli_bin, tmp_path):
    # --stores dns:NAME:PORT is resolved again while a follow runs: a node that joins the
    # cluster (its address added to the answer) is followed from where the stream is.
    ns = lab.netns(with_b=False).a
    etc = NetnsEtc(ns)  # before anything runs in ns: `ip netns exec` binds it at start
    try:
        name, port = "stores.netreel.test", STORE_PORT
        listen = {"node-a": f"127.0.0.2:{port}", "node-b": f"127.0.0.3:{port}"}
        for node, addr in listen.items():
            lab.stores.append(start_store(lab.store_bins, ns, tmp_path / f"data-{node}",
                                          tmp_path / f"store-{node}.stderr", port, "--listen",
                                          addr, "--node", node))
        etc.write_hosts([("127.0.0.2", name)])
        hub = hubs(f"dns:{name}:{port}", ns=ns)

        def feed(node, first, n):
            t0 = time.time_ns()
            r, obj = sh.run_tool([IP, "netns", "exec", ns, lab.store_bins.feeder, "--store",
                                  listen[node], "--capture-id", f"cap-{node}", "--node", node,
                                  "--packets", n, "--ts-start", t0, "--ts-step", 1000,
                                  "--seq-start", first])
            assert r.returncode == 0 and obj["acked_seq"] == obj["last_seq"], r.stderr
            return [t0 + i * 1000 for i in range(n)]

        out, err = tmp_path / "out.pcapng", tmp_path / "out.stderr"
        with open(out, "wb") as o, open(err, "wb") as e:
            proc = subprocess.Popen([IP, "netns", "exec", ns, str(Path(cli_bin).resolve()),
                                     "pcapdump", "--hub", hub.addr, "--follow", "-o", "-"],
                                    stdin=subprocess.DEVNULL, stdout=o, stderr=e,
                                    env=ch.base_env())
        try:
            wait_for(lambda: out.stat().st_size > 0, what="the file's head")
            want = feed("node-a", 1, 20)
            wait_for(lambda: count(out) == 20, what="node-a's packets")
            etc.write_hosts([("127.0.0.2", name), ("127.0.0.3", name)])  # node-b joins
            time.sleep(0.5)
            deadline = time.monotonic() + 15
            b = []
            while count(out) < 20 + len(b) + 1 and time.monotonic() < deadline:
                b += feed("node-b", 100 + len(b), 5)  # until it is followed: then it is in
                time.sleep(0.5)
            wait_for(lambda: count(out) >= 25, what="node-b's packets")
            proc.send_signal(signal.SIGINT)
            assert proc.wait(30) == 0, err.read_text()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        f, got = packets_of(out)
        assert got[:20] == want, "node-a's packets"
        names = {i.name for i in f.interfaces}
        assert names == {"node-a/eth0", "node-b/eth0"}, names
        # node-b's packets sent once it was followed are all in, in time order.
        tail = [t for t in got if t in set(b)]
        assert tail and tail == sorted(tail) and tail == b[len(b) - len(tail):], (tail, b)
        assert got == sorted(got)
        assert "a store joined" in hub.stderr(), hub.stderr()
    finally:
        etc.close()


def test_retention_that_overtakes_a_slow_reader_is_a_gap_said(stores, feeder, hubs, cli_bin,
                                                              tmp_path):
    # The reader stops reading; the store's retention (16 MiB) deletes segments the follow has
    # not read yet. The stream goes on after them: the gap is counted in the closing line and
    # said in a comment on the first packet after it.
    s = stores("--max-size", "16MiB", "--time-interval", "1s", node="node-1", metrics=False,
               data_dir=tmp_path / "data-1")
    hub = hubs(s.addr)
    err = tmp_path / "cli.stderr"
    with open(err, "wb") as e:
        proc = subprocess.Popen([str(Path(cli_bin).resolve()), "pcapdump", "--hub", hub.addr,
                                 "--follow", "-o", "-"], stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=e, env=ch.base_env())
    try:
        time.sleep(1.0)  # following, nothing read
        t0 = time.time_ns()
        feeder(s, "--bytes", "96MiB", "--batch-bytes", "256KiB", "--ts-start", t0,
               "--ts-step", 2000, capture_id="cap-1", node="node-1", timeout=120)
        wait_for(lambda: "segment deleted" in s.stderr(), what="retention at work")
        time.sleep(0.5)
        out = tmp_path / "out.pcapng"
        reader = threading.Thread(target=lambda: out.write_bytes(proc.stdout.read()))
        reader.start()
        wait_for(lambda: "follow: retention deleted segments" in s.stderr(), timeout=60,
                 what="the store saying so")
        time.sleep(1.0)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(60) == 0, err.read_text()
        reader.join(60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    stderr = err.read_text()
    assert "segments deleted by retention before they were read (GAPS" in stderr, stderr
    _, got = packets_of(out)
    assert got == sorted(got)
    r = subprocess.run(["tshark", "-r", out, "-Y", "frame.comment", "-T", "fields", "-e",
                        "frame.comment"], capture_output=True, text=True, timeout=120)
    assert "deleted by the store's retention" in r.stdout, r.stdout[:2000] + r.stderr


def test_snapshot_flags_work_live(stores, feeder, hubs, cli_bin, tmp_path):
    # --filter and --format pcap apply to the live part as to the window: the follow holds
    # what a snapshot of the same window with the same flags holds.
    ss = start_stores(stores, tmp_path, 2)
    hub = hubs(",".join(s.addr for s in ss))
    since = time.time_ns() - NS
    for k, s in enumerate(ss):
        feed_now(feeder, s, 1, 100, f"node-{k + 1}", f"cap-{k + 1}", back_ns=NS // 2)
    f = Follow(cli_bin, hub, tmp_path / "live.pcap", "--since", rfc3339(since), "--format",
               "pcap", "--filter", "udp", "-o", "-")
    wait_for(lambda: f.out.stat().st_size > 0, what="the window")
    for k, s in enumerate(ss):
        feed_now(feeder, s, 200, 100, f"node-{k + 1}", f"cap-{k + 1}", step_ns=1000)
    time.sleep(1.5)
    rc, stderr = f.stop()
    assert rc == 0, stderr
    until = time.time_ns()
    ref = tmp_path / "ref.pcap"
    hh.pcapdump(cli_bin, hub, "--since", rfc3339(since), "--until", rfc3339(until), "--format",
                "pcap", "--filter", "udp", "-o", ref, expect=0)
    live = sh.tcpdump_timestamps(f.out, "")
    assert f.out.read_bytes()[:4] == bytes.fromhex("4d3cb2a1")
    assert live and live == sh.tcpdump_timestamps(ref, ""), "the follow differs from the snapshot"
    assert sh.tcpdump_timestamps(f.out, "not udp") == []


def test_the_window_of_a_follow_is_whole(stores, feeder, hubs, cli_bin, tmp_path):
    # History is older than the lateness: while a store is still sending its window, the
    # others wait for it as in a snapshot (a store is passed by the lateness only once it said
    # it has nothing newer), so the window's packets are all there, none counted late.
    ss, _, _ = hh.feed_stores(stores, feeder, tmp_path, n=3, packets=20000)
    hub = hubs(hh.store_list(ss))
    for k in range(2):
        f = Follow(cli_bin, hub, tmp_path / f"out-{k}.pcapng", "--time=15m", "--sightings=all",
                   "-o", "-")
        wait_for(lambda: count(f.out) == 60000, timeout=60, what="the whole window")
        rc, stderr = f.stop()
        assert rc == 0 and "late" not in stderr and ": 60000 packets" in stderr, stderr
