"""The Helm chart (helm/netreel), checked the way a cluster would see it, without a cluster.

A real helm binary lints and renders the chart with its defaults, with every documented value
set (tests/helm/values-full.yaml) and with the variants one file cannot hold at once; the tests
read the rendered objects and assert what a user relies on: the arguments each program gets,
capabilities, resources, RBAC, TLS and the token wired into every part, the schema's refusals.
The objects are validated offline against the Kubernetes OpenAPI schemas (tests/helm/
validate.mjs). Where a program of the chart already exists in NETREEL_BUILD/bin, it is started
with the arguments the chart gives it and the certificates the chart made.

helm and the validator come from `make deps` (mk/helm.sh, cached outside the repository);
NETREEL_HELM names another helm binary.
"""

import base64
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from cli_helpers import free_port

REPO = Path(__file__).resolve().parents[3]
CHART = REPO / "helm" / "netreel"
FULL_VALUES = REPO / "tests" / "helm" / "values-full.yaml"
VALIDATOR = REPO / "tests" / "helm" / "validate.mjs"
NS = "recorder"
CAPS = {"capture": ["NET_RAW", "NET_ADMIN"], "data-owner": ["CHOWN"]}
# tap.tls (the default): the capture loads eBPF and creates uprobes (SYS_ADMIN) on libssl files
# of other users' processes (SYS_PTRACE), so it starts as root to hold them (no ambient
# capabilities in Kubernetes).
CAPS_TLS = ["NET_RAW", "NET_ADMIN", "SYS_ADMIN", "SYS_PTRACE"]


def decrypts(c):
    """The capture container records decrypted TLS (tap.tls)."""
    return c["name"] == "capture" and "--tls" in c["args"]


def cache_dir():
    return Path(subprocess.run([str(REPO / "mk" / "helm.sh"), "--where"], capture_output=True,
                               text=True, check=True).stdout.strip())


@pytest.fixture(scope="session")
def helm():
    path = os.environ.get("NETREEL_HELM") or str(cache_dir() / "bin" / "helm")
    if not os.access(path, os.X_OK):
        pytest.fail(f"no helm at {path}: run `make deps` (mk/helm.sh installs it)", pytrace=False)
    return path


def run_helm(helm, *args, check=True):
    r = subprocess.run([helm, *args], capture_output=True, text=True, timeout=120)
    if check and r.returncode != 0:
        pytest.fail(f"helm {' '.join(args)} failed ({r.returncode}):\n{r.stderr}", pytrace=False)
    return r


def template_args(sets=(), files=(), strings=(), namespace=NS, release="netreel"):
    args = ["template", release, str(CHART), "--namespace", namespace]
    for f in files:
        args += ["-f", str(f)]
    for s in sets:
        args += ["--set", s]
    for s in strings:
        args += ["--set-string", s]
    return args


def render(helm, tmp_path=None, sets=(), files=(), values=None, strings=(), namespace=NS):
    """helm template -> list of objects (dicts)."""
    args = template_args(sets=sets, files=files, strings=strings, namespace=namespace)
    if values is not None:
        f = Path(tmp_path or "/tmp") / f"values-{os.getpid()}-{time.monotonic_ns()}.yaml"
        f.write_text(yaml.safe_dump(values))
        args += ["-f", str(f)]
    r = run_helm(helm, *args)
    return [d for d in yaml.safe_load_all(r.stdout) if d]


def render_error(helm, sets=(), files=()):
    r = run_helm(helm, *template_args(sets=sets, files=files), check=False)
    assert r.returncode != 0, f"helm accepted {sets or files}"
    return r.stderr


def one(objs, kind, name=None):
    found = [o for o in objs if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]
    assert len(found) == 1, f"{len(found)} {kind} {name or ''} in {[o['kind'] for o in objs]}"
    return found[0]


def kinds(objs):
    return sorted(f"{o['kind']}/{o['metadata']['name']}" for o in objs)


def pod_specs(objs):
    return [(o, o["spec"]["template"]["spec"]) for o in objs if o["kind"] in ("DaemonSet", "Deployment")]


def containers(objs):
    """(workload, container) for every container and init container."""
    return [(o, c) for o, spec in pod_specs(objs)
            for c in spec.get("initContainers", []) + spec["containers"]]


def container(objs, name):
    found = [c for _, c in containers(objs) if c["name"] == name]
    assert len(found) == 1, f"{len(found)} containers named {name}"
    return found[0]


def flags(c):
    """--name=value arguments as {name: value}; a bare --name maps to True."""
    out = {}
    for a in c["args"]:
        assert a.startswith("--"), f"{c['name']}: argument {a!r} is not a --flag"
        name, eq, value = a[2:].partition("=")
        out[name] = value if eq else True
    return out


@pytest.fixture(scope="session")
def defaults(helm):
    return render(helm)


@pytest.fixture(scope="session")
def full(helm):
    return render(helm, files=[FULL_VALUES])


# Values one file cannot hold together with the rest, each rendered on its own.
VARIANTS = {
    "bpf": {"tap": {"bpfOverride": "net 10.0.0.0/8 and not port 22"}},
    "no-tls-no-auth": {"tls": {"enabled": False}, "auth": {"enabled": False}},
    "own-secrets": {"tls": {"existingSecret": "my-certs"}, "auth": {"existingSecret": "my-token"}},
    "digest": {"image": {"digest": "sha256:" + "ab" * 32}},
    "tmpfs": {"storage": {"type": "emptyDir", "emptyDir": {"medium": "Memory"}}},
    "hostpath": {"storage": {"type": "hostPath", "hostPath": {"path": "/srv/netreel"}}},
    "quiet": {"metrics": {"enabled": False}, "networkPolicy": {"enabled": False}, "headless": False},
    "off": {"pcapdump": {"enabled": False}},
}


@pytest.fixture(scope="session")
def variants(helm, tmp_path_factory):
    d = tmp_path_factory.mktemp("variants")
    return {name: render(helm, d, values=v) for name, v in VARIANTS.items()}


# ---- lint and render ------------------------------------------------------------------------------

def test_lint_strict_defaults_and_every_value(helm):
    for files in ([], [FULL_VALUES]):
        args = ["lint", "--strict", str(CHART)]
        for f in files:
            args += ["-f", str(f)]
        r = run_helm(helm, *args)
        assert "0 chart(s) failed" in r.stdout, r.stdout


def leaves(d, prefix=""):
    out = {}
    for k, v in d.items():
        p = f"{prefix}.{k}" if prefix else k
        if isinstance(v, dict) and v:
            out.update(leaves(v, p))
        else:
            out[p] = v
    return out


