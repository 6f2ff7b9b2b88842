"""Plain-language causes for the usual GB/T 28181 failures, each saying what to check.

Users of the leading open platform trip over the same few things (registration loops,
"stream receive timeout", TCP active vs passive, incomplete catalogs, garbled names,
cascade re-register rejected); the console names which one it is instead of a status
code. ``CAUSES`` holds the texts (``explain(code, **values)`` fills them); the functions
below turn observations (receiver statistics, addresses, charsets, an assembled catalog)
into one of them. Used by ``Platform.diagnose`` and, for the ``cascade-*``
codes, by ``CascadeClient`` (registration upward): the one table of both roles, which
``cause_codes`` turns into the console's codes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

CAUSES: dict[str, str] = {
    # registration from below (platform role)
    "wrong-password": "wrong password: the device's digest answer does not match the password "
    "configured for it on this platform (check the SIP password on the device)",
    "realm-mismatch": "realm mismatch: the device answered for realm {got!r} but this platform's "
    "SIP domain is {want!r} (check the server domain/ID configured on the device)",
    "username-mismatch": "the digest username {got!r} is not the device ID {want!r} "
    "(the device's SIP user ID and auth ID differ)",
    "unknown-device": "no password is configured for device {want!r} and there is no global "
    "password: add the device or set a platform password",
    "repeated-challenge": "the device keeps sending REGISTER without valid credentials after "
    "{n} challenges (stale or foreign nonce reused; device firmware or clock problem)",
    # addresses
    "nat-mismatch": "address mismatch: the peer says it is at {claimed} but its packets come "
    "from {source} (NAT, or a wrong local IP configured on it); requests and media go to the "
    "packet source, and media sent to {claimed} would never arrive",
    # registration upward (cascade: CascadeClient fills {host} {port} {transport} {name}
    # {local_id} of the upper platform, and the values each text names)
    "cascade-unreachable": "no answer from {host}:{port} over {transport}: the upper platform "
    "is down, its address or port is wrong here, or a firewall drops SIP",
    "cascade-wrong-password": "the upper platform refused our credentials ({status} after our "
    "digest answer): the password configured here for {name} does not match the one it holds "
    "for our platform ID {local_id}",
    "cascade-rechallenged": "the upper platform challenged again after our digest answer (401): "
    "wrong password, or its realm {realm!r} is not the one it holds our password under",
    "cascade-no-challenge": "the upper platform answered 401 without a digest challenge we can "
    "answer",
    "cascade-unknown-id": "the upper platform does not know our platform ID {local_id} "
    "({status}): add this VIIS there as a lower platform with that ID",
    "cascade-bad-request": "the upper platform rejected our REGISTER as malformed (400 "
    "{reason}); a known cause is a re-register it does not accept — a new registration (new "
    "Call-ID) follows",
    "cascade-server-error": "the upper platform answered {status} {reason}: it is overloaded or "
    "misconfigured; retrying with backoff",
    "cascade-forgot-us": "the upper platform answered {status} to a keepalive: it no longer knows "
    "us (restarted, or our registration expired there); registering again",
    "cascade-keepalive-lost": "{n} keepalives in a row got no answer: the upper platform is gone "
    "or the network drops SIP; registering again",
    # media
    "stream-never-arrived": "stream never arrived: no RTP reached {local} within {waited:.0f} s "
    "after the INVITE was answered (the sender was told {sdp_address}; check that this address "
    "is reachable from it — NAT, firewall, closed port — and the transport {mode})",
    "tcp-mode-mismatch": "TCP {mode} media: {detail} (one side must listen — passive — and the "
    "other connect — active; check the device's TCP mode)",
    "ssrc-mismatch": "SSRC mismatch: {packets} RTP packets arrived with SSRC {got} but the "
    "INVITE asked for {want} (the device ignores y= or a stale stream is still being sent "
    "to this port)",
    "stream-stalled": "stream stopped: the last RTP packet came {idle:.0f} s ago",
    # charset and catalogs
    "charset-mislabelled": "charset: the body declares {declared} but is {actual}; decoded as "
    "{actual} (set the device's charset to match, or nothing to do if names look right)",
    "charset-undecodable": "charset problem: the MANSCDP body is neither GB2312/GBK/GB18030 nor "
    "UTF-8 (check the device's character set setting)",
    "catalog-incomplete": "incomplete catalog: {got} of {sum_num} channels arrived in {messages} "
    "messages before the timeout (large UDP messages are fragmented and lost on the way; ask "
    "the device to send fewer items per message, or use TCP)",
}


def explain(code: str, **values: Any) -> str:
    """The cause text for ``code`` with ``values`` filled in; unknown codes come back as is."""
    text = CAUSES.get(code)
    if text is None:
        return code
    try:
        return text.format(**values)
    except (KeyError, IndexError, ValueError):
        return text


def address_cause(claimed: tuple[str, int] | None, source: tuple[str, int] | None) -> str | None:
    """NAT or wrong-local-IP cause when a Via/Contact/SDP address is not the packet source."""
    if claimed is None or source is None or tuple(claimed) == tuple(source):
        return None
    return explain("nat-mismatch", claimed=f"{claimed[0]}:{claimed[1]}",
                   source=f"{source[0]}:{source[1]}")


def charset_cause(declared: str | None, actual: str) -> str | None:
    d = (declared or "").lower()
    a = actual.lower()
    gb = ("gb2312", "gbk", "gb18030")
    if not d or d == a or (d in gb and a in gb):
        return None
    return explain("charset-mislabelled", declared=declared, actual=actual.upper())


def stream_cause(stats: Mapping[str, Any], *, expected_ssrc: int | None, waited: float,
                 now: float | None = None, local: str = "", sdp_address: str = "",
                 mode: str = "udp", connected: bool | None = None,
                 stall_after: float = 10.0) -> str | None:
    """Cause for a stream that does not play, from ``PsReceiver`` statistics (packets,
    ssrc_mismatch, first_packet_at, last_packet_at, optionally last_ssrc)."""
    packets = int(stats.get("packets") or 0)
    mismatched = int(stats.get("ssrc_mismatch") or 0)
    if packets == 0 and mismatched:
        return explain("ssrc-mismatch", packets=mismatched, got=stats.get("last_ssrc", "?"),
                       want=expected_ssrc)
    if packets == 0:
        if mode.startswith("tcp") and connected is False:
            detail = ("nobody connected to our port" if mode == "tcp-passive"
                      else "we could not connect to the device's port")
            return explain("tcp-mode-mismatch", mode=mode, detail=detail)
        return explain("stream-never-arrived", local=local or "our port", waited=waited,
                       sdp_address=sdp_address or "the SDP address", mode=mode)
    last = stats.get("last_packet_at")
    if now is not None and last is not None and now - float(last) > stall_after:
        return explain("stream-stalled", idle=now - float(last))
    return None


def catalog_cause(result: Any) -> str | None:
    """Cause for an ``AssembledList`` that timed out before SumNum items arrived."""
    if getattr(result, "complete", True):
        return None
    return explain("catalog-incomplete", got=len(result.items), sum_num=result.sum_num
                   if result.sum_num is not None else "an unknown number of",
                   messages=result.messages)
