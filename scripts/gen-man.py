#!/usr/bin/env python3
"""Generate docs/man/*.3 from include/ringctx.h (and the SQLite VFS's
include/ringctx_sqlite.h): one page per public function.

The header is the contract: each prototype's preceding comment becomes the
DESCRIPTION; its "Returns ..." sentences become RETURN VALUE; the -E codes it
names become ERRORS. Functions documented by one shared comment share it.
Run: scripts/gen-man.py (make man).
"""
import re
import sys
from pathlib import Path

root = Path(__file__).resolve().parent.parent
out = root / "docs/man"
out.mkdir(parents=True, exist_ok=True)

ERRS = {
    "EINVAL": "an argument was invalid (see DESCRIPTION)",
    "ENOMEM": "out of memory",
    "ECANCELED": "the context was cancelled (Go's Canceled)",
    "ETIMEDOUT": "the context's deadline passed (Go's DeadlineExceeded)",
    "EAGAIN": "the call's own deadline passed first",
    "EDEADLK": "the call would block forever, or was made from a callback of the ring it needs",
    "ENOENT": "the context can never be done (Go's nil Done channel)",
    "EPERM": "io_uring is not permitted here",
    "ENOSYS": "the kernel has no io_uring",
    "EBUSY": "the submission queue is full and could not be flushed",
    "EBADF": "fd is not an open file descriptor",
}

def clean(comment):
    lines = []
    for l in comment.splitlines():
        l = re.sub(r"^\s*/?\*+/?", "", l).rstrip()
        l = re.sub(r"\*/\s*$", "", l).strip()
        if re.fullmatch(r"[-\s]*", l):
            continue
        lines.append(l)
    return " ".join(x for x in lines if x).strip()

def esc(s):
    return s.replace("\\", "\\\\").replace("-", "\\-")

# comment + one or more prototypes following it
pat = re.compile(r"((?:/\*(?:[^*]|\*(?!/))*\*/[ \t]*\n)+)\s*((?:[^;/{}#]*?\brctx_\w+\s*\([^;]*\);\s*\n)+)")
# header, how to link a program that uses it
HEADERS = [
    ("ringctx.h", "\\fI\\-lringctx \\-luring \\-lpthread\\fR (or use \\fBpkg\\-config ringctx\\fR)"),
    ("ringctx_sqlite.h", "\\fI\\-lringctx_sqlite \\-lringctx \\-lsqlite3 \\-luring \\-lpthread\\fR"),
]
pages = 0
for hname, link in HEADERS:
  hdr = (root / "include" / hname).read_text()
  for m in pat.finditer(hdr):
      desc = clean(m.group(1))
      protos = re.findall(r"[^;]*?\brctx_\w+\s*\([^;]*\);", m.group(2))
      for proto in protos:
          proto = " ".join(proto.split())
          name = re.search(r"\b(rctx_\w+)\s*\(", proto).group(1)
          sentences = re.split(r"(?<=[.])\s+", desc)
          ret = " ".join(s for s in sentences if s.startswith("Return")) or \
                "See DESCRIPTION."
          errs = sorted(set(re.findall(r"-(E[A-Z]+)", desc)))
          page = [
              f'.TH {name} 3 "" "ringctx" "ringctx Manual"',
              ".SH NAME",
              f"{name} \\- {esc(sentences[0])}",
              ".SH SYNOPSIS",
              ".nf",
              f".B #include <{hname}>",
              ".PP",
              f".BI \"{esc(proto)}\"",
              ".fi",
              ".PP",
              f"Link with {link}.",
              ".SH DESCRIPTION",
              esc(desc),
              ".SH RETURN VALUE",
              esc(ret),
          ]
          if errs:
              page.append(".SH ERRORS")
              for e in errs:
                  page += [".TP", f".B \\-{e}", esc(ERRS.get(e, "see DESCRIPTION"))]
          page += [".SH SEE ALSO", ".BR ringctx (7)"]
          (out / f"{name}.3").write_text("\n".join(page) + "\n")
          pages += 1
print(f"gen-man: {pages} pages in {out.relative_to(root)}", file=sys.stderr)