def test_every_documented_value_is_exercised():
    """Each key of values.yaml is set to another value by values-full.yaml or a variant."""
    defaults_ = leaves(yaml.safe_load((CHART / "values.yaml").read_text()))
    changed = set()
    for overlay in [yaml.safe_load(FULL_VALUES.read_text()), *VARIANTS.values()]:
        for k, v in leaves(overlay).items():
            if k not in defaults_ or v != defaults_[k]:
                changed.add(k)
    # A map key (tolerations, nodeSelector...) counts through its parent.
    missing = [k for k in defaults_ if k not in changed and
               not any(c.startswith(k + ".") for c in changed)]
    assert not missing, f"values never set by a test: {missing}"
    full_keys = set(leaves(yaml.safe_load(FULL_VALUES.read_text())))
    absent = [k for k in defaults_ if k not in full_keys and not any(f.startswith(k + ".") for f in full_keys)]
    assert not absent, f"values-full.yaml lacks {absent}"


def test_defaults_render_the_whole_installation(defaults):
    assert kinds(defaults) == sorted([
        "ClusterRole/netreel-capture-recorder", "ClusterRoleBinding/netreel-capture-recorder",
        "DaemonSet/netreel-node", "Deployment/netreel-hub", "NetworkPolicy/netreel-hub",
        "Secret/netreel-hub-token", "Secret/netreel-tls", "Service/netreel-hub",
        "Service/netreel-store", "ServiceAccount/netreel-hub", "ServiceAccount/netreel-node",
    ])
    for o in defaults:
        if o["kind"] not in ("ClusterRole", "ClusterRoleBinding"):
            assert o["metadata"]["namespace"] == NS, o["metadata"]
        assert o["metadata"]["labels"]["app.kubernetes.io/name"] == "netreel"
    assert one(defaults, "Service", "netreel-hub")["spec"]["ports"][0]["port"] == 8898


# ---- the programs' arguments ----------------------------------------------------------------------

def test_capture_arguments_follow_the_values(defaults, full):
    d = flags(container(defaults, "capture"))
    assert d == {
        "interface": "any", "snaplen": "262144", "buffer-size": "64MiB", "kube": True,
        "pod-regex": ".*", "store": "127.0.0.1:8897", "tls-ca": "/etc/netreel/tls/ca.crt",
        "tls-cert": "/etc/netreel/tls/capture.crt", "tls-key": "/etc/netreel/tls/capture.key",
        "batch-bytes": "1MiB", "batch-time": "200ms", "spool-size": "256MiB",
        "tls": True, "user": "netreel", "metrics-listen": ":9101", "log-level": "info",
    }
    f = flags(container(full, "capture"))
    assert f["pod-regex"] == "^(web|api)-.*"
    assert f["namespaces"] == "shop,payments"
    assert f["excluded-namespaces"] == "kube-system"
    assert f["interface"] == "eth0,eth1"
    assert (f["snaplen"], f["buffer-size"]) == ("65535", "128MiB")
    assert (f["batch-bytes"], f["batch-time"], f["spool-size"]) == ("2MiB", "150ms", "300MiB")
    assert f["record-self"] is True and f["kube"] is True
    assert f["store"] == "127.0.0.1:18897"
    assert f["metrics-listen"] == ":19101" and f["log-level"] == "debug"
    assert f["filter"] == "tcp"  # extraArgs
    assert "bpf-override" not in f
    assert "tls" not in f and "user" not in f  # tap.tls=false


def test_bpf_override_replaces_pod_targeting(variants):
    objs = variants["bpf"]
    f = flags(container(objs, "capture"))
    assert f["bpf-override"] == "net 10.0.0.0/8 and not port 22"
    for gone in ("kube", "pod-regex", "namespaces", "excluded-namespaces"):
        assert gone not in f
    # No API access at all: no RBAC, no token in the pod.
    assert not [o for o in objs if o["kind"] in ("ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding")]
    spec = one(objs, "DaemonSet")["spec"]["template"]["spec"]
    assert spec["automountServiceAccountToken"] is False
    assert not [v for v in spec["volumes"] if "projected" in v]


def test_store_arguments_follow_the_values(defaults, full):
    assert flags(container(defaults, "store")) == {
        "listen": ":8897", "data-dir": "/data", "time-interval": "1m", "max-time": "1h",
        "max-size": "500MB", "min-free-disk": "5%", "sync-interval": "1s",
        "tls-ca": "/etc/netreel/tls/ca.crt",
        "tls-cert": "/etc/netreel/tls/store.crt", "tls-key": "/etc/netreel/tls/store.key",
        "ingest-peers": "netreel-capture", "read-peers": "netreel-hub",
        "metrics-listen": ":9102", "log-level": "info",
    }
    f = flags(container(full, "store"))
    assert (f["time-interval"], f["max-time"], f["max-size"], f["min-free-disk"],
            f["sync-interval"]) == ("30s", "2h30m", "2GiB", "10%", "2s")
    assert f["listen"] == ":18897" and f["metrics-listen"] == ":19102"
    assert f["log-level"] == "warn"  # extraArgs come last and win
    # The certificates the chart makes are named after the release's parts.
    assert (f["ingest-peers"], f["read-peers"]) == ("rec-capture", "rec-hub")


def test_store_peers_only_with_the_charts_own_certificates(variants):
    """Certificates from tls.existingSecret have names the chart does not know, and without
    TLS there are none: then the store takes any certificate of the CA (docs/deploy.md)."""
    for which in ("own-secrets", "no-tls-no-auth"):
        f = flags(container(variants[which], "store"))
        assert "ingest-peers" not in f and "read-peers" not in f, (which, f)


def test_hub_arguments_follow_the_values(defaults, full):
    assert flags(container(defaults, "hub")) == {
        "listen": ":8898", "stores": f"dns:netreel-store.{NS}.svc.cluster.local:8897",
        "token-file": "/etc/netreel/token/token",
        "tls-ca": "/etc/netreel/tls/ca.crt", "tls-cert": "/etc/netreel/tls/hub.crt",
        "tls-key": "/etc/netreel/tls/hub.key", "store-tls-ca": "/etc/netreel/tls/ca.crt",
        "store-tls-cert": "/etc/netreel/tls/hub.crt", "store-tls-key": "/etc/netreel/tls/hub.key",
        "max-snapshots": "4", "memory-budget": "128MiB", "metrics-listen": ":9103",
        "log-level": "info",
    }
    f = flags(container(full, "hub"))
    # The stores' headless Service, under the overridden name, namespace and cluster domain.
    assert f["stores"] == f"dns:rec-store.{NS}.svc.corp.internal:18897"
    one(full, "Service", "rec-store")
    assert f["listen"] == ":18898" and f["max-snapshots"] == "7" and f["metrics-listen"] == ":19103"
    assert f["memory-budget"] == "256MiB"


