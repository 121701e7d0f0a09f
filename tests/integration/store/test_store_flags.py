"""netreel-store's command line and side doors (docs/design.md §4, §8, §9; issue 3):

  * a bad flag value or an unknown flag: exit 2 and one line "netreel-store: ..." on stderr;
  * --version prints "netreel-store <version>";
  * one store per data directory: a second one exits 2, "is in use by another netreel-store";
  * /metrics (Prometheus text) and /healthz on the metrics port, scraped more than once;
  * TLS and mTLS: the feeder and grpcio get in with the right certificates, not without.
"""

import re
import subprocess

import grpc
import pytest

import store_helpers as sh


def run_store(store_bins, *args, timeout=30):
    r = subprocess.run([str(store_bins.store), *map(str, args)], stdin=subprocess.DEVNULL,
                       capture_output=True, text=True, timeout=timeout)
    if sh.ASAN:
        assert not sh.sanitizer_reports(r.stderr), r.stderr
    return r


BAD = [
    (["--max-size", "1MiB"], "--max-size"),
    (["--max-size", "lots"], "--max-size"),
    (["--max-size", "15MiB"], "--max-size"),
    (["--time-interval", "500ms"], "--time-interval"),
    (["--time-interval", "soon"], "--time-interval"),
    (["--max-time", "-3s"], "--max-time"),
    (["--min-free-disk", "150%"], "--min-free-disk"),
    (["--sync-interval", "-1s"], "--sync-interval"),
    (["--sync-interval", "2h"], "--sync-interval"),
    (["--log-level", "loud"], "--log-level"),
    (["--no-such-flag"], "no-such-flag"),
    (["--data-dir"], "data-dir"),
    (["stray-argument"], "stray-argument"),
    (["--tls-cert", "/nonexistent.pem"], "--tls-key"),
    (["--ingest-peers", "netreel-capture"], "--ingest-peers"),  # names need mTLS
]


