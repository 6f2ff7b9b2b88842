"""Media dialogs with devices below us: INVITE a channel to send PS over RTP (live or
playback), ACK, BYE either way, MediaStatus (end of a played-back file) — the platform role
side of issue 7 (Q13.2), used by the GB recorder source (viis/media/gb_source.py).

The INVITE travels on the platform's own socket and transaction layer, so a device behind
NAT answers through the same pinhole its REGISTER opened; the dialog state and in-dialog
requests are :class:`.dialog.Dialog`'s. The 2xx is ACKed here (RFC 3261 §13.2.2.4: the ACK for
a 2xx is the UA's, not the transaction's) and re-sent when the device retransmits its 2xx.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from viis.core.logging import get_logger

from .sip import SipMessage, SipRequest, SipResponse
from .transaction import ServerTransaction, TransactionTimeout

if TYPE_CHECKING:
    from .dialog import Dialog
    from .service import GbPlatformService

log = get_logger(__name__)
_SSRC = re.compile(r"^y=(\d{1,10})\s*$", re.MULTILINE)


class DeviceCalls:
    def __init__(self, svc: GbPlatformService, invite_timeout: float = 15.0) -> None:
        self.svc = svc
        self.invite_timeout = invite_timeout
        self.dialogs: dict[str, Dialog] = {}  # Call-ID -> dialog
        svc.platform.handlers["BYE"] = self._on_bye
        svc.platform.layer.on_stray = self._on_stray

    async def invite(self, device_id: str, channel_id: str, sdp_offer: str,
                     on_end: Callable[[Dialog, str], Any] | None = None) -> tuple[Dialog, str]:
        """INVITE ``channel_id`` of ``device_id`` with our SDP offer (s=Play or Playback,
        y=SSRC); returns the confirmed dialog and the device's answer SDP. ``on_end(dialog,
        why)`` is called when the device ends it (BYE, or MediaStatus 121 for playback)."""
        from .service import DeviceError

        svc = self.svc
        p = svc.peer(device_id)
        m = _SSRC.search(sdp_offer)
        ssrc = m.group(1) if m else "0"
        req = svc.build_request(
            "INVITE", p, to_user=channel_id, body=sdp_offer.encode(),
            content_type="APPLICATION/SDP",
            headers={"Subject": f"{channel_id}:{ssrc},{svc.config.server_id}:0"})
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[SipResponse] = loop.create_future()

        def final(r: SipResponse | Exception) -> None:
            if not fut.done():
                if isinstance(r, Exception):
                    fut.set_exception(r)
                else:
                    fut.set_result(r)
            elif isinstance(r, SipResponse) and 200 <= r.status < 300:
                d = self._confirm(req, r, p.address, p.transport, device_id, channel_id)
                loop.create_task(self.bye(d))  # answered after we gave up: end it at once

        svc.platform.layer.start_client(req, p.address, p.transport, final)
        try:
            resp = await asyncio.wait_for(asyncio.shield(fut), self.invite_timeout)
        except (TimeoutError, TransactionTimeout) as e:
            raise DeviceError(
                f"device {device_id} did not answer the INVITE for channel {channel_id} within "
                f"{self.invite_timeout:g} s (offline, or the channel id is wrong)") from e
        if not 200 <= resp.status < 300:
            raise DeviceError(f"device {device_id} refused the INVITE for channel {channel_id}: "
                              f"{resp.status} {resp.reason}")
        d = self._confirm(req, resp, p.address, p.transport, device_id, channel_id)
        if on_end is not None:
            d.handlers["end"] = on_end
        return d, d.remote_sdp

    def _confirm(self, req: SipRequest, resp: SipResponse, addr, transport: str,
                 device_id: str, channel_id: str) -> Dialog:
        from .dialog import Dialog  # G3's dialog state (imported late: optional until used)

        d = Dialog.from_uac(req, resp, addr, transport)
        via = req.top_via
        d.via_host, d.via_port = via.host, via.port or 5060
        d.local_sdp = req.body.decode("utf-8", "replace")
        d.remote_sdp = resp.body.decode("utf-8", "replace")
        d.created_at = self.svc.clock.now()
        d.data.update(device_id=device_id, channel_id=channel_id)
        ack = d.make_request("ACK")
        d.last_ack = ack
        self.svc.platform._send(ack, d.peer, d.transport)
        self.dialogs[d.call_id] = d
        log.info("gb28181_invite_confirmed", device=device_id, channel=channel_id,
                 call_id=d.call_id)
        return d

    async def bye(self, d: Dialog) -> None:
        """End the dialog and tell the device (best effort: a lost BYE is not retried)."""
        if not d.active:
            return
        req = d.make_request("BYE")
        self._end(d, "local")
        try:
            await self.svc.platform.layer.request(req, d.peer, d.transport)
        except TransactionTimeout:
            log.warning("gb28181_bye_unanswered", call_id=d.call_id)

    def _end(self, d: Dialog, why: str) -> None:
        d.state = "terminated"
        d.terminated_by = d.terminated_by or why
        self.dialogs.pop(d.call_id, None)
        cb = d.handlers.pop("end", None)
        if cb is not None and why != "local":
            try:
                cb(d, why)
            except Exception:
                log.exception("gb28181_dialog_end_callback_failed")

    def _on_bye(self, req: SipRequest, txn: ServerTransaction) -> None:
        d = self.dialogs.get(req.call_id)
        if d is None or not d.matches(req):
            txn.reply(481)
            return
        txn.reply(200)
        self._end(d, "remote")

    def _on_stray(self, msg: SipMessage) -> None:
        if isinstance(msg, SipResponse) and 200 <= msg.status < 300:
            d = self.dialogs.get(msg.call_id)
            if d is not None and d.last_ack is not None and msg.cseq == (d.invite_cseq, "INVITE"):
                self.svc.platform._send(d.last_ack, d.peer, d.transport)  # our ACK was lost

    def media_status(self, device_id: str, msg) -> None:
        """MediaStatus 121: the device reached the end of the file it plays back."""
        if (msg.get("NotifyType") or "").strip() != "121":
            return
        for d in list(self.dialogs.values()):
            if d.data.get("device_id") == device_id and d.data.get("channel_id") in (
                    msg.device_id, device_id):
                cb = d.handlers.get("end")
                if cb is not None:
                    try:
                        cb(d, "end of file")
                    except Exception:
                        log.exception("gb28181_dialog_end_callback_failed")

    async def close(self, wait: float = 2.0) -> None:
        """BYE every dialog at once and wait at most ``wait`` s for the answers (shutdown)."""
        byes = [asyncio.ensure_future(self.bye(d)) for d in list(self.dialogs.values())]
        if byes:
            await asyncio.wait(byes, timeout=wait)
            for b in byes:
                b.cancel()