def test_the_hub_finds_every_store(defaults, full):
    for objs, name, port in ((defaults, "netreel", 8897), (full, "rec", 18897)):
        svc = one(objs, "Service", f"{name}-store")
        ds = one(objs, "DaemonSet", f"{name}-node")
        assert svc["spec"]["clusterIP"] == "None"
        # A store that is not ready is still listed: the hub names it in the summary.
        assert svc["spec"]["publishNotReadyAddresses"] is True
        labels = ds["spec"]["template"]["metadata"]["labels"]
        assert svc["spec"]["selector"].items() <= labels.items()
        assert ds["spec"]["selector"]["matchLabels"].items() <= labels.items()
        grpc = [p for p in svc["spec"]["ports"] if p["port"] == port]
        assert grpc and grpc[0]["targetPort"] == "store-grpc"
        hub = one(objs, "Deployment", f"{name}-hub")
        hub_svc = one(objs, "Service", f"{name}-hub")
        assert hub_svc["spec"]["selector"].items() <= hub["spec"]["template"]["metadata"]["labels"].items()


def test_every_container_knows_its_node(defaults, full):
    for objs in (defaults, full):
        for _, c in containers(objs):
            if c["name"] == "data-owner":
                continue
            env = {e["name"]: e for e in c.get("env", [])}
            assert env["NODE_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "spec.nodeName", c["name"]


# ---- privileges -----------------------------------------------------------------------------------

def test_capabilities_exactly_as_stated_nothing_privileged(defaults, full, variants):
    for objs in (defaults, full, *variants.values()):
        for o, spec in pod_specs(objs):
            assert "privileged" not in json.dumps(spec.get("securityContext", {}))
            # The host's PID namespace only for the capture's decrypted TLS (tap.tls).
            tls = any(decrypts(c) for c in spec["containers"])
            assert bool(spec.get("hostPID")) == tls, o["metadata"]["name"]
            assert not spec.get("hostIPC")
        for _, c in containers(objs):
            sc = c["securityContext"]
            assert sc["privileged"] is False, c["name"]
            # The capture alone: its file capabilities need exec without no_new_privs (it sets
            # no_new_privs itself once its handles are open).
            assert sc["allowPrivilegeEscalation"] is (c["name"] == "capture"), c["name"]
            assert sc["readOnlyRootFilesystem"] is True, c["name"]
            assert sc["capabilities"]["drop"] == ["ALL"], c["name"]
            want = CAPS_TLS if decrypts(c) else CAPS.get(c["name"], [])
            assert sorted(sc["capabilities"].get("add", [])) == sorted(want), c["name"]
            if decrypts(c):
                assert sc["runAsUser"] == 0 and sc["runAsNonRoot"] is False
            elif c["name"] in ("store", "hub", "capture"):
                assert sc["runAsNonRoot"] is True and sc["runAsUser"] != 0, c["name"]
            for m in c.get("volumeMounts", []):
                if m["name"] != "data":
                    assert m.get("readOnly") is True, (c["name"], m)
    # The only host path is the store's data folder, in the default storage.
    ds = one(defaults, "DaemonSet")["spec"]["template"]["spec"]
    host = [v for v in ds["volumes"] if "hostPath" in v]
    assert host == [{"name": "data", "hostPath": {"path": "/var/lib/netreel", "type": "DirectoryOrCreate"}}]


def test_tap_tls_on_by_default_and_off_exactly_as_before(helm, defaults, full):
    """tap.tls (default true): --tls, the host's PID namespace, SYS_ADMIN and SYS_PTRACE, root
    until the capture drops to the image's user. tap.tls=false: none of it, the same DaemonSet
    as the chart made before tap.tls existed."""
    spec = one(defaults, "DaemonSet")["spec"]["template"]["spec"]
    cap = container(defaults, "capture")
    assert spec["hostPID"] is True
    assert "--tls" in cap["args"] and "--user=netreel" in cap["args"]
    assert sorted(cap["securityContext"]["capabilities"]["add"]) == sorted(CAPS_TLS)
    assert cap["securityContext"]["runAsUser"] == 0
    # Secrets go into snapshots (DSB): no key log file on the node.
    assert not [a for a in cap["args"] if a.startswith("--tls-keylog-file")]
    # Nothing else changes: no host path but the data folder (/proc is the host's through
    # hostPID, /sys/kernel/btf is in the container's own sysfs), no other container touched.
    assert [v["name"] for v in spec["volumes"] if "hostPath" in v] == ["data"]
    assert [m["name"] for m in cap["volumeMounts"]] == ["tls-capture", "kube-api-access"]
    off = render(helm, sets=["tap.tls=false"])
    ospec = one(off, "DaemonSet")["spec"]["template"]["spec"]
    ocap = container(off, "capture")
    assert "hostPID" not in ospec
    assert "--tls" not in ocap["args"] and not [a for a in ocap["args"] if a.startswith("--user")]
    assert ocap["securityContext"]["capabilities"]["add"] == ["NET_RAW", "NET_ADMIN"]
    assert ocap["securityContext"]["runAsUser"] == 65532
    assert ocap["securityContext"]["runAsNonRoot"] is True
    # Off is the chart as it was: only the capture's arguments, context and hostPID differ.
    strip = {"hostPID", "containers"}
    assert {k: v for k, v in ospec.items() if k not in strip} == \
        {k: v for k, v in spec.items() if k not in strip}
    assert container(off, "store") == container(defaults, "store")
    assert {k: v for k, v in ocap.items() if k not in ("args", "securityContext")} == \
        {k: v for k, v in cap.items() if k not in ("args", "securityContext")}
    assert [a for a in cap["args"] if a not in ("--tls", "--user=netreel")] == ocap["args"]


def caps_at_exec(sc, tmp_path):
    """What a process of the capture's container holds right after exec of a program that carries
    the image's file capabilities (cap_net_admin,cap_net_raw=ep), as a container runtime sets it
    up from the securityContext: bounding set = the added capabilities, no inheritable or ambient
    set (Kubernetes has none), runAsUser, no_new_privs unless allowPrivilegeEscalation."""
    # Under /tmp, not tmp_path: pytest's folders are closed to the user runAsUser names.
    d = Path(tempfile.mkdtemp(prefix=f"netreel-caps-{tmp_path.name}-"))
    d.chmod(0o755)
    prog = d / "cat"
    shutil.copy("/bin/cat", prog)
    subprocess.run(["setcap", "cap_net_raw,cap_net_admin+ep", str(prog)], check=True)
    caps = ",".join("+" + c.lower() for c in sc["capabilities"]["add"])
    argv = ["setpriv", f"--bounding-set=-all,{caps}", "--inh-caps=-all"]
    if sc["runAsUser"] != 0:
        argv += [f"--reuid={sc['runAsUser']}", f"--regid={sc['runAsGroup']}", "--clear-groups"]
    if not sc["allowPrivilegeEscalation"]:
        argv += ["--no-new-privs"]
    try:
        r = subprocess.run(argv + ["--", str(prog), "/proc/self/status"], capture_output=True,
                           text=True, timeout=10, check=True)
    finally:
        shutil.rmtree(d)
    eff = int(re.search(r"^CapEff:\s*([0-9a-f]+)", r.stdout, re.M).group(1), 16)
    bits = {"NET_ADMIN": 12, "NET_RAW": 13, "SYS_PTRACE": 19, "SYS_ADMIN": 21}
    return sorted(name for name, bit in bits.items() if eff >> bit & 1)


def test_capture_really_holds_what_tap_tls_adds(helm, defaults, tmp_path):
    """The capabilities in the list are only a bounding set: a non-root process gets at exec just
    its file's capabilities. With tap.tls the capture must hold SYS_ADMIN when it loads eBPF,
    hence root; without, it holds NET_RAW + NET_ADMIN from its file, as before."""
    if os.geteuid() != 0 or not shutil.which("setpriv") or not shutil.which("setcap"):
        pytest.skip("needs root, setpriv and setcap to build the container's capability sets")
    on = container(defaults, "capture")["securityContext"]
    assert caps_at_exec(on, tmp_path / "on") == sorted(CAPS_TLS)
    off = container(render(helm, sets=["tap.tls=false"]), "capture")["securityContext"]
    assert caps_at_exec(off, tmp_path / "off") == ["NET_ADMIN", "NET_RAW"]
    # The same list as a non-root user (what tap.tls would do without runAsUser 0): no SYS_ADMIN.
    nonroot = dict(on, runAsUser=65532, runAsGroup=65532)
    assert caps_at_exec(nonroot, tmp_path / "nr") == ["NET_ADMIN", "NET_RAW"]


def test_host_network_only_on_the_daemonset(defaults, full):
    for objs in (defaults, full):
        for o, spec in pod_specs(objs):
            assert bool(spec.get("hostNetwork")) == (o["kind"] == "DaemonSet"), o["metadata"]["name"]
            if o["kind"] == "DaemonSet":
                assert spec["dnsPolicy"] == "ClusterFirstWithHostNet"


def test_resources_on_every_container(defaults, full, variants):
    for objs in (defaults, full, *variants.values()):
        for _, c in containers(objs):
            r = c["resources"]
            assert r["requests"]["cpu"] and r["requests"]["memory"], c["name"]
            assert r["limits"]["memory"], c["name"]
    f = container(full, "capture")["resources"]
    assert f == {"requests": {"cpu": "250m", "memory": "256Mi"}, "limits": {"cpu": "2", "memory": "1Gi"}}
    assert container(full, "store")["resources"]["limits"]["memory"] == "384Mi"
    assert container(full, "hub")["resources"]["requests"]["cpu"] == "75m"
    assert container(full, "hub")["resources"]["limits"] == {"cpu": "500m", "memory": "300Mi"}


def test_hub_memory_limit_follows_the_budget(helm, defaults):
    # Unless given, 64MiB + maxSnapshots x expectedNodes x 64KiB (each snapshot's connection to
    # each store, with TLS; 32KiB without) + max(memoryBudget, maxSnapshots x expectedNodes x
    # 8KiB), in whole MiB: what the hub holds with that many snapshots of that many stores at once.
    def limit(*sets):
        return container(render(helm, sets=sets), "hub")["resources"]["limits"]

    assert container(defaults, "hub")["resources"]["limits"] == {"memory": "442Mi"}
    assert limit("hub.expectedNodes=16") == {"memory": "196Mi"}
    assert limit("hub.expectedNodes=4096") == {"memory": "1216Mi"}  # the budget holds the floors
    # 8 snapshots of 4096 stores at the floors: 8 x 32 MiB, more than the budget.
    assert limit("hub.expectedNodes=4096", "hub.maxSnapshots=8") == {"memory": "2368Mi"}
    assert limit("hub.expectedNodes=1024", "hub.memoryBudget=1GiB") == {"memory": "1344Mi"}
    assert limit("hub.expectedNodes=1024", "hub.maxSnapshots=1") == {"memory": "256Mi"}
    # Without TLS a connection costs half as much.
    assert limit("tls.enabled=false") == {"memory": "317Mi"}
    assert limit("tls.enabled=false", "hub.expectedNodes=4096") == {"memory": "704Mi"}
    assert limit("hub.resources.limits.cpu=500m") == {"cpu": "500m", "memory": "442Mi"}
    assert limit("hub.resources.limits.memory=300Mi") == {"memory": "300Mi"}
    assert "expectedNodes" in render_error(helm, sets=["hub.expectedNodes=0"])


def test_rbac_no_wider_than_watching_pods(defaults):
    roles = [o for o in defaults if o["kind"] in ("ClusterRole", "Role")]
    assert len(roles) == 1
    assert roles[0]["rules"] == [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]}]
    binding = one(defaults, "ClusterRoleBinding")
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                                  "name": roles[0]["metadata"]["name"]}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "netreel-node", "namespace": NS}]
    # The token reaches the capture alone; the hub and the store get none.
    ds = one(defaults, "DaemonSet")["spec"]["template"]["spec"]
    hub = one(defaults, "Deployment")["spec"]["template"]["spec"]
    assert ds["serviceAccountName"] == "netreel-node" and ds["automountServiceAccountToken"] is False
    assert hub["serviceAccountName"] == "netreel-hub" and hub["automountServiceAccountToken"] is False
    for sa in (o for o in defaults if o["kind"] == "ServiceAccount"):
        assert sa["automountServiceAccountToken"] is False
    api_mounts = {c["name"] for _, c in containers(defaults)
                  for m in c.get("volumeMounts", []) if m["mountPath"].startswith("/var/run/secrets/kubernetes.io")}
    assert api_mounts == {"capture"}


