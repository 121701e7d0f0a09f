"""`netreel status` and how pcapdump and status find the hub (docs/design.md §7, docs/cli.md):
--hub, else $NETREEL_HUB, else the hub of a local `tap --local` named by its data folder (hub.addr,
with the client certificate and token there), else `kubectl port-forward` to service/netreel-hub in
the release namespace with the token and client certificate read from the chart's Secrets (a fake
kubectl answers, and forwards for real to a fake hub); a missing kubectl or kube context is one line
and exit 4.
"""

import os
import time

import pytest

import cli_helpers as ch
from cli_helpers import cli_bin, fake_hub, hub_pb, fake_tools  # noqa: F401 (fixtures)

NS = 1_000_000_000


def cluster(pb, reachable_b=True):
    now = time.time_ns()
    a = pb.StoreStatus(store="10.0.0.1:8897", reachable=True, stats=pb.StoreStats(
        node="node-a", oldest_ns=now - 3600 * NS, newest_ns=now, bytes=300 << 20,
        max_bytes=500_000_000, segments=61, packets=1234567,
        captures=[pb.CaptureStats(capture_id="node-a@1", counters=pb.CaptureCounters(
            received=2000000, kernel_dropped=7, interface_dropped=1, capture_dropped=2)),
                  pb.CaptureStats(capture_id="node-a@2", counters=pb.CaptureCounters(
                      kernel_dropped=3))]),
        clock_known=True, clock_reference="node-b", clock_offset_ns=-3_000_005,
        clock_uncertainty_ns=2_429, clock_measured_ns=now)
    if reachable_b:
        b = pb.StoreStatus(store="10.0.0.2:8897", reachable=True,
                           stats=pb.StoreStats(node="node-b", max_bytes=500_000_000),
                           clock_known=True, clock_reference="node-b")
    else:
        b = pb.StoreStatus(store="10.0.0.2:8897", reachable=False,
                           error="connect: connection refused")
    return pb.ClusterStatus(stores=[a, b])


def test_status_table(cli_bin, fake_hub, hub_pb):
    h = fake_hub()
    h.cluster = cluster(hub_pb)
    r = ch.run(cli_bin, "status", "--all", "--hub", h.addr, env=ch.base_env(), expect=0)
    lines = r.stdout.splitlines()
    assert len(lines) == 3, r.where()
    for col in ("NODE", "STORE", "OLDEST", "NEWEST", "DISK / MAX", "SEGMENTS", "PACKETS",
                "CLOCK", "DROPS kernel/iface/capture"):
        assert col in lines[0]
    a = lines[1].split()
    assert a[0] == "node-a" and a[1] == "10.0.0.1:8897" and a[2] == "ok", r.where()
    assert a[5] == "1h"  # the span of the retained window
    assert "300.0MiB / 476.8MiB" in lines[1] and " 61 " in lines[1] and "1234567" in lines[1]
    assert lines[1].endswith("10/1/2"), r.where()  # summed over the node's captures
    # the clock the last snapshot measured: against the reference node, and the reference
    assert " -3.000ms\u00b10.002 " in lines[1], r.where()
    assert " reference " in lines[2], r.where()
    b = lines[2].split()
    assert b[0] == "node-b" and b[3] == "-" and b[4] == "-", r.where()  # empty: no window
    assert r.stderr == ""


def test_status_unreachable_store_exit_3(cli_bin, fake_hub, hub_pb):
    h = fake_hub()
    h.cluster = cluster(hub_pb, reachable_b=False)
    r = ch.run(cli_bin, "status", "-o", "wide", "--hub", h.addr, env=ch.base_env(), expect=3)
    row = r.stdout.splitlines()[2]
    assert "10.0.0.2:8897" in row and "UNREACHABLE: connect: connection refused" in row
    assert "1 of 2 stores is unreachable" in r.stderr


