"""netreel-store crash safety (docs/design.md §4, issue 3).

  * kill -9 during ingest, restart on the same data directory: every segment opens in tshark
    without a warning, every acked batch is there, and a full resend (the feeder rerun with the
    same arguments, from seq 1) leaves every packet exactly once;
  * a torn write (garbage or half a block after a segment's last block, a torn / corrupt /
    missing last index record) is cut back on restart to what the index vouches for, and the
    files stay readable; a resend fills the gap.
"""

import os
import struct
import threading
import time

import pytest

import store_helpers as sh

IDX_RECORD = 96
REC_HEAD, REC_META, REC_BATCH, REC_CLOSE = 1, 2, 3, 4


def ts_base():
    return (sh.now_ns() // 10**9 - 600) * 10**9


def read_index(path):
    """(header length, [(kind, packets, offset, length, seq)]) of a segment's .idx, as written
    by services/store/index.c: 'NRSEGIDX', version, id length, id padded to 8, then 96-byte
    records (kind u32, packets u32, offset u64, length u64, first/last ts, seq u64, ...)."""
    b = path.read_bytes()
    assert b[:8] == b"NRSEGIDX", f"{path}: not an index"
    (idlen,) = struct.unpack_from("<I", b, 12)
    hlen = 16 + ((idlen + 7) & ~7)
    recs = []
    for off in range(hlen, len(b) - IDX_RECORD + 1, IDX_RECORD):
        kind, packets, offset, length = struct.unpack_from("<IIQQ", b, off)
        (seq,) = struct.unpack_from("<Q", b, off + 40)
        recs.append((kind, packets, offset, length, seq))
    return hlen, recs


def check_files(data_dir):
    problems, parsed = sh.wireshark_check(sh.segment_files(data_dir))
    assert not problems, "\n".join(problems)
    return parsed


@pytest.mark.parametrize("how", ["kill-9", "sigterm"])
def test_stop_during_ingest_then_full_resend(stores, feeder, store_client, tmp_path, how):
    """kill -9 (a crash) or SIGTERM (a pod deletion) while a capture streams into the store."""
    data = tmp_path / "data"
    store = stores("--max-size", "64MiB", data_dir=data)
    batch_bytes = 256 << 10
    n = int(50000 * sh.SCALE)
    rate = 100 * sh.SCALE  # about 1.5 s of ingest: long enough to be stopped in the middle
    args = ["--packets", n, "--ts-start", ts_base(), "--batch-bytes", "256KiB",
            "--rate-mbps", rate]
    first = {}

    def run_first():
        first.update(feeder(store, *args, "--dump", tmp_path / "first.pcapng",
                            capture_id="crashy", expect_ok=False))

    th = threading.Thread(target=run_first)
    th.start()
    client = store_client(store)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        st = client.stats()
        if st.captures and st.captures[0].last_seq >= 30 * sh.SCALE + 2:
            break
        time.sleep(0.02)
    else:
        pytest.fail("the feeder did not get going")
    if how == "kill-9":
        store.kill9()
    else:
        problems = store.stop()
        assert not problems, "\n".join(problems)
    th.join(60)
    assert first, "the first feeder did not finish"
    assert first["rc"] != 0, f"the feeder finished before the kill: {first}"
    acked = first["acked_seq"]
    assert acked > 0, first

    # Restarted on the same directory: every file whole and readable.
    if how == "sigterm":  # a clean stop closes every segment: each ends with its ISB
        parsed = check_files(data)
        assert all(f.blocks[-1] == "ISB" for f in parsed.values()), \
            {p.name: f.blocks[-1] for p, f in parsed.items()}
    store2 = stores("--max-size", "64MiB", data_dir=data)
    check_files(data)
    client2 = store_client(store2)
    st = client2.stats()
    assert len(st.captures) == 1, st
    last = st.captures[0].last_seq
    assert last >= acked, f"acked seq {acked} was lost: the store recovered up to {last}"
    sent = sh.read_pcapng(tmp_path / "first.pcapng").packets
    batches = sh.split_batches(sent, batch_bytes)
    assert last <= len(batches), f"recovered seq {last}, only {len(batches)} batches were sent"
    want = [p.key() for b in batches[:last] for p in b]
    got = client2.snapshot().keys()
    assert got == want, (f"after the crash the store serves {len(got)} packets; batches 1..{last} "
                         f"hold {len(want)}")
    assert st.packets == len(want), st

    # The capture resends everything from seq 1, byte for byte the same.
    second = feeder(store2, *args, "--dump", tmp_path / "second.pcapng", capture_id="crashy")
    full = sh.read_pcapng(tmp_path / "second.pcapng").keys()
    assert len(full) == n and full[:len(sent)] == [p.key() for p in sent], \
        "the feeder's rerun is not a byte-identical resend"
    res = client2.snapshot()
    got = res.keys()
    assert len(got) == n, f"{len(got)} packets after the resend, {n} sent"
    assert got == full, "after the resend, packets are missing, doubled or changed"
    assert len(set(got)) == n
    st = client2.stats()
    assert st.captures[0].last_seq == second["last_seq"], st
    assert st.packets == n, st
    check_files(data)


@pytest.mark.parametrize("tear", ["garbage-after-closed", "torn-index-record",
                                  "corrupt-index-record", "missing-index-record"])
def test_torn_write_is_cut_back_on_restart(stores, feeder, store_client, tmp_path, tear):
    data = tmp_path / "data"
    store = stores("--max-size", "64MiB", data_dir=data)
    batch_bytes = 32 << 10
    args = ["--packets", 2000, "--ts-start", ts_base(), "--batch-bytes", "32KiB"]
    fed = feeder(store, *args, "--dump", tmp_path / "sent.pcapng", capture_id="torn")
    sent = sh.read_pcapng(tmp_path / "sent.pcapng").packets
    batches = sh.split_batches(sent, batch_bytes)
    assert len(batches) == fed["batches"] > 5
    if tear == "garbage-after-closed":
        assert store.stop() == []  # a clean stop: the segment is closed (ISB, close record)
    else:
        store.kill9()  # the segment stays active: its last record is the last batch
    (seg,) = sh.segment_files(data)
    idx = seg.with_suffix(".idx")
    hlen, recs = read_index(idx)
    seg_size, idx_size = seg.stat().st_size, idx.stat().st_size
    keep_batches = len(batches)

    if tear == "garbage-after-closed":
        assert recs[-1][0] == REC_CLOSE, recs[-1]
        with open(seg, "ab") as f:
            f.write(os.urandom(1000))
        want_seg, want_idx = seg_size, idx_size
    else:
        kind, packets, offset, length, seq = recs[-1]
        # With direct I/O the active segment ends with a padding block (less than 8 KiB).
        assert kind == REC_BATCH and seq == len(batches), recs[-1]
        assert offset + length <= seg_size < offset + length + 8192, (recs[-1], seg_size)
        # The last batch's bytes are followed by half of a block, as a torn write leaves them.
        half = sh.epb(0, sent[-1].ts_ns + 1, sent[-1].data)[:50]
        with open(seg, "r+b") as f:
            f.truncate(offset + length)
            f.seek(offset + length)
            f.write(half)
        with open(idx, "r+b") as f:
            if tear == "torn-index-record":
                f.truncate(idx_size - 40)
            elif tear == "missing-index-record":
                f.truncate(idx_size - IDX_RECORD)
            else:  # a whole record whose bytes are not what was written (checksum fails)
                f.seek(idx_size - IDX_RECORD + 20)
                f.write(b"\xde\xad\xbe\xef")
        want_seg, want_idx = offset, idx_size - IDX_RECORD
        keep_batches = len(batches) - 1

    store2 = stores("--max-size", "64MiB", data_dir=data)
    assert (seg.stat().st_size, idx.stat().st_size) == (want_seg, want_idx), \
        (f"{seg.name}/.idx are {seg.stat().st_size}/{idx.stat().st_size} bytes after recovery, "
         f"want {want_seg}/{want_idx}")
    assert [ln for ln in store2.stderr().splitlines() if "level=warn" in ln and seg.name in ln], \
        f"the cut of {seg.name} is not logged as a warning"
    parsed = check_files(data)
    want = [p.key() for b in batches[:keep_batches] for p in b]
    assert parsed[seg].keys() == want
    client = store_client(store2)
    assert client.snapshot().keys() == want
    assert client.stats().captures[0].last_seq == keep_batches

    # The capture resends: nothing missing, nothing twice, and the files stay whole.
    feeder(store2, *args, "--dump", tmp_path / "again.pcapng", capture_id="torn")
    assert client.snapshot().keys() == [p.key() for p in sent]
    assert client.stats().captures[0].last_seq == len(batches)
    check_files(data)
