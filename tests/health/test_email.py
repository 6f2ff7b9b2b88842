"""E-mail to the maintainer (Q19.3 "notify maintenance for repair") through a real local SMTP
server (aiosmtpd): the ticket's events arrive as mail, AUTH works with the configured
password and the password never shows in logs or errors; a server that cannot do what the
settings demand gets nothing; bad addresses are refused when the notifier is built."""

from __future__ import annotations

import email
import email.policy
import logging
import socket
import time

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from sqlalchemy import select

from tests.media.recording import add_camera
from viis.app import App
from viis.core.clock import ManualClock
from viis.core.config import NotifySettings, load_settings
from viis.health.faults import clear_fault, raise_fault
from viis.health.notify import EmailSink, Notifier
from viis.health.tickets import TicketDesk
from viis.registry.models import Camera

PASSWORD = "pw-Zq81!never-in-logs"
# the test server speaks AUTH in clear text on loopback (no certificate to manage)
pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Inbox:
    def __init__(self) -> None:
        self.mails: list[email.message.EmailMessage] = []
        self.envelopes: list = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd hook)
        self.envelopes.append(envelope)
        self.mails.append(email.message_from_bytes(envelope.content, policy=email.policy.default))
        return "250 OK"


@pytest.fixture
def smtp_server():
    """A real SMTP server on 127.0.0.1; AUTH PLAIN/LOGIN required, user ``viis``."""
    inbox = Inbox()
    seen_auth: list[str] = []

    def authenticator(server, session, envelope, mechanism, auth_data):
        seen_auth.append(mechanism)
        ok = auth_data.login == b"viis" and auth_data.password == PASSWORD.encode()
        return AuthResult(success=ok, handled=False)

    ctl = Controller(inbox, hostname="127.0.0.1", port=_port(), authenticator=authenticator,
                     auth_required=True, auth_require_tls=False)
    ctl.start()
    try:
        yield ctl.port, inbox, seen_auth
    finally:
        ctl.stop()


def _settings(port: int, **kw) -> NotifySettings:
    base = dict(smtp_host="127.0.0.1", smtp_port=port, smtp_from="viis@example.org",
                smtp_to=["maint@example.org", "duty@example.org"], smtp_starttls=False,
                smtp_username="viis", smtp_password=PASSWORD, webhook_retries=0,
                webhook_backoff_s=0.05, smtp_timeout_s=5)
    base.update(kw)
    return NotifySettings(**base)


def _wait(cond, timeout=10.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.05)
    return False


def test_ticket_events_arrive_as_mail_through_smtp_with_auth(tmp_path, smtp_server, caplog, capsys):
    """Q19.3: the fault's ticket is opened and cleared; each event is one mail to every
    maintainer address, naming the camera, the fault, the repair deadline."""
    port, inbox, seen_auth = smtp_server
    clock = ManualClock()
    app = App.open(load_settings(environ={"VIIS_DATA_DIR": str(tmp_path / "d"),
                                          "VIIS_LOG__JSON": "false"}), clock=clock)
    notifier = Notifier(_settings(port))
    desk = TicketDesk(app, notifier, hold_s=60)
    caplog.set_level(logging.DEBUG)
    try:
        cid = add_camera(app, "north-gate", "rtsp://127.0.0.1:1/x")
        with app.db.session() as s:
            uid = s.scalar(select(Camera.uid).where(Camera.id == cid))
            raise_fault(s, "video_occluded", "critical", "video_occluded: score 0.52", clock.wall_ms(),
                        camera_id=cid)
        clock.advance(30)
        with app.db.session() as s:
            clear_fault(s, "video_occluded", clock.wall_ms(), camera_id=cid)
        assert notifier.flush(15)
        assert _wait(lambda: len(inbox.mails) >= 2)
        first, second = inbox.mails
        assert first["Subject"].startswith("[VIIS] opened: video_occluded on " + uid)
        assert second["Subject"].startswith("[VIIS] cleared: video_occluded")
        assert inbox.envelopes[0].rcpt_tos == ["maint@example.org", "duty@example.org"]
        assert inbox.envelopes[0].mail_from == "viis@example.org"
        body = first.get_content()
        assert "Repair due:" in body and "72 hours" in body and "Q19.3" in body
        assert seen_auth  # it authenticated
        st = notifier.stats()["smtp"]
        assert (st.sent, st.failed) == (2, 0)
        out = capsys.readouterr()
        assert PASSWORD not in caplog.text + out.out + out.err
    finally:
        desk.detach()
        notifier.close()
        app.close()


def test_wrong_password_is_refused_counted_and_never_echoed(smtp_server, caplog, capsys):
    port, inbox, _ = smtp_server
    caplog.set_level(logging.DEBUG)
    wrong = "wrong-" + PASSWORD
    n = Notifier(_settings(port, smtp_password=wrong, webhook_retries=2))
    try:
        n.send({"event": "opened", "camera": "cam-1", "ticket": {"id": 1, "kind": "video_black"}})
        assert n.flush(15)
        st = n.stats()["smtp"]
        assert (st.sent, st.failed) == (0, 1) and st.last_error == "SMTP 535"
        assert st.retries == 0  # an authentication refusal is not retried
        out = capsys.readouterr()
        text = caplog.text + out.out + out.err + repr(st)
        assert wrong not in text and PASSWORD not in text
        assert inbox.mails == []
    finally:
        n.close()


def test_starttls_demanded_but_not_offered_sends_nothing(smtp_server):
    """With ``smtp_starttls`` the mail (and the password) never go out in clear text."""
    port, inbox, seen_auth = smtp_server
    n = Notifier(_settings(port, smtp_starttls=True))
    try:
        n.send({"event": "opened", "camera": None, "ticket": {"id": 2}})
        assert n.flush(15)
        st = n.stats()["smtp"]
        assert st.failed == 1 and st.sent == 0 and "STARTTLS" in st.last_error
        assert inbox.mails == [] and seen_auth == []
    finally:
        n.close()


def test_unreachable_smtp_server_retries_then_gives_up_without_blocking():
    n = Notifier(_settings(_port(), webhook_retries=1, webhook_backoff_s=0.05))
    try:
        t0 = time.monotonic()
        n.send({"event": "overdue", "camera": None, "ticket": {"id": 3}})
        assert time.monotonic() - t0 < 0.05
        assert n.flush(15)
        st = n.stats()["smtp"]
        assert (st.sent, st.failed, st.retries) == (0, 1, 1) and st.last_error
    finally:
        n.close()


@pytest.mark.parametrize("field,value", [
    ("smtp_to", ["maint@example.org\r\nBcc: all@example.org"]),
    ("smtp_from", "viis@example.org\nSubject: spoofed"),
    ("smtp_to", ["not-an-address"]),
    ("smtp_to", ["x" * 300 + "@example.org"]),
    ("smtp_to", []),
])
def test_malformed_addresses_are_refused_when_the_notifier_is_built(field, value):
    with pytest.raises(ValueError):
        EmailSink(_settings(25, **{field: value}))
