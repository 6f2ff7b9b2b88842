"""Ticket notifications (Q19.3 "notify maintenance"): delivered to the real Mosquitto broker
on 127.0.0.1:1883 and to a real local HTTP webhook receiver; retries with backoff; the
caller is never blocked."""

from __future__ import annotations

import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import paho.mqtt.client as mqtt
import pytest
from sqlalchemy import select

from tests.media.recording import add_camera
from viis.app import App
from viis.core.clock import ManualClock
from viis.core.config import NotifySettings, load_settings
from viis.health.faults import clear_fault, raise_fault
from viis.health.notify import Notifier
from viis.health.tickets import TicketDesk
from viis.registry.models import Camera


class Receiver:
    """HTTP webhook receiver; the first ``fail_first`` requests get a 503, each request
    waits ``delay_s`` before answering."""

    def __init__(self, fail_first: int = 0, delay_s: float = 0.0):
        self.bodies: list[dict] = []
        self.times: list[float] = []
        self.fail_first, self.delay_s = fail_first, delay_s
        recv = self

        class H(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                time.sleep(recv.delay_s)
                recv.times.append(time.monotonic())
                if recv.fail_first > 0:
                    recv.fail_first -= 1
                    self.send_response(503)
                    self.end_headers()
                    return
                recv.bodies.append(json.loads(body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *a):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def subscriber():
    """A real MQTT client subscribed to a per-test topic prefix on the local Mosquitto."""
    prefix = f"viis-test-{uuid.uuid4().hex[:8]}/faults"
    got: list[tuple[str, dict]] = []
    ready = threading.Event()
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    c.on_connect = lambda cl, ud, fl, rc, pr=None: cl.subscribe(f"{prefix}/#", qos=1)
    c.on_subscribe = lambda *a: ready.set()
    c.on_message = lambda cl, ud, m: got.append((m.topic, json.loads(m.payload)))
    c.connect("127.0.0.1", 1883)
    c.loop_start()
    assert ready.wait(5), "could not subscribe on the local Mosquitto (127.0.0.1:1883)"
    yield prefix, got
    c.loop_stop()
    c.disconnect()


def _wait(cond, timeout=10.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.05)
    return False


def test_ticket_events_reach_mqtt_and_webhook(tmp_path, subscriber):
    """Q19.3: a raised fault opens a ticket and the maintainer hears of it on MQTT (topic per
    camera uid) and by webhook; clearing is notified too."""
    prefix, got = subscriber
    hook = Receiver()
    clock = ManualClock()
    app = App.open(load_settings(environ={"VIIS_DATA_DIR": str(tmp_path / "d"),
                                          "VIIS_LOG__JSON": "false"}), clock=clock)
    notifier = Notifier(NotifySettings(mqtt_url="mqtt://127.0.0.1:1883", mqtt_topic=prefix,
                                       webhooks=[hook.url]))
    desk = TicketDesk(app, notifier, hold_s=60)
    try:
        cid = add_camera(app, "north-gate", "rtsp://127.0.0.1:1/x")
        with app.db.session() as s:
            uid = s.scalar(select(Camera.uid).where(Camera.id == cid))
            raise_fault(s, "video_black", "critical", "video_black: score 1.00", clock.wall_ms(),
                        camera_id=cid)
        clock.advance(30)
        with app.db.session() as s:
            clear_fault(s, "video_black", clock.wall_ms(), camera_id=cid)
        assert _wait(lambda: len(got) >= 2 and len(hook.bodies) >= 2), (got, hook.bodies)
        assert [t for t, _ in got] == [f"{prefix}/{uid}"] * 2
        assert [m["event"] for _, m in got] == ["opened", "cleared"]
        assert [m["event"] for m in hook.bodies] == ["opened", "cleared"]
        m = hook.bodies[0]
        assert m["type"] == "viis.fault_ticket" and m["camera"] == uid
        assert m["ticket"]["kind"] == "video_black" and m["ticket"]["severity"] == "critical"
        assert m["ticket"]["repair_due"] and m["at_ms"] == clock.wall_ms() - 30_000
    finally:
        desk.detach()
        notifier.close()
        hook.close()
        app.close()


def test_webhook_retries_with_backoff_and_never_blocks_the_caller():
    """A receiver that fails twice gets the event on the third try, after growing waits; a
    slow receiver does not slow ``send`` (the diagnosis worker must not wait on the network)."""
    hook = Receiver(fail_first=2, delay_s=0.3)
    n = Notifier(NotifySettings(webhooks=[hook.url], webhook_retries=3, webhook_backoff_s=0.2,
                                webhook_timeout_s=2))
    try:
        t0 = time.monotonic()
        for i in range(3):
            n.send({"event": "opened", "camera": None, "ticket": {"id": i}})
        assert time.monotonic() - t0 < 0.05
        assert n.flush(15)
        assert [b["ticket"]["id"] for b in hook.bodies] == [0, 1, 2]
        gaps = [b - a for a, b in zip(hook.times, hook.times[1:])]
        # 503 -> wait 0.2 s -> 503 -> wait 0.4 s -> 204 (each answer takes 0.3 s)
        assert gaps[0] >= 0.3 + 0.2 - 0.05 and gaps[1] >= 0.3 + 0.4 - 0.05, gaps
        st = n.stats()[f"webhook:127.0.0.1:{hook.server.server_address[1]}"]
        assert (st.sent, st.retries, st.failed) == (3, 2, 0)
    finally:
        n.close()
        hook.close()


def test_unreachable_webhook_gives_up_and_is_counted():
    """Delivery to a dead receiver ends after the retries, counted as failed, not raised."""
    n = Notifier(NotifySettings(webhooks=["http://127.0.0.1:9/nothing"], webhook_retries=1,
                                webhook_backoff_s=0.1, webhook_timeout_s=1))
    try:
        n.send({"event": "overdue", "camera": None, "ticket": {"id": 1}})
        assert n.flush(10)
        st = next(iter(n.stats().values()))
        assert (st.sent, st.failed, st.retries) == (0, 1, 1) and st.last_error
    finally:
        n.close()
