"""Secure defaults of the CLI and of `netreel tap --local` (issue 7, docs/design.md §9).

tap --local: capture -> store, hub -> store and CLI -> hub are mTLS with a CA and certificates made
on first start in DATA/.tls, and the hub wants the token of DATA/hub.token; the children's command
lines say so, and a plaintext client, a TLS client without a certificate, one with a certificate
of another CA, one that does not trust the server, and one without the token are each refused
with a clear status. Everything tap --local and the store make is 0600 in 0700 folders. The
credentials are reused on the next start and made anew, saying why, when one is broken, open to
others or expired. The CLI finds the local hub and its credentials through the data folder with
no flag, also as a user other than root.

pcapdump: an existing file is never replaced without --force (and is with it), the file is 0600,
-o with --dest stays inside DIR, a link in DIR is replaced rather than written through, and the
hub's summary never names the file.
"""

import datetime
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time
from pathlib import Path

import grpc
import pytest

import cli_helpers as ch
from cli_helpers import cli_bin, fake_hub, hub_pb, fake_tools  # noqa: F401 (fixtures)
from test_cli_pcapdump import hub  # noqa: F401 (fixture)
from test_cli_tap import Tap, local_bins, tap_local  # noqa: F401 (fixtures)

NS = 1_000_000_000
TLS_FILES = {"ca.crt", "store.crt", "store.key", "hub.crt", "hub.key", "capture.crt",
             "capture.key", "client.crt", "client.key"}


def mode(p):
    return stat.S_IMODE(os.lstat(p).st_mode)


def flag(argv, name):
    assert name in argv, f"{name} not in {argv}"
    return argv[argv.index(name) + 1]


def call(target, method, creds=None, token=None, timeout=10):
    """(status code, details) of one unary call with an empty request. TLS channels verify the
    server's name as localhost (the certificates name 127.0.0.1, ::1 and localhost)."""
    if creds is None:
        chan = grpc.insecure_channel(target)
    else:
        chan = grpc.secure_channel(target, creds,
                                   options=[("grpc.ssl_target_name_override", "localhost")])
    try:
        fn = chan.unary_unary(method, request_serializer=lambda b: b,
                              response_deserializer=lambda b: b)
        md = [("authorization", f"Bearer {token}")] if token else None
        try:
            fn(b"", timeout=timeout, metadata=md)
            return grpc.StatusCode.OK, ""
        except grpc.RpcError as e:
            return e.code(), e.details()
    finally:
        chan.close()


def stop(t):
    t.proc.send_signal(signal.SIGINT)
    assert t.wait() == 0, t.stderr()


# ---- tap --local: mTLS, the token, modes ----------------------------------------------------

