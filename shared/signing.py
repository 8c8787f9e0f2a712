"""Ed25519 signatures (RFC 8032) for what a partner hands to auditors: its key pair lives
beside its ledger; the public half is registered with the coordinator, where auditors
fetch it (and may pin it out of band)."""

from __future__ import annotations

import base64
import os
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)


class SigningKeyError(ValueError):
    """A key file or a public key is missing or not an Ed25519 key."""


def create_key(path: Path) -> str:
    """Write a new private key (PEM, readable by the owner only); return its public key.
    Never overwrites: a partner's key identifies it to auditors."""
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise SigningKeyError(f"a signing key already exists at {path}; it is kept") from None
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    return public_key_of(key)


def load_key(path: Path) -> Ed25519PrivateKey:
    if not path.is_file():
        raise SigningKeyError(f"no signing key at {path} (create one with "
                              "`sangsaeng client key create`)")
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningKeyError(f"{path} holds a key that is not Ed25519")
    return key


def public_key_of(key: Ed25519PrivateKey) -> str:
    """The public key as base64 of its 32 raw bytes: short enough to read out on a call."""
    raw = key.public_key().public_bytes(serialization.Encoding.Raw,
                                        serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode()


def parse_public_key(text: str) -> Ed25519PublicKey:
    try:
        raw = base64.b64decode(text, validate=True)
        return Ed25519PublicKey.from_public_bytes(raw)
    except ValueError:
        raise SigningKeyError("a public key is the base64 of 32 bytes (as `sangsaeng client "
                              "key show` prints it)") from None


def sign(key: Ed25519PrivateKey, message: bytes) -> str:
    return base64.b64encode(key.sign(message)).decode()


def signature_ok(public_key: str, message: bytes, signature: str) -> bool:
    try:
        parse_public_key(public_key).verify(base64.b64decode(signature, validate=True), message)
    except (InvalidSignature, SigningKeyError, ValueError):
        return False
    return True