def test_every_node_records_by_default(defaults, full):
    ds = one(defaults, "DaemonSet")["spec"]["template"]["spec"]
    assert ds["tolerations"] == [{"operator": "Exists"}]
    assert "nodeSelector" not in ds and "priorityClassName" not in ds
    f = one(full, "DaemonSet")["spec"]["template"]["spec"]
    assert f["priorityClassName"] == "system-node-critical"
    assert f["nodeSelector"] == {"kubernetes.io/os": "linux"}
    assert f["tolerations"][0]["key"] == "node-role.kubernetes.io/control-plane"
    assert "nodeAffinity" in f["affinity"]
    assert f["imagePullSecrets"] == [{"name": "regcred"}]
    assert one(full, "DaemonSet")["spec"]["updateStrategy"]["rollingUpdate"]["maxUnavailable"] == "25%"
    h = one(full, "Deployment")["spec"]["template"]
    assert h["spec"]["priorityClassName"] == "infra-high"
    assert h["spec"]["tolerations"][0]["value"] == "infra"
    assert h["metadata"]["annotations"]["example.com/hub"] == "yes"
    assert one(full, "DaemonSet")["spec"]["template"]["metadata"]["annotations"]["example.com/node"] == "yes"
    svc = one(full, "Service", "rec-hub")
    assert svc["spec"]["type"] == "NodePort" and svc["metadata"]["annotations"] == {"example.com/team": "netops"}


