"""Signatures on documents that leave the system (evidence packages N16.1/Q24.1, filings N14.1)."""

import os
import stat

import pytest

from viis.core.errors import ValidationFailed
from viis.core.signing import Signature, Signer, verify


def test_key_is_created_private_once_and_reloaded(tmp_path):
    a = Signer.for_data_dir(tmp_path)
    path = tmp_path / "keys" / "signing.ed25519.pem"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    b = Signer.for_data_dir(tmp_path)
    assert a.key_id == b.key_id and len(a.key_id) == 16


def test_signature_verifies_and_any_change_fails(tmp_path):
    s = Signer.for_data_dir(tmp_path)
    sig = s.sign(b"manifest")
    assert verify(s.public_pem(), b"manifest", sig)
    assert not verify(s.public_pem(), b"manifesT", sig)
    other = Signer.generate()
    assert not verify(other.public_pem(), b"manifest", sig)
    forged = Signature(sig.algorithm, sig.key_id, other.sign(b"manifest").value)
    assert not verify(s.public_pem(), b"manifest", forged)
    assert not verify(s.public_pem(), b"manifest", Signature("ed25519", sig.key_id, "!!notb64"))


def test_bad_public_key_and_signature_shape_are_clear_errors():
    with pytest.raises(ValidationFailed, match="PEM"):
        verify(b"garbage", b"x", Signature("ed25519", "k", "v"))
    with pytest.raises(ValidationFailed, match="algorithm"):
        Signature.from_dict({"algorithm": "ed25519"})