def test_tap_local_runs_mtls_and_token(tap_local, cli_bin):
    t = tap_local()
    t.wait_recording()
    err = t.stderr()
    d, tls = t.data, t.data / ".tls"
    assert f"netreel: made a CA and certificates for store, hub, capture and the CLI in {tls}" \
        in err, err
    assert f"netreel: made the hub's token in {d}/hub.token" in err, err
    assert "mTLS and token" in err
    kids = {name: argv for name, (_, argv) in t.children().items()}
    st, hb, cap = kids["netreel-store"], kids["netreel-hub"], kids["netreel-capture"]
    # The store serves only certificates of the CA; the hub too, and presents its own to the
    # store; the capture presents its own; the hub wants the token.
    assert [flag(st, f) for f in ("--tls-cert", "--tls-key", "--tls-ca")] == \
        [str(tls / "store.crt"), str(tls / "store.key"), str(tls / "ca.crt")]
    assert [flag(hb, f) for f in ("--tls-cert", "--tls-key", "--tls-ca", "--store-tls-ca",
                                  "--store-tls-cert", "--store-tls-key", "--token-file")] == \
        [str(tls / "hub.crt"), str(tls / "hub.key"), str(tls / "ca.crt"), str(tls / "ca.crt"),
         str(tls / "hub.crt"), str(tls / "hub.key"), str(d / "hub.token")]
    assert [flag(cap, f) for f in ("--tls-ca", "--tls-cert", "--tls-key")] == \
        [str(tls / "ca.crt"), str(tls / "capture.crt"), str(tls / "capture.key")]
    assert re.search(r"store +\| .*msg=serving .*tls=mtls", err), err
    assert re.search(r"hub +\| .*msg=serving .*tls=mtls token=required", err), err

    # The files: 0600 in 0700 folders, the CA's key nowhere.
    assert mode(d) == 0o700 and mode(tls) == 0o700
    assert {p.name for p in tls.iterdir()} == TLS_FILES
    for p in tls.iterdir():
        assert mode(p) == 0o600, p
    assert mode(d / "hub.token") == 0o600
    assert re.fullmatch(r"[0-9a-f]{64}\n", (d / "hub.token").read_text())
    assert mode(d / "hub.addr") == 0o600
    assert (d / "hub.addr").read_text() == f"127.0.0.1:{t.hub_port}\n"
    # Traffic, so that the store writes its segments: they are 0600 in 0700 folders too.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for i in range(50):
            s.sendto(b"secure %d" % i, ("127.0.0.1", ch.free_port()))
    time.sleep(1.5)
    r = ch.run(cli_bin, "status", "--all", "--data", d, env=ch.base_env(), expect=0)
    assert f"127.0.0.1:{t.store_port}" in r.stdout and " ok " in r.stdout, r.where()
    seen = 0
    for root, dirs, files in os.walk(d):
        assert mode(root) == 0o700, root
        for f in files:
            assert mode(Path(root) / f) == 0o600, Path(root) / f
            seen += f.endswith(".pcapng")
    assert seen >= 1, list(os.walk(d))

    # The certificates: EC P-256, one year, the three names, each signed by the CA.
    for name in TLS_FILES - {"ca.crt"}:
        if not name.endswith(".crt"):
            continue
        txt = subprocess.run(["openssl", "x509", "-in", tls / name, "-noout", "-text"],
                             capture_output=True, text=True, check=True).stdout
        assert "NIST CURVE: P-256" in txt or "prime256v1" in txt, txt
        assert "IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1, DNS:localhost" in txt, txt
        end = subprocess.run(["openssl", "x509", "-in", tls / name, "-noout", "-enddate"],
                             capture_output=True, text=True, check=True).stdout
        end = datetime.datetime.strptime(end.strip().split("=", 1)[1], "%b %d %H:%M:%S %Y %Z")
        days = (end - datetime.datetime.utcnow()).days
        assert 363 <= days <= 366, (name, end)
        v = subprocess.run(["openssl", "verify", "-CAfile", tls / "ca.crt", tls / name],
                           capture_output=True, text=True)
        assert v.returncode == 0, v.stdout + v.stderr
    assert not list(d.rglob("ca.key"))
    stop(t)
    assert not (d / "hub.addr").exists(), "hub.addr outlives tap --local"


def test_local_hub_and_store_refuse_strangers(tap_local, cli_bin, certs):
    t = tap_local()
    t.wait_recording()
    tls = t.data / ".tls"
    hubaddr, storeaddr = f"127.0.0.1:{t.hub_port}", f"127.0.0.1:{t.store_port}"
    ca = (tls / "ca.crt").read_bytes()
    good = grpc.ssl_channel_credentials(ca, (tls / "client.key").read_bytes(),
                                        (tls / "client.crt").read_bytes())
    strangers = {
        "plaintext": None,
        "TLS without a client certificate": grpc.ssl_channel_credentials(ca),
        "a client certificate of another CA": grpc.ssl_channel_credentials(
            ca, certs.other_client_key.read_bytes(), certs.other_client_cert.read_bytes()),
        "a client that does not trust the server's CA": grpc.ssl_channel_credentials(
            certs.ca.read_bytes(), (tls / "client.key").read_bytes(),
            (tls / "client.crt").read_bytes()),
    }
    token = (t.data / "hub.token").read_text().strip()
    for target, method in ((hubaddr, "/netreel.v1.Hub/Status"),
                           (storeaddr, "/grpc.health.v1.Health/Check")):
        for what, creds in strangers.items():
            code, details = call(target, method, creds, token=token)
            assert code == grpc.StatusCode.UNAVAILABLE, (target, what, code, details)
    # The right certificate: the store answers; the hub wants the token too.
    assert call(storeaddr, "/grpc.health.v1.Health/Check", good)[0] == grpc.StatusCode.OK
    code, details = call(hubaddr, "/netreel.v1.Hub/Status", good)
    assert code == grpc.StatusCode.UNAUTHENTICATED, (code, details)
    code, details = call(hubaddr, "/netreel.v1.Hub/Status", good, token="0" * 64)
    assert code == grpc.StatusCode.UNAUTHENTICATED, (code, details)
    assert call(hubaddr, "/netreel.v1.Hub/Status", good, token=token)[0] == grpc.StatusCode.OK

    # The CLI: plaintext or without the token it is refused, with one line saying so; with the
    # data folder it needs nothing else.
    r = ch.run(cli_bin, "status", "--hub", hubaddr, env=ch.base_env(), expect=1)
    line = ch.one_error_line(r)
    assert "cannot reach the hub" in line and "a hub with TLS closes plaintext" in line, line
    r = ch.run(cli_bin, "status", "--hub", hubaddr, "--tls-ca", tls / "ca.crt", "--tls-cert",
               tls / "client.crt", "--tls-key", tls / "client.key", env=ch.base_env(), expect=1)
    assert "UNAUTHENTICATED" in ch.one_error_line(r)
    r = ch.run(cli_bin, "status", "--data", t.data, env=ch.base_env(NETREEL_TOKEN="wrong"),
               expect=1)
    assert "UNAUTHENTICATED" in ch.one_error_line(r)
    ch.run(cli_bin, "status", "--data", t.data, env=ch.base_env(), expect=0)
    # --hub with --data: the folder's credentials for that hub.
    ch.run(cli_bin, "status", "--hub", hubaddr, "--data", t.data, env=ch.base_env(), expect=0)
    stop(t)


