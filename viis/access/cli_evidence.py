"""``viis export`` and ``viis verify-export`` (Q24.1, N16.1).

``viis export`` is a client of the running server's API, so the copy passes the same door
and register as in the console: it starts the export of a retrieval session, prints the
percent done while it runs, and saves the package. ``viis verify-export`` needs nothing but
the package and the exporting unit's public key; it works offline.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path


def cmd_verify_export(args) -> int:
    from viis.access.verify_export import verify_package

    key = None
    if args.public_key:
        try:
            key = Path(args.public_key).read_bytes()[:64 * 1024]
        except OSError as e:
            print(f"viis: cannot read the public key {args.public_key}: {e.strerror}",
                  file=sys.stderr)
            return 2
    rep = verify_package(args.package, key)
    if getattr(args, "json", False):
        print(json.dumps(rep.as_dict(), indent=2, ensure_ascii=False))
    else:
        for note in rep.notes:
            print(f"note: {note}")
        for p in rep.problems:
            print(f"FAIL {p}")
        if rep.ok:
            m = rep.manifest or {}
            print(f"OK {args.package}: {rep.files_checked} files match the signed manifest of "
                  f"{m.get('request', {}).get('ref', '?')} (package {m.get('package_id', '?')})")
    return 0 if rep.ok else 1


def _call(method: str, url: str, token: str, body: dict | None = None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers={
        "Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    return urllib.request.urlopen(req, timeout=60)


def cmd_export(args) -> int:
    try:
        token = Path(args.token_file).read_text().strip()
    except OSError as e:
        print(f"viis: cannot read the token file {args.token_file}: {e.strerror}", file=sys.stderr)
        return 2
    base = f"{args.url.rstrip('/')}/api/retrievals/{args.request}/sessions/{args.session}/exports"
    try:
        with _call("POST", base, token, {"watermark": not args.no_watermark,
                                         "publication": args.publication}) as r:
            job = json.load(r)
        while job["status"] not in ("done", "failed"):
            print(f"\rexport {job['id']}: {job['percent']:5.1f} %", end="", file=sys.stderr)
            time.sleep(1)
            with _call("GET", f"{base}/{job['id']}", token) as r:
                job = json.load(r)
        print(f"\rexport {job['id']}: {job['status']}        ", file=sys.stderr)
        if job["status"] != "done":
            print(f"viis: the export failed: {job['error']}", file=sys.stderr)
            return 1
        out = Path(args.out or f"evidence-R-{args.request}-{job['id']}.zip")
        with _call("GET", f"{base}/{job['id']}/package.zip", token) as r, open(out, "wb") as f:
            while chunk := r.read(1 << 20):
                f.write(chunk)
    except urllib.error.HTTPError as e:
        try:
            msg = json.load(e).get("error", e.reason)
        except ValueError:
            msg = e.reason
        print(f"viis: the server refused ({e.code}): {msg}", file=sys.stderr)
        return 1
    except (urllib.error.URLError, OSError) as e:
        print(f"viis: cannot reach {args.url}: {e}", file=sys.stderr)
        return 2
    print(f"{out} ({job['bytes']} bytes; manifest SHA-256 {job['manifest_sha256']})")
    return 0


def add_verbs(sub, verb) -> None:
    e = verb("export", cmd_export, "export an evidence package of an open retrieval session "
                                   "from the running server (Q24.1)", sub)
    e.add_argument("request", type=int, help="retrieval request id")
    e.add_argument("session", type=int, help="retrieval session id (two staff, Q24.1)")
    e.add_argument("--url", default="http://127.0.0.1:8080")
    e.add_argument("--token-file", required=True,
                   help="file holding your session or API token (never on the command line)")
    e.add_argument("--out", help="package file (default evidence-R-<request>-<job>.zip)")
    e.add_argument("--no-watermark", action="store_true",
                   help="no watermark (stream copy when no privacy mask applies)")
    e.add_argument("--publication", action="store_true",
                   help="blur faces and licence plates for publication (N22.1)")
    v = verb("verify-export", cmd_verify_export,
             "verify an evidence package offline; exit 1 naming each changed, added or "
             "removed file or a bad signature", sub)
    v.add_argument("package")
    v.add_argument("--public-key", help="PEM public key of the exporting unit")
    v.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="JSON output")
