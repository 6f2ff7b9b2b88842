"""Camera registry: validation, secrets kept out of answers, retention floor (Q19.7, N17.1)."""

import pytest

from viis.core.errors import ValidationFailed
from viis.registry.service import CameraInput, CameraService, connect_url, public_view


def svc(rules, clock):
    return CameraService(rules, clock)


def test_retention_below_minimum_is_refused_citing_both_articles(db, rules, clock):
    with db.session() as s, pytest.raises(ValidationFailed) as e:
        svc(rules, clock).add(s, CameraInput(name="gate", main_url="rtsp://10.0.0.1/s", retention_days=29))
    assert e.value.field == "retention_days"
    assert "Q19.7" in str(e.value) and "N17.1" in str(e.value)
    with db.session() as s:
        assert svc(rules, clock).list(s) == []


def test_retention_defaults_to_the_minimum_and_accepts_more(db, rules, clock):
    with db.session() as s:
        a = svc(rules, clock).add(s, CameraInput(name="a", main_url="rtsp://h/a"))
        b = svc(rules, clock).add(s, CameraInput(name="b", main_url="rtsp://h/b", retention_days=90))
        assert (a.retention_days, b.retention_days) == (30, 90)


def test_lowering_retention_below_minimum_by_update_is_refused_and_keeps_old_value(db, rules, clock):
    with db.session() as s:
        cam = svc(rules, clock).add(s, CameraInput(name="a", main_url="rtsp://h/a", retention_days=60))
        cid = cam.id
    with db.session() as s, pytest.raises(ValidationFailed):
        svc(rules, clock).update(s, cid, {"retention_days": 7})
    with db.session() as s:
        assert svc(rules, clock).get(s, cid).retention_days == 60


def test_credentials_in_url_are_split_off_and_never_shown(db, rules, clock):
    with db.session() as s:
        cam = svc(rules, clock).add(s, CameraInput(name="a", main_url="rtsp://admin:s3cret@10.1.1.1:554/main"))
        view = public_view(cam)
    assert cam.main_url == "rtsp://10.1.1.1:554/main"
    assert (cam.username, cam.password) == ("admin", "s3cret")
    assert "s3cret" not in repr(view) and "admin" not in repr(view)
    assert view["has_credentials"] is True
    assert connect_url(cam.main_url, cam.username, cam.password) == "rtsp://admin:s3cret@10.1.1.1:554/main"


@pytest.mark.parametrize("field,value,needle", [
    ("main_url", "http://10.0.0.1/x", "rtsp://"),
    ("main_url", "", "empty"),
    ("main_url", "rtsp://" + "a" * 3000, "limit"),
    ("main_url", "rtsp://host/\x00x", "control"),
    ("main_url", "rtsp://host:99999/x", "valid URL"),
    ("name", "", "empty"),
    ("name", "x" * 500, "printable"),
    ("security_level", 9, "1 to 5"),
    ("priority", -1, "0 to 100"),
    ("retention_days", "thirty", "whole number"),
    ("retention_days", True, "whole number"),
])
def test_bad_camera_input_gets_a_clear_error(db, rules, clock, field, value, needle):
    data = CameraInput(name="ok", main_url="rtsp://h/x")
    setattr(data, field, value)
    with db.session() as s, pytest.raises(ValidationFailed) as e:
        svc(rules, clock).add(s, data)
    assert needle in str(e.value)
    assert e.value.field == field


def test_duplicate_name_is_refused(db, rules, clock):
    with db.session() as s:
        svc(rules, clock).add(s, CameraInput(name="a", main_url="rtsp://h/a"))
    with db.session() as s, pytest.raises(ValidationFailed, match="exists already"):
        svc(rules, clock).add(s, CameraInput(name="a", main_url="rtsp://h/b"))


def test_a_legal_basis_for_longer_retention_is_kept_and_shown(db, rules, clock):
    """N17.1: keeping footage past the default needs a recorded legal basis."""
    with db.session() as s:
        cam = svc(rules, clock).add(s, CameraInput(name="vault", main_url="rtsp://h/v", retention_days=90,
                                                    retention_basis="PBoC rule: 90 days for vaults"))
        assert public_view(cam)["retention_basis"] == "PBoC rule: 90 days for vaults"
    with db.session() as s, pytest.raises(ValidationFailed, match="500"):
        svc(rules, clock).update(s, cam.id, {"retention_basis": "x" * 501})
