"""metrics.py PORT NAME=VAR...: a netreel program's /metrics on 127.0.0.1:PORT as shell
assignments, VAR=value for each NAME ('family' or 'family{labels}' as /metrics writes it) it
holds, the value as an integer. For `eval` in the bench scripts."""
import sys
import urllib.request

port, pairs = sys.argv[1], sys.argv[2:]
want = dict(p.rsplit("=", 1) for p in pairs)
body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
for ln in body.splitlines():
    k, _, v = ln.rpartition(" ")
    if k in want:
        print(f"{want[k]}={int(float(v))}")
