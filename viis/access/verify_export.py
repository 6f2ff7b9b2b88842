"""Offline verification of an evidence package (:mod:`viis.access.evidence`).

``viis verify-export PACKAGE [--public-key PEM]`` needs nothing but the zip and, ideally,
the exporting unit's public key obtained out of band (without it the key inside the package
is used, which proves integrity but not origin — said in the report). It checks:

1. the signature in ``manifest.sig`` over the exact bytes of ``manifest.json``;
2. every file the manifest lists is present, with its SHA-256 and size;
3. no file is in the package that the manifest does not list;
4. for each camera range, that the hash-chain proof recomputes to the stated chain head and
   contains every source segment with its SHA-256 (Q20.3, N23.1).

Each problem names the file. The zip is read defensively: member names with ``..``,
absolute paths or backslashes, duplicate names, more than 10,000 members, or a manifest over
16 MB are problems, not crashes, and members are hashed in streaming chunks.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from viis.core.errors import ValidationFailed
from viis.core.signing import Signature, verify
from viis.integrity.chain import link_hash

MANIFEST, SIGNATURE, PUBLIC_KEY = "manifest.json", "manifest.sig", "public-key.pem"
MAX_MEMBERS = 10_000
MAX_MANIFEST = 16 * 1024 * 1024


@dataclass
class VerifyReport:
    ok: bool = True
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    files_checked: int = 0
    manifest: dict | None = None

    def problem(self, text: str) -> None:
        self.ok = False
        self.problems.append(text)

    def as_dict(self) -> dict:
        return {"ok": self.ok, "problems": self.problems, "notes": self.notes,
                "files_checked": self.files_checked}


def _safe_name(name: str) -> bool:
    return bool(name) and not name.startswith("/") and "\\" not in name and \
        ".." not in name.split("/") and "\x00" not in name


def _sha256_member(z: zipfile.ZipFile, info: zipfile.ZipInfo) -> tuple[str, int]:
    h = hashlib.sha256()
    n = 0
    with z.open(info) as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
            n += len(chunk)
    return h.hexdigest(), n


def verify_package(package: str | Path, public_key_pem: bytes | None = None) -> VerifyReport:
    rep = VerifyReport()
    try:
        z = zipfile.ZipFile(package)
    except (OSError, zipfile.BadZipFile) as e:
        rep.problem(f"{package}: not a readable zip file ({e})")
        return rep
    with z:
        infos = z.infolist()
        if len(infos) > MAX_MEMBERS:
            rep.problem(f"the package has {len(infos)} members, over {MAX_MEMBERS}")
            return rep
        members: dict[str, zipfile.ZipInfo] = {}
        for info in infos:
            if info.is_dir():
                continue
            if not _safe_name(info.filename):
                rep.problem(f"{info.filename!r}: unsafe member name")
                continue
            if info.filename in members:
                rep.problem(f"{info.filename}: appears twice in the package")
                continue
            members[info.filename] = info
        missing = [n for n in (MANIFEST, SIGNATURE) if n not in members]
        for need in missing:
            rep.problem(f"{need}: missing from the package")
        if missing:
            return rep
        try:
            if members[MANIFEST].file_size > MAX_MANIFEST:
                raise ValueError("over 16 MB")
            body = z.read(members[MANIFEST])
            manifest = json.loads(body)
            if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict):
                raise ValueError("no files list")
        except (ValueError, zipfile.BadZipFile, UnicodeDecodeError) as e:
            rep.problem(f"{MANIFEST}: unreadable ({e})")
            return rep
        rep.manifest = manifest
        _check_signature(z, members, body, public_key_pem, rep)
        _check_files(z, members, manifest, rep)
        _check_chains(manifest, rep)
    return rep


def _check_signature(z, members, body: bytes, public_key_pem: bytes | None,
                     rep: VerifyReport) -> None:
    try:
        sig = Signature.from_dict(json.loads(z.read(members[SIGNATURE])))
    except (ValueError, ValidationFailed, zipfile.BadZipFile) as e:
        rep.problem(f"{SIGNATURE}: unreadable ({e})")
        return
    if public_key_pem is None:
        if PUBLIC_KEY not in members:
            rep.problem(f"{PUBLIC_KEY}: missing, and no --public-key given")
            return
        public_key_pem = z.read(members[PUBLIC_KEY])
        rep.notes.append("checked with the public key inside the package: this proves the "
                         "package is intact, not who made it; pass --public-key with the key "
                         "obtained from the exporting unit")
    try:
        good = verify(public_key_pem, body, sig)
    except ValidationFailed as e:
        rep.problem(f"public key: {e}")
        return
    if not good:
        rep.problem(f"{MANIFEST}: the signature in {SIGNATURE} does not match (the manifest "
                    "was changed, or it was signed by another key)")


def _check_files(z, members, manifest: dict, rep: VerifyReport) -> None:
    listed = manifest["files"]
    for name, meta in sorted(listed.items()):
        if not isinstance(meta, dict):
            rep.problem(f"{name}: malformed entry in the manifest")
            continue
        info = members.get(name)
        if info is None:
            rep.problem(f"{name}: removed (listed in the manifest, missing from the package)")
            continue
        try:
            sha, n = _sha256_member(z, info)
        except (zipfile.BadZipFile, OSError, EOFError) as e:
            rep.problem(f"{name}: changed (the zip member is damaged: {e})")
            continue
        rep.files_checked += 1
        if sha != meta.get("sha256") or n != meta.get("bytes"):
            rep.problem(f"{name}: changed (SHA-256 {sha[:16]}… differs from the manifest's)")
    for name in sorted(set(members) - set(listed) - {MANIFEST, SIGNATURE}):
        rep.problem(f"{name}: added (not listed in the manifest)")


def _check_chains(manifest: dict, rep: VerifyReport) -> None:
    for i, item in enumerate(manifest.get("items") or []):
        chain = item.get("chain") if isinstance(item, dict) else None
        label = (item.get("file") or f"item {i}") if isinstance(item, dict) else f"item {i}"
        if not chain:
            continue
        try:
            h = chain["prev_hash"]
            seen = {}
            for link in chain["links"]:
                h = link_hash(h, link)
                if link.get("kind") == "segment":
                    seen[link["seq"]] = link["sha256"]
            if h != chain["head"]["hash"]:
                rep.problem(f"{label}: the hash-chain proof does not reach the stated chain head")
            for src in item.get("sources", []):
                if seen.get(src["seq"]) != src["sha256"]:
                    rep.problem(f"{label}: source segment seq {src['seq']} is not in the chain "
                                "proof with its SHA-256")
        except (KeyError, TypeError, ValueError) as e:
            rep.problem(f"{label}: malformed chain proof ({e})")
