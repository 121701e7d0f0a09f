"""netreel-store snapshots (docs/design.md §5, issue 3): what a time window, a BPF filter and a
snaplen give back, and that every file the store writes or serves opens in Wireshark's tools.

  * bounds are packet-precise: since/until exactly on a packet include it, 1 ns past excludes it;
    a window between packets is empty but a valid stream (header + summary);
  * the BPF filter is applied per packet like tcpdump applies it to the same packets; a filter
    that does not compile is INVALID_ARGUMENT with libpcap's own message; so is a reversed
    window;
  * --snaplen cuts the captured bytes and keeps the original length;
  * every segment (the active one too, while the store runs) and every snapshot passes
    `tshark -r` and `capinfos` without a warning.
"""

import grpc
import pytest

import store_helpers as sh


def ts_base():
    return (sh.now_ns() // 10**9 - 600) * 10**9


@pytest.fixture
def fed_store(stores, feeder, store_client, tmp_path):
    """A store holding N packets at t0 + i*STEP (many small batches, a few 1 MiB segments),
    their --dump, a client."""
    store = stores("--max-size", "16MiB")
    n, t0, step = 6000, ts_base(), 1000
    dump = tmp_path / "sent.pcapng"
    fed = feeder(store, "--packets", n, "--ts-start", t0, "--ts-step", step,
                 "--batch-bytes", "16KiB", "--dump", dump, capture_id="win")
    assert fed["batches"] > 20, fed
    sent = sh.read_pcapng(dump).packets
    return dict(store=store, client=store_client(store), n=n, t0=t0, step=step, dump=dump,
                sent=sent, fed=fed)


def test_bounds_are_packet_precise(fed_store, snapshot_tool, tmp_path):
    f = fed_store
    client, sent, t0, step, n = f["client"], f["sent"], f["t0"], f["step"], f["n"]
    ts = [t0 + i * step for i in range(n)]
    assert [p.ts_ns for p in sent] == ts

    def want(lo, hi):
        return [p.key() for p in sent if lo <= p.ts_ns <= hi]

    cases = [
        ("everything", 0, 0),
        ("exactly on first and last", ts[0], ts[-1]),
        ("exactly on two packets mid-stream", ts[117], ts[2345]),
        ("1 ns past each bound", ts[117] + 1, ts[2345] - 1),
        ("1 ns before each bound", ts[117] - 1, ts[2345] + 1),
        ("one packet", ts[1500], ts[1500]),
        ("since 1 ns past the last packet", ts[-1] + 1, 0),
        ("until 1 ns before the first packet", ts[0] - 10**9, ts[0] - 1),
        ("until 1 ns after the first packet", 0, ts[0] + 1),
    ]
    for k in (40, 999, 2999, n - 1):  # batch edges and the end are all alike to the window
        cases.append((f"single packet {k}", ts[k], ts[k]))
    # Segment edges too: exactly one segment, and the nothing between two.
    segs = [sh.read_pcapng(p).packets for p in sh.segment_files(f["store"].data_dir)]
    assert len(segs) >= 3, f"want a few segments, have {len(segs)}"
    for k, seg in enumerate(segs):
        cases.append((f"segment {k} exactly", seg[0].ts_ns, seg[-1].ts_ns))
        cases.append((f"segment {k} without its ends", seg[0].ts_ns + 1, seg[-1].ts_ns - 1))
        if k:
            cases.append((f"across segments {k - 1}/{k}", segs[k - 1][-1].ts_ns, seg[0].ts_ns))
    failures = []
    for what, since, until in cases:
        res = client.snapshot(since_ns=since, until_ns=until)
        hi = until if until else sh.now_ns()
        exp = want(since, hi)
        if res.keys() != exp:
            got_ts = res.timestamps()
            failures.append(f"{what} [{since}, {until}]: got {len(got_ts)} packets "
                            f"({got_ts[:1]}..{got_ts[-1:]}), want {len(exp)}")
        elif res.summary.packets != len(exp):
            failures.append(f"{what}: summary.packets {res.summary.packets}, want {len(exp)}")
    assert not failures, "\n".join(failures)

    # A window between two packets: empty, yet a whole stream (header with the interface,
    # summary); store-snapshot makes of it a pcapng file with no packets that tshark opens.
    res = client.snapshot(since_ns=ts[10] + 1, until_ns=ts[11] - 1)
    assert res.packets == [] and res.summary.packets == 0
    assert [i.name for i in res.header.interfaces] == ["eth0"], res.header
    out = tmp_path / "between.pcapng"
    snap = snapshot_tool(f["store"], out, "--since", ts[10] + 1, "--until", ts[11] - 1)
    assert snap["packets"] == 0 and snap["header"] and snap["summary"], snap
    problems, parsed = sh.wireshark_check([out])
    assert not problems, "\n".join(problems)
    assert parsed[out].packets == [] and len(parsed[out].interfaces) == 1

    # The same bounds through store-snapshot's file.
    out = tmp_path / "window.pcapng"
    snap = snapshot_tool(f["store"], out, "--since", ts[117], "--until", ts[2345])
    assert sh.read_pcapng(out).keys() == want(ts[117], ts[2345])
    assert (snap["packets"], snap["oldest_ns"], snap["newest_ns"]) == \
        (2345 - 117 + 1, ts[0], ts[-1]), snap


FILTERS = ["udp", "tcp port 443", "host 10.0.0.3", "udp and greater 500",
           "ip[9] = 6 and len <= 64", "not udp and not tcp", "ether src 02:00:00:00:00:01"]


def test_bpf_filter_matches_tcpdump(fed_store):
    f = fed_store
    failures = []
    for bpf in FILTERS:
        want = sh.tcpdump_timestamps(f["dump"], bpf)
        res = f["client"].snapshot(filter=bpf)
        got = res.timestamps()
        if got != want:
            failures.append(f"filter {bpf!r}: store gives {len(got)} packets, tcpdump -r on the "
                            f"feeder's dump {len(want)}; first difference at "
                            f"{next((i for i, (a, b) in enumerate(zip(got, want)) if a != b), min(len(got), len(want)))}")
        elif res.summary.packets != len(want):
            failures.append(f"filter {bpf!r}: summary.packets {res.summary.packets}, "
                            f"want {len(want)}")
        by_ts = {p.ts_ns: p.key() for p in f["sent"]}
        if any(p.key() != by_ts.get(p.ts_ns) for p in res.packets):
            failures.append(f"filter {bpf!r}: packets changed on the way")
    assert not failures, "\n".join(failures)
    # The filters are not all trivial on this traffic.
    assert 0 < len(sh.tcpdump_timestamps(f["dump"], "udp")) < f["n"]
    # Filter and window together.
    t0, step = f["t0"], f["step"]
    res = f["client"].snapshot(since_ns=t0 + 100 * step, until_ns=t0 + 200 * step, filter="udp")
    want = [t for t in sh.tcpdump_timestamps(f["dump"], "udp")
            if t0 + 100 * step <= t <= t0 + 200 * step]
    assert res.timestamps() == want


@pytest.mark.parametrize("bpf", ["udp and", "tcp port 99999", "ether host zz:zz",
                                 "udp and and tcp"])
def test_filter_that_does_not_compile(fed_store, bpf):
    libpcap = sh.libpcap_compile_error(bpf)
    assert libpcap, f"libpcap compiles {bpf!r}: not a test of a bad filter"
    with pytest.raises(grpc.RpcError) as e:
        fed_store["client"].snapshot(filter=bpf)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT, e.value
    assert libpcap in e.value.details(), \
        f"the status message {e.value.details()!r} does not carry libpcap's {libpcap!r}"
    # The store keeps serving.
    assert fed_store["client"].snapshot(filter="udp").summary.packets > 0


def test_reversed_window_is_invalid_argument(fed_store):
    t0 = fed_store["t0"]
    for since, until in ((t0 + 10, t0 + 9), (t0 + 10**9, t0), (t0 + 1, t0)):
        with pytest.raises(grpc.RpcError) as e:
            fed_store["client"].snapshot(since_ns=since, until_ns=until)
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT, (since, until, e.value)
        assert e.value.details(), "INVALID_ARGUMENT without a message"
    assert fed_store["client"].snapshot(since_ns=t0, until_ns=t0).summary.packets == 1


def test_snaplen_cut(fed_store, snapshot_tool, tmp_path):
    f = fed_store
    for cut in (60, 100, 1500, 2000):
        res = f["client"].snapshot(snaplen=cut)
        assert len(res.packets) == f["n"]
        for a, b in zip(f["sent"], res.packets):
            assert (b.ts_ns, b.origlen, b.caplen, b.data) == \
                (a.ts_ns, a.origlen, min(a.caplen, cut), a.data[:cut]), \
                f"snaplen {cut}: packet at {a.ts_ns}: caplen {b.caplen} origlen {b.origlen}"
        assert all(i.snaplen <= cut for i in res.header.interfaces), res.header
        assert res.summary.bytes == sum(res.chunk_sizes)
    # The file is what Wireshark expects of a cut capture.
    out = tmp_path / "cut.pcapng"
    snapshot_tool(f["store"], out, "--snaplen", 100, "--filter", "tcp")
    problems, parsed = sh.wireshark_check([out])
    assert not problems, "\n".join(problems)
    got = parsed[out]
    assert got.interfaces[0].snaplen <= 100
    assert max(p.caplen for p in got.packets) == 100
    assert [p.ts_ns for p in got.packets] == sh.tcpdump_timestamps(f["dump"], "tcp")


def test_every_segment_and_snapshot_opens_in_wireshark(stores, feeder, snapshot_tool, tmp_path):
    # max-size 16MiB: segments of 1 MiB, so a few MiB make several closed ones and an active one.
    store = stores("--max-size", "16MiB")
    n = int(12000 * sh.SCALE)
    dump = tmp_path / "sent.pcapng"
    feeder(store, "--packets", n, "--ts-start", ts_base(), "--batch-bytes", "128KiB",
           "--dump", dump, capture_id="files")
    sent = sh.read_pcapng(dump)
    segs = sh.segment_files(store.data_dir)
    assert len(segs) >= 2, f"want closed and active segments, have {segs}"

    snaps = []
    for name, args in (("all", []), ("filtered", ["--filter", "udp"]),
                       ("cut", ["--snaplen", "80"]), ("empty", ["--until", "1"])):
        out = tmp_path / f"snap-{name}.pcapng"
        snapshot_tool(store, out, *args)
        snaps.append(out)

    # While the store runs: the ingest is over, the last segment is still the active one.
    assert store.alive()
    problems, parsed = sh.wireshark_check(segs + snaps)
    assert not problems, "\n".join(problems)
    keys = []
    for s in segs:
        f = parsed[s]
        assert f.blocks[0] == "SHB" and f.blocks[1] == "IDB", f"{s}: starts {f.blocks[:3]}"
        keys += f.keys()
    assert keys == sent.keys(), "the segments do not hold exactly what was sent"
    for s in segs[:-1]:
        assert parsed[s].blocks[-1] == "ISB", f"closed segment {s.name} ends without an ISB"
    assert parsed[snaps[0]].keys() == sent.keys()

    # After a clean stop every segment is closed: complete files with their statistics.
    assert store.stop() == []
    problems, parsed = sh.wireshark_check(segs)
    assert not problems, "\n".join(problems)
    for s in segs:
        assert parsed[s].blocks[-1] == "ISB", f"{s.name} ends with {parsed[s].blocks[-1]} after SIGTERM"
    assert [k for s in segs for k in parsed[s].keys()] == sent.keys()


def test_snapshots_during_ingest_are_whole_prefixes(stores, feeder, store_client):
    """While a capture streams in, every snapshot is some prefix of the stream: batches whole,
    none skipped, none twice."""
    import threading

    store = stores("--max-size", "256MiB")
    client = store_client(store)
    t0, step = ts_base(), 1000
    n = int(60000 * sh.SCALE)
    done = {}
    th = threading.Thread(target=lambda: done.update(feeder(
        store, "--packets", n, "--ts-start", t0, "--ts-step", step, "--batch-bytes", "64KiB",
        "--rate-mbps", 100 * sh.SCALE, capture_id="live")))
    th.start()
    sizes = []
    try:
        while th.is_alive():
            ts = client.snapshot().timestamps()
            assert ts == [t0 + i * step for i in range(len(ts))], \
                f"a snapshot during ingest is not a prefix of the stream ({len(ts)} packets)"
            sizes.append(len(ts))
    finally:
        th.join(120)
    assert done, "the feeder did not finish"
    assert len(set(sizes)) >= 3, f"too few distinct snapshots during the ingest: {sizes}"
    assert client.snapshot().timestamps() == [t0 + i * step for i in range(n)]