def big_cluster(pb, n=1000):
    """n nodes, node-k's window [now - 2h + k s, now - k ms]; node-3 down, node-5 dropping,
    node-8 out of room (segments deleted for the file system's free space)."""
    now = time.time_ns()
    out = []
    for k in range(n):
        name = f"node-{k}"
        if k == 3:
            out.append(pb.StoreStatus(store=f"10.0.{k // 256}.{k % 256}:8897", reachable=False,
                                      error="connect: connection refused"))
            continue
        st = pb.StoreStats(node=name, oldest_ns=now - 7200 * NS + k * NS,
                           newest_ns=now - k * 1_000_000, bytes=1 << 20, max_bytes=2 << 20,
                           segments=2, packets=100)
        if k == 5:
            st.captures.append(pb.CaptureStats(capture_id="c", counters=pb.CaptureCounters(
                kernel_dropped=4, capture_dropped=2)))
        if k == 8:
            st.deletions.append(pb.DeletionCount(reason="min_free_disk", segments=3,
                                                 bytes=3 << 20))
        st.deletions.append(pb.DeletionCount(reason="max_size", segments=9, bytes=9 << 20))
        out.append(pb.StoreStatus(store=f"10.0.{k // 256}.{k % 256}:8897", reachable=True,
                                  stats=st))
    return pb.ClusterStatus(stores=out), now


def test_status_at_scale_leads_with_totals_and_attention(cli_bin, fake_hub, hub_pb):
    # A thousand nodes read in a few lines: the totals, then the three that need attention
    # (down, dropping, out of room), one line each; the full table behind --all.
    h = fake_hub()
    h.cluster, now = big_cluster(hub_pb)
    r = ch.run(cli_bin, "status", "--hub", h.addr, env=ch.base_env(), expect=3)
    lines = r.stdout.splitlines()
    assert lines[0] == "1000 nodes: 999 ok, 1 unreachable", r.where()
    assert lines[1].startswith("window ") and "(2h)" in lines[1], lines[1]
    # Every node holds the window from the youngest oldest (node-999's) to the oldest newest.
    assert "every node holds " in lines[1] and "(1h43m20.001s)" in lines[1], lines[1]
    assert lines[2] == "disk      999.0MiB / 1.9GiB", lines[2]
    assert lines[3] == "packets   99900, dropped 6 (kernel 4 / interface 0 / capture 2)", lines[3]
    assert lines[4] == "needs attention (3 nodes):", r.where()
    att = lines[5:8]
    assert att[0].split()[:3] == ["?", "10.0.0.3:8897", "UNREACHABLE:"], att
    assert att[1].split()[:3] == ["node-5", "10.0.0.5:8897", "DROPPING:"] and \
        "6 packets lost" in att[1], att
    assert att[2].split()[:3] == ["node-8", "10.0.0.8:8897", "OUT"] and \
        "3 segments (3.0MiB) deleted for the file system's free space" in att[2], att
    assert lines[8:] == ["every node: netreel status --all"], r.where()
    assert "1 of 1000 stores is unreachable" in r.stderr

    r = ch.run(cli_bin, "status", "--all", "--hub", h.addr, env=ch.base_env(), expect=3)
    assert len(r.stdout.splitlines()) == 1001, r.where()


def test_status_json(cli_bin, fake_hub, hub_pb):
    import json
    h = fake_hub()
    h.cluster, now = big_cluster(hub_pb, n=10)
    r = ch.run(cli_bin, "status", "-o", "json", "--hub", h.addr, env=ch.base_env(), expect=3)
    doc = json.loads(r.stdout)
    assert (doc["nodes"], doc["ok"], doc["unreachable"]) == (10, 9, 1)
    assert doc["packets"] == 900 and doc["dropped"] == {"kernel": 4, "interface": 0,
                                                         "capture": 2}
    assert doc["oldest_ns"] == now - 7200 * NS and doc["newest_ns"] == now
    assert doc["every_node_since_ns"] == now - 7200 * NS + 9 * NS
    assert doc["every_node_until_ns"] == now - 9 * 1_000_000
    assert [a["store"] for a in doc["attention"]] == ["10.0.0.3:8897", "10.0.0.5:8897",
                                                      "10.0.0.8:8897"]
    assert len(doc["stores"]) == 10
    n8 = doc["stores"][8]
    assert n8["node"] == "node-8" and n8["deleted_for_free_space"] == {"segments": 3,
                                                                       "bytes": 3 << 20}
    assert doc["stores"][3]["reachable"] is False and "refused" in doc["stores"][3]["error"]
    r = ch.run(cli_bin, "status", "-o", "yaml", "--hub", h.addr, env=ch.base_env(), expect=2)
    assert "wide or json" in r.stderr, r.where()


