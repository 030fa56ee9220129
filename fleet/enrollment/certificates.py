"""Gateways' TLS client certificates, issued at enrollment by the county's gateway CA from each gateway's request.

The gateway makes its TLS key (EC P-256) and sends a certificate request with its enrollment; the key never
leaves it. The fleet checks the request is signed by its own key, then issues a certificate naming the gateway
(``CN`` = its gateway id, whatever the request asked), for client authentication only, valid for
``enrollment.gateway_cert_days``. The broker (``require_certificate true``, ``cafile`` the county CA that
issued the gateway CA, or the gateway CA itself) then takes the gateway's TLS connection.

Renewal (:mod:`fleet.enrollment.renewal`) reissues a certificate for the key of the last one: the gateway keeps
its key, only the dates and the serial change.
"""

import datetime
from collections.abc import Callable
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from fleet.errors import EnrollmentSettingsError, InvalidRequestError

_SKEW = datetime.timedelta(minutes=5)
"""Valid from a little before now: a gateway's clock may be behind the fleet's."""
_CURVES = (ec.SECP256R1, ec.SECP384R1)
_SIGNING_ONLY = x509.KeyUsage(
    digital_signature=True,
    content_commitment=False,
    key_encipherment=False,
    data_encipherment=False,
    key_agreement=False,
    key_cert_sign=False,
    crl_sign=False,
    encipher_only=False,
    decipher_only=False,
)


class GatewayCertificates:
    def __init__(
        self,
        ca_certificate: x509.Certificate,
        ca_key: ec.EllipticCurvePrivateKey,
        days: int,
        clock: Callable[[], int],
    ) -> None:
        self._ca = ca_certificate
        self._key = ca_key
        self._days = days
        self._clock = clock

    @classmethod
    def from_files(cls, cert_file: Path, key_file: Path, days: int, clock: Callable[[], int]) -> "GatewayCertificates":
        """The gateway CA from its PEM files; raises EnrollmentSettingsError naming the file that is unusable."""
        try:
            certificate = x509.load_pem_x509_certificate(cert_file.read_bytes())
        except (OSError, ValueError) as exc:
            raise EnrollmentSettingsError(f"enrollment.gateway_ca_cert_file {cert_file}: {exc}") from exc
        try:
            key = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
        except (OSError, ValueError, TypeError, UnsupportedAlgorithm) as exc:
            raise EnrollmentSettingsError(f"enrollment.gateway_ca_key_file {key_file}: {exc}") from exc
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise EnrollmentSettingsError(f"enrollment.gateway_ca_key_file {key_file}: not an EC private key")
        if key.public_key().public_numbers() != certificate.public_key().public_numbers():  # type: ignore[union-attr]
            raise EnrollmentSettingsError(f"enrollment.gateway_ca_key_file {key_file} is not the key of {cert_file}")
        return cls(certificate, key, days, clock)

    def issue(self, csr_pem: str, gateway_id: str) -> str:
        """A client certificate (PEM) for ``gateway_id`` from its request. Blocking (signing): call it on a worker
        thread. Raises InvalidRequestError (422) for a request that is malformed, not self-signed, or not EC."""
        try:
            request = x509.load_pem_x509_csr(csr_pem.encode("ascii"))
        except (ValueError, UnicodeEncodeError) as exc:
            raise InvalidRequestError(f"tls_csr_pem: not a certificate request: {exc}") from None
        if not request.is_signature_valid:
            raise InvalidRequestError("tls_csr_pem: the request is not signed by its own key")
        public_key = request.public_key()
        if not isinstance(public_key, ec.EllipticCurvePublicKey) or not isinstance(public_key.curve, _CURVES):
            raise InvalidRequestError("tls_csr_pem: the key must be EC P-256 or P-384")
        return self._certificate(public_key, gateway_id)

    def reissue(self, certificate_pem: str, gateway_id: str) -> str:
        """A new certificate (PEM) for the key of ``certificate_pem``, one this CA issued to ``gateway_id``.
        Blocking (signing): call it on a worker thread. Raises ValueError for one it cannot have issued."""
        issued = x509.load_pem_x509_certificate(certificate_pem.encode("ascii"))
        public_key = issued.public_key()
        try:
            issued.verify_directly_issued_by(self._ca)
        except (ValueError, TypeError, InvalidSignature):
            raise ValueError(f"the certificate of gateway {gateway_id} was not issued by this gateway CA") from None
        if not isinstance(public_key, ec.EllipticCurvePublicKey):
            raise ValueError(f"the certificate of gateway {gateway_id} is not for an EC key")
        return self._certificate(public_key, gateway_id)

    def _certificate(self, public_key: ec.EllipticCurvePublicKey, gateway_id: str) -> str:
        now = datetime.datetime.fromtimestamp(self._clock() / 1000, tz=datetime.UTC)
        certificate = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, gateway_id)]))
            .issuer_name(self._ca.subject)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _SKEW)
            .not_valid_after(now + datetime.timedelta(days=self._days))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_SIGNING_ONLY, critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self._key.public_key()), critical=False)
            .sign(self._key, hashes.SHA256())
        )
        return certificate.public_bytes(serialization.Encoding.PEM).decode("ascii")


def not_after_ms(certificate_pem: str) -> int:
    """When ``certificate_pem`` expires, in ms since the epoch."""
    certificate = x509.load_pem_x509_certificate(certificate_pem.encode("ascii"))
    return round(certificate.not_valid_after_utc.timestamp() * 1000)
