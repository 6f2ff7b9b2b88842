"""The `viis` command: verify answers with an exit code auditors can script on, holds work,
and there is no verb that deletes footage (invariant 1)."""

import json

from viis.cli import build_parser, main

T0 = 1_767_225_600_000


def run(capsys, *args):
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_no_verb_deletes_footage():
    parser = build_parser()
    words = set()
    for action in parser._actions:
        for name, sub in (getattr(action, "choices", None) or {}).items():
            words.add(name)
            for a in sub._actions:
                words.update((getattr(a, "choices", None) or {}).keys())
    assert not words & {"delete", "rm", "remove", "purge", "prune", "erase"}


def test_camera_add_list_and_refusal(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("VIIS_DATA_DIR", str(tmp_path))
    code, out, _ = run(capsys, "--json", "camera", "add", "gate", "rtsp://u:secret@10.0.0.1/s")
    assert code == 0 and "secret" not in out
    code, _, err = run(capsys, "camera", "add", "door", "rtsp://10.0.0.2/s", "--retention-days", "3")
    assert code == 2 and "Q19.7" in err
    code, out, _ = run(capsys, "--json", "camera", "list")
    assert [c["name"] for c in json.loads(out)] == ["gate"]


def test_verify_exit_code_follows_the_findings(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("VIIS_DATA_DIR", str(tmp_path))
    from viis.app import App
    from viis.core.config import load_settings
    from viis.media.index import SegmentRecord, append_segment
    from viis.registry.service import CameraInput

    app = App.open(load_settings())
    with app.db.session() as s:
        cam = app.cameras.add(s, CameraInput(name="c", main_url="rtsp://h/c"))
        p = app.settings.segments_path / cam.uid / "1.mp4"
        p.parent.mkdir(parents=True)
        p.write_bytes(b"x" * 100)
        import hashlib
        append_segment(s, cam, SegmentRecord(T0, T0 + 60_000, 1500, 100, hashlib.sha256(b"x" * 100).hexdigest(),
                                             f"{cam.uid}/1.mp4", "h264", 1, 1, 25.0), T0)
    code, out, _ = run(capsys, "verify", "--deep")
    assert code == 0 and "OK" in out
    p.write_bytes(b"y" * 100)
    code, out, _ = run(capsys, "verify", "--deep")
    assert code == 1 and "altered_file" in out
    code, out, _ = run(capsys, "--json", "hold", "add", "c", "--from", str(T0), "--to", str(T0 + 1000),
                       "--reason", "case", "--owner", "li")
    assert code == 0 and json.loads(out)["hold"] == 1
