#!/usr/bin/python3
"""Every reference in the repository resolves inside it (`make check`):
  * a markdown link to a file of the tree names one that exists, and its #anchor a heading there;
  * a path docs/NAME.md in code, tests, scripts or docs names a page that exists;
  * "docs/design.md §N" names a section the page has;
  * a path of the tree (lib/..., services/..., tests/..., bench/...) named in a comment or a page
    names a file that exists (placeholders in capitals, like NAME, and globs are passed over);
  * nothing points outside the tree (a contract or style guide kept elsewhere).
Prints one line per broken reference and exits 1 if there is any."""
import os
import re
import subprocess
import sys

top = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
os.chdir(top)
try:
    files = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], capture_output=True, text=True,
                           check=True).stdout.split("\n")
except (OSError, subprocess.CalledProcessError):
    files = [os.path.relpath(os.path.join(d, f)) for d, _, fs in os.walk(".")
             if "/build" not in d and "/.git" not in d for f in fs]
files = [f for f in files if f and os.path.isfile(f)]

TEXT = re.compile(r"(\.(c|h|py|sh|md|proto|yaml|yml|tpl|txt|mk)|Makefile|Dockerfile)$")
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
DOCREF = re.compile(r"\bdocs/[A-Za-z0-9_./-]+\.md")
SECTION = re.compile(r"docs/design\.md §(\d+)")
TREE = re.compile(r"(?<![\w/.-])((?:lib|services|cli|tests|bench|mk|helm|docker|proto|docs)/"
                  r"[A-Za-z0-9_./-]+\.(?:c|h|py|sh|proto|yaml|md|mk|tpl|json))\b")
OUTSIDE = re.compile(r"\.\./shared|\bDESIGN(\.md)? ?§|\bDESIGN \d")


def slug(heading):
    """GitHub's anchor for a heading."""
    s = heading.strip().lower()
    s = re.sub(r"[^\w\- ]", "", s)
    return s.replace(" ", "-")


anchors = {}


def anchors_of(path):
    if path not in anchors:
        seen = set()
        in_code = False
        with open(path, encoding="utf-8") as f:
            for line in f:
                if line.startswith("```"):
                    in_code = not in_code
                m = None if in_code else re.match(r"#{1,6} (.*)", line)
                if m:
                    base = slug(m.group(1))
                    a, n = base, 1
                    while a in seen:
                        a, n = "%s-%d" % (base, n), n + 1
                    seen.add(a)
        anchors[path] = seen
    return anchors[path]


sections = set()
if os.path.exists("docs/design.md"):
    for line in open("docs/design.md", encoding="utf-8"):
        m = re.match(r"## (\d+)\.", line)
        if m:
            sections.add(m.group(1))

bad = []
for f in files:
    if not TEXT.search(f) or f.startswith("mk/check-refs"):
        continue
    try:
        text = open(f, encoding="utf-8").read()
    except (UnicodeDecodeError, OSError):
        continue
    for no, line in enumerate(text.split("\n"), 1):
        where = "%s:%d" % (f, no)
        if OUTSIDE.search(line):
            bad.append("%s: points outside the repository: %s" % (where, line.strip()[:100]))
        for ref in DOCREF.findall(line):
            if not os.path.exists(ref):
                bad.append("%s: no such page %s" % (where, ref))
        for ref in TREE.findall(line):
            ref = ref[:-3] if ref.endswith(".c/.h") else ref  # "x.c/.h": the pair
            if re.search(r"[A-Z]{3,}", ref.split("/")[-1]) and not os.path.exists(ref):
                continue  # a placeholder: tests/integration/bin/NAME.c
            if not os.path.exists(ref) and not os.path.exists(os.path.join(os.path.dirname(f), ref)):
                bad.append("%s: no such file %s" % (where, ref))
        for n in SECTION.findall(line):
            if n not in sections:
                bad.append("%s: docs/design.md has no section %s" % (where, n))
        if not f.endswith(".md"):
            continue
        for target in LINK.findall(line):
            if re.match(r"[a-z]+:", target) or target.startswith("<"):
                continue
            path, _, anchor = target.partition("#")
            path = os.path.normpath(os.path.join(os.path.dirname(f), path)) if path else f
            if not os.path.exists(path):
                bad.append("%s: link to a missing file %s" % (where, target))
            elif anchor and path.endswith(".md") and anchor not in anchors_of(path):
                bad.append("%s: no heading #%s in %s" % (where, anchor, path))
for b in bad:
    print(b)
sys.exit(1 if bad else 0)
