"""Flow control end to end: a fast lib/rpc client streams 1 GiB to a slow lib/rpc server.

Neither side may buffer what the other cannot take: both stay under 64 MiB of peak RSS while
1024 messages of 1 MiB go through a reader that pauses 4 ms after each one. That the reader was
in fact slow is checked too: the call cannot take less than the sum of its pauses.
"""

RSS_LIMIT_KB = 64 * 1024
RECV_DELAY_MS = 4  # long enough that skipped pauses would show in the wall time


def test_backpressure_1gib_slow_reader_bounded_memory(rpc_server, run_client, rpctest):
    count = 256 if rpctest.asan else 1024  # ASan: 256 MiB is enough to show the bound
    size = 1024 * 1024
    srv = rpc_server()
    r = run_client("--target", srv.addr, "client-stream", "--count", count, "--size", size,
                   "--recv-delay-ms", RECV_DELAY_MS, timeout=120)
    server_hwm_kb = srv.vm_hwm_kb()  # before teardown's SIGTERM
    assert r["status"] == 0, r
    assert (r["count"], r["bytes"], r["sent_bytes"]) == (count, count * size, count * size), r
    assert r["checksum"] == r["expected_checksum"], r
    # The server paused after every message: the memory bound below was measured against a
    # reader that really was slower than the writer. A lower bound (a correctness check that the
    # pauses happened, not a performance threshold); 0.9 allows for libuv's millisecond clock.
    min_s = count * RECV_DELAY_MS / 1000 * 0.9
    assert r.wall_s >= min_s, (f"{count} messages with {RECV_DELAY_MS} ms pauses took "
                               f"{r.wall_s:.3f} s (< {min_s:.3f} s): the reader did not pause")
    if rpctest.asan:
        return  # ASan's shadow memory and quarantine make RSS meaningless
    assert r["max_rss_kb"] < RSS_LIMIT_KB, f"client peak RSS {r['max_rss_kb']} KiB"
    assert server_hwm_kb < RSS_LIMIT_KB, f"server peak RSS {server_hwm_kb} KiB"
