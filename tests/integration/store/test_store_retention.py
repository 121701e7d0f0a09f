"""netreel-store retention (docs/design.md §4, issue 3), as a user watching the data directory
sees it.

  * max-size: while 10x max-size is ingested at full speed, `du -sb` and `du -s -B1` of the data
    directory, sampled at least every 100 ms, never exceed it; what went is the oldest data;
    the deletions are logged and counted (Stats, /metrics) with reason max_size;
  * a snapshot that is reading segments while retention deletes them still completes;
  * max-time: with --max-time 3s, no segment whose newest packet is older than now-3s stays
    (files and a full snapshot), nothing younger is lost, and after the traffic stops everything
    goes; deletions counted with reason max_time.
"""

import threading
import time


import store_helpers as sh



def ts_base():
    return (sh.now_ns() // 10**9 - 600) * 10**9


class DuSampler(threading.Thread):
    """Samples du of a directory every `interval` seconds (or faster) until stopped."""

    def __init__(self, path, interval=0.02):
        super().__init__(daemon=True)
        self.path, self.interval = path, interval
        self.samples = []  # (monotonic time, du -sb, du -s -B1)
        self.halt = threading.Event()
        self.error = None

    def run(self):
        try:
            while not self.halt.is_set():
                t = time.monotonic()
                a, b = sh.du(self.path)
                self.samples.append((t, a, b))
                self.halt.wait(max(0.0, self.interval - (time.monotonic() - t)))
        except BaseException as e:  # noqa: B902 - reported by the test
            self.error = e

    def stop(self):
        self.halt.set()
        self.join(30)
        if self.error:
            raise self.error


def copy_segments(data_dir, dest):
    """Copies of the segment files as they are now; a file that retention deletes while this
    runs is left out (it went, as it may)."""
    dest.mkdir()
    out = []
    for i, p in enumerate(sh.segment_files(data_dir)):
        try:
            b = p.read_bytes()
        except FileNotFoundError:
            continue
        c = dest / f"{i:03d}-{p.name}"
        c.write_bytes(b)
        out.append(c)
    return out


def deletions(stats, reason):
    for d in stats.deletions:
        if d.reason == reason:
            return d.segments, d.bytes
    return 0, 0


def deleted_lines(store, reason):
    return [ln for ln in store.log_lines("segment deleted") if f"reason={reason}" in ln]


def test_max_size_is_never_exceeded_while_ingesting_10x(stores, feeder, store_client):
    max_size = 16 * sh.MIB
    store = stores("--max-size", "16MiB")
    client = store_client(store)
    t0, step = ts_base(), 1000
    sampler = DuSampler(store.data_dir)
    sampler.start()
    started = time.monotonic()
    try:
        fed = feeder(store, "--bytes", 10 * max_size, "--ts-start", t0, "--ts-step", step,
                     capture_id="flood")
    finally:
        sampler.stop()
    took = time.monotonic() - started
    samples = sampler.samples + [(time.monotonic(), *sh.du(store.data_dir))]
    assert fed["bytes"] >= 10 * max_size - sh.MIB, fed

    # du never above max-size, neither apparent sizes nor allocated blocks.
    worst_a = max(samples, key=lambda s: s[1])
    worst_b = max(samples, key=lambda s: s[2])
    assert worst_a[1] <= max_size, \
        (f"du -sb {store.data_dir} = {worst_a[1]} > --max-size {max_size} "
         f"at +{worst_a[0] - started:.2f} s ({len(samples)} samples)")
    assert worst_b[2] <= max_size, \
        (f"du -s -B1 {store.data_dir} = {worst_b[2]} > --max-size {max_size} "
         f"at +{worst_b[0] - started:.2f} s ({len(samples)} samples)")
    gaps = [b[0] - a[0] for a, b in zip(samples, samples[1:])]
    assert len(samples) >= 3 and max(gaps) <= 0.5, \
        f"du was not sampled often enough: {len(samples)} samples in {took:.2f} s, gap {max(gaps):.2f} s"

    # What is left is the newest data, contiguous up to the last packet sent.
    res = client.snapshot()
    ts = res.timestamps()
    n = fed["packets"]
    assert ts, "retention left nothing"
    assert ts[-1] == t0 + (n - 1) * step, "the newest packets are not all there"
    first = (ts[0] - t0) // step
    assert ts == [t0 + i * step for i in range(first, n)], \
        "the retained packets are not one contiguous run of the newest: retention took from the middle"
    assert res.summary.bytes >= max_size // 2, \
        f"only {res.summary.bytes} bytes retained of a {max_size} budget: retention deleted too much"

    st = client.stats()
    segs, nbytes = deletions(st, "max_size")
    logged = deleted_lines(store, "max_size")
    assert segs > 0 and nbytes > 0, st.deletions
    assert segs == len(logged), f"Stats counts {segs} max_size deletions, the log has {len(logged)}"
    assert deletions(st, "max_time")[0] == 0 and deletions(st, "min_free_disk")[0] == 0, st
    assert st.bytes <= st.max_bytes == max_size, st
    assert st.oldest_ns == ts[0] and st.newest_ns == ts[-1], st
    assert st.packets == len(ts), st

    # The same counts on /metrics.
    text = sh.scrape(store, "/metrics")[1]
    assert sh.metric_value(text, "netreel_store_deleted_segments_total", reason="max_size") == segs
    assert sh.metric_value(text, "netreel_store_deleted_bytes_total", reason="max_size") == nbytes
    assert sh.metric_value(text, "netreel_store_bytes") == st.bytes


def test_snapshot_completes_while_retention_deletes_its_segments(stores, feeder, store_client):
    store = stores("--max-size", "16MiB")
    client = store_client(store)
    t0, step = ts_base(), 1000
    first = feeder(store, "--bytes", "15MiB", "--ts-start", t0, "--ts-step", step,
                   capture_id="busy")
    # A slow reader: takes the first message, then waits while a flood deletes every segment
    # the snapshot is reading, then reads the rest.
    req = client.pb.SnapshotRequest(since_ns=0, until_ns=0)
    call = client.Snapshot(req, timeout=120)
    head = next(call)
    assert head.WhichOneof("kind") == "header"
    flood = {}
    th = threading.Thread(target=lambda: flood.update(feeder(
        store, "--bytes", "48MiB", "--ts-start", t0 + first["packets"] * step, "--ts-step", step,
        "--seq-start", first["last_seq"] + 1, capture_id="busy")))
    th.start()
    th.join(300)
    assert flood, "the flood feeder did not finish"
    assert deletions(client.stats(), "max_size")[0] >= 16, "the flood did not turn the store over"
    msgs = list(call)
    assert msgs and msgs[-1].WhichOneof("kind") == "summary", "the snapshot did not complete"
    pk = []
    for i, m in enumerate(msgs[:-1]):
        assert m.WhichOneof("kind") == "blocks"
        assert len(m.blocks) <= sh.CHUNK_MAX
        pk += sh.parse_epbs(m.blocks, where=f"blocks message {i}")
    ts = [p.ts_ns for p in pk]
    assert ts and ts[0] == t0, "the snapshot lost the oldest packets it had started with"
    k = (ts[-1] - t0) // step
    assert ts == [t0 + i * step for i in range(k + 1)], \
        "the snapshot is not one contiguous run: packets lost or doubled while segments went"
    assert k + 1 >= first["packets"], "the snapshot ends before the data it started with"
    assert msgs[-1].summary.packets == len(ts)


def test_max_time_deletes_what_is_older(stores, feeder, store_client, tmp_path):
    max_time, interval = 3 * 10**9, 10**9
    store = stores("--max-time", "3s", "--time-interval", "1s", "--max-size", "64MiB")
    client = store_client(store)
    dump = tmp_path / "sent.pcapng"
    fed = feeder(store, "--duration", "5s", "--realtime", "--rate-mbps", "8",
                 "--batch-bytes", "32KiB", "--dump", dump, capture_id="aging", timeout=120)
    sent = sh.read_pcapng(dump).packets
    assert fed["seconds"] >= 4.5 and len(sent) > 1000, fed

    # Slack: retention runs before every append and every second; a segment spans at most
    # --time-interval (and one more tick before a quiet one is closed).
    tick = 1.2 * 10**9
    now = sh.now_ns()
    copies = copy_segments(store.data_dir, tmp_path / "at-5s")
    problems, parsed = sh.wireshark_check(copies)
    assert not problems, "\n".join(problems)
    for path, f in parsed.items():
        if f.packets:
            newest = f.packets[-1].ts_ns
            assert newest >= now - max_time - tick, \
                f"{path.name}: newest packet {(now - newest) / 1e9:.2f} s old, --max-time 3s"
            span = f.packets[-1].ts_ns - f.packets[0].ts_ns
            assert span <= interval + tick, f"{path.name} spans {span / 1e9:.2f} s, --time-interval 1s"

    t_req = sh.now_ns()
    res = client.snapshot()
    ts = res.timestamps()
    assert ts, "max-time deleted everything while packets younger than 3 s were there"
    assert ts[0] >= t_req - max_time - interval - 2 * tick, \
        f"the snapshot's oldest packet is {(t_req - ts[0]) / 1e9:.2f} s old, --max-time 3s"
    # Nothing younger than max-time went: every packet sent after t_req-3s is there.
    # (With a margin for the time the request takes to reach the store.)
    young = [p.key() for p in sent if p.ts_ns >= t_req - max_time + 3 * 10**8]
    got = set(res.keys())
    missing = [k for k in young if k not in got]
    assert not missing, f"{len(missing)} packets younger than --max-time were deleted"
    old = [p for p in sent if p.ts_ns < ts[0]]
    assert old, "nothing was old enough to go: the test proves nothing"
    segs, _ = deletions(client.stats(), "max_time")
    assert segs >= 1 and segs == len(deleted_lines(store, "max_time")), client.stats().deletions

    # No traffic any more: once the newest packet is older than max-time (plus a tick),
    # nothing is left, the last segment included.
    last = sent[-1].ts_ns
    time.sleep(max(0.0, (last + max_time + 2 * tick - sh.now_ns()) / 1e9))
    res = client.snapshot()
    assert res.packets == [], f"{len(res.packets)} packets older than --max-time are still served"
    left = [p for p in copy_segments(store.data_dir, tmp_path / "at-end")
            if sh.read_pcapng(p).packets]
    assert not left, f"segments with packets older than --max-time remain: {left}"
    st = client.stats()
    assert st.packets == 0, st
    segs, nbytes = deletions(st, "max_time")
    assert segs == len(deleted_lines(store, "max_time")) and nbytes > 0, st.deletions
    assert deletions(st, "max_size")[0] == 0, st.deletions
    text = sh.scrape(store, "/metrics")[1]
    assert sh.metric_value(text, "netreel_store_deleted_segments_total", reason="max_time") == segs


def test_segments_from_before_a_restart_count_and_go_first(stores, feeder, store_client,
                                                           tmp_path):
    max_size = 16 * sh.MIB
    data = tmp_path / "data"
    store = stores("--max-size", "16MiB", data_dir=data)
    t0, step = ts_base(), 1000
    first = feeder(store, "--bytes", "12MiB", "--ts-start", t0, "--ts-step", step,
                   capture_id="reborn")
    assert store.stop() == []
    old = set(sh.segment_files(data))

    store = stores("--max-size", "16MiB", data_dir=data)
    client = store_client(store)
    st = client.stats()
    assert st.packets == first["packets"] and st.segments == len(old), st
    sampler = DuSampler(data)
    sampler.start()
    try:
        second = feeder(store, "--bytes", "12MiB", "--ts-start", t0 + first["packets"] * step,
                        "--ts-step", step, "--seq-start", first["last_seq"] + 1,
                        capture_id="reborn")
    finally:
        sampler.stop()
    worst = max(max(a, b) for _, a, b in sampler.samples + [(0, *sh.du(data))])
    assert worst <= max_size, f"du of the data dir reached {worst} > --max-size {max_size}"
    # The oldest segments (from before the restart) went first; the newest data is all there.
    left = set(sh.segment_files(data))
    assert old - left, "no segment from before the restart was deleted"
    n = first["packets"] + second["packets"]
    ts = client.snapshot().timestamps()
    k = (ts[0] - t0) // step
    assert ts == [t0 + i * step for i in range(k, n)], \
        "the retained packets are not the newest, contiguous run"
    st = client.stats()
    segs, _ = deletions(st, "max_size")
    assert segs == len(deleted_lines(store, "max_size")) == len(old - left), st.deletions
    assert st.bytes <= max_size
