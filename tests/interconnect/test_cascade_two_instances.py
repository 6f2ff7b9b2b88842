"""Two VIIS on loopback, signalling (issue 7 done-when; Q13.1, Q13.2, Q12.1, N12.1): the
lower one (cascade) registers with a password to the upper one (platform role), the upper
asks for its catalog on registration and its camera registry then holds exactly the
cameras shared with it — the one whose security level was raised above the share grade
after sharing is absent. Media (live, playback) between the two is the media helper's."""

import asyncio

from sqlalchemy import select

from tests.interconnect.cascade_helpers import LOCAL, add_camera, add_upper, app_on, share
from tests.interconnect.gb_helpers import SERVER, make_app, started, until
from viis.core.db import Database
from viis.interconnect.gb28181.cascade import Cascade
from viis.media.index import SegmentRecord, append_gap, append_segment
from viis.registry.models import Camera


def test_lower_viis_registers_to_upper_viis_whose_catalog_shows_exactly_the_shared_cameras(
        tmp_path, sqlite_db, clock, rules):
    upper_app = make_app(tmp_path / "upper", sqlite_db, clock, keepalive_s=5,
                         password="city-platform-pw")
    low_db = Database(f"sqlite:///{tmp_path / 'lower.db'}")
    low_db.migrate()
    lower = app_on(low_db)

    async def main():
        gate = add_camera(lower, rules, "东门入口", level=1)
        hall = add_camera(lower, rules, "大厅", level=2)
        vault = add_camera(lower, rules, "机要室", level=2)
        add_camera(lower, rules, "not shared", level=1)
        svc = await started(upper_app)
        u = add_upper(lower, svc.port, server_id=SERVER, password="city-platform-pw", level=2,
                      keepalive_s=1, register_expires=3600)
        share(lower, u, [{"camera_id": gate.id, "channel_id": "34020000001310000101"},
                         {"camera_id": hall.id, "channel_id": "34020000001310000102"},
                         {"camera_id": vault.id, "channel_id": "34020000001310000103"}])
        with low_db.session() as s:  # raised after sharing: must not reach the upper
            s.get(Camera, vault.id).security_level = 3
        c = Cascade(lower, host="127.0.0.1", port=0, t1=0.1)
        await c.start()
        try:
            assert await until(lambda: c.clients[u.id].registered, 20), c.diagnose()
            peer = svc.platform.peers[LOCAL]
            assert peer.registered and peer.online

            def upper_cameras():
                with sqlite_db.session() as s:
                    return {cam.main_url: cam.name for cam in s.scalars(select(Camera))}

            assert await until(lambda: len(upper_cameras()) >= 2, 20), svc.diagnose(LOCAL)
            await asyncio.sleep(0.5)
            got = upper_cameras()
            assert sorted(got.values()) == ["东门入口", "大厅"], got
            assert all(url.startswith(f"gb28181://{LOCAL}/3402000000131000010") for url in got)
            assert "机要室" not in str(got) and "not shared" not in str(got)
            # the upper asks the lower for a camera's recordings: ranges from the lower's
            # index, the gap left out; the camera above the grade is refused
            t0 = 1_767_225_600_000
            with low_db.session() as s:
                cam = s.get(Camera, gate.id)
                for start, end in ((t0, t0 + 60_000), (t0 + 60_000, t0 + 120_000),
                                   (t0 + 300_000, t0 + 360_000)):
                    append_segment(s, cam, SegmentRecord(
                        start, end, 1500, 1000, "0" * 64, f"x/{start}.mp4", "h264", 640, 360,
                        25.0), t0)
                append_gap(s, cam, t0 + 120_000, t0 + 300_000, "unreachable", "", t0)
            rl = await svc.record_info(LOCAL, "34020000001310000101", t0 - 60_000, t0 + 3_600_000)
            assert rl.complete and [(x["start_ms"], x["end_ms"]) for x in rl.items] == \
                [(t0, t0 + 120_000), (t0 + 300_000, t0 + 360_000)]
            try:
                await svc.record_info(LOCAL, "34020000001310000103", t0, t0 + 60_000)
                refused = False
            except Exception:  # noqa: BLE001 - 404: the channel does not exist for this upper
                refused = True
            assert refused
        finally:
            await c.stop()
            await svc.stop()

    try:
        asyncio.run(asyncio.wait_for(main(), 90))
    finally:
        low_db.dispose()
