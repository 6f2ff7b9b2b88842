"""Shared pieces of the cascade tests: an app on a real database, upper platforms and
shares written through the store, and an upper platform made of VIIS's own Platform class
(registration, keepalive) or of a bare SIP endpoint that records what it is sent."""

from __future__ import annotations

import asyncio
import socket
from types import SimpleNamespace

from viis.core.clock import SystemClock
from viis.interconnect.gb28181 import cascade_store as store
from viis.interconnect.gb28181.endpoint import SipEndpoint
from viis.interconnect.gb28181.sip import SipRequest

UPPER = "34020000002000000001"
LOCAL = "34020000002000000099"
CH = "3402000000131000{:04d}"


def app_on(db, clock=None):
    return SimpleNamespace(db=db, clock=clock or SystemClock())


def add_upper(app, port, *, server_id=UPPER, local_id=LOCAL, password="secret", level=1,
              **kw):
    data = dict(name=f"upper {server_id[-4:]}", server_id=server_id, host="127.0.0.1",
                port=port, password=password, local_id=local_id, max_security_level=level,
                keepalive_s=1, keepalive_misses=3, register_expires=60) | kw
    with app.db.session() as s:
        return store.create_upper(s, data, actor="test", now_ms=app.clock.wall_ms())


def add_camera(app, rules, name, level=1, site=""):
    from viis.registry.service import CameraInput, CameraService

    with app.db.session() as s:
        return CameraService(rules, app.clock).add(s, CameraInput(
            name=name, main_url=f"rtsp://127.0.0.1/{name}", security_level=level, site=site))


def share(app, upper, items):
    with app.db.session() as s:
        return store.set_shares(s, upper.id, items, actor="test", now_ms=app.clock.wall_ms())


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def wait_for(pred, timeout=10.0, step=0.02):
    """Wait (generously: the machine is shared) until ``pred()`` holds; its last value."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while loop.time() < end:
        if pred():
            return True
        await asyncio.sleep(step)
    return pred()


class RecordingUpper:
    """An upper platform as a bare SIP endpoint: accepts REGISTER without a challenge,
    answers every MESSAGE/NOTIFY with 200 and keeps them, sends queries and SUBSCRIBE."""

    def __init__(self, server_id=UPPER, transport="UDP"):
        self.server_id = server_id
        self.transport = transport
        self.ep = SipEndpoint(server_id, server_id[:10], "127.0.0.1", 0, t1=0.05)
        self.messages: list[SipRequest] = []
        self.notifies: list[SipRequest] = []
        self.registers: list[SipRequest] = []
        self.datagrams: list[int] = []  # sizes of what the lower sent us over UDP
        self.ep.on_request("REGISTER", self._register)
        self.ep.on_request("MESSAGE", self._message)
        # NOTIFYs of our catalog subscription come inside its dialog (To tag set); the bare
        # endpoint keeps no SUBSCRIBE dialogs, so take them before its dialog check (481)
        inner = self.ep.layer.on_request

        def on_request(req, txn):
            if req.method == "NOTIFY":
                self._notify(req, txn)
            else:
                inner(req, txn)

        self.ep.layer.on_request = on_request
        self.ep.add_trace(self._trace)

    def _trace(self, direction, msg, addr, transport):
        if direction == "in" and transport == "UDP":
            self.datagrams.append(len(msg.encode()))

    async def start(self):
        await self.ep.start()
        return self

    async def stop(self):
        await self.ep.stop()

    @property
    def port(self):
        return self.ep.local_port

    def _register(self, req, txn):
        self.registers.append(req)
        txn.reply(200, Expires=req.get("Expires") or "3600")

    def _message(self, req, txn):
        self.messages.append(req)
        txn.reply(200)

    def _notify(self, req, txn):
        self.notifies.append(req)
        txn.reply(200)

    def bodies(self, cmd):
        from viis.interconnect.gb28181.cascade_answers import parse_query

        out = []
        for m in self.messages:
            q = parse_query(m.body)
            if q.cmd == cmd and q.root in ("Response", "Notify"):
                out.append((m, q))
        return out

    async def query(self, lower_port, body, local_id=LOCAL, method="MESSAGE", headers=None):
        req = self.ep.build_request(
            method, f"sip:{local_id}@127.0.0.1:{lower_port}", f"sip:{local_id}@{local_id[:10]}",
            transport=self.transport, addr=("127.0.0.1", lower_port), body=body,
            content_type="Application/MANSCDP+xml", headers=headers)
        return await self.ep.request(req, ("127.0.0.1", lower_port), self.transport)