def test_status_token_and_unreachable_hub(cli_bin, fake_hub, hub_pb):
    h = fake_hub()
    h.cluster = cluster(hub_pb)
    h.token = "tok"
    r = ch.run(cli_bin, "status", "--hub", h.addr, env=ch.base_env(), expect=1)
    assert "UNAUTHENTICATED" in ch.one_error_line(r)
    ch.run(cli_bin, "status", "--hub", h.addr, env=ch.base_env(NETREEL_TOKEN="tok"), expect=0)
    r = ch.run(cli_bin, "status", "--hub", f"127.0.0.1:{ch.closed_port()}", env=ch.base_env(),
               expect=1)
    assert "cannot reach the hub" in ch.one_error_line(r)
    r = ch.run(cli_bin, "status", "extra", env=ch.base_env(), expect=2)
    ch.one_error_line(r)


def local_data(d, certs, addr, token="local-token"):
    """A data folder as `tap --local` leaves it while it runs: hub.addr, .tls/ and hub.token
    (here the test CA's files, which the fake hub's certificate chains to)."""
    tls = d / ".tls"
    tls.mkdir(parents=True)
    d.chmod(0o700)
    tls.chmod(0o700)
    for name, src in (("ca.crt", certs.ca), ("client.crt", certs.client_cert),
                      ("client.key", certs.client_key)):
        (tls / name).write_bytes(src.read_bytes())
        (tls / name).chmod(0o600)
    (d / "hub.token").write_text(token + "\n")
    (d / "hub.addr").write_text(addr + "\n")
    return d


def test_env_hub_and_local_hub(cli_bin, fake_hub, hub_pb, certs, tmp_path):
    h = fake_hub()
    h.cluster = cluster(hub_pb)
    ch.run(cli_bin, "status", env=ch.base_env(NETREEL_HUB=h.addr), expect=0)
    assert len(h.metadata) == 1
    # --hub wins over the environment.
    ch.run(cli_bin, "status", "--hub", h.addr,
           env=ch.base_env(NETREEL_HUB=f"127.0.0.1:{ch.closed_port()}"), expect=0)
    # No --hub, no $NETREEL_HUB: the local recorder's data folder says where its hub is, with
    # mTLS and the token from the same folder ($NETREEL_DATA or --data name it; by default it
    # is tap --local's default folder, which $NETREEL_LOCAL_HUB=off keeps the tests from).
    m = fake_hub("mtls")
    m.cluster = cluster(hub_pb)
    m.token = "local-token"
    data = local_data(tmp_path / "data", certs, m.addr)
    ch.run(cli_bin, "status", env=ch.base_env(NETREEL_DATA=data), expect=0)
    assert m.metadata[-1]["authorization"] == "Bearer local-token"
    ch.run(cli_bin, "status", "--data", data, env=ch.base_env(), expect=0)
    assert len(m.metadata) == 2
    # --hub with --data: that folder's credentials for the hub given.
    ch.run(cli_bin, "status", "--hub", m.addr, "--data", data, env=ch.base_env(), expect=0)
    # A flag or $NETREEL_TOKEN wins over the folder's token: the hub refuses the wrong one.
    r = ch.run(cli_bin, "status", "--data", data, env=ch.base_env(NETREEL_TOKEN="wrong"),
               expect=1)
    assert "UNAUTHENTICATED" in ch.one_error_line(r)


def test_local_hub_missing_or_gone(cli_bin, certs, tmp_path, fake_tools):
    d = tmp_path / "empty"
    d.mkdir()
    r = ch.run(cli_bin, "status", "--data", d, env=ch.base_env(), expect=1)
    line = ch.one_error_line(r)
    assert "no local hub" in line and "hub.addr" in line, line
    # Left by a tap --local that was killed: named, when the folder was given ...
    gone = local_data(tmp_path / "gone", certs, f"127.0.0.1:{ch.closed_port()}")
    r = ch.run(cli_bin, "pcapdump", "--data", gone, cwd=tmp_path, env=ch.base_env(), expect=1)
    assert "does not answer" in ch.one_error_line(r)
    # ... and skipped when it is only the default folder: on to the cluster.
    tools = fake_tools(kubectl=False)
    env = tools.env(HOME=tmp_path / "home", XDG_DATA_HOME=tmp_path / "xdg")
    del env["NETREEL_LOCAL_HUB"]
    if os.geteuid() != 0:
        local_data(tmp_path / "xdg" / "netreel", certs, f"127.0.0.1:{ch.closed_port()}")
        r = ch.run(cli_bin, "status", env=env, expect=4)
        assert "kubectl is not on PATH" in ch.one_error_line(r)
    d = tmp_path / "badaddr"
    local_data(d, certs, "not an address")
    r = ch.run(cli_bin, "status", "--data", d, env=ch.base_env(), expect=1)
    assert "hub.addr" in ch.one_error_line(r)