def test_images_and_probes(defaults, full, variants):
    for _, c in containers(defaults):
        assert c["image"] == "netreel:0.1.0-dev" and c["imagePullPolicy"] == "IfNotPresent"
    for _, c in containers(full):
        assert c["image"] == "registry.example/netreel/netreel:9.9.9" and c["imagePullPolicy"] == "Always"
    for _, c in containers(variants["digest"]):
        assert c["image"] == "netreel@sha256:" + "ab" * 32
    # Every long-running container: probes on its own /healthz (gRPC probes cannot speak TLS).
    for objs in (defaults, full):
        for _, c in containers(objs):
            if c["name"] == "data-owner":
                continue
            metrics_port = flags(c)["metrics-listen"].lstrip(":")
            ports = {p["name"]: p["containerPort"] for p in c["ports"]}
            for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                get = c[probe]["httpGet"]
                assert get["path"] == "/healthz", (c["name"], probe)
                assert str(ports.get(get["port"], get["port"])) == metrics_port, (c["name"], probe)


# ---- TLS and the token ----------------------------------------------------------------------------

def secret_files(secret, d):
    d.mkdir(parents=True, exist_ok=True)
    for k, v in secret["data"].items():
        (d / k).write_bytes(base64.b64decode(v))
    return d


def openssl(*args):
    r = subprocess.run(["openssl", *args], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, f"openssl {' '.join(args)}: {r.stderr}"
    return r.stdout


def test_certificates_made_for_each_part(defaults, tmp_path):
    d = secret_files(one(defaults, "Secret", "netreel-tls"), tmp_path)
    assert sorted(p.name for p in d.iterdir()) == sorted(
        ["ca.crt", "store.crt", "store.key", "capture.crt", "capture.key", "hub.crt", "hub.key",
         "client.crt", "client.key"])
    assert "ca.key" not in one(defaults, "Secret", "netreel-tls")["data"]
    for part in ("store", "capture", "hub", "client"):
        assert openssl("verify", "-CAfile", str(d / "ca.crt"), str(d / f"{part}.crt")).strip().endswith("OK")
        # The key belongs to the certificate.
        assert openssl("x509", "-in", str(d / f"{part}.crt"), "-noout", "-pubkey") == \
            openssl("pkey", "-in", str(d / f"{part}.key"), "-pubout")
        text = openssl("x509", "-in", str(d / f"{part}.crt"), "-noout", "-text")
        assert "TLS Web Server Authentication" in text and "TLS Web Client Authentication" in text
    store = openssl("x509", "-in", str(d / "store.crt"), "-noout", "-ext", "subjectAltName")
    # The hub dials the headless Service's name; the capture dials 127.0.0.1.
    for name in ("DNS:netreel-store", f"DNS:netreel-store.{NS}.svc",
                 f"DNS:netreel-store.{NS}.svc.cluster.local", "IP Address:127.0.0.1"):
        assert name in store
    hub = openssl("x509", "-in", str(d / "hub.crt"), "-noout", "-ext", "subjectAltName")
    # kubectl port-forward reaches the hub on localhost.
    for name in ("DNS:netreel-hub", f"DNS:netreel-hub.{NS}.svc.cluster.local", "DNS:localhost",
                 "IP Address:127.0.0.1"):
        assert name in hub


def mounted_files(spec, c, prefix):
    """Files a container sees under prefix, from the Secret volumes it mounts."""
    vols = {v["name"]: v for v in spec.get("volumes", [])}
    out = {}
    for m in c.get("volumeMounts", []):
        v = vols[m["name"]]
        if "secret" in v:
            for item in v["secret"]["items"]:
                out[f"{m['mountPath']}/{item['path']}"] = (v["secret"]["secretName"], item["key"])
    return {k: v for k, v in out.items() if k.startswith(prefix)}


@pytest.mark.parametrize("which", ["defaults", "full", "own-secrets"])
def test_tls_and_token_wired_into_every_part(which, defaults, full, variants):
    objs = {"defaults": defaults, "full": full}.get(which) or variants[which]
    tls_name = "my-certs" if which == "own-secrets" else ("rec-tls" if which == "full" else "netreel-tls")
    token_name = "my-token" if which == "own-secrets" else tls_name.replace("-tls", "-hub-token")
    own = {"capture": "capture", "store": "store", "hub": "hub"}
    for o, spec in pod_specs(objs):
        for c in spec["containers"]:
            f = flags(c)
            files = mounted_files(spec, c, "/etc/netreel/")
            tls_flags = {k: v for k, v in f.items() if k.endswith(("tls-ca", "tls-cert", "tls-key"))}
            assert tls_flags, f"{c['name']} has no TLS flag"
            for flag, path in tls_flags.items():
                secret, key = files[path]
                assert secret == tls_name
                want = "ca.crt" if flag.endswith("ca") else f"{own[c['name']]}.{'crt' if flag.endswith('cert') else 'key'}"
                assert key == want, (c["name"], flag)
            # Each container mounts its own key and nobody else's.
            keys = {k for _, k in files.values()}
            assert {k for k in keys if k.endswith(".key")} == {f"{own[c['name']]}.key"}
            if c["name"] == "hub":
                assert files[f["token-file"]] == (token_name, "token")
    if which == "own-secrets":
        assert not [o for o in objs if o["kind"] == "Secret"]


def test_token_is_generated_and_long(defaults):
    token = base64.b64decode(one(defaults, "Secret", "netreel-hub-token")["data"]["token"]).decode()
    assert re.fullmatch(r"[A-Za-z0-9]{48}", token)


def test_pods_restart_when_certificates_or_token_change(defaults):
    """The checksum annotations are those of the Secrets rendered with them (made once)."""
    tls = one(defaults, "Secret", "netreel-tls")
    data = {"data": tls["data"], "stamp": tls["metadata"]["annotations"]["netreel.io/names"]}
    want = hashlib.sha256(json.dumps(data, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    for o in (one(defaults, "DaemonSet"), one(defaults, "Deployment")):
        assert o["spec"]["template"]["metadata"]["annotations"]["checksum/tls"] == want
    token = one(defaults, "Secret", "netreel-hub-token")["data"]["token"]
    hub = one(defaults, "Deployment")["spec"]["template"]["metadata"]["annotations"]
    assert hub["checksum/token"] == hashlib.sha256(token.encode()).hexdigest()


def test_tls_and_auth_off(variants):
    objs = variants["no-tls-no-auth"]
    assert not [o for o in objs if o["kind"] == "Secret"]
    for _, c in containers(objs):
        # (--tls is tap.tls, decrypted TLS in the recording, not the parts' mTLS.)
        assert not [a for a in c.get("args", []) if ("tls" in a and a != "--tls") or "token" in a], c["name"]
        assert not mounted_files({"volumes": []}, {"volumeMounts": []}, "/")


# ---- upgrades keep the certificates and the token (lookup) -----------------------------------------

# What `helm template --dry-run=server` asks of a cluster: discovery of the kinds the chart makes,
# and a GET of each object (the chart's lookups among them). Secrets in `secrets` exist; the rest
# does not.
API_KINDS = {
    "v1": [("secrets", "Secret", True), ("services", "Service", True),
           ("serviceaccounts", "ServiceAccount", True)],
    "apps/v1": [("daemonsets", "DaemonSet", True), ("deployments", "Deployment", True)],
    "rbac.authorization.k8s.io/v1": [("clusterroles", "ClusterRole", False),
                                     ("clusterrolebindings", "ClusterRoleBinding", False)],
    "networking.k8s.io/v1": [("networkpolicies", "NetworkPolicy", True)],
}


class FakeKubeAPI(BaseHTTPRequestHandler):
    secrets = {}  # name -> Secret object, in namespace NS

    def reply(self, code, body):
        b = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(b)))
        self.end_headers()
        self.wfile.write(b)

    def do_GET(self):
        path = self.path.split("?")[0]
        if path == "/version":
            return self.reply(200, {"major": "1", "minor": "30", "gitVersion": "v1.30.0"})
        if path == "/api":
            return self.reply(200, {"kind": "APIVersions", "versions": ["v1"]})
        if path == "/apis":
            groups = [{"name": gv.split("/")[0], "versions": [{"groupVersion": gv, "version": "v1"}],
                       "preferredVersion": {"groupVersion": gv, "version": "v1"}}
                      for gv in API_KINDS if "/" in gv]
            return self.reply(200, {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
        gv = "v1" if path == "/api/v1" else path[len("/apis/"):]
        if gv in API_KINDS:
            return self.reply(200, {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv,
                                    "resources": [{"name": n, "singularName": k.lower(), "namespaced": ns,
                                                   "kind": k, "verbs": ["get", "list", "create"]}
                                                  for n, k, ns in API_KINDS[gv]]})
        prefix = f"/api/v1/namespaces/{NS}/secrets/"
        if path.startswith(prefix) and path[len(prefix):] in self.secrets:
            return self.reply(200, self.secrets[path[len(prefix):]])
        return self.reply(404, {"kind": "Status", "apiVersion": "v1", "status": "Failure",
                                "reason": "NotFound", "code": 404})

    def log_message(self, *args):
        pass


@pytest.fixture
def cluster(tmp_path):
    """A kubeconfig whose cluster is FakeKubeAPI on a loopback port; yields its secrets dict."""
    FakeKubeAPI.secrets = {}
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeKubeAPI)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "fake",
        "clusters": [{"name": "fake", "cluster": {"server": f"http://127.0.0.1:{server.server_port}"}}],
        "contexts": [{"name": "fake", "context": {"cluster": "fake", "namespace": NS}}],
        "users": [{"name": "fake", "user": {}}]}))
    yield kubeconfig, FakeKubeAPI.secrets
    server.shutdown()
    server.server_close()


