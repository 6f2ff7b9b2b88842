"""SIP dialogs (RFC 3261 §12): the state two user agents share for one INVITE session.

A ``Dialog`` is identified by (Call-ID, local tag, remote tag) and holds the sequence numbers,
the remote target (the peer's Contact), the route set and where to send: the address the
dialog was set up with (the INVITE's packet source on the UAS side, the INVITE's destination
on the UAC side). GB/T 28181 devices often sit behind NAT and put a private address in
Contact, so in-dialog requests follow the packet source, as the registrar does (Q13.2).

The endpoint (endpoint.py) creates dialogs from a 2xx (UAC) or when it sends a 2xx (UAS),
routes in-dialog requests to them and runs the 2xx retransmission; this module holds state
and builds requests only, so it can be tested without sockets.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any

from .sip import Address, SipRequest, SipResponse, new_branch

Addr = tuple[str, int]


class DialogError(Exception):
    """A request cannot be built or sent in this dialog (e.g. it was terminated)."""


@dataclass
class Dialog:
    call_id: str
    local_tag: str
    remote_tag: str
    local_uri: str  # the From (UAC) or To (UAS) address of the INVITE, without tag
    remote_uri: str
    local_seq: int
    remote_seq: int | None
    remote_target: str  # Request-URI for in-dialog requests (the peer's Contact URI)
    route_set: list[str] = field(default_factory=list)
    transport: str = "UDP"
    peer: Addr = ("0.0.0.0", 0)
    role: str = "uac"  # 'uac' | 'uas'
    state: str = "confirmed"  # 'early' | 'confirmed' | 'terminated'
    invite_cseq: int = 0
    local_contact: str = ""
    local_sdp: str = ""
    remote_sdp: str = ""
    created_at: float = 0.0
    # Via sent-by (host, port) of this endpoint; filled by the endpoint.
    via_host: str = ""
    via_port: int = 0
    # Free room for the application (media session, register entry id, ...).
    data: dict[str, Any] = field(default_factory=dict)
    # Endpoint-internal: the ACK we sent for the 2xx (re-sent on a retransmitted 2xx).
    last_ack: SipRequest | None = field(default=None, repr=False)
    # Endpoint-internal: handlers and 2xx retransmission bookkeeping.
    handlers: dict[str, Any] = field(default_factory=dict, repr=False)
    awaiting_ack: bool = False
    terminated_by: str = ""  # 'local' | 'remote' | 'ack-timeout' | 'stop'

    @property
    def id(self) -> tuple[str, str, str]:
        return (self.call_id, self.local_tag, self.remote_tag)

    @property
    def active(self) -> bool:
        return self.state != "terminated"

    # ---- construction ------------------------------------------------------------------

    @classmethod
    def from_uac(cls, invite: SipRequest, resp: SipResponse, peer: Addr, transport: str) -> Dialog:
        """The UAC side, from the INVITE we sent and the 2xx we got (§12.1.2)."""
        to = resp.to
        contacts = resp.headers.getall("Contact")
        target = str(Address.parse(contacts[0]).uri) if contacts else invite.uri
        routes = list(reversed(resp.headers.getall("Record-Route")))
        frm = invite.from_
        via = invite.top_via  # ours: in-dialog requests keep the same sent-by
        return cls(
            via_host=via.host,
            via_port=via.port or 0,
            call_id=invite.call_id,
            local_tag=frm.tag or "",
            remote_tag=to.tag or "",
            local_uri=_without_tag(frm),
            remote_uri=_without_tag(to),
            local_seq=invite.cseq[0],
            remote_seq=None,
            remote_target=target,
            route_set=routes,
            transport=transport,
            peer=peer,
            role="uac",
            invite_cseq=invite.cseq[0],
            local_contact=(invite.headers.getall("Contact") or [""])[0],
        )

    @classmethod
    def from_uas(cls, invite: SipRequest, local_tag: str, local_contact: str) -> Dialog:
        """The UAS side, from the INVITE we received and the tag of the 2xx we send (§12.1.1)."""
        frm = invite.from_
        contacts = invite.headers.getall("Contact")
        target = str(Address.parse(contacts[0]).uri) if contacts else str(frm.uri)
        return cls(
            call_id=invite.call_id,
            local_tag=local_tag,
            remote_tag=frm.tag or "",
            local_uri=_without_tag(invite.to),
            remote_uri=_without_tag(frm),
            local_seq=secrets.randbelow(2**20) + 1,
            remote_seq=invite.cseq[0],
            remote_target=target,
            route_set=list(invite.headers.getall("Record-Route")),
            transport=invite.transport,
            peer=invite.source or ("0.0.0.0", 0),
            role="uas",
            invite_cseq=invite.cseq[0],
            local_contact=local_contact,
        )

    # ---- requests ----------------------------------------------------------------------

    def make_request(
        self, method: str, body: bytes | str = b"", content_type: str | None = None,
        headers: dict[str, str] | None = None, *, cseq: int | None = None,
    ) -> SipRequest:
        """An in-dialog request (§12.2.1.1): next local CSeq (ACK and CANCEL reuse the
        INVITE's), remote target as Request-URI, the route set as Route, a fresh branch."""
        method = method.upper()
        if self.state == "terminated" and method not in ("ACK",):
            raise DialogError(f"dialog {self.call_id} is terminated")
        if cseq is None:
            if method in ("ACK", "CANCEL"):
                cseq = self.invite_cseq
            else:
                self.local_seq += 1
                cseq = self.local_seq
        req = SipRequest(method, self.remote_target)
        h = req.headers
        sent_by = f"{self.via_host or '0.0.0.0'}" + (f":{self.via_port}" if self.via_port else "")
        h.add("Via", f"SIP/2.0/{self.transport.upper()} {sent_by};rport;branch={new_branch()}")
        for r in self.route_set:
            h.add("Route", r)
        h.add("Max-Forwards", "70")
        h.add("From", f"{self.local_uri};tag={self.local_tag}")
        h.add("To", f"{self.remote_uri};tag={self.remote_tag}")
        h.add("Call-ID", self.call_id)
        h.add("CSeq", f"{cseq} {method}")
        if method in ("INVITE", "UPDATE", "SUBSCRIBE", "NOTIFY", "REFER") and self.local_contact:
            h.add("Contact", self.local_contact)
        for k, v in (headers or {}).items():
            h.set(k, v)
        if isinstance(body, str):
            body = body.encode("utf-8")
        if body:
            h.set("Content-Type", content_type or "application/octet-stream")
        elif content_type:
            h.set("Content-Type", content_type)
        req.body = body
        return req

    def matches(self, req: SipRequest) -> bool:
        """True if an incoming request carries this dialog's Call-ID and tags."""
        return (
            req.call_id == self.call_id
            and (req.to.tag or "") == self.local_tag
            and (req.from_.tag or "") == self.remote_tag
        )

    def check_remote_seq(self, req: SipRequest) -> bool:
        """§12.2.2: a request with a CSeq lower than the last one is out of order (500).
        ACK and CANCEL carry the INVITE's number and are not checked. Updates remote_seq."""
        num, method = req.cseq
        if method in ("ACK", "CANCEL"):
            return True
        if self.remote_seq is not None and num < self.remote_seq:
            return False
        self.remote_seq = num
        return True


def _without_tag(addr: Address) -> str:
    params = {k: v for k, v in addr.params.items() if k != "tag"}
    return str(Address(addr.uri, addr.display, params))


def dialog_key_of_request(req: SipRequest) -> tuple[str, str, str]:
    """(Call-ID, local tag, remote tag) as seen by the receiver of ``req``."""
    return (req.call_id, req.to.tag or "", req.from_.tag or "")
