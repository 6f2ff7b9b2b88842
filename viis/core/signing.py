"""Signatures over documents that leave the system: evidence packages (N16.1, Q24.1), audit
checkpoints, filing packages for the police intake (Q16, N14.1).

The algorithm is pluggable: a :class:`Signer` names its algorithm, and :func:`verify` picks
the verifier by that name, so SM2 (GB/T 32918) can be added beside Ed25519 without touching
callers. A key is created on first use under ``<data_dir>/keys/`` with mode 0600; only the
public key ever leaves the machine. The key id is the first 16 hex digits of SHA-256 over
the raw public key, so a verifier can tell which key signed.
"""

from __future__ import annotations

import base64
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from viis.core.errors import ValidationFailed

ED25519 = "ed25519"


@dataclass(frozen=True)
class Signature:
    algorithm: str
    key_id: str
    value: str  # base64

    def as_dict(self) -> dict[str, str]:
        return {"algorithm": self.algorithm, "key_id": self.key_id, "value": self.value}

    @classmethod
    def from_dict(cls, d: object) -> Signature:
        if not isinstance(d, dict) or not all(isinstance(d.get(k), str)
                                              for k in ("algorithm", "key_id", "value")):
            raise ValidationFailed("signature must be an object with algorithm, key_id and value")
        return cls(d["algorithm"], d["key_id"], d["value"])


def _raw_public(pub: Ed25519PublicKey) -> bytes:
    return pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id_of(raw_public: bytes) -> str:
    return hashlib.sha256(raw_public).hexdigest()[:16]


class Signer:
    """An Ed25519 signing key. ``Signer.load_or_create(path)`` keeps it in a PEM file (0600)."""

    algorithm = ED25519

    def __init__(self, key: Ed25519PrivateKey):
        self._key = key
        self.public_raw = _raw_public(key.public_key())
        self.key_id = key_id_of(self.public_raw)

    @classmethod
    def generate(cls) -> Signer:
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def load_or_create(cls, path: Path) -> Signer:
        path = Path(path)
        if path.exists():
            key = serialization.load_pem_private_key(path.read_bytes(), password=None)
            if not isinstance(key, Ed25519PrivateKey):
                raise ValidationFailed(f"{path} does not hold an Ed25519 private key")
            return cls(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(pem)
            f.flush()
            os.fsync(f.fileno())
        return cls(key)

    @classmethod
    def for_data_dir(cls, data_dir: Path, name: str = "signing") -> Signer:
        """The installation's key named ``name`` (``<data_dir>/keys/<name>.ed25519.pem``)."""
        return cls.load_or_create(Path(data_dir) / "keys" / f"{name}.ed25519.pem")

    def sign(self, data: bytes) -> Signature:
        return Signature(self.algorithm, self.key_id,
                         base64.b64encode(self._key.sign(data)).decode())

    def public_pem(self) -> bytes:
        return self._key.public_key().public_bytes(serialization.Encoding.PEM,
                                                   serialization.PublicFormat.SubjectPublicKeyInfo)


def load_public(pem: bytes) -> tuple[str, bytes]:
    """(algorithm, raw public key) from a PEM public key; a clear error otherwise."""
    try:
        pub = serialization.load_pem_public_key(pem)
    except (ValueError, TypeError) as e:
        raise ValidationFailed(f"not a PEM public key: {e}") from None
    if isinstance(pub, Ed25519PublicKey):
        return ED25519, _raw_public(pub)
    raise ValidationFailed(f"unsupported public key type {type(pub).__name__}")


def verify(public_pem: bytes, data: bytes, sig: Signature) -> bool:
    """True when ``sig`` is a valid signature of ``data`` by the key in ``public_pem``.
    A signature by another key, algorithm or over other bytes is False, never an exception."""
    alg, raw = load_public(public_pem)
    if sig.algorithm != alg or sig.key_id != key_id_of(raw):
        return False
    try:
        value = base64.b64decode(sig.value, validate=True)
    except ValueError:
        return False
    if alg == ED25519:
        try:
            Ed25519PublicKey.from_public_bytes(raw).verify(value, data)
            return True
        except InvalidSignature:
            return False
    return False
