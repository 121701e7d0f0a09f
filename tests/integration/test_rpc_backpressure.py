"""Flow control end to end: a fast lib/rpc client streams 1 GiB to a slow lib/rpc server.

Neither side may buffer what the other cannot take: both stay under 64 MiB of peak RSS while
1024 messages of 1 MiB go through a reader that pauses 2 ms after each one.
"""

RSS_LIMIT_KB = 64 * 1024


def test_backpressure_1gib_slow_reader_bounded_memory(rpc_server, run_client, rpctest):
    count = 256 if rpctest.asan else 1024  # ASan: 256 MiB is enough to show the bound
    size = 1024 * 1024
    srv = rpc_server()
    r = run_client("--target", srv.addr, "client-stream", "--count", count, "--size", size,
                   "--recv-delay-ms", 2, timeout=120)
    server_hwm_kb = srv.vm_hwm_kb()  # before teardown's SIGTERM
    assert r["status"] == 0, r
    assert (r["count"], r["bytes"], r["sent_bytes"]) == (count, count * size, count * size), r
    assert r["checksum"] == r["expected_checksum"], r
    if rpctest.asan:
        return  # ASan's shadow memory and quarantine make RSS meaningless
    assert r["max_rss_kb"] < RSS_LIMIT_KB, f"client peak RSS {r['max_rss_kb']} KiB"
    assert server_hwm_kb < RSS_LIMIT_KB, f"server peak RSS {server_hwm_kb} KiB"
