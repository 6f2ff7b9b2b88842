"""HTTP digest authentication for SIP (RFC 2617, RFC 3261 §22): server and client sides.

Server nonces are stateless: ``<issued-at hex>.<HMAC>``, so any nonce we did not mint is
recognised as foreign and an old one as stale (answered with ``stale=true`` so the device
retries with the same password instead of giving up).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from .sip import split_commas


def parse_auth(value: str) -> tuple[str, dict[str, str]]:
    """``Digest a="b", c=d`` → ('digest', {'a': 'b', 'c': 'd'})."""
    scheme, _, rest = value.strip().partition(" ")
    params: dict[str, str] = {}
    for part in split_commas(rest):
        k, sep, v = part.partition("=")
        if sep:
            params[k.strip().lower()] = v.strip().strip('"')
    return scheme.lower(), params


def _same(a: str, b: str) -> bool:
    """Constant-time equality of a value we computed and one from the wire. Compared as
    bytes: ``hmac.compare_digest`` raises TypeError for a str with non-ASCII characters,
    which a hostile ``response=``/``nonce=`` would otherwise turn into an unanswered
    REGISTER and a logged traceback per packet."""
    return hmac.compare_digest(a.encode("utf-8", "surrogateescape"),
                               b.encode("utf-8", "surrogateescape"))


def _h(text: str, algorithm: str = "MD5") -> str:
    name = {"MD5": "md5", "SHA-256": "sha256"}.get(algorithm.upper().removesuffix("-SESS"), "md5")
    return hashlib.new(name, text.encode("utf-8")).hexdigest()


def compute_response(
    *,
    username: str,
    realm: str,
    password: str,
    method: str,
    uri: str,
    nonce: str,
    qop: str | None = None,
    nc: str | None = None,
    cnonce: str | None = None,
    algorithm: str = "MD5",
) -> str:
    ha1 = _h(f"{username}:{realm}:{password}", algorithm)
    if algorithm.upper().endswith("-SESS"):
        ha1 = _h(f"{ha1}:{nonce}:{cnonce}", algorithm)
    ha2 = _h(f"{method}:{uri}", algorithm)
    if qop:
        return _h(f"{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}", algorithm)
    return _h(f"{ha1}:{nonce}:{ha2}", algorithm)


# ---- client side ---------------------------------------------------------------------


def build_authorization(
    challenge: str,
    *,
    username: str,
    password: str,
    method: str,
    uri: str,
    nc: int = 1,
    cnonce: str | None = None,
) -> str:
    """Answer a WWW-Authenticate value; uses qop=auth when offered, RFC 2069 form otherwise."""
    scheme, ch = parse_auth(challenge)
    if scheme != "digest":
        raise ValueError(f"unsupported auth scheme {scheme!r}")
    realm, nonce = ch.get("realm", ""), ch.get("nonce", "")
    algorithm = ch.get("algorithm", "MD5")
    qops = [q.strip().lower() for q in ch.get("qop", "").split(",") if q.strip()]
    qop = "auth" if "auth" in qops else None
    ncs = f"{nc:08x}"
    cnonce = cnonce or secrets.token_hex(8)
    resp = compute_response(
        username=username, realm=realm, password=password, method=method, uri=uri,
        nonce=nonce, qop=qop, nc=ncs if qop else None, cnonce=cnonce if qop else None,
        algorithm=algorithm,
    )
    parts = [
        f'username="{username}"', f'realm="{realm}"', f'nonce="{nonce}"', f'uri="{uri}"',
        f'response="{resp}"', f"algorithm={algorithm}",
    ]
    if qop:
        parts += [f"qop={qop}", f"nc={ncs}", f'cnonce="{cnonce}"']
    if "opaque" in ch:
        parts.append(f'opaque="{ch["opaque"]}"')
    return "Digest " + ", ".join(parts)


# ---- server side ---------------------------------------------------------------------


@dataclass
class AuthResult:
    ok: bool
    # ok | missing | not-digest | malformed | foreign-nonce | stale | realm-mismatch |
    # username-mismatch | wrong-password
    code: str
    username: str = ""
    nonce: str = ""
    realm: str = ""

    @property
    def should_challenge(self) -> bool:
        """Answer 401 with a fresh nonce (retrying can succeed) rather than 403."""
        return self.code in ("missing", "not-digest", "foreign-nonce", "stale", "malformed")


class DigestServer:
    def __init__(
        self, realm: str, *, secret: bytes | None = None, nonce_ttl: float = 300.0,
        qop: bool = True,
    ) -> None:
        self.realm = realm
        self.secret = secret or secrets.token_bytes(32)
        self.nonce_ttl = nonce_ttl
        self.qop = qop

    def _sig(self, stamp: str) -> str:
        return hmac.new(self.secret, stamp.encode(), hashlib.sha256).hexdigest()[:24]

    def make_nonce(self, now: float) -> str:
        stamp = f"{int(now * 1000):x}"
        return f"{stamp}.{self._sig(stamp)}"

    def nonce_state(self, nonce: str, now: float) -> str:
        """'fresh', 'stale' or 'foreign'."""
        stamp, _, sig = nonce.partition(".")
        if not sig or not _same(sig, self._sig(stamp)):
            return "foreign"
        try:
            issued = int(stamp, 16) / 1000
        except ValueError:
            return "foreign"
        if issued > now + 1 or now - issued > self.nonce_ttl:
            return "stale"
        return "fresh"

    def challenge(self, now: float, *, stale: bool = False) -> str:
        parts = [f'realm="{self.realm}"', f'nonce="{self.make_nonce(now)}"']
        if self.qop:
            parts.append('qop="auth"')
        parts.append("algorithm=MD5")
        if stale:
            parts.append("stale=true")
        return "Digest " + ", ".join(parts)

    def verify(
        self, authorization: str | None, *, method: str, password: str | None,
        now: float, expected_username: str | None = None,
    ) -> AuthResult:
        if not authorization:
            return AuthResult(False, "missing")
        scheme, p = parse_auth(authorization)
        if scheme != "digest":
            return AuthResult(False, "not-digest")
        user, nonce, realm = p.get("username", ""), p.get("nonce", ""), p.get("realm", "")
        r = AuthResult(False, "", user, nonce, realm)
        if not (user and nonce and p.get("response") and p.get("uri")):
            r.code = "malformed"
            return r
        if realm != self.realm:
            r.code = "realm-mismatch"
            return r
        state = self.nonce_state(nonce, now)
        if state != "fresh":
            r.code = state if state == "stale" else "foreign-nonce"
            return r
        if expected_username is not None and user != expected_username:
            r.code = "username-mismatch"
            return r
        if password is None:
            r.code = "wrong-password"
            return r
        qop = p.get("qop") or None
        want = compute_response(
            username=user, realm=realm, password=password, method=method, uri=p["uri"],
            nonce=nonce, qop=qop, nc=p.get("nc"), cnonce=p.get("cnonce"),
            algorithm=p.get("algorithm", "MD5"),
        )
        r.ok = _same(want, p["response"].lower())
        r.code = "ok" if r.ok else "wrong-password"
        return r