def render_on(helm, kubeconfig, *sets):
    args = template_args(sets=sets) + ["--dry-run=server", "--disable-openapi-validation",
                                       "--kubeconfig", str(kubeconfig)]
    return [d for d in yaml.safe_load_all(run_helm(helm, *args).stdout) if d]


def test_upgrades_keep_the_certificates_and_the_token(helm, cluster):
    kubeconfig, secrets = cluster
    first = render_on(helm, kubeconfig)
    tls, token = one(first, "Secret", "netreel-tls"), one(first, "Secret", "netreel-hub-token")
    # Installed (as helm leaves them: owned by the release), the next render (an upgrade) finds
    # both and keeps them, and so the pods' checksums.
    for name, obj in (("netreel-tls", tls), ("netreel-hub-token", token)):
        secrets[name] = json.loads(json.dumps(obj))
        secrets[name]["metadata"].setdefault("annotations", {}).update(
            {"meta.helm.sh/release-name": "netreel", "meta.helm.sh/release-namespace": NS})
    again = render_on(helm, kubeconfig, "pcapdump.maxTime=2h")
    assert one(again, "Secret", "netreel-tls")["data"] == tls["data"]
    assert one(again, "Secret", "netreel-hub-token")["data"] == token["data"]
    for kind in ("DaemonSet", "Deployment"):
        assert one(again, kind)["spec"]["template"]["metadata"]["annotations"] == \
            one(first, kind)["spec"]["template"]["metadata"]["annotations"]
    # Other names (here the cluster domain) need other certificates: new ones, same token.
    moved = render_on(helm, kubeconfig, "clusterDomain=corp.internal")
    assert one(moved, "Secret", "netreel-tls")["data"]["store.crt"] != tls["data"]["store.crt"]
    assert one(moved, "Secret", "netreel-hub-token")["data"] == token["data"]
    assert one(moved, "DaemonSet")["spec"]["template"]["metadata"]["annotations"]["checksum/tls"] != \
        one(first, "DaemonSet")["spec"]["template"]["metadata"]["annotations"]["checksum/tls"]
    # A Secret that lost a key is made anew rather than half used.
    del secrets["netreel-tls"]["data"]["hub.key"]
    remade = one(render_on(helm, kubeconfig), "Secret", "netreel-tls")["data"]
    assert set(remade) == set(tls["data"]) and remade["ca.crt"] != tls["data"]["ca.crt"]


# ---- storage, switches, network policy ------------------------------------------------------------

def volume(objs, name):
    spec = one(objs, "DaemonSet")["spec"]["template"]["spec"]
    return next(v for v in spec["volumes"] if v["name"] == name)