@pytest.mark.parametrize("args,names", BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_flag_exits_2_with_one_line(store_bins, tmp_path, args, names):
    r = run_store(store_bins, "--listen", "127.0.0.1:0", "--metrics-listen", "off",
                  "--data-dir", tmp_path / "data", *args)
    lines = r.stderr.splitlines()
    assert r.returncode == 2, f"exit {r.returncode}, stderr {r.stderr!r}"
    assert len(lines) == 1 and lines[0].startswith("netreel-store: "), \
        f"want one line 'netreel-store: ...', got {r.stderr!r}"
    assert names in lines[0], f"the message does not name {names}: {lines[0]!r}"
    assert r.stdout == ""


def test_version(store_bins):
    r = run_store(store_bins, "--version")
    assert r.returncode == 0, r
    assert re.fullmatch(r"netreel-store \S+\n", r.stdout), repr(r.stdout)
    assert r.stderr == ""


def test_second_store_on_one_data_dir_exits_2(stores, store_bins, store_client, tmp_path):
    first = stores()
    r = run_store(store_bins, "--listen", "127.0.0.1:0", "--metrics-listen", "off",
                  "--data-dir", first.data_dir)
    lines = r.stderr.splitlines()
    assert r.returncode == 2, f"exit {r.returncode}: {r.stderr!r}"
    assert len(lines) == 1 and lines[0].startswith("netreel-store: ") and \
        "is in use by another netreel-store" in lines[0], repr(r.stderr)
    # The first one is untouched and serves on.
    assert first.alive()
    assert store_client(first).stats().node == "node-a"


def test_metrics_and_healthz(stores, feeder, store_client):
    store = stores("--max-size", "32MiB")
    assert store.metrics_port and store.metrics_port > 0
    fed = feeder(store, "--packets", 5000, capture_id="metered")
    st = store_client(store).stats()

    # Scraped again and again, as Prometheus and a kubelet probe do.
    for i in range(3):
        code, body, ctype = sh.scrape(store, "/healthz")
        assert code == 200 and body.strip() == "ok", (i, code, body)
        code, text, ctype = sh.scrape(store, "/metrics")
        assert code == 200, (i, code, text[:200])
        assert ctype.startswith("text/plain"), ctype
        assert "version=0.0.4" in ctype, ctype
        assert sh.metric_value(text, "netreel_store_bytes") == st.bytes
        assert sh.metric_value(text, "netreel_store_max_bytes") == 32 * sh.MIB
        assert sh.metric_value(text, "netreel_store_segments") == st.segments
        assert sh.metric_value(text, "netreel_store_packets") == 5000
        assert sh.metric_value(text, "netreel_store_batches_total", result="accepted") == \
            fed["batches"]
        assert sh.metric_value(text, "netreel_store_info", node="node-a") == 1
        for reason in ("max_time", "max_size", "min_free_disk"):
            assert sh.metric_value(text, "netreel_store_deleted_segments_total",
                                   reason=reason) == 0
    code, body, _ = sh.scrape(store, "/no/such/path")
    assert code == 404, (code, body)
    assert store.alive(), "the store died serving the metrics port"


def test_mtls(stores, feeder, store_client, certs):
    store = stores("--tls-cert", certs.server_cert, "--tls-key", certs.server_key,
                   "--tls-ca", certs.ca)
    ok = ["--tls-ca", certs.ca, "--tls-cert", certs.client_cert, "--tls-key", certs.client_key]
    addr = f"localhost:{store.port}"
    fed = feeder(store, "--packets", 2000, *ok, capture_id="secure", addr=addr)
    assert fed["acked_seq"] == fed["last_seq"]
    assert store_client(store, "mtls").stats().packets == 2000
    # Without a client certificate, or with one from another CA: refused.
    bad = feeder(store, "--packets", 10, "--tls-ca", certs.ca, capture_id="nocert", addr=addr,
                 expect_ok=False)
    assert bad["rc"] != 0 and bad["status"] != 0, bad
    bad = feeder(store, "--packets", 10, "--tls-ca", certs.ca, "--tls-cert",
                 certs.other_client_cert, "--tls-key", certs.other_client_key,
                 capture_id="othercert", addr=addr, expect_ok=False)
    assert bad["rc"] != 0 and bad["status"] != 0, bad
    with pytest.raises(grpc.RpcError):
        store_client(store, "mtls", client="other").stats()
    st = store_client(store, "mtls").stats()
    assert [c.capture_id for c in st.captures] == ["secure"], st


def test_peers_by_certificate_name(stores, feeder, store_client, certs):
    """--ingest-peers and --read-peers: with mTLS, a certificate of the CA calls only the methods
    its common name is allowed (the chart: batches from the captures, snapshots from the hub)."""
    tls = ["--tls-cert", certs.server_cert, "--tls-key", certs.server_key, "--tls-ca", certs.ca]
    ok = ["--tls-ca", certs.ca, "--tls-cert", certs.client_cert, "--tls-key", certs.client_key]
    store = stores(*tls, "--ingest-peers", "netreel-capture,netreel-test-client",
                   "--read-peers", "netreel-hub")
    addr = f"localhost:{store.port}"
    fed = feeder(store, "--packets", 100, *ok, capture_id="named", addr=addr)
    assert fed["acked_seq"] == fed["last_seq"]
    with pytest.raises(grpc.RpcError) as e:
        store_client(store, "mtls").stats()
    assert e.value.code() == grpc.StatusCode.PERMISSION_DENIED, e.value
    assert 'not for certificate "netreel-test-client"' in e.value.details(), e.value.details()

    store2 = stores(*tls, "--ingest-peers", "netreel-capture", "--read-peers",
                    "netreel-test-client", data_dir=store.data_dir.parent / "data2")
    bad = feeder(store2, "--packets", 10, *ok, capture_id="stranger",
                 addr=f"localhost:{store2.port}", expect_ok=False)
    assert bad["status"] == 7 and bad["acked_seq"] == 0, bad  # PERMISSION_DENIED
    assert store_client(store2, "mtls").stats().packets == 0
