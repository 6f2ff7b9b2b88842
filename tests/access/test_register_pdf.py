"""The retrieval register as PDF (Q19.1, Q24.1(3), N16.1): the same filters as the CSV, every
field of an entry — reason, content, unit and name (N16.1) and both staff members' work IDs
(Q24.1) — readable in the document, Chinese labels in the built-in CID font.

No PDF library reads it back here (pypdf and pdftotext are not installed): the page streams
are ASCII85 + Flate, undone with the standard library, and the text operators' strings are
decoded (UCS-2 for the CID font ``STSong-Light``, Latin-1 for Helvetica)."""

from __future__ import annotations

import base64
import re
import zlib

from tests.access.retrieval_helpers import World
from viis.access.register import FIELD_LABELS, FIELDS

_STREAM = re.compile(rb"/Filter \[ /ASCII85Decode /FlateDecode \] /Length \d+\s*>>\s*stream\r?\n"
                     rb"(.*?)~>\s*endstream", re.S)
_SHOW = re.compile(rb"/(F\d+) [\d.]+ Tf[^()]*?\(((?:\\.|[^\\)])*)\) Tj", re.S)
_ESC = {b"n": b"\n", b"r": b"\r", b"t": b"\t", b"b": b"\b", b"f": b"\f"}


def _unescape(raw: bytes) -> bytes:
    out, i = bytearray(), 0
    while i < len(raw):
        c = raw[i:i + 1]
        if c != b"\\":
            out += c
            i += 1
            continue
        m = re.match(rb"[0-7]{1,3}", raw[i + 1:i + 4])
        if m:
            out.append(int(m.group(0), 8) & 0xFF)
            i += 1 + len(m.group(0))
        else:
            nxt = raw[i + 1:i + 2]
            out += _ESC.get(nxt, nxt)
            i += 2
    return bytes(out)


def pdf_text(pdf: bytes) -> str:
    """The text shown on the pages, in order, without spaces (line breaks split words)."""
    cid_fonts = {m.group(1).decode() for m in re.finditer(rb"/Encoding /UniGB-UCS2-H /Name /(F\d+)", pdf)}
    parts = []
    for m in _STREAM.finditer(pdf):
        content = zlib.decompress(base64.a85decode(m.group(1).replace(b"\n", b"")))
        for font, raw in _SHOW.findall(content):
            data = _unescape(raw)
            parts.append(data.decode("utf-16-be") if font.decode() in cid_fonts else data.decode("latin-1"))
    return "".join(parts).replace(" ", "")


def _nospace(s: str) -> str:
    return s.replace(" ", "")


def test_the_register_pdf_holds_every_n16_field_of_the_filtered_entries(tmp_path, db, clock):
    w = World(tmp_path, db, clock)
    req = w.file("inv1", purpose="调查入室盗窃 burglary at the north gate")
    w.approve(req["id"])
    assert w.open(req["id"]).status_code == 201
    cam, other = w.cams
    assert w.c("inv1").get(f"/api/cameras/{cam}/timeline?{w.range_q(req)}").status_code == 200
    assert w.c("op1").get(f"/api/cameras/{other}/timeline?start=0&end=1000").status_code == 200
    aud = w.c("aud")
    r = aud.get(f"/api/register.pdf?camera={cam}")
    assert r.status_code == 200 and r.headers["content-type"] == "application/pdf"
    assert r.content.startswith(b"%PDF-1.") and r.content.rstrip().endswith(b"%%EOF")
    assert b"/BaseFont /STSong-Light" in r.content  # the built-in CID font, nothing embedded
    text = pdf_text(r.content)
    entry = aud.get(f"/api/register?camera={cam}").json()
    assert len(entry) == 1
    e = entry[0]
    for label in FIELD_LABELS.values():
        assert _nospace(label) in text, label
    assert set(FIELD_LABELS) == set(FIELDS)
    # N16.1: reason, content, unit, name; Q24.1: both staff and their work IDs, the approval
    for value in (e["purpose"], e["legal_basis"], e["unit_name"], e["user_name"], e["user_work_id"],
                  e["second_name"], e["second_work_id"], e["case_number"], e["from"], e["to"],
                  "timeline", e["reason"]):
        assert _nospace(str(value)) in text, value
    assert "调查入室盗窃" in text
    # the filter holds: the operator's entry on the other camera is not in it
    assert "duty of operator_on_duty" not in aud.get(f"/api/register.pdf?camera={cam}").text
    assert _nospace("duty of operator_on_duty") not in text
    everything = pdf_text(aud.get("/api/register.pdf").content)
    assert _nospace("duty of operator_on_duty") in everything and "调查入室盗窃" in everything
    assert f"camera{cam}".replace(" ", "") in text  # the filter is printed on the paper


def test_the_register_pdf_refuses_bad_filters_and_the_wrong_roles(tmp_path, db, clock):
    w = World(tmp_path, db, clock)
    aud = w.c("aud")
    for q in ("since=yesterday-ish", "camera=abc", "start=" + "9" * 70, "limit=x"):
        r = aud.get(f"/api/register.pdf?{q}")
        assert r.status_code == 422, (q, r.status_code)
        assert "error" in r.json()
    empty = aud.get("/api/register.pdf?camera=999")
    assert empty.status_code == 200 and "全部" not in pdf_text(empty.content)
    assert "0" in pdf_text(empty.content)
    for login in ("op1", "inv1", "appr", "dep1"):
        assert w.c(login).get("/api/register.pdf").status_code == 403
    assert w.site.client().get("/api/register.pdf").status_code == 401