def test_storage_never_lost_to_eviction(defaults, full, variants, helm):
    # hostPath: the folder is handed to the store's user by an init container.
    ds = one(defaults, "DaemonSet")["spec"]["template"]["spec"]
    owner = ds["initContainers"][0]
    assert owner["command"] == ["chown", "-R", "65532:65532", "/data"]
    assert container(defaults, "store")["securityContext"]["runAsUser"] == 65532
    assert volume(variants["hostpath"], "data")["hostPath"]["path"] == "/srv/netreel"
    # emptyDir: sizeLimit as set (3GiB for a 2GiB maxSize), in bytes Kubernetes reads.
    assert volume(full, "data") == {"name": "data", "emptyDir": {"sizeLimit": str(3 * 2**30)}}
    assert "initContainers" not in one(full, "DaemonSet")["spec"]["template"]["spec"]
    # Unset: 1.5 x maxSize (500MB).
    tmpfs = volume(variants["tmpfs"], "data")["emptyDir"]
    assert tmpfs == {"medium": "Memory", "sizeLimit": "750000000"}
    err = render_error(helm, sets=["storage.type=emptyDir", "storage.emptyDir.sizeLimit=600MB"])
    assert "storage.emptyDir.sizeLimit 600MB is too close to pcapdump.maxSize 500MB" in err
    assert "at least 1.25 x maxSize" in err
    ok = render(helm, sets=["storage.type=emptyDir", "storage.emptyDir.sizeLimit=625MB"])
    assert volume(ok, "data")["emptyDir"]["sizeLimit"] == "625000000"


def test_switches(variants):
    off = variants["off"]
    assert kinds(off) == sorted(["Deployment/netreel-hub", "NetworkPolicy/netreel-hub",
                                 "Secret/netreel-hub-token", "Secret/netreel-tls",
                                 "Service/netreel-hub", "ServiceAccount/netreel-hub"])
    quiet = variants["quiet"]
    assert not [o for o in quiet if o["kind"] == "NetworkPolicy"]
    for o, _ in pod_specs(quiet):
        assert "prometheus.io/scrape" not in (o["spec"]["template"]["metadata"].get("annotations") or {})


def test_network_policy_lets_only_clients_reach_the_hub(defaults, full):
    np = one(defaults, "NetworkPolicy")
    hub = one(defaults, "Deployment")
    assert np["spec"]["podSelector"]["matchLabels"].items() <= hub["spec"]["template"]["metadata"]["labels"].items()
    assert sorted(np["spec"]["policyTypes"]) == ["Egress", "Ingress"]
    ingress = {r["ports"][0]["port"]: r["from"] for r in np["spec"]["ingress"]}
    assert set(ingress) == {8898, 9103}
    assert ingress[8898] == [{"namespaceSelector": {}, "podSelector": {"matchLabels": {"netreel.io/client": "true"}}}]
    egress_ports = sorted((p["port"], p["protocol"]) for r in np["spec"]["egress"] for p in r["ports"])
    assert egress_ports == [(53, "TCP"), (53, "UDP"), (8897, "TCP")]
    f = {r["ports"][0]["port"]: r["from"] for r in one(full, "NetworkPolicy")["spec"]["ingress"]}
    assert f[18898][0]["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": "ops"}
    assert f[19103][0]["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": "monitoring"}
    # The DaemonSet's pods are on the host network: no policy pretends to guard them.
    node_labels = one(defaults, "DaemonSet")["spec"]["template"]["metadata"]["labels"]
    for p in (o for o in defaults if o["kind"] == "NetworkPolicy"):
        assert not p["spec"]["podSelector"]["matchLabels"].items() <= node_labels.items()


def test_notes_tell_the_pcapdump_command(helm):
    r = run_helm(helm, "install", "netreel", str(CHART), "--dry-run=client", "--namespace", NS)
    notes = r.stdout.split("NOTES:", 1)[1]
    assert "netreel pcapdump --time=5m" in notes
    assert f"kubectl -n {NS} port-forward service/netreel-hub 8898" in notes
    assert "WARNING" not in notes
    # tap.tls (default) says what it records and what it costs, and how to turn it off.
    assert "Decrypted TLS is on (tap.tls)" in notes and "--set tap.tls=false" in notes
    r = run_helm(helm, "install", "netreel", str(CHART), "--dry-run=client", "--set", "tls.enabled=false",
                 "--set", "tap.tls=false")
    notes = r.stdout.split("NOTES:", 1)[1]
    assert "WARNING: tls.enabled is false" in notes
    assert "Decrypted TLS" not in notes


# ---- the schema -----------------------------------------------------------------------------------

REJECTED = [
    (["pcapdump.maxTime=1 hour"], "at '/pcapdump/maxTime': '1 hour' does not match pattern"),
    (["pcapdump.maxTime=1h 30m"], "at '/pcapdump/maxTime': '1h 30m' does not match pattern"),
    (["pcapdump.maxTime=90"], "at '/pcapdump/maxTime': got number, want string"),
    (["pcapdump.timeInterval=1M"], "at '/pcapdump/timeInterval': '1M' does not match pattern"),
    (["pcapdump.maxSize=500 MB"], "at '/pcapdump/maxSize': '500 MB' does not match pattern"),
    (["pcapdump.maxSize=500mb"], "at '/pcapdump/maxSize': '500mb' does not match pattern"),
    (["tap.bufferSize=-64MiB"], "at '/tap/bufferSize': '-64MiB' does not match pattern"),
    (["pcapdump.maxSize=500"], "at '/pcapdump/maxSize': got number, want string"),
    (["pcapdump.minFreeDisk=5 %"], "at '/pcapdump/minFreeDisk': '5 %' does not match pattern"),
    (["pcapdump.minFreeDisk=101%"], "at '/pcapdump/minFreeDisk': '101%' does not match pattern"),
    (["tap.snaplen=big"], "at '/tap/snaplen': got string, want integer"),
    (["tap.snaplen=0"], "at '/tap/snaplen': minimum: got 0, want 1"),
    (["tap.namespaces=shop"], "at '/tap/namespaces': got string, want array"),
    (["tap.namespaces={Shop}"], "at '/tap/namespaces/0': 'Shop' does not match pattern"),
    (["pcapdump.enabled=yes"], "at '/pcapdump/enabled': got string, want boolean"),
    (["pcapdump.maxtime=1h"], "at '/pcapdump': additional properties 'maxtime' not allowed"),
    (["storage.type=pvc"], "at '/storage/type': value must be one of 'hostPath', 'emptyDir'"),
    (["store.port=70000"], "at '/store/port': maximum: got 70,000, want 65,535"),
    (["logLevel=verbose"], "at '/logLevel': value must be one of 'debug', 'info', 'warn', 'error'"),
    (["capture.extraArgs={-v}"], "at '/capture/extraArgs/0': '-v' does not match pattern"),
    (["tap.tls=yes"], "at '/tap/tls': got string, want boolean"),
    # Secrets go into the snapshots: no key log file on the nodes.
    (["tap.tlsKeylog=true"], "at '/tap': additional properties 'tlsKeylog' not allowed"),
]


@pytest.mark.parametrize("sets,message", REJECTED, ids=[s[0][0] for s in REJECTED])
def test_schema_rejects_bad_values(helm, sets, message):
    err = render_error(helm, sets=sets)
    assert "values don't meet the specifications of the schema" in err
    assert message in err, err


