"""`viis audit verify` / `viis audit checkpoint`: exit 0 on an intact log, 1 naming the first
bad row, 1 on a forged checkpoint, 2 on an unusable file (invariant 2; Q20.3, N23.1)."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import text

from viis.cli import main


def run(capsys, *args):
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture(autouse=True)
def _restore_logging():
    """`viis` configures process-wide logging (root level INFO); put it back so later tests
    in the same run see the logging they expect."""
    import logging

    import structlog

    root = logging.getLogger()
    level, handlers, config = root.level, root.handlers[:], structlog.get_config()
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    structlog.configure(**config)


@pytest.fixture
def app(tmp_path, monkeypatch):
    monkeypatch.setenv("VIIS_DATA_DIR", str(tmp_path))
    from viis.app import App
    from viis.core.config import load_settings
    from viis.integrity.audit import AuditLog

    a = App.open(load_settings())
    with a.db.session() as s:
        for i in range(10):
            AuditLog(s, a.clock).append("auth.login", actor=f"u{i}")
    yield a
    a.close()


def test_checkpoint_then_verify_from_the_saved_file(app, tmp_path, capsys):
    cp = tmp_path / "cp.json"
    code, out, _ = run(capsys, "audit", "checkpoint", "--out", str(cp))
    assert code == 0 and cp.exists()
    doc = json.loads(cp.read_text())
    assert doc["tree_size"] == 11 and "PRIVATE" not in cp.read_text()
    with app.db.session() as s:
        from viis.integrity.audit import AuditLog
        AuditLog(s, app.clock).append("camera.update", actor="admin", subject="camera 1")
    code, out, _ = run(capsys, "audit", "checkpoint", "--out", str(tmp_path / "cp2.json"))
    code, out, _ = run(capsys, "audit", "verify", "--checkpoint", str(cp))
    assert code == 0, out
    assert "consistency proof" in out and "OK" in out


def test_verify_exits_1_naming_the_first_changed_row(app, tmp_path, capsys):
    cp = tmp_path / "cp.json"
    run(capsys, "audit", "checkpoint", "--out", str(cp))
    with app.db.session() as s:
        s.execute(text("UPDATE audit_entries SET kind = 'auth.logout' WHERE seq = 6"))
        s.execute(text("UPDATE audit_entries SET actor = 'x' WHERE seq = 8"))
    code, out, _ = run(capsys, "audit", "verify", "--checkpoint", str(cp))
    assert code == 1
    assert "FIRST PROBLEM changed: seq 6" in out
    code, out, _ = run(capsys, "--json", "audit", "verify")
    assert code == 1 and json.loads(out)["first_problem"]["seq"] == 6


def test_a_forged_checkpoint_file_fails(app, tmp_path, capsys):
    cp = tmp_path / "cp.json"
    run(capsys, "audit", "checkpoint", "--out", str(cp))
    doc = json.loads(cp.read_text())
    doc["root_hash"] = "0" * 64  # claims another history under the real signature
    cp.write_text(json.dumps(doc))
    code, out, _ = run(capsys, "audit", "verify", "--checkpoint", str(cp))
    assert code == 1 and "forged_checkpoint" in out


@pytest.mark.parametrize("content", [b"", b"\xff\xfe", b"{}", b"[" * 50_000, b"x" * 70_000])
def test_an_unusable_checkpoint_file_is_a_clear_error(app, tmp_path, capsys, content):
    cp = tmp_path / "cp.json"
    cp.write_bytes(content)
    code, _, err = run(capsys, "audit", "verify", "--checkpoint", str(cp))
    assert code == 2 and "viis:" in err
    code, _, err = run(capsys, "audit", "verify", "--checkpoint", str(tmp_path / "missing.json"))
    assert code == 2 and "cannot read" in err


def test_camera_changes_from_the_command_line_name_the_os_user(app, capsys):
    import getpass

    from viis.integrity.audit import AuditLog

    assert run(capsys, "camera", "add", "gate", "rtsp://10.0.0.1/s")[0] == 0
    assert run(capsys, "camera", "set", "gate", "retention_days=45")[0] == 0
    with app.db.session() as s:
        got = [(e.kind, e.actor) for e in AuditLog(s).search(limit=3)]
    who = f"cli:{getpass.getuser()}"
    assert got == [("retention.change", who), ("camera.update", who), ("camera.create", who)]
