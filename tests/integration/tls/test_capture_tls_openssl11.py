"""netreel-capture --tls with OpenSSL 1.1.1, which Debian 12 does not have: opt-in, with the
library fetched by tests/tools/fetch-openssl11.sh and named by NETREEL_OPENSSL11 (its root:
usr/bin/openssl, usr/lib/x86_64-linux-gnu/libssl.so.1.1). openssl s_server and s_client of
1.1.1 talk over TLS 1.2 and 1.3 across the test veth while the capture runs as nobody: the
helper attaches their libssl.so.1.1, first mapped after the start, and both directions of the
plaintext are on interface tls, in order. Secrets: none for 1.1 builds other than the capture's
own (no EVP_KDF_derive), and the capture says so."""
import os
import subprocess
import time
from pathlib import Path

import pytest

from test_capture_tls import (A_IP, SKIP, TLS_PORT, cert, conversation, lab,  # noqa: F401
                              wait_for)

ROOT = os.environ.get("NETREEL_OPENSSL11")
pytestmark = [
    pytest.mark.skipif(bool(SKIP), reason=SKIP or ""),
    pytest.mark.skipif(not ROOT, reason="opt-in: NETREEL_OPENSSL11=DIR/root "
                                        "(tests/tools/fetch-openssl11.sh DIR)"),
]


@pytest.mark.parametrize("version", ["-tls1_2", "-tls1_3"])
def test_openssl_111_plaintext_is_recorded(lab, cert, tmp_path, version):  # noqa: F811
    libdir = Path(ROOT) / "usr/lib/x86_64-linux-gnu"
    openssl = Path(ROOT) / "usr/bin/openssl"
    env = ["env", f"LD_LIBRARY_PATH={libdir}"]
    net = lab.netns()
    store = lab.store(net)
    cap = lab.capture(net, "--tls", "--user", "nobody")
    # -rev: the server answers each line reversed
    server = subprocess.Popen(["ip", "netns", "exec", net.a, *env, openssl, "s_server", "-quiet",
                               "-rev", "-accept", str(TLS_PORT), "-cert", cert[0], "-key", cert[1],
                               version], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE)
    try:
        # the helper attaches the server's libssl.so.1.1 within its next rescan (a second)
        assert wait_for(lambda: any("libssl.so.1.1" in ln for ln in cap.lines("tls: attached"))), \
            cap.stderr()
        # -quiet keeps the connection after stdin's end: timeout ends the client
        client = subprocess.run(
            ["ip", "netns", "exec", net.b, "sh", "-c",
             f"(echo hello netreel from 1.1; sleep 1.5) | timeout 4 {' '.join(env)} {openssl} "
             f"s_client -quiet -connect {A_IP}:{TLS_PORT} {version}"],
            capture_output=True, text=True, timeout=30)
        assert "1.1 morf leerten olleh" in client.stdout, client.stderr
        time.sleep(1.0)
    finally:
        server.kill()
        server.wait()
    cap.stop()
    attached = [ln for ln in cap.lines("tls: attached") if "libssl.so.1.1" in ln]
    assert attached and all("secrets=none" in ln for ln in attached), cap.stderr()
    _, snap, _ = lab.snapshot(net, store)
    assert conversation(snap, cap.stderr()) == (b"hello netreel from 1.1\n",
                                                b"1.1 morf leerten olleh\n")
