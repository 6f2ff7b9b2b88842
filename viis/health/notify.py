"""Tell the maintainer (Q19.3 "notify maintenance for repair"): fault ticket events as JSON to
an MQTT broker and to webhooks, and as e-mail through a configured SMTP server (stdlib
``smtplib``; STARTTLS with a verified certificate and AUTH when configured; the password is
never logged nor put in an error message).

``Notifier.send`` only puts the event on a queue and returns; each destination (the broker,
every webhook) has its own worker thread and queue, so a dead webhook never delays the
broker nor the caller (the diagnosis worker, a web request). Webhooks get a POST with a
timeout and retries with exponential backoff; MQTT messages go out at QoS 1 (paho queues
them while the broker is away and sends them on reconnect).
"""

from __future__ import annotations

import json
import queue
import smtplib
import ssl
import threading
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

import paho.mqtt.client as mqtt

from viis.core.config import NotifySettings
from viis.core.logging import get_logger

log = get_logger(__name__)
QUEUE_MAX = 10_000


def payload(event) -> dict:
    d = event.as_dict() if hasattr(event, "as_dict") else dict(event)
    return {"type": "viis.fault_ticket", **d}


@dataclass
class SinkStats:
    sent: int = 0
    failed: int = 0
    retries: int = 0
    dropped: int = 0
    last_error: str = ""
    errors: list[str] = field(default_factory=list)


class _Sink:
    """One destination: a bounded queue and a daemon worker thread."""

    name = "sink"

    def __init__(self) -> None:
        self.q: queue.Queue = queue.Queue(QUEUE_MAX)
        self.stats = SinkStats()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"viis-notify-{self.name}",
                                        daemon=True)
        self._thread.start()

    def put(self, msg: dict) -> None:
        try:
            self.q.put_nowait(msg)
        except queue.Full:
            self.stats.dropped += 1
            log.error("notify_queue_full", sink=self.name)

    def _run(self) -> None:
        while True:
            msg = self.q.get()
            try:
                if msg is None:
                    return
                self.deliver(msg)
            except Exception as e:  # delivery errors are counted, never raised
                self.stats.failed += 1
                self.stats.last_error = str(e)
                log.exception("notify_failed", sink=self.name)
            finally:
                self.q.task_done()

    def deliver(self, msg: dict) -> None:
        raise NotImplementedError

    def flush(self, timeout: float) -> bool:
        done = threading.Event()
        threading.Thread(target=lambda: (self.q.join(), done.set()), daemon=True).start()
        return done.wait(timeout)

    def close(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self.q.put(None)
        self._thread.join(timeout)


class WebhookSink(_Sink):
    def __init__(self, url: str, timeout_s: float, retries: int, backoff_s: float) -> None:
        if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
            raise ValueError(f"webhook {url!r}: only http and https")
        self.url, self.timeout_s, self.retries, self.backoff_s = url, timeout_s, retries, backoff_s
        self.name = f"webhook:{urllib.parse.urlsplit(url).netloc}"
        super().__init__()

    def deliver(self, msg: dict) -> None:
        body = json.dumps(msg, ensure_ascii=False).encode()
        delay = self.backoff_s
        for attempt in range(self.retries + 1):
            try:
                req = urllib.request.Request(self.url, data=body, method="POST", headers={
                    "Content-Type": "application/json", "User-Agent": "viis-notify"})
                with urllib.request.urlopen(req, timeout=self.timeout_s) as r:
                    if 200 <= r.status < 300:
                        self.stats.sent += 1
                        return
                    err = f"HTTP {r.status}"
            except urllib.error.HTTPError as e:
                err = f"HTTP {e.code}"
                if 400 <= e.code < 500 and e.code not in (408, 429):
                    break  # the receiver refuses this message: retrying will not help
            except (OSError, urllib.error.URLError) as e:
                err = str(e)
            self.stats.last_error = err
            if attempt < self.retries:
                self.stats.retries += 1
                log.warning("webhook_retry", url=self.url, attempt=attempt + 1, error=err,
                            wait_s=delay)
                if self._stop.wait(delay):
                    break
                delay = min(delay * 2, 300.0)
        self.stats.failed += 1
        self.stats.errors.append(self.stats.last_error)
        log.error("webhook_failed", url=self.url, error=self.stats.last_error)


class MqttSink(_Sink):
    name = "mqtt"

    def __init__(self, url: str, topic: str, username: str | None = None,
                 password: str | None = None, client_id: str = "") -> None:
        u = urllib.parse.urlsplit(url if "://" in url else f"mqtt://{url}")
        if u.scheme not in ("mqtt", "tcp"):
            raise ValueError(f"mqtt_url {url!r}: only mqtt://host:port (TLS not yet)")
        self.topic = topic.rstrip("/")
        self.connected = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id)
        if username:
            self.client.username_pw_set(username, password)
        self.client.on_connect = lambda c, ud, flags, rc, props=None: (
            self.connected.set() if not rc.is_failure else None)
        self.client.on_disconnect = lambda *a: self.connected.clear()
        self.client.reconnect_delay_set(1, 30)
        self.client.connect_async(u.hostname or "127.0.0.1", u.port or 1883, keepalive=30)
        self.client.loop_start()
        super().__init__()

    def deliver(self, msg: dict) -> None:
        cam = msg.get("camera") or "system"
        info = self.client.publish(f"{self.topic}/{cam}", json.dumps(msg, ensure_ascii=False),
                                   qos=1)
        if info.rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):
            raise OSError(f"mqtt publish failed: {mqtt.error_string(info.rc)}")
        # QoS 1 is kept by paho and re-sent after a reconnect; count it when acknowledged
        if self.connected.wait(10):
            try:
                info.wait_for_publish(10)
            except (RuntimeError, ValueError):
                pass
        if info.is_published():
            self.stats.sent += 1
        else:
            self.stats.retries += 1
            log.warning("mqtt_not_yet_acknowledged", topic=f"{self.topic}/{cam}")

    def close(self, timeout: float = 5.0) -> None:
        super().close(timeout)
        self.client.loop_stop()
        self.client.disconnect()


