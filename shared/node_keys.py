"""A partner's node key: the ECDSA key its SuperNode signs every Fleet request with
(Flower's SuperNode authentication). The partner keeps the private key; the operator
registers the public one, written as one OpenSSH line ("ecdsa-sha2-nistp384 AAAA...").
Flower itself carries public keys as PEM, so both forms convert here."""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

_NIST = (ec.SECP256R1, ec.SECP384R1, ec.SECP521R1)  # what Flower accepts


class NodeKeyError(ValueError):
    pass


def create_node_key(path: Path) -> str:
    """Write a new private key to `path` (mode 0600; never overwrites one) and its public
    line to `path`.pub; return that line."""
    if path.exists():
        raise NodeKeyError(f"{path} exists; a node key is never replaced in place")
    path.parent.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP384R1())
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                            serialization.NoEncryption())
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    line = _line(key.public_key())
    path.with_name(path.name + ".pub").write_text(line + "\n")
    return line


def node_public_key(path: Path) -> str:
    """The public line of the private key at `path`."""
    try:
        key = serialization.load_ssh_private_key(path.read_bytes(), None)
    except FileNotFoundError:
        raise NodeKeyError(f"no node key at {path} (`sangsaeng client node-key create`)"
                           ) from None
    except (ValueError, UnsupportedAlgorithm):
        raise NodeKeyError(f"{path} is not an OpenSSH private key") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise NodeKeyError(f"{path} is not an ECDSA key")
    return _line(key.public_key())


def parse_node_key(text: str) -> str:
    """The canonical public line of `text` (an OpenSSH line, comment allowed, or PEM)."""
    text = text.strip()
    try:
        if text.startswith("-----BEGIN"):
            key = serialization.load_pem_public_key(text.encode())
        else:
            key = serialization.load_ssh_public_key(" ".join(text.split()[:2]).encode())
    except (ValueError, UnsupportedAlgorithm):
        raise NodeKeyError("not an OpenSSH or PEM public key "
                           "(`sangsaeng client node-key show` prints one)") from None
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, _NIST):
        raise NodeKeyError("a node key is ECDSA on a NIST curve (P-256, P-384 or P-521)")
    return _line(key)


def to_pem(line: str) -> bytes:
    """The PEM form Flower's Control API and Fleet headers carry."""
    return serialization.load_ssh_public_key(line.encode()).public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def from_pem(pem: bytes) -> str:
    """The public line of a PEM public key; NodeKeyError if it is not a node key."""
    return parse_node_key(pem.decode("ascii", errors="replace"))


def _line(key: ec.EllipticCurvePublicKey) -> str:
    return key.public_bytes(serialization.Encoding.OpenSSH,
                            serialization.PublicFormat.OpenSSH).decode()
