"""A throwaway certificate authority for tests and the demo: a CA, a server and a client certificate as PEM files.

:func:`write_certificates` makes a fresh CA (EC P-256 keys, SHA-256 signatures), issues the server a
certificate for ``127.0.0.1`` and ``localhost`` (subject alternative names, as clients check them) and
a client certificate for TLS client authentication, and writes them into a directory. Nothing is kept
or reused: two calls make two CAs that do not trust each other, which is how a test gets a wrong CA.
"""

import ipaddress
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

logger = logging.getLogger(__name__)

DEFAULT_SERVER_HOSTS: Final = ("127.0.0.1", "localhost")
_CLOCK_SKEW: Final = timedelta(minutes=5)


@dataclass(frozen=True, slots=True)
class CertificateFiles:
    """The PEM files :func:`write_certificates` wrote (keys unencrypted, readable by their owner only)."""

    ca_cert: Path
    ca_key: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


@dataclass(frozen=True, slots=True)
class _Issued:
    certificate: x509.Certificate
    key: ec.EllipticCurvePrivateKey


def write_certificates(
    directory: Path,
    *,
    server_hosts: Sequence[str] = DEFAULT_SERVER_HOSTS,
    client_name: str = "outpost-test-client",
    valid_from: datetime | None = None,
    valid_for: timedelta = timedelta(days=1),
) -> CertificateFiles:
    """Make a new CA and issue a server and a client certificate, written as PEM files into ``directory``.

    ``server_hosts`` are IP addresses or DNS names; the first is also the server's common name.
    Every certificate is valid from ``valid_from`` (default: a few minutes ago, to allow for clock
    skew) for ``valid_for``, so a test can make one that has expired or is not yet valid.
    """
    if not server_hosts:
        raise ValueError("the server certificate needs at least one host name or IP address")
    not_before = valid_from if valid_from is not None else datetime.now(UTC) - _CLOCK_SKEW
    not_after = not_before + valid_for
    ca = _issue_ca(not_before, not_after)
    server = _issue_leaf(
        ca,
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, server_hosts[0])]),
        ExtendedKeyUsageOID.SERVER_AUTH,
        not_before,
        not_after,
        alternative_names=[_general_name(host) for host in server_hosts],
    )
    client = _issue_leaf(
        ca,
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, client_name)]),
        ExtendedKeyUsageOID.CLIENT_AUTH,
        not_before,
        not_after,
    )
    directory.mkdir(parents=True, exist_ok=True)
    files = CertificateFiles(
        ca_cert=_write_certificate(directory / "ca.pem", ca),
        ca_key=_write_key(directory / "ca.key", ca),
        server_cert=_write_certificate(directory / "server.pem", server),
        server_key=_write_key(directory / "server.key", server),
        client_cert=_write_certificate(directory / "client.pem", client),
        client_key=_write_key(directory / "client.key", client),
    )
    logger.debug("wrote a throwaway CA and certificates for %s and %s into %s", server_hosts, client_name, directory)
    return files


def _issue_ca(not_before: datetime, not_after: datetime) -> _Issued:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Outpost throwaway test CA")])
    certificate = (
        _builder(name, name, key.public_key(), not_before, not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(key_cert_sign=True), critical=True)
        .sign(key, hashes.SHA256())
    )
    return _Issued(certificate, key)


def _issue_leaf(
    ca: _Issued,
    subject: x509.Name,
    purpose: x509.ObjectIdentifier,
    not_before: datetime,
    not_after: datetime,
    *,
    alternative_names: Sequence[x509.GeneralName] = (),
) -> _Issued:
    key = ec.generate_private_key(ec.SECP256R1())
    builder = (
        _builder(subject, ca.certificate.subject, key.public_key(), not_before, not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(key_cert_sign=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([purpose]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()), critical=False)
    )
    if alternative_names:
        builder = builder.add_extension(x509.SubjectAlternativeName(list(alternative_names)), critical=False)
    return _Issued(builder.sign(ca.key, hashes.SHA256()), key)


def _builder(
    subject: x509.Name,
    issuer: x509.Name,
    public_key: ec.EllipticCurvePublicKey,
    not_before: datetime,
    not_after: datetime,
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    )


def _key_usage(*, key_cert_sign: bool) -> x509.KeyUsage:
    """A CA signs certificates (and CRLs); a leaf signs its handshakes."""
    return x509.KeyUsage(
        digital_signature=not key_cert_sign,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=key_cert_sign,
        crl_sign=key_cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _general_name(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


def _write_certificate(path: Path, issued: _Issued) -> Path:
    path.write_bytes(issued.certificate.public_bytes(serialization.Encoding.PEM))
    return path


def _write_key(path: Path, issued: _Issued) -> Path:
    pem = issued.key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(descriptor, 0o600)  # also when the file was already there
    with os.fdopen(descriptor, "wb") as file:
        file.write(pem)
    return path
