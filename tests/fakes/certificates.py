"""Certificates for fakes that speak TLS and mutual TLS, made at test time with ``cryptography``.

:func:`make_pki` writes, under one directory, a CA, a server certificate for 127.0.0.1/localhost signed by
it, a client certificate signed by it (PEM and PKCS#12), and a second, unrelated CA with its own client
and server certificates — to show that a client or a server the other side does not trust is refused.
"""

from __future__ import annotations

import functools
import ipaddress
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

P12_PASSWORD = "qwerty123"  # the password BankID uses for its public test RP certificate, too


@dataclass(frozen=True)
class Pki:
    ca_cert: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    client_p12: Path
    other_ca_cert: Path
    """A CA nobody trusts."""
    other_client_cert: Path
    other_client_key: Path
    other_server_cert: Path
    other_server_key: Path


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )


def _ca(common_name: str) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(_name(common_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def _leaf(
    common_name: str, ca: x509.Certificate, ca_key: ec.EllipticCurvePrivateKey, *, server: bool
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
    )
    if server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.IPv4Address("127.0.0.1"))]
            ),
            critical=False,
        )
    return builder.sign(ca_key, hashes.SHA256()), key


def _pem(cert: x509.Certificate, path: Path) -> Path:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


def make_pki(directory: Path) -> Pki:
    directory.mkdir(parents=True, exist_ok=True)
    ca, ca_key = _ca("Legetime test CA")
    server, server_key = _leaf("127.0.0.1", ca, ca_key, server=True)
    client, client_key = _leaf("Legetime test RP", ca, ca_key, server=False)
    other_ca, other_ca_key = _ca("Untrusted test CA")
    other_client, other_client_key = _leaf("Untrusted RP", other_ca, other_ca_key, server=False)
    other_server, other_server_key = _leaf("127.0.0.1", other_ca, other_ca_key, server=True)

    paths = {
        name: directory / name
        for name in ("server.key", "client.key", "other-client.key", "other-server.key")
    }
    _write_key(server_key, paths["server.key"])
    _write_key(client_key, paths["client.key"])
    _write_key(other_client_key, paths["other-client.key"])
    _write_key(other_server_key, paths["other-server.key"])
    client_p12 = directory / "client.p12"
    client_p12.write_bytes(
        pkcs12.serialize_key_and_certificates(
            b"rp",
            client_key,
            client,
            [ca],
            serialization.BestAvailableEncryption(P12_PASSWORD.encode()),
        )
    )
    return Pki(
        ca_cert=_pem(ca, directory / "ca.pem"),
        server_cert=_pem(server, directory / "server.pem"),
        server_key=paths["server.key"],
        client_cert=_pem(client, directory / "client.pem"),
        client_key=paths["client.key"],
        client_p12=client_p12,
        other_ca_cert=_pem(other_ca, directory / "other-ca.pem"),
        other_client_cert=_pem(other_client, directory / "other-client.pem"),
        other_client_key=paths["other-client.key"],
        other_server_cert=_pem(other_server, directory / "other-server.pem"),
        other_server_key=paths["other-server.key"],
    )


@functools.cache
def shared_pki() -> Pki:
    """One set of certificates per test process (for drivers, which get no pytest fixtures)."""
    directory = tempfile.TemporaryDirectory(prefix="legetime-pki-")
    _keep.append(directory)  # removed when the process exits
    return make_pki(Path(directory.name))


_keep: list[tempfile.TemporaryDirectory[str]] = []
