"""Certificates: a small CA and the server certificates it issues (ECDSA P-256, SHA-256).

The coordinator keeps one CA of its own for its loopback SuperLink (Flower's SuperNode
authentication needs TLS there); `sangsaeng admin certificates` makes one for an operator
without a PKI, and the demo and tests serve their API and Fleet proxy with it.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_DAYS, SERVER_DAYS = 3650, 397  # a server certificate within the CA/Browser Forum limit
LOCAL_NAMES = ("localhost", "127.0.0.1", "::1")


@dataclass(frozen=True)
class TlsFiles:
    """A server's certificate chain and key (PEM files), as uvicorn and Flower take them."""

    certfile: Path
    keyfile: Path

    def check(self) -> None:
        """Refuse missing or mismatched files with a message that names them."""
        for path in (self.certfile, self.keyfile):
            if not path.is_file():
                raise CertificateError(f"{path}: no such file")
        try:
            cert = x509.load_pem_x509_certificates(self.certfile.read_bytes())[0]
            key = serialization.load_pem_private_key(self.keyfile.read_bytes(), None)
        except (ValueError, TypeError) as err:
            raise CertificateError(f"{self.certfile} / {self.keyfile}: not a PEM certificate "
                                   f"and its unencrypted private key ({err})") from None
        if cert.public_key().public_bytes(*_SPKI) != key.public_key().public_bytes(*_SPKI):
            raise CertificateError(f"{self.keyfile} is not the key of {self.certfile}")


class CertificateError(ValueError):
    pass


_SPKI = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def ensure_ca(directory: Path, name: str = "Sangsaeng coordinator CA") -> Path:
    """directory/ca.pem and ca.key: made once, kept afterwards. The CA certificate's path."""
    cert_path, key_path = directory / "ca.pem", directory / "ca.key"
    if cert_path.exists() and key_path.exists():
        return cert_path
    if cert_path.exists():  # never replace a trust root others hold by accident
        raise CertificateError(f"{cert_path} has no ca.key beside it: put the CA's key back "
                               "to issue from it, or use another folder for a new CA")
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    cert = (_builder(subject, subject, key.public_key(), CA_DAYS)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False,
                                         False), critical=True)
            .sign(key, hashes.SHA256()))
    _write_key(key_path, key)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert_path


def issue_server(ca_dir: Path, out: Path, names: Iterable[str], stem: str = "server",
                 days: int = SERVER_DAYS) -> TlsFiles:
    """out/<stem>.pem and <stem>.key: a server certificate from the CA in `ca_dir`, valid
    for `names` (DNS names or IP addresses) and the local ones. Replaces an older pair, so
    rotating is issuing again and restarting."""
    ca_cert = x509.load_pem_x509_certificate((ca_dir / "ca.pem").read_bytes())
    ca_key = serialization.load_pem_private_key((ca_dir / "ca.key").read_bytes(), None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    unique = list(dict.fromkeys([*names, *LOCAL_NAMES]))
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, unique[0])])
    cert = (_builder(subject, ca_cert.subject, key.public_key(), days)
            .add_extension(x509.SubjectAlternativeName([_general_name(n) for n in unique]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    out.mkdir(parents=True, exist_ok=True)
    files = TlsFiles(out / f"{stem}.pem", out / f"{stem}.key")
    _write_key(files.keyfile, key)
    files.certfile.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return files


def _builder(subject: x509.Name, issuer: x509.Name, public_key: ec.EllipticCurvePublicKey,
             days: int) -> x509.CertificateBuilder:
    start = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)  # small clock skews
    return (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer)
            .public_key(public_key).serial_number(x509.random_serial_number())
            .not_valid_before(start).not_valid_after(start + dt.timedelta(days=days)))


def _general_name(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    tmp = path.with_suffix(".tmp")
    tmp.unlink(missing_ok=True)  # never write through a file (or link) left there
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    tmp.replace(path)