@pytest.mark.parametrize("sets,message", [
    (["pcapdump.timeInterval=0s"], 'pcapdump.timeInterval is "0s": it must be a duration above zero'),
    (["capture.spoolSize=0MiB"], 'capture.spoolSize is "0MiB": it must be a size above zero'),
])
def test_template_rejects_zero(helm, sets, message):
    assert message in render_error(helm, sets=sets)


def test_schema_accepts_what_the_programs_read(helm):
    # Durations and sizes as lib/util/parse.c reads them.
    objs = render(helm, sets=["pcapdump.maxTime=1h30m", "pcapdump.timeInterval=1.5s",
                              "pcapdump.maxSize=1.5GiB", "tap.bufferSize=64Mi", "capture.batchTime=250000us",
                              "capture.batchBytes=1048576B", "pcapdump.minFreeDisk=2.5%", "headless=true",
                              "pcapdump.syncInterval=250ms"])
    f = flags(container(objs, "store"))
    assert (f["max-time"], f["time-interval"], f["max-size"], f["min-free-disk"],
            f["sync-interval"]) == ("1h30m", "1.5s", "1.5GiB", "2.5%", "250ms")
    # syncInterval 0: each batch acknowledged only once synced, as the store reads it.
    assert flags(container(render(helm, strings=["pcapdump.syncInterval=0"]), "store"))[
        "sync-interval"] == "0"
    # maxTime 0: no time limit, as the store reads it.
    assert flags(container(render(helm, strings=["pcapdump.maxTime=0"]), "store"))["max-time"] == "0"


# ---- offline validation against the Kubernetes OpenAPI schemas ------------------------------------

def validate(objs, tmp_path):
    node_dir = cache_dir() / "node"
    if not (node_dir / ".installed").is_file():
        pytest.fail(f"no validator in {node_dir}: run `make deps` (mk/helm.sh)", pytrace=False)
    f = tmp_path / f"objects-{time.monotonic_ns()}.json"
    f.write_text(json.dumps(objs))
    r = subprocess.run(["node", str(VALIDATOR), str(node_dir), str(f)], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_manifests_validate_against_the_kubernetes_schemas(defaults, full, variants, tmp_path):
    everything = defaults + full + [o for v in variants.values() for o in v]
    errors = validate(everything, tmp_path)
    assert errors == [], "\n".join(f"{e.get('kind')}/{e.get('name')}: {e['error']}" for e in errors)


def test_the_validator_finds_broken_objects(defaults, tmp_path):
    broken = json.loads(json.dumps(defaults))
    ds = next(o for o in broken if o["kind"] == "DaemonSet")
    store = next(c for c in ds["spec"]["template"]["spec"]["containers"] if c["name"] == "store")
    store["securityContext"]["readOnlyRootFileSystem"] = True        # a field no schema knows
    store["ports"][0]["containerPort"] = "8897"                      # a string for an integer
    svc = next(o for o in broken if o["kind"] == "Service")
    del svc["spec"]["ports"][0]["port"]                              # a required field
    errors = " | ".join(e["error"] for e in validate(broken, tmp_path))
    assert "readOnlyRootFileSystem" in errors
    assert "containerPort must be integer" in errors
    assert "must have required property port" in errors


# ---- the programs with the chart's arguments ------------------------------------------------------

def program(name):
    build = Path(os.environ.get("NETREEL_BUILD") or REPO / "build" / "release")
    p = build / "bin" / name
    if not os.access(p, os.X_OK):
        pytest.skip(f"{p} does not exist yet")
    return p


@pytest.mark.parametrize("name,binary", [("capture", "netreel-capture"), ("store", "netreel-store"),
                                         ("hub", "netreel-hub")])
def test_programs_know_every_flag_the_chart_gives(name, binary, defaults, full):
    exe = program(binary)
    r = subprocess.run([str(exe), "--help"], capture_output=True, text=True, timeout=10)
    usage = r.stdout + r.stderr
    given = set(flags(container(full, name))) | set(flags(container(defaults, name)))
    unknown = [f for f in given if not re.search(rf"--{re.escape(f)}\b", usage)]
    assert not unknown, f"{binary} --help does not know {unknown}"


def health(port, creds, timeout=5):
    import grpc
    with grpc.secure_channel(f"127.0.0.1:{port}", creds) as ch:
        check = ch.unary_unary("/grpc.health.v1.Health/Check",
                               request_serializer=lambda b: b, response_deserializer=lambda b: b)
        return check(b"", timeout=timeout)


def test_store_runs_with_the_charts_arguments_and_certificates(defaults, tmp_path):
    """netreel-store started as the chart starts it (ports and folders moved to this machine):
    it serves /healthz, answers gRPC health over mutual TLS to the certificates the chart made
    for the hub and the capture, and refuses a client without one."""
    import grpc
    exe = program("netreel-store")
    tls = secret_files(one(defaults, "Secret", "netreel-tls"), tmp_path / "tls")
    (tmp_path / "data").mkdir()
    log = open(tmp_path / "store.log", "w+")
    # A port found free can be taken before the store binds it (an outgoing connection's
    # ephemeral port): then the store says so and exits, and it is started again on others.
    for attempt in range(5):
        port, mport = free_port(), free_port()
        args = []
        for a in container(defaults, "store")["args"]:
            a = a.replace("/etc/netreel/tls/", f"{tls}/").replace("--data-dir=/data",
                                                                 f"--data-dir={tmp_path}/data")
            a = re.sub(r"^--listen=:\d+$", f"--listen=127.0.0.1:{port}", a)
            a = re.sub(r"^--metrics-listen=:\d+$", f"--metrics-listen=127.0.0.1:{mport}", a)
            args.append(a)
        log.seek(0)
        log.truncate()
        proc = subprocess.Popen([str(exe), *args], stdout=log, stderr=subprocess.STDOUT,
                                env={**os.environ, "NODE_NAME": "node-a"})
        deadline = time.monotonic() + 20
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{mport}/healthz", timeout=2) as r:
                    assert r.status == 200
                    break
            except OSError:
                if proc.poll() is not None:
                    break
                assert time.monotonic() < deadline, "no /healthz after 20 s"
                time.sleep(0.1)
        if proc.poll() is None or "address already in use" not in Path(log.name).read_text():
            break
    try:
        assert proc.poll() is None, f"store exited {proc.returncode}:\n{Path(log.name).read_text()}"
        ca = (tls / "ca.crt").read_bytes()
        for part in ("hub", "capture"):
            creds = grpc.ssl_channel_credentials(ca, (tls / f"{part}.key").read_bytes(),
                                                 (tls / f"{part}.crt").read_bytes())
            assert health(port, creds) == b"\x08\x01", part  # SERVING
        with pytest.raises(grpc.RpcError) as e:
            health(port, grpc.ssl_channel_credentials(ca), timeout=3)
        assert e.value.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
