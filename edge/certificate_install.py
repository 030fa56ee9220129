"""Installing the TLS client certificate the fleet renewed (the ``install_certificate`` command).

The fleet reissues a gateway's certificate for the key the gateway already has (``broker.tls.key_file``), so
the certificate is all that changes. Before it replaces ``broker.tls.cert_file`` the gateway checks that it is
for its own key, names this gateway, comes from the CA (its key) of the certificate it replaces, and is valid now;
the one it replaces is kept beside it as ``{cert_file}.previous``. The uplink reads the files at every
connection (:func:`edge.broker_connection.tls_context`), so the next connection uses it; the one open now
goes on as it is.
"""

import datetime
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Final

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

from edge.durable_file import replace_durably
from edge.errors import EdgeError
from protocol.messages import Evidence
from protocol.mqtt_tls import MqttTlsSettings

logger = logging.getLogger(__name__)

PREVIOUS_SUFFIX: Final = ".previous"
_CLOCK_SLACK: Final = datetime.timedelta(minutes=10)
"""A certificate dated this much ahead of the gateway's clock is still taken (the fleet's clock may lead)."""


class CertificateRefusedError(EdgeError):
    """The certificate cannot be installed; the message says why."""


class CertificateInstaller:
    def __init__(self, tls: MqttTlsSettings | None, gateway_id: str, clock: Callable[[], int]) -> None:
        """``tls``: the uplink's (``broker.tls``); ``clock``: ms since the epoch."""
        self._tls = tls
        self._gateway_id = gateway_id
        self._clock = clock

    def install(self, pem: bytes) -> Evidence:
        """Check and install ``pem``; what was installed. Blocking (file I/O, fsync): call it on a worker thread.
        Raises CertificateRefusedError saying why it was not."""
        cert_file, key_file = self._files()
        try:
            renewed = x509.load_pem_x509_certificate(pem)
        except ValueError as exc:
            raise CertificateRefusedError(f"not a PEM certificate: {exc}") from None
        current = _read_certificate(cert_file)
        self._check(renewed, current, _public_key_der(key_file))
        text = renewed.public_bytes(serialization.Encoding.PEM).decode("ascii")
        try:
            if current is not None:
                previous = current.public_bytes(serialization.Encoding.PEM).decode("ascii")
                replace_durably(cert_file.with_name(cert_file.name + PREVIOUS_SUFFIX), previous, 0o644)
            replace_durably(cert_file, text, 0o644)
        except OSError as exc:
            raise CertificateRefusedError(f"cannot write {cert_file}: {exc}") from exc
        not_after = renewed.not_valid_after_utc.isoformat()
        logger.info("installed a renewed TLS client certificate in %s, valid until %s", cert_file, not_after)
        return {"not_after": not_after, "serial": format(renewed.serial_number, "x")[:64]}

    def _files(self) -> tuple[Path, Path]:
        tls = self._tls
        if tls is None or tls.cert_file is None:
            raise CertificateRefusedError("this gateway has no TLS client certificate (broker.tls.cert_file)")
        if tls.key_file is None:
            raise CertificateRefusedError(
                f"the certificate and its key share {tls.cert_file}: set broker.tls.key_file to renew it"
            )
        return tls.cert_file, tls.key_file

    def _check(self, renewed: x509.Certificate, current: x509.Certificate | None, own_key: bytes) -> None:
        key = renewed.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        if key != own_key:
            raise CertificateRefusedError("the certificate is not for this gateway's key")
        names = [a.value for a in renewed.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
        if names != [self._gateway_id]:
            raise CertificateRefusedError(f"the certificate names {names}, this is gateway {self._gateway_id}")
        if current is not None and _issuing_key(renewed) != _issuing_key(current):
            raise CertificateRefusedError(
                f"issued by another CA ({renewed.issuer.rfc4514_string()}) than the certificate it would replace"
            )
        now = datetime.datetime.fromtimestamp(self._clock() / 1000, tz=datetime.UTC)
        if renewed.not_valid_after_utc <= now:
            raise CertificateRefusedError(f"the certificate expired at {renewed.not_valid_after_utc.isoformat()}")
        if renewed.not_valid_before_utc > now + _CLOCK_SLACK:
            raise CertificateRefusedError(
                f"the certificate is valid only from {renewed.not_valid_before_utc.isoformat()}: "
                "the gateway's or the fleet's clock is wrong"
            )


def _issuing_key(certificate: x509.Certificate) -> bytes | str:
    """Who issued ``certificate``: its CA's key identifier, or the CA's name where it does not say."""
    try:
        identifier = certificate.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier
    except x509.ExtensionNotFound:
        identifier = None
    return identifier if identifier is not None else certificate.issuer.rfc4514_string()


def _read_certificate(path: Path) -> x509.Certificate | None:
    """The certificate installed now; None if there is none (or it cannot be read: it is being replaced)."""
    try:
        return x509.load_pem_x509_certificate(path.read_bytes())
    except (OSError, ValueError) as exc:
        logger.warning("the installed certificate %s cannot be read (%s): replacing it", path, exc)
        return None


def _public_key_der(key_file: Path) -> bytes:
    try:
        key = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
    except (OSError, ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise CertificateRefusedError(f"cannot read this gateway's key {key_file}: {exc}") from exc
    return key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
