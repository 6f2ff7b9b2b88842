"""Camera registration refuses forbidden places with the articles (Q9.1, N8.1) and unknown
location types with the allowed list, on SQLite and PostgreSQL."""

import pytest

from viis.core.errors import ValidationFailed
from viis.registry.service import CameraInput, CameraService


@pytest.mark.parametrize("place,articles", [
    ("toilet", ("N8.1", "Q9.1")),
    ("hotel_guest_room", ("N8.1", "Q9.1")),
    ("fitting_room", ("N8.1", "Q9.1")),
    ("private_dining_room", ("N8.1",)),
])
def test_forbidden_location_is_refused_with_articles(db, rules, clock, place, articles):
    """Q9.1, N8.1: no camera in a privacy place; the error cites every article."""
    with db.session() as s, pytest.raises(ValidationFailed) as e:
        CameraService(rules, clock).add(s, CameraInput(name="c", main_url="rtsp://h/c", location_type=place))
    assert e.value.field == "location_type"
    assert e.value.articles == articles
    assert all(a in str(e.value) for a in articles)
    with db.session() as s:
        assert CameraService(rules, clock).list(s) == []


def test_moving_a_camera_into_a_forbidden_place_is_refused(db, rules, clock):
    """Q9.1, N8.1: an update cannot do what an add may not."""
    svc = CameraService(rules, clock)
    with db.session() as s:
        cid = svc.add(s, CameraInput(name="c", main_url="rtsp://h/c", location_type="entrance_exit")).id
    with db.session() as s, pytest.raises(ValidationFailed, match="Q9.1"):
        svc.update(s, cid, {"location_type": "changing_room"})
    with db.session() as s:
        assert svc.get(s, cid).location_type == "entrance_exit"


def test_unknown_location_type_lists_the_allowed_ones(db, rules, clock):
    with db.session() as s, pytest.raises(ValidationFailed) as e:
        CameraService(rules, clock).add(s, CameraInput(name="c", main_url="rtsp://h/c", location_type="lobbyy"))
    assert e.value.field == "location_type"
    assert "public_area" in str(e.value) and "entrance_exit" in str(e.value)


def test_public_area_is_the_default_and_allowed_types_pass(db, rules, clock):
    svc = CameraService(rules, clock)
    with db.session() as s:
        a = svc.add(s, CameraInput(name="a", main_url="rtsp://h/a"))
        b = svc.add(s, CameraInput(name="b", main_url="rtsp://h/b", location_type="car_park"))
        assert (a.location_type, b.location_type) == ("public_area", "car_park")
