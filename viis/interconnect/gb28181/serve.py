"""Media answering on the cascade side: an upper platform's INVITE for a shared channel
becomes PS over RTP from our footage (Q13.1: the sharing, police image and emergency
command platforms see our cameras level by level and with permission; Q12.1, N12.1).

- ``s=Play``: the camera's live stream from the recorder's packet tap
  (:class:`.feeds.LiveFeed`; the recorder stays the only client of the camera, invariant 6),
  packed into PS and sent by :class:`.rtpps.PsSender` without transcoding.
- ``s=Playback`` / ``s=Download``: recorded segments from the ``t=`` range
  (:class:`.feeds.PlaybackFeed`), paced at 1x (playback) or the ``a=downloadspeed``
  (download); MANSRTSP INFO in the dialog pauses, seeks (``Range: npt=120-``) and changes
  the speed (``Scale: 2.0``, 0.5-8x). At the end of the range a MediaStatus 121 tells the
  upper the file is done; BYE from either side ends the session.
- Transport per the offer: ``RTP/AVP`` is UDP to the offered address; ``TCP/RTP/AVP`` with
  ``a=setup:passive`` (the upper listens) makes us connect, ``a=setup:active`` makes us
  listen on the port of our answer (RFC 4571 framing either way).

**One door** (invariant 3): every INVITE passes :func:`viis.access.door.authorize_footage`
under the upper platform's identity (:meth:`.cascade.Cascade.principal`: ``gb28181:<server
id>``, role ``upper_platform``, clearance = the platform's grade) with ``live``, ``playback``
or — a download is a copy — ``export`` for the camera and time range, and writes one
register entry whose unit is the platform and whose purpose names the platform and channel
(Q19.1, Q24.1(3), N16.1), allowed or refused. Refused: 403. A Download is allowed only
under an approved, unexpired retrieval request that covers the camera and range and names
this upper as its delivery target (:func:`viis.access.retrieval.delivery_scope`, Q23.1,
Q24.1); its register entry is an export under that request (request, case, legal basis).
A channel the upper may not see (not shared, disabled, above its grade) is 404 before that, and so is a playback range with
nothing recorded; a live INVITE for a camera the recorder cannot reach is 480.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from viis.access.door import FootageUse, Forbidden, authorize_footage
from viis.core.logging import get_logger
from viis.interconnect.gb28181 import manscdp, mansrtsp
from viis.interconnect.gb28181.endpoint import InviteAnswer
from viis.interconnect.gb28181.feeds import LiveFeed, LiveTap, PlaybackFeed, RecordingReader
from viis.interconnect.gb28181.rtpps import PsSender
from viis.interconnect.gb28181.sdp import GbSdp, SdpError, build_sdp, make_ssrc, parse_sdp
from viis.interconnect.gb28181.sip import SipUri

log = get_logger(__name__)

ACTIONS = {"Play": "live", "Playback": "playback", "Download": "export"}
#: Recorder states in which a camera has no live stream to give (a live INVITE gets 480).
OFFLINE_STATES = ("backoff", "paused", "stopped", "disabled")
ACK_TIMEOUT_S = 32.0  # 64*T1: a session whose ACK never comes is closed
TCP_CONNECT_WAIT_S = 10.0  # setup:active: how long we wait for the upper to connect


def register_sink(db, upper, channel_id: str, session: str):
    """The register sink for one INVITE: the door's entry (viis.access.register.record),
    with the upper platform as the unit and what it asked for as the purpose (N16.1:
    reason, content, unit and name of whoever views)."""
    from viis.access.register import record
    from viis.access.retrieval_models import RetrievalRequest

    def sink(use: FootageUse) -> None:
        with db.session() as s:
            e = record(s, use)
            e.unit_name = f"{upper.name} ({upper.server_id})"[:200]
            asked = (f"GB/T 28181 {session} requested by upper platform {upper.name} "
                     f"({upper.server_id}) for channel {channel_id} (Q13.1)")
            if e.request_id is not None:  # a copy under an approved request (Q24.1, N16.1)
                req = s.get(RetrievalRequest, e.request_id)
                staff = req.staff_work_ids if req is not None else ""
                e.purpose = (f"{e.purpose} — {asked}; copy delivered to the upper platform; "
                             f"staff named in R-{e.request_id}: {staff}")[:2000]
            else:
                e.request_kind = "gb28181"
                e.purpose = asked[:2000]
    return sink


@dataclass(eq=False)
class UpSession:
    """One media session to an upper platform."""

    upper: Any
    channel_id: str
    camera_id: int
    kind: str  # Play | Playback | Download
    offer: GbSdp
    sender: PsSender
    feed: LiveFeed | PlaybackFeed
    task: asyncio.Task | None = None
    dialog: Any = None  # the endpoint's dialog, once ACKed
    ended: str = ""  # why it ended
    stats: dict = field(default_factory=lambda: {"frames": 0, "infos": 0})


class MediaAnswerer:
    """Answers the INVITEs the cascade hands it (:meth:`Cascade.set_invite_handler`).

    ``tap``: the :class:`LiveTap` on the recorder; ``clock``: the gb28181 clock pacing
    playback; ``media_host``: the address put in our SDP answers (default: the address the
    cascade endpoint is reached at from the upper)."""

    def __init__(self, app, cascade, tap: LiveTap, *, clock=None, media_host: str | None = None,
                 bind_host: str = "0.0.0.0",
                 camera_state: Callable[[int], str | None] | None = None) -> None:
        self.app, self.cascade, self.tap = app, cascade, tap
        self.camera_state = camera_state  # the recorder's state of a camera (live INVITEs)
        self.clock = clock or cascade.clock
        self.media_host, self.bind_host = media_host, bind_host
        self.sessions: dict[str, UpSession] = {}  # Call-ID -> session
        self._ssrc = itertools.count(1)
        self.refused = 0

    @classmethod
    def attach(cls, cascade, recorder, **kw) -> MediaAnswerer:
        """Put a packet tap on ``recorder`` and answer ``cascade``'s INVITEs."""
        kw.setdefault("camera_state", lambda cid: (recorder.status(cid) or {}).get("state"))
        m = cls(cascade.app, cascade, LiveTap.attach(recorder), **kw)
        cascade.set_invite_handler(m.on_invite)
        return m

    # ---- INVITE --------------------------------------------------------------------------
    async def on_invite(self, upper, req, txn) -> InviteAnswer:
        try:
            offer = parse_sdp(req.body)
        except SdpError as e:
            return InviteAnswer(400, reason=f"Bad SDP: {e}"[:80])
        kind = offer.session if offer.session in ACTIONS else None
        if kind is None:
            return InviteAnswer(488, reason="Session Not Supported")
        channel_id = self._channel_of(req, offer)
        share = await self.cascade.share_async(upper, channel_id) if channel_id else None
        if share is None:  # not shared with this upper, disabled or above its grade (Q13.1)
            return InviteAnswer(404, reason="No Such Channel")
        start_ms = end_ms = None
        if kind == "Play" and self.camera_state is not None and \
                self.camera_state(share.camera_id) in OFFLINE_STATES:
            # say so at once rather than let the upper wait for a stream that cannot come
            return InviteAnswer(480, reason="Camera Offline")
        if kind != "Play":
            if offer.end <= offer.start:
                return InviteAnswer(400, reason="Playback Needs A Time Range")
            start_ms, end_ms = offer.start * 1000, offer.end * 1000
            # nothing recorded then: 404 before the door (RecordInfo tells the same; a
            # register entry for a view that shows nothing would mislead)
            if not await asyncio.get_running_loop().run_in_executor(
                    None, self._has_footage, share.camera_id, start_ms, end_ms):
                return InviteAnswer(404, reason="No Recording In Range")
        try:
            await self._door(upper, share, kind, start_ms, end_ms)
        except Forbidden as e:
            self.refused += 1
            log.warning("gb.serve.refused", upper=upper.server_id, channel=channel_id,
                        reason=str(e)[:200])
            return InviteAnswer(403, reason="Forbidden")
        if kind == "Play":
            feed: LiveFeed | PlaybackFeed = self.tap.open(share.camera_id)
        else:
            reader = RecordingReader.of_camera(self.app.db, self.app.settings.segments_path,
                                               share.camera_id)
            speed = float(offer.download_speed or 1) if kind == "Download" else 1.0
            feed = PlaybackFeed(reader, start_ms, end_ms, self.clock,
                                scale=min(max(speed, 0.5), 8.0))
        try:
            sender = await self._open_sender(offer, upper.domain)
        except (OSError, TimeoutError, ValueError) as e:
            feed.close()
            log.warning("gb.serve.transport_failed", upper=upper.server_id, error=str(e)[:200])
            return InviteAnswer(488, reason="Media Transport Failed")
        sess = UpSession(upper, channel_id, share.camera_id, kind, offer, sender, feed)
        self.sessions[req.call_id] = sess
        answer = self._answer_sdp(upper, req, offer, sender, channel_id)
        log.info("gb.serve.invite", upper=upper.server_id, channel=channel_id, session=kind,
                 mode=sender.mode, local_port=sender.local_port)
        if sender.mode != "udp":  # the upper closed the media connection: hang up
            sender.on_close = lambda: self._peer_gone(req.call_id)
        return InviteAnswer(200, sdp=answer, on_ack=lambda d, ack: self._start(sess, d),
                            on_bye=lambda d, bye: self._end(req.call_id, "bye"),
                            on_request=lambda d, r, t: self._on_info(sess, r, t))

    @staticmethod
    def _channel_of(req, offer: GbSdp) -> str:
        """The channel: Request-URI user (sip:<channel>@…), else ``u=<channel>:0``, else
        the first part of the Subject (``<channel>:<ssrc>,<platform>:0``)."""
        try:
            user = SipUri.parse(req.uri).user
        except Exception:  # noqa: BLE001 - a bent URI: try the other places
            user = None
        if user:
            return user
        if offer.u:
            return offer.u.split(":")[0]
        subject = req.headers.get("Subject") or ""
        return subject.split(":")[0].strip()

    async def _door(self, upper, share, kind: str, start_ms, end_ms) -> None:
        principal = self.cascade.principal(upper)
        sink = register_sink(self.app.db, upper, share.channel_id, kind)
        now = self.app.clock.wall_ms()

        def decide() -> None:
            scope = None
            if kind == "Download":  # a copy: only under a request naming this upper (Q24.1)
                from viis.access.retrieval import delivery_scope

                with self.app.db.session() as s:
                    scope = delivery_scope(s, upper.server_id, share.camera_id, start_ms,
                                           end_ms, now)
            authorize_footage(principal, ACTIONS[kind], share.camera_id, start_ms, end_ms,
                              security_level=share.security_level, scope=scope, now_ms=now,
                              register=sink)
        await asyncio.get_running_loop().run_in_executor(None, decide)

    def _has_footage(self, camera_id: int, start_ms: int, end_ms: int) -> bool:
        from viis.media.index import segments_between

        with self.app.db.session() as s:
            return bool(segments_between(s, camera_id, start_ms, end_ms))

    async def _open_sender(self, offer: GbSdp, domain: str) -> PsSender:
        ssrc = offer.ssrc_int
        if ssrc is None:  # the SSRC's domain digits are those of the upper that invited us
            ssrc = int(make_ssrc(domain, next(self._ssrc),
                                 playback=offer.session != "Play"))
        remote = (offer.ip, offer.port)
        if offer.transport.upper() == "TCP":
            if (offer.setup or "passive").lower() == "active":
                return await PsSender.open("tcp-passive", None, ssrc, self.bind_host)
            return await PsSender.open("tcp-active", remote, ssrc, self.bind_host,
                                       connect_timeout=TCP_CONNECT_WAIT_S)
        return await PsSender.open("udp", remote, ssrc, self.bind_host)

    def _answer_sdp(self, upper, req, offer: GbSdp, sender: PsSender, channel_id: str) -> str:
        host = self.media_host or self.cascade.endpoint.contact_host(req.source)
        tcp = offer.transport.upper() == "TCP"
        setup = None
        if tcp:
            setup = "passive" if sender.mode == "tcp-passive" else "active"
        ans = GbSdp(session=offer.session, origin_id=channel_id, ip=host,
                    port=sender.local_port, transport="TCP" if tcp else "UDP", setup=setup,
                    direction="sendonly", payloads={96: "PS"},
                    ssrc=offer.ssrc or f"{sender.ssrc:010d}", u=offer.u, start=offer.start,
                    end=offer.end, download_speed=offer.download_speed,
                    connection="new" if tcp else None)
        return build_sdp(ans)

    # ---- streaming ----------------------------------------------------------------------
    def _start(self, sess: UpSession, dialog=None) -> None:
        sess.dialog = dialog
        if sess.task is None and not sess.ended:
            sess.task = asyncio.get_running_loop().create_task(
                self._pump(sess), name=f"gb-serve-{sess.channel_id}")

    async def _pump(self, sess: UpSession) -> None:
        if sess.sender.mode == "tcp-passive" and \
                not await sess.sender.wait_connected(TCP_CONNECT_WAIT_S):
            log.warning("gb.serve.peer_never_connected", upper=sess.upper.server_id,
                        channel=sess.channel_id)
        live = isinstance(sess.feed, LiveFeed)
        try:
            while True:
                f = await sess.feed.next()
                if f is None:
                    break
                sess.sender.send_frame(f.nals, f.pts90k, f.key, f.params)
                sess.stats["frames"] += 1
                if live and sess.stats["frames"] > sess.feed.backlog:
                    # from the recorder's receipt of the picture to our socket (the GOP a
                    # session starts with is older by design: not counted)
                    lat = sess.stats.setdefault("latency_ms", collections.deque(maxlen=500))
                    lat.append(self.app.clock.wall_ms() - f.wall_ms)
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - a broken session ends alone, said
            log.exception("gb.serve.pump_failed", channel=sess.channel_id)
            return
        if isinstance(sess.feed, PlaybackFeed) and sess.feed.ended and not sess.ended:
            await self._media_status(sess)

    async def _media_status(self, sess: UpSession) -> None:
        """MediaStatus 121: the played-back (downloaded) range is done; the upper sends BYE."""
        client = self.cascade.client(sess.upper.id)
        if client is None:
            return
        body = manscdp.media_status(sess.channel_id, client.next_sn(), "121",
                                    charset=sess.upper.charset)
        try:
            await client.send_message(body)
            sess.stats["media_status"] = 121
        except Exception as e:  # noqa: BLE001 - the upper is gone: BYE or timeout will end it
            log.warning("gb.serve.media_status_failed", channel=sess.channel_id, error=str(e))

    def _on_info(self, sess: UpSession, req, txn) -> None:
        """MANSRTSP in the dialog: PAUSE, PLAY (resume, ``Range: npt=`` seek, ``Scale``)."""
        sess.stats["infos"] += 1
        feed = sess.feed
        if req.method != "INFO" or not isinstance(feed, PlaybackFeed):
            txn.reply(405 if req.method != "INFO" else 455)
            return
        try:
            m = mansrtsp.parse(req.body)
            if m.method == "PAUSE":
                feed.pause()
            elif m.method == "PLAY":
                if m.scale is not None:
                    feed.set_scale(abs(m.scale))
                if m.range_start is not None:
                    feed.seek(m.range_start)
                feed.play()
            elif m.method == "TEARDOWN":
                feed.close()
        except (mansrtsp.MansRtspError, ValueError) as e:
            log.warning("gb.serve.bad_mansrtsp", channel=sess.channel_id, error=str(e)[:200])
            txn.reply(457 if "scale" in str(e) or "seek" in str(e) else 400)
            return
        txn.reply(200)

    def _peer_gone(self, call_id: str) -> None:
        """The upper closed our TCP media connection: end the session and the dialog."""
        sess = self.sessions.get(call_id)
        if sess is None:
            return
        d = sess.dialog
        self._end(call_id, "media connection closed by the upper")
        if d is not None:
            asyncio.get_running_loop().create_task(self.cascade.endpoint.bye(d))

    def _end(self, call_id: str, why: str) -> None:
        sess = self.sessions.pop(call_id, None)
        if sess is None:
            return
        sess.ended = why
        sess.feed.close()
        if sess.task is not None:
            sess.task.cancel()
        asyncio.get_running_loop().create_task(sess.sender.close())
        log.info("gb.serve.ended", channel=sess.channel_id, why=why, frames=sess.stats["frames"])

    def status(self) -> list[dict]:
        """The upward media sessions, for diagnostics: who watches what, how, how much was
        sent (the sender's counters say whether the upper's socket took it), and where a
        playback stands."""
        out = []
        for call_id, x in self.sessions.items():
            d = {"call_id": call_id, "upper": x.upper.server_id, "channel_id": x.channel_id,
                 "camera_id": x.camera_id, "session": x.kind, "mode": x.sender.mode,
                 "remote": list(x.sender.remote) if x.sender.remote else None,
                 "local_port": x.sender.local_port, "started": x.task is not None,
                 "frames": x.stats["frames"], "sender": dict(x.sender.stats)}
            if isinstance(x.feed, PlaybackFeed):
                d.update(position_ms=int(x.feed.position_ms), scale=x.feed.scale,
                         paused=x.feed.paused)
            else:
                lat = sorted(x.stats.get("latency_ms") or [0])
                d.update(feed=x.feed.stats(), latency_ms_p50=lat[len(lat) // 2],
                         latency_ms_p95=lat[min(len(lat) - 1, len(lat) * 95 // 100)])
            out.append(d)
        return out

    async def close(self) -> None:
        for call_id in list(self.sessions):
            self._end(call_id, "stop")