def test_default_folder_found_as_another_user(tap_local, cli_bin):
    """What `netreel pcapdump` with no flag does for a user: the hub, the certificate and the
    token from tap --local's default folder for that user ($XDG_DATA_HOME/netreel, else
    ~/.local/share/netreel) — here a copy of a running tap's, owned by nobody."""
    if not shutil.which("setpriv"):
        pytest.skip("needs setpriv (util-linux) to run the CLI as nobody")
    t = tap_local()
    t.wait_recording()
    home = Path(tempfile.mkdtemp(prefix="netreel-home-"))
    try:
        data = home / ".local" / "share" / "netreel"
        (data / ".tls").mkdir(parents=True)
        for name in ("ca.crt", "client.crt", "client.key"):
            shutil.copy(t.data / ".tls" / name, data / ".tls" / name)
        for name in ("hub.token", "hub.addr"):
            shutil.copy(t.data / name, data / name)
        for root, dirs, files in os.walk(home):
            os.chown(root, 65534, 65534)
            for f in files:
                os.chown(Path(root) / f, 65534, 65534)
        home.chmod(0o755)
        work = home / "work"
        work.mkdir()
        os.chown(work, 65534, 65534)
        env = ch.base_env(HOME=home)
        del env["NETREEL_LOCAL_HUB"]  # the default step is what this tests
        env.pop("XDG_DATA_HOME", None)
        nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
        r = subprocess.run([*nobody, str(cli_bin), "status", "--all"], env=env,
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        assert f"127.0.0.1:{t.store_port}" in r.stdout
        r = subprocess.run([*nobody, str(cli_bin), "pcapdump", "--time=1m"], env=env, cwd=work,
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        (f,) = work.iterdir()
        assert f.stat().st_uid == 65534 and mode(f) == 0o600
        ch.check_sanitizer(r.stderr, "pcapdump as nobody")
    finally:
        shutil.rmtree(home, ignore_errors=True)
    stop(t)


def quick_tap(cli_bin, tmp_path, name):
    """A tap --local that makes or checks its credentials and stops at once (its store's port
    is taken): returns its stderr."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        t = Tap(cli_bin, tmp_path, "--store-port", s.getsockname()[1], name=name)
        assert t.wait() == 1, t.stderr()
    ch.check_sanitizer(t.stderr(), " ".join(t.argv))
    return t.stderr()


def expired_ca(path):
    """A self-signed EC CA whose validity ended yesterday, as PEM."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "expired CA")])
    now = datetime.datetime.utcnow()
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=400))
            .not_valid_after(now - datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .sign(key, hashes.SHA256()))
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def test_credentials_reused_and_remade(local_bins, cli_bin, tmp_path):
    quick_tap(cli_bin, tmp_path, "first")
    tls = tmp_path / "data" / ".tls"
    ca, token = (tls / "ca.crt").read_bytes(), (tmp_path / "data" / "hub.token").read_bytes()
    # Sound: reused, nothing said.
    err = quick_tap(cli_bin, tmp_path, "again")
    assert "made" not in err, err
    assert (tls / "ca.crt").read_bytes() == ca
    assert (tmp_path / "data" / "hub.token").read_bytes() == token
    # Broken, open to others, expired, a link: a new set, and a line that says why.
    cases = [
        ("broken", lambda: (tls / "hub.crt").write_text("not a certificate\n"),
         f"{tls}/hub.crt does not parse"),
        ("open", lambda: (tls / "client.key").chmod(0o644),
         f"{tls}/client.key is open to others"),
        ("expired", lambda: expired_ca(tls / "ca.crt"), f"{tls}/ca.crt expired on"),
        ("link", lambda: ((tls / "store.key").unlink(),
                          (tls / "store.key").symlink_to(tmp_path / "elsewhere")),
         f"{tls}/store.key cannot be read"),
    ]
    for name, spoil, why in cases:
        before = (tls / "ca.crt").read_bytes()
        spoil()
        err = quick_tap(cli_bin, tmp_path, name)
        line = [ln for ln in err.splitlines() if "made a new CA" in ln]
        assert line and why in line[0], (name, err)
        assert (tls / "ca.crt").read_bytes() != before
        assert {p.name for p in tls.iterdir()} == TLS_FILES
        for p in tls.iterdir():
            assert mode(p) == 0o600 and p.is_file() and not p.is_symlink(), p
    assert not (tmp_path / "elsewhere").exists()
    # A token that is not one is made anew; one open to others too.
    (tmp_path / "data" / "hub.token").write_text("short\n")
    assert "made the hub's token" in quick_tap(cli_bin, tmp_path, "token")
    (tmp_path / "data" / "hub.token").chmod(0o644)
    assert "made the hub's token" in quick_tap(cli_bin, tmp_path, "token2")
    assert mode(tmp_path / "data" / "hub.token") == 0o600


