"""The snapshot exchange format: hostile or malformed input gets a precise error naming the
path of the bad field; the CLI evaluates a snapshot (docs/compliance-snapshot.md)."""

from __future__ import annotations

import json

import pytest

from viis.cli import main
from viis.compliance.snapshot import SnapshotError, loads

from .snapbuild import clean


def _err(d, **kw) -> SnapshotError:
    with pytest.raises(SnapshotError) as e:
        loads(d if isinstance(d, str | bytes) else json.dumps(d), **kw)
    return e.value


@pytest.mark.parametrize("change,path,words", [
    (lambda d: d["cameras"][0].update(retention_days="30"), "cameras[0].retention_days", "must be an integer"),
    (lambda d: d["cameras"][0].update(colour="red"), "cameras[0].colour", "unknown key"),
    (lambda d: d["organisation"].update(use="charity"), "organisation.use", "not one of"),
    (lambda d: d["cameras"][0].update(system="nope"), "cameras[0].system", "no system"),
    (lambda d: d["activity"]["faults"].append({"id": "F", "camera": "c1", "kind": "x",
                                               "first_seen": "2026-02-01T10:00:00"}),
     "activity.faults[0].first_seen", "no UTC offset"),
    (lambda d: d["filings"][1].update(filed_on="2026-02-30"), "filings[1].filed_on", "not a date"),
    (lambda d: d["systems"][0]["contractors"][1].update(role="painter"), "systems[0].contractors[1].role",
     "not one of"),
    (lambda d: d["activity"]["recording"][0].update(coverage=1.5), "activity.recording[0].coverage", "0 to 1"),
    (lambda d: d["cameras"].append(dict(d["cameras"][0])), "cameras[1].id", "duplicate"),
    (lambda d: d.update(version=2), "version", "version 1"),
])
def test_malformed_snapshot_names_the_field(change, path, words):
    d = clean()
    change(d)
    e = _err(d)
    assert e.path == path and words in str(e), str(e)


def test_hostile_input_is_refused_clearly():
    assert "at most 100" in str(_err(json.dumps(clean()), max_bytes=100))
    assert "nested deeper" in str(_err("[" * 100_000 + "]" * 100_000))
    assert "nested deeper" in str(_err(json.dumps({**clean(), "activity": {"period": [[[[[[[[[[[[[1]]]]]]]]]]]]]}})))
    assert "line 1 column" in str(_err("{\"format\": "))
    assert "not UTF-8" in str(_err(b"\xff\xfe"))
    assert "NaN" in str(_err('{"a": NaN}'))
    assert "must be an object" in str(_err("[]"))


def test_cli_prints_findings_as_table_and_json(tmp_path, capsys):
    """Q16.1, N14.1: the CLI prints the missing filings; exit 1 when there is a breach."""
    d = clean()
    d["filings"] = []
    p = tmp_path / "s.json"
    p.write_text(json.dumps(d))
    assert main(["compliance", "evaluate", str(p), "--on", "2026-03-01"]) == 1
    out = capsys.readouterr().out
    assert "filing.qingdao-2020.acceptance" in out and "Q28.1" in out and "N29" in out
    assert "2 breach(es), 0 reminder(s)" in out
    assert main(["compliance", "evaluate", str(p), "--on", "2026-03-01", "--json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert [(f["check"], f["requirements"]) for f in doc["findings"]] == [
        ("filing.national-2025.in_use", ["N14.1"]), ("filing.qingdao-2020.acceptance", ["Q16.1"])]
    assert main(["--json", "compliance", "evaluate", str(p), "--on", "2026-03-01"]) == 1
    assert json.loads(capsys.readouterr().out)["on"] == "2026-03-01"
    p.write_text(json.dumps(clean()))
    assert main(["compliance", "evaluate", str(p), "--on", "2026-03-01"]) == 0


def test_cli_refuses_a_bad_snapshot_with_the_path(tmp_path, capsys):
    d = clean()
    d["cameras"][0]["retention_days"] = -1
    p = tmp_path / "s.json"
    p.write_text(json.dumps(d))
    assert main(["compliance", "evaluate", str(p), "--on", "2026-03-01"]) == 2
    assert "cameras[0].retention_days" in capsys.readouterr().err
    assert main(["compliance", "evaluate", str(p), "--on", "March"]) == 2


def test_schema_lists_the_fields_the_parser_reads():
    """The documented schema and the parser agree on every object's keys (clean example)."""
    from viis.core.config import REPO_ROOT

    schema = json.loads((REPO_ROOT / "docs/compliance-snapshot.schema.json").read_text())

    def walk(value, sch, path):
        if isinstance(value, dict):
            props = sch["properties"]
            assert set(value) <= set(props), (path, set(value) - set(props))
            assert set(sch["required"]) <= set(value) or path.startswith("activity"), path
            for k, v in value.items():
                walk(v, props[k], f"{path}.{k}")
        elif isinstance(value, list):
            for v in value:
                walk(v, sch["items"], path + "[]")

    d = clean()
    d["cameras"][0]["installed_on"] = "2025-06-01"
    walk(d, schema, "")
    assert set(schema["properties"]) == {"format", "version", "organisation", "generated_at", "sites",
                                         "systems", "cameras", "filings", "activity", "zones", "consents"}