class EmailSink(_Sink):
    """One e-mail per ticket event to ``smtp_to``. Retries like a webhook; an SMTP error
    reply (5xx) is not retried. Errors are recorded without the password."""

    name = "smtp"

    def __init__(self, settings: NotifySettings) -> None:
        if not settings.smtp_from or not settings.smtp_to:
            raise ValueError("e-mail needs notify.smtp_from and notify.smtp_to")
        for addr in [settings.smtp_from, *settings.smtp_to]:
            if "\n" in addr or "\r" in addr or "@" not in addr or len(addr) > 254:
                raise ValueError(f"not an e-mail address: {addr[:80]!r}")
        self.s = settings
        self.retries, self.backoff_s = settings.webhook_retries, settings.webhook_backoff_s
        super().__init__()

    def message(self, msg: dict) -> EmailMessage:
        t = msg.get("ticket") or {}
        cam = msg.get("camera") or "system"
        em = EmailMessage()
        em["Subject"] = (f"[VIIS] {msg.get('event')}: {t.get('kind')} on {cam} "
                         f"(ticket {t.get('id')}, {t.get('severity')})")
        em["From"] = self.s.smtp_from
        em["To"] = ", ".join(self.s.smtp_to)
        em["Date"] = formatdate(localtime=False)
        em["Message-ID"] = make_msgid(domain="viis")
        lines = [f"Event: {msg.get('event')} at {msg.get('at')}", f"Camera: {cam}",
                 f"Fault: {t.get('kind')} ({t.get('severity')})", f"Status: {t.get('status')}",
                 f"First seen: {t.get('first_seen')}",
                 f"Repair due: {t.get('repair_due')} ({t.get('repair_limit')})",
                 f"Details: {t.get('message')}", "",
                 "Q19.3: repair the fault promptly; if it cannot be repaired promptly, record "
                 "the temporary emergency measure taken.", "",
                 json.dumps(msg, ensure_ascii=False, indent=1)]
        em.set_content("\n".join(lines))
        return em

    def deliver(self, msg: dict) -> None:
        em = self.message(msg)
        delay = self.backoff_s
        for attempt in range(self.retries + 1):
            try:
                self._send(em)
                self.stats.sent += 1
                return
            except smtplib.SMTPResponseException as e:
                err = f"SMTP {e.smtp_code}"
                if 500 <= e.smtp_code < 600:
                    self.stats.last_error = err
                    break  # the server refuses: retrying will not help
            except (OSError, smtplib.SMTPException) as e:
                err = type(e).__name__ + (f": {e}" if not isinstance(e, smtplib.SMTPAuthenticationError) else "")
            self.stats.last_error = err
            if attempt < self.retries:
                self.stats.retries += 1
                log.warning("smtp_retry", host=self.s.smtp_host, attempt=attempt + 1, error=err)
                if self._stop.wait(delay):
                    break
                delay = min(delay * 2, 300.0)
        self.stats.failed += 1
        self.stats.errors.append(self.stats.last_error)
        log.error("smtp_failed", host=self.s.smtp_host, error=self.stats.last_error)

    def _send(self, em: EmailMessage) -> None:
        s = self.s
        with smtplib.SMTP(s.smtp_host, s.smtp_port, timeout=s.smtp_timeout_s) as smtp:
            smtp.ehlo()
            if s.smtp_starttls:
                smtp.starttls(context=ssl.create_default_context())
                smtp.ehlo()
            if s.smtp_username:
                smtp.login(s.smtp_username,
                           s.smtp_password.get_secret_value() if s.smtp_password else "")
            smtp.send_message(em)


class Notifier:
    """Fan ticket events out to every configured destination without blocking."""

    def __init__(self, settings: NotifySettings) -> None:
        self.settings = settings
        self.sinks: list[_Sink] = []
        if settings.mqtt_url:
            self.sinks.append(MqttSink(
                settings.mqtt_url, settings.mqtt_topic, settings.mqtt_username,
                settings.mqtt_password.get_secret_value() if settings.mqtt_password else None))
        for url in settings.webhooks:
            self.sinks.append(WebhookSink(url, settings.webhook_timeout_s,
                                          settings.webhook_retries, settings.webhook_backoff_s))
        if settings.smtp_host:
            self.sinks.append(EmailSink(settings))

    def send(self, event) -> None:
        msg = payload(event)
        for sink in self.sinks:
            sink.put(msg)

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every queued event has been delivered or given up (tests, shutdown)."""
        return all(s.flush(timeout) for s in self.sinks)

    def stats(self) -> dict[str, SinkStats]:
        return {s.name: s.stats for s in self.sinks}

    def close(self) -> None:
        for s in self.sinks:
            s.close()
