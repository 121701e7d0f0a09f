"""netreel-store against lying batches (DESIGN §9, issue 3): batches built by hand in Python and
sent with a stock grpcio client. Each lie ends the Ingest call with INVALID_ARGUMENT and a message
that names the batch and what is wrong; nothing of it reaches the disk (the data directory is
byte for byte the same) and Stats do not move; the store keeps serving.
"""

import random
import struct

import grpc
import pytest

import store_helpers as sh

SNAPLEN = 256
IFACES = [("eth0", 1, SNAPLEN)]


class Ctx:
    """The store every case of this module shares, with a capture 'good' already in it."""

    def __init__(self, store, stub, pb):
        self.store, self.stub, self.pb = store, stub, pb
        self.t = (sh.now_ns() // 10**9 - 300) * 10**9
        self.sent = []  # (ifid, ts, data) of every packet the store accepted, in order
        self.pkt_i = 0

    def packets(self, count, sizes=(60, 128, 250)):
        out = []
        for _ in range(count):
            self.t += 1000
            self.pkt_i += 1
            out.append((0, self.t, sh.frame(self.pkt_i, sizes[self.pkt_i % len(sizes)])))
        return out

    def stats(self):
        return self.stub.stats()

    def next_seq(self):
        (c,) = [c for c in self.stats().captures if c.capture_id == "good"]
        return c.last_seq + 1


@pytest.fixture(scope="module")
def ctx(store_bins, store_pb, tmp_path_factory):
    d = tmp_path_factory.mktemp("hostile")
    store = sh.StoreProc([store_bins.store, "--listen", "127.0.0.1:0", "--metrics-listen", "off",
                          "--node", "node-h", "--data-dir", d / "data", "--max-size", "64MiB"],
                         d / "data", d / "store.stderr")
    channel = None
    try:
        store.wait_serving()
        channel = grpc.insecure_channel(store.addr)
        c = Ctx(store, sh.StoreStub(channel, store_pb, store_pb.health), store_pb)
        batches = []
        for seq in (1, 2, 3):
            pk = c.packets(20)
            batches.append(sh.make_batch(store_pb, "good", seq, pk,
                                         interfaces=IFACES if seq == 1 else None))
            c.sent += pk
        acks, err = sh.ingest(c.stub, batches)
        assert err is None and acks and acks[-1].seq == 3, (acks, err)
        yield c
    finally:
        if channel is not None:
            channel.close()
        problems = store.stop()
        if problems:
            pytest.fail("\n".join(problems), pytrace=False)


def lying(c, seq, blob, pk, capture_id="good"):
    """A batch whose blocks are `blob` (a lie) and whose count and time range are those of the
    packets pk it pretends to hold."""
    return c.pb.PacketBatch(capture_id=capture_id, seq=seq, node="node-py", blocks=blob,
                            packet_count=len(pk), first_ts_ns=pk[0][1], last_ts_ns=pk[-1][1])


# Each case: (ctx, seq) -> (messages for one Ingest call, [substrings the status must carry]).

def trailing_length(c, seq):
    pk = c.packets(3)
    e = [sh.epb(*p) for p in pk]
    blob = e[0] + sh.epb(*pk[1], trailing=len(e[1]) + 4) + e[2]
    return [lying(c, seq, blob, pk)], \
        [f"batch seq {seq}", f"block 1 at offset {len(e[0])}", "trailing length"]


def leading_length(c, seq):
    pk = c.packets(3)
    e = [sh.epb(*p) for p in pk]
    blob = e[0] + sh.epb(*pk[1], total=len(e[1]) + 8, trailing=len(e[1])) + e[2]
    return [lying(c, seq, blob, pk)], [f"batch seq {seq}", f"block 1 at offset {len(e[0])}"]


def past_the_blob(c, seq):
    pk = c.packets(2)
    e = [sh.epb(*p) for p in pk]
    blob = e[0] + sh.epb(*pk[1], total=len(e[1]) + 64)
    return [lying(c, seq, blob, pk)], [f"batch seq {seq}", "block 1", "past the end"]


def not_multiple_of_4(c, seq):
    pk = c.packets(1)
    blob = sh.epb(*pk[0], total=len(sh.epb(*pk[0])) + 2)
    return [lying(c, seq, blob, pk)], \
        [f"batch seq {seq}", "block 0 at offset 0", "multiple of 4"]


def caplen_over_snaplen(c, seq):
    pk = c.packets(2)
    pk[1] = (0, pk[1][1], sh.frame(7, SNAPLEN + 44))
    blob = b"".join(sh.epb(*p) for p in pk)
    return [lying(c, seq, blob, pk)], \
        [f"batch seq {seq}", "block 1", f"captured length {SNAPLEN + 44} > snaplen {SNAPLEN}"]


def caplen_over_block(c, seq):
    pk = c.packets(1, sizes=(100,))
    blob = sh.epb(*pk[0], caplen=200, origlen=200)
    return [lying(c, seq, blob, pk)], [f"batch seq {seq}", "block 0", "captured length 200"]


def caplen_over_origlen(c, seq):
    pk = c.packets(1, sizes=(100,))
    blob = sh.epb(*pk[0], origlen=50)
    return [lying(c, seq, blob, pk)], \
        [f"batch seq {seq}", "block 0", "captured length 100 > original length 50"]


def unknown_interface(c, seq):
    pk = c.packets(2)
    pk[1] = (3,) + pk[1][1:]
    blob = b"".join(sh.epb(*p) for p in pk)
    return [lying(c, seq, blob, pk)], [f"batch seq {seq}", "block 1", "interface id 3"]


def far_future(c, seq):
    t = sh.now_ns() + 2 * 3600 * 10**9
    return [sh.make_batch(c.pb, "good", seq, [(0, t, sh.frame(1, 80))])], \
        [f"batch seq {seq}", "block 0", f"timestamp {t}"]


def far_past(c, seq):
    t = sh.now_ns() - 40 * 86400 * 10**9
    return [sh.make_batch(c.pb, "good", seq, [(0, t, sh.frame(1, 80))])], \
        [f"batch seq {seq}", "block 0", f"timestamp {t}"]


def unsorted(c, seq):
    a, b, d = c.packets(3)
    pk = [a, d, b]
    blob = b"".join(sh.epb(*p) for p in pk)
    return [lying(c, seq, blob, [a, b])], [f"batch seq {seq}", "block 2", "backwards"]


def packet_count_lie(c, seq):
    return [sh.make_batch(c.pb, "good", seq, c.packets(5), packet_count=6)], \
        [f"batch seq {seq}", "packet_count"]


def first_ts_lie(c, seq):
    pk = c.packets(5)
    return [sh.make_batch(c.pb, "good", seq, pk, first_ts_ns=pk[0][1] - 1)], \
        [f"batch seq {seq}", "first_ts_ns"]


def last_ts_lie(c, seq):
    pk = c.packets(5)
    return [sh.make_batch(c.pb, "good", seq, pk, last_ts_ns=pk[-1][1] + 1000)], \
        [f"batch seq {seq}", "last_ts_ns"]


def garbage_blocks(c, seq):
    blob = random.Random(seq).randbytes(300)
    return [lying(c, seq, blob, c.packets(1))], [f"batch seq {seq}", "block 0 at offset 0"]


def not_an_epb(c, seq):
    pk = c.packets(1)
    blob = struct.pack("<I", 1) + sh.epb(*pk[0])[4:]  # an IDB's type on an EPB's body
    return [lying(c, seq, blob, pk)], [f"batch seq {seq}", "block 0 at offset 0"]


def malformed_protobuf(c, seq):
    # seq, then field 6 (blocks) saying 2^31 bytes follow, of which 3 do.
    return [b"\x10" + bytes([seq]) + b"\x32\x80\x80\x80\x80\x08abc"], ["PacketBatch"]


def second_capture_id(c, seq):
    # The first message is a resend (dropped and acked, nothing written); the second one
    # changes the capture id.
    dup = sh.make_batch(c.pb, "good", seq - 1, [])
    other = sh.make_batch(c.pb, "other", 1, c.packets(2), interfaces=IFACES)
    return [dup, other], ["capture_id", "other"]


def interface_changed(c, seq):
    return [sh.make_batch(c.pb, "good", seq, c.packets(2),
                          interfaces=[("eth0", 1, SNAPLEN * 2)])], \
        [f"batch seq {seq}", "interface 0"]


def pods_without_update(c, seq):
    b = sh.make_batch(c.pb, "good", seq, c.packets(2))
    b.pods.add(ip=bytes([10, 0, 0, 1]), namespace="default", name="web")
    return [b], [f"batch seq {seq}", "pods_update"]


def new_capture_bad_ids(c, seq):
    b = sh.make_batch(c.pb, "fresh-ids", 1, c.packets(2), interfaces=[("eth0", 1, 256)])
    b.interfaces[0].id = 1
    return [b], ["batch seq 1", "interface", "0..n-1"]


def new_capture_no_interfaces(c, seq):
    return [sh.make_batch(c.pb, "fresh-noif", 1, c.packets(2))], ["batch seq 1", "interface"]


CASES = [trailing_length, leading_length, past_the_blob, not_multiple_of_4, caplen_over_snaplen,
         caplen_over_block, caplen_over_origlen, unknown_interface, far_future, far_past,
         unsorted, packet_count_lie, first_ts_lie, last_ts_lie, garbage_blocks, not_an_epb,
         malformed_protobuf, second_capture_id, interface_changed, pods_without_update,
         new_capture_bad_ids, new_capture_no_interfaces]


@pytest.mark.parametrize("case", CASES, ids=[f.__name__ for f in CASES])
def test_lie_is_refused_and_nothing_written(ctx, case):
    seq = ctx.next_seq()
    msgs, want = case(ctx, seq)
    before_dir = sh.dir_state(ctx.store.data_dir)
    before = ctx.stats()
    raw = isinstance(msgs[0], bytes)
    acks, err = sh.ingest(ctx.stub, msgs, raw=raw)
    assert err is not None, f"the lie was accepted: acks {[a.seq for a in acks]}"
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, f"{err.code()}: {err.details()}"
    msg = err.details() or ""
    missing = [w for w in want if w not in msg]
    assert not missing, f"status message {msg!r} does not name {missing}"
    assert all(a.seq < seq for a in acks), f"the refused batch was acked: {acks}"
    after_dir = sh.dir_state(ctx.store.data_dir)
    assert after_dir == before_dir, \
        "the data directory changed:\n" + sh.state_diff(before_dir, after_dir)
    after = ctx.stats()
    assert after == before, f"Stats changed:\nbefore: {before}\nafter: {after}"
    assert ctx.store.alive()


def test_store_keeps_serving_after_the_lies(ctx):
    # Whatever ran before in this module: the next honest batch is taken and served.
    seq = ctx.next_seq()
    pk = ctx.packets(10)
    acks, err = sh.ingest(ctx.stub, [sh.make_batch(ctx.pb, "good", seq, pk)])
    assert err is None and acks[-1].seq == seq, (acks, err)
    ctx.sent += pk
    got = ctx.stub.snapshot()
    assert got.keys() == [sh.Packet(i, t, len(d), len(d), d).key() for i, t, d in ctx.sent]
    H = ctx.pb.health.HealthCheckResponse
    assert ctx.stub.Check(ctx.pb.health.HealthCheckRequest(service="netreel.v1.Store"),
                          timeout=10).status == H.SERVING


def test_capture_id_cannot_leave_the_data_dir(stores, store_client, store_pb, tmp_path):
    """capture_id is the capture's to choose (printable ASCII): path separators and dot-dots in
    it name a stream, never a place outside the data directory; it survives a restart as it
    was, and so does the resend check."""
    data = tmp_path / "deep" / "data"
    data.parent.mkdir()
    store = stores("--max-size", "64MiB", data_dir=data)
    client = store_client(store)
    ids = ["../../../escape", "a/b", "..", ".", "x/../../y"]
    t = (sh.now_ns() // 10**9 - 300) * 10**9
    for k, cid in enumerate(ids):
        pk = [(0, t + k * 10**6 + i, sh.frame(i, 100)) for i in range(10)]
        acks, err = sh.ingest(client, [sh.make_batch(store_pb, cid, 1, pk, interfaces=IFACES)])
        assert err is None and acks[-1].seq == 1, (cid, err)
    outside = [p for p in tmp_path.rglob("*")
               if not (p == data or data in p.parents or p == data.parent or
                       p.name.endswith(".stderr"))]
    assert not outside, f"files outside the data directory: {outside}"
    assert sorted(c.capture_id for c in client.stats().captures) == sorted(ids)
    assert len(client.snapshot().packets) == 10 * len(ids)

    assert store.stop() == []
    store = stores("--max-size", "64MiB", data_dir=data)
    client = store_client(store)
    st = client.stats()
    assert sorted((c.capture_id, c.last_seq) for c in st.captures) == sorted((i, 1) for i in ids), \
        "after a restart the store does not know every capture (id, last seq) it had"
    before = sh.dir_state(data)
    for cid in ids:  # a resend after the restart is recognised as one
        pk = [(0, t + 5, sh.frame(1, 100))]
        acks, err = sh.ingest(client, [sh.make_batch(store_pb, cid, 1, pk, interfaces=IFACES)])
        assert err is None and acks[-1].seq == 1, (cid, err)
    assert sh.dir_state(data) == before