def test_cluster_port_forward_with_token_and_mtls(cli_bin, fake_hub, hub_pb, certs,
                                                  fake_tools, tmp_path):
    """Nothing local: kubectl port-forward to service/netreel-hub in the release namespace,
    the token from Secret netreel-hub-token, the CA and client certificate from netreel-tls."""
    h = fake_hub("mtls")
    h.token = "cluster-token"
    h.chunks = [ch.pcapng_bytes(4)]
    h.summary = ch.summary(hub_pb, packets=4)
    h.cluster = cluster(hub_pb)
    tools = fake_tools()
    tools.state["forward_to"] = h.addr
    tools.save()
    tools.set_secret("rec", "netreel-hub-token", token="cluster-token")
    tools.set_secret("rec", "netreel-tls", ca_crt=certs.ca.read_bytes(),
                     client_crt=certs.client_cert.read_bytes(),
                     client_key=certs.client_key.read_bytes())
    out = tmp_path / "out"
    out.mkdir()
    r = ch.run(cli_bin, "pcapdump", "--time=1m", "--dest", out, "--release-namespace", "rec",
               env=tools.env(TMPDIR=tmp_path), expect=0)
    assert len(list(out.iterdir())) == 1, r.where()
    assert h.metadata[-1]["authorization"] == "Bearer cluster-token"
    calls = [c for c in tools.calls() if c[0] == "kubectl"]
    pf = [c for c in calls if "port-forward" in c]
    assert pf == [["kubectl", "port-forward", "--namespace", "rec", "--address", "127.0.0.1",
                   "service/netreel-hub", ":8898"]], calls
    # The certificates were in a private folder that is gone now.
    assert not [p for p in tmp_path.iterdir() if p.name.startswith("netreel-tls-")]
    # $NETREEL_NAMESPACE names the release namespace too; status goes the same way.
    r = ch.run(cli_bin, "status", env=tools.env(TMPDIR=tmp_path, NETREEL_NAMESPACE="rec"),
               expect=0)
    assert "node-a" in r.stdout
    # The port-forwards were stopped.
    time.sleep(0.2)
    import subprocess
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert str(tools.bin / "kubectl") not in ps


def test_cluster_without_secrets_is_plaintext(cli_bin, fake_hub, hub_pb, fake_tools):
    h = fake_hub()
    h.cluster = cluster(hub_pb)
    tools = fake_tools()
    tools.state["forward_to"] = h.addr
    tools.save()
    ch.run(cli_bin, "status", env=tools.env(), expect=0)
    assert "authorization" not in h.metadata[-1]


def test_cluster_release_missing(cli_bin, fake_tools):
    tools = fake_tools()  # no service to forward to
    r = ch.run(cli_bin, "status", "--release-namespace", "nope", env=tools.env(), expect=1)
    line = ch.one_error_line(r)
    assert "port-forward" in line and "nope" in line and "not found" in line


def test_no_kubectl_or_context_exit_4(cli_bin, fake_tools, tmp_path):
    tools = fake_tools(kubectl=False)
    for cmd in ("status", "pcapdump"):
        r = ch.run(cli_bin, cmd, cwd=tmp_path, env=tools.env(), expect=4)
        assert "kubectl is not on PATH" in ch.one_error_line(r)
    tools = ch.FakeTools(tmp_path / "t2")
    tools.state["context"] = ""
    tools.save()
    r = ch.run(cli_bin, "status", env=tools.env(), expect=4)
    assert "no current context" in ch.one_error_line(r)
    assert list(p for p in tmp_path.iterdir() if p.suffix == ".part") == []