def test_data_folder_made_private(local_bins, cli_bin, tmp_path):
    """A missing data folder (and its missing parents) is made 0700; an existing one open to
    others is left alone with a warning."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        deep = tmp_path / "a" / "b"
        argv = [cli_bin, "tap", "--local", "-i", "lo", "--data", deep, "--store-port",
                s.getsockname()[1], "--metrics-ports", "off"]
        r = ch.run(*argv, env=ch.base_env(), expect=1)
        assert mode(tmp_path / "a") == 0o700 and mode(deep) == 0o700
        open_dir = tmp_path / "open"
        open_dir.mkdir(mode=0o755)
        open_dir.chmod(0o755)
        argv[6] = open_dir
        r = ch.run(*argv, env=ch.base_env(), expect=1)
        assert f"WARNING: {open_dir} is open to others (mode 0755)" in r.stderr, r.where()
        assert mode(open_dir) == 0o755 and mode(open_dir / ".tls") == 0o700
        # The default folder is tap's own: one an older netreel made 0750 is closed. (As
        # nobody, whose default is ~/.local/share/netreel: the store fails on its port before
        # anything needs root.)
        if not shutil.which("setpriv"):
            return
        home = Path(tempfile.mkdtemp(prefix="netreel-home-"))
        try:
            data = home / ".local" / "share" / "netreel"
            data.mkdir(parents=True)
            data.chmod(0o750)
            for p in (home, home / ".local", home / ".local" / "share", data):
                os.chown(p, 65534, 65534)
            home.chmod(0o755)
            env = ch.base_env(HOME=home)
            env.pop("XDG_DATA_HOME", None)
            r = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                                str(cli_bin), "tap", "--local", "-i", "lo", "--store-port",
                                str(s.getsockname()[1]), "--metrics-ports", "off"],
                               env=env, capture_output=True, text=True, timeout=60)
            assert r.returncode == 1, r.stderr
            assert f"netreel: closed {data} to others (it was mode 0750)" in r.stderr, r.stderr
            assert mode(data) == 0o700 and mode(data / ".tls") == 0o700
            assert (data / ".tls" / "client.key").stat().st_uid == 65534
            ch.check_sanitizer(r.stderr, "tap --local as nobody")
        finally:
            shutil.rmtree(home, ignore_errors=True)


# ---- pcapdump: never over a file without --force, never outside --dest ------------------------

def files(d):
    return sorted(p.name for p in d.iterdir())


def test_pcapdump_never_overwrites_without_force(cli_bin, hub, tmp_path):
    data = ch.pcapng_bytes(3)
    out = tmp_path / "mine.pcapng"
    out.write_bytes(b"precious")
    r = ch.run(cli_bin, "pcapdump", "--time=1m", "--hub", hub.addr, "-o", out,
               env=ch.base_env(), expect=1)
    line = ch.one_error_line(r)
    assert f"{out} exists" in line and "--force" in line, line
    assert out.read_bytes() == b"precious" and hub.requests == [], "the hub was asked"
    ch.run(cli_bin, "pcapdump", "--time=1m", "--hub", hub.addr, "-o", out, "--force",
           env=ch.base_env(), expect=0)
    assert out.read_bytes() == data and mode(out) == 0o600
    assert files(tmp_path) == ["mine.pcapng"]
    # --dest DIR -o NAME: the same, inside DIR.
    d = tmp_path / "dest"
    d.mkdir()
    (d / "snap.pcapng").write_bytes(b"precious")
    r = ch.run(cli_bin, "pcapdump", "--time=1m", "--hub", hub.addr, "--dest", d, "-o",
               "snap.pcapng", env=ch.base_env(), expect=1)
    assert f"{d}/snap.pcapng exists" in ch.one_error_line(r)
    r = ch.run(cli_bin, "pcapdump", "--time=1m", "--hub", hub.addr, "--dest", d, "-o",
               "snap.pcapng", "--force", env=ch.base_env(), expect=0)
    assert (d / "snap.pcapng").read_bytes() == data and files(d) == ["snap.pcapng"]
    assert r.stdout.startswith(f"{d}/snap.pcapng:"), r.where()
    # The default name: -2 without --force, replaced with it.
    win = ["--since", "2026-11-26T06:30:00Z", "--until", "2026-11-26T06:35:00Z"]
    e = tmp_path / "e"
    e.mkdir()
    name = "netreel-20261126T063000Z-20261126T063500Z.pcapng"
    (e / name).write_bytes(b"precious")
    ch.run(cli_bin, "pcapdump", *win, "--hub", hub.addr, "--dest", e, env=ch.base_env(),
           expect=0)
    assert (e / name).read_bytes() == b"precious"
    assert files(e) == [name.replace(".pcapng", "-2.pcapng"), name]
    ch.run(cli_bin, "pcapdump", *win, "--hub", hub.addr, "--dest", e, "--force",
           env=ch.base_env(), expect=0)
    assert (e / name).read_bytes() == data and len(files(e)) == 2
    for p in e.iterdir():
        assert mode(p) == 0o600 or p.read_bytes() == b"precious"
    # A folder of that name is not replaced, --force or not.
    (tmp_path / "adir").mkdir()
    r = ch.run(cli_bin, "pcapdump", "--hub", hub.addr, "-o", tmp_path / "adir", "--force",
               env=ch.base_env(), expect=1)
    assert "is a folder" in ch.one_error_line(r)
    # Nor a device, a pipe or a socket: --force renames the new file over the old name, which
    # over /dev/null (as root) left a regular file where the device was. A FIFO stands in here.
    fifo = tmp_path / "afifo"
    os.mkfifo(fifo)
    r = ch.run(cli_bin, "pcapdump", "--hub", hub.addr, "-o", fifo, "--force",
               env=ch.base_env(), expect=1)
    assert "is not a file" in ch.one_error_line(r) and "-o - >" in ch.one_error_line(r)
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode), "the pipe was replaced"


@pytest.mark.parametrize("name", ["../x.pcapng", "/tmp/x.pcapng", "sub/x.pcapng", ".", "..",
                                  "sub/../../x"])
def test_pcapdump_o_with_dest_stays_inside(cli_bin, hub, tmp_path, name):
    d = tmp_path / "dest"
    (d / "sub").mkdir(parents=True)
    before = sorted(str(p) for p in tmp_path.rglob("*"))
    r = ch.run(cli_bin, "pcapdump", "--time=1m", "--hub", hub.addr, "--dest", d, "-o", name,
               env=ch.base_env(), expect=2)
    line = ch.one_error_line(r)
    assert "--dest" in line and "file name inside DIR" in line, line
    assert sorted(str(p) for p in tmp_path.rglob("*")) == before
    assert hub.requests == []


def test_pcapdump_links_in_dest_are_not_followed(cli_bin, hub, tmp_path):
    d, outside = tmp_path / "dest", tmp_path / "outside"
    d.mkdir()
    outside.mkdir()
    (outside / "target").write_text("secret")
    (d / "link").symlink_to(outside / "target")
    (d / "dangling").symlink_to(outside / "new")
    for name in ("link", "dangling"):
        r = ch.run(cli_bin, "pcapdump", "--time=1m", "--hub", hub.addr, "--dest", d, "-o", name,
                   env=ch.base_env(), expect=1)
        assert "exists" in ch.one_error_line(r)
        # --force replaces the link itself: nothing is written where it points.
        ch.run(cli_bin, "pcapdump", "--time=1m", "--hub", hub.addr, "--dest", d, "-o", name,
               "--force", env=ch.base_env(), expect=0)
        assert not (d / name).is_symlink() and (d / name).read_bytes() == ch.pcapng_bytes(3)
    assert (outside / "target").read_text() == "secret"
    assert files(outside) == ["target"]
    # A --dest that is itself a link is the user's choice: followed.
    (tmp_path / "via").symlink_to(outside)
    ch.run(cli_bin, "pcapdump", "--time=1m", "--hub", hub.addr, "--dest", tmp_path / "via",
           env=ch.base_env(), expect=0)
    assert len(files(outside)) == 2


@pytest.mark.parametrize("since", [2**63 - 1, -(2**62), 1])
def test_pcapdump_summary_never_names_the_file(cli_bin, hub, hub_pb, tmp_path, since):
    """The whole window's name starts at the oldest packet the hub reports; a time outside the
    window is not taken, and the name is the CLI's own digits whatever the hub says."""
    hub.summary = ch.summary(hub_pb, packets=3, since=since)
    d = tmp_path / "dest"
    d.mkdir()
    r = ch.run(cli_bin, "pcapdump", "--hub", hub.addr, "--dest", d, env=ch.base_env(), expect=0)
    (name,) = files(d)
    m = re.fullmatch(r"netreel-(\d{8}T\d{6}Z)-(\d{8}T\d{6}Z)\.pcapng", name)
    assert m, name
    if since == 1:
        assert m.group(1) == "19700101T000000Z"
    else:
        assert m.group(1) == m.group(2), name  # out of the window: the end stands for it
    assert files(tmp_path) == ["dest"], r.where()


def test_cli_temp_files_are_private(cli_bin, fake_tools):
    """tap's values file for helm (it may hold pod names) is 0600 while helm reads it."""
    tools = fake_tools()
    ch.run(cli_bin, "tap", "web", env=tools.env(), expect=0)
    (call_,) = [c for c in tools.calls() if c[0] == "helm"]
    assert call_[-1]["values_mode"] == "0o600", call_


def test_peer_text_cannot_steer_the_terminal(cli_bin, hub, hub_pb, tmp_path):
    """Node names, store names and errors come from the hub and the stores: escape sequences
    and line breaks in them never reach the terminal as such."""
    evil = "node\x1b]0;owned\x07\x1b[2J\u009b31m\nsecond line"
    hub.summary = ch.summary(hub_pb, packets=3, stores=[(evil, True, ""),
                                                        ("b", False, "refused\x1b[5m\r")])
    r = ch.run(cli_bin, "pcapdump", "--time=1m", "--hub", hub.addr, "--dest", tmp_path,
               env=ch.base_env(), expect=0)
    for text in (r.stdout, r.stderr):
        assert "\x1b" not in text and "\x07" not in text and "\u009b" not in text, r.where()
    assert len(r.stdout.splitlines()) == 1 and len(r.stderr.splitlines()) == 1, r.where()
    assert "node?]0;owned??[2J??31m second line" in r.stdout, r.where()
    hub.cluster = hub_pb.ClusterStatus(stores=[
        hub_pb.StoreStatus(store="10.0.0.1:8897\x1b[1m", reachable=True,
                           stats=hub_pb.StoreStats(node=evil)),
        hub_pb.StoreStatus(store="10.0.0.2:8897", reachable=False, error="gone\x1b[8m\nx")])
    r = ch.run(cli_bin, "status", "--all", "--hub", hub.addr, env=ch.base_env(), expect=3)
    assert "\x1b" not in r.stdout + r.stderr and "\x07" not in r.stdout, r.where()
    assert len(r.stdout.splitlines()) == 3, r.where()
    r = ch.run(cli_bin, "status", "--hub", hub.addr, env=ch.base_env(), expect=3)
    assert "\x1b" not in r.stdout + r.stderr and "\x07" not in r.stdout, r.where()
    assert len([ln for ln in r.stdout.splitlines() if "UNREACHABLE" in ln]) == 1, r.where()

