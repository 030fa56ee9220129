"""Gateways' TLS client certificates, issued at enrollment by the gateway CA from the request the gateway sends."""

import datetime
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from edge.enrollment.keys import generate_tls_request
from fleet.access.roles import Actor, Role
from fleet.db.schema import GatewayRow
from fleet.enrollment.certificates import GatewayCertificates
from fleet.errors import EnrollmentSettingsError, InvalidRequestError
from fleet.sites.schemas import CountySpec, TownSpec, VillageSpec
from fleet.sites.store import SiteStore
from protocol.config_signing import public_key_pem
from protocol.enrollment import EnrollmentRequest
from simulators.infra.certificates import CertificateFiles, write_certificates
from tests.fleet.enrollment.parts import development_enrollment
from tests.fleet.helpers import FakeClock

NOW_MS = 1_800_000_000_000
ADMIN = Actor("zhao-min", Role.ADMIN)


@pytest.fixture
def pki(tmp_path: Path) -> CertificateFiles:
    return write_certificates(tmp_path / "pki")


def _issuer(pki: CertificateFiles) -> GatewayCertificates:
    return GatewayCertificates.from_files(pki.ca_cert, pki.ca_key, 365, lambda: NOW_MS)


def test_a_certificate_names_the_gateway_authenticates_clients_and_is_signed_by_the_ca(pki: CertificateFiles) -> None:
    request = generate_tls_request("pi-clinic")

    certificate = x509.load_pem_x509_certificate(_issuer(pki).issue(request.csr_pem, "gw-shiqiao-1").encode())

    ca = x509.load_pem_x509_certificate(pki.ca_cert.read_bytes())
    certificate.verify_directly_issued_by(ca)
    assert certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "gw-shiqiao-1"
    usage = certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usage) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert not certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    now = datetime.datetime.fromtimestamp(NOW_MS / 1000, tz=datetime.UTC)
    assert certificate.not_valid_before_utc < now < certificate.not_valid_after_utc
    assert certificate.not_valid_after_utc - now == datetime.timedelta(days=365)


def test_a_request_not_signed_by_its_own_key_or_not_ec_is_refused(pki: CertificateFiles) -> None:
    issuer = _issuer(pki)
    good = x509.load_pem_x509_csr(generate_tls_request("pi-east").csr_pem.encode())
    der = good.public_bytes(serialization.Encoding.DER).replace(b"pi-east", b"pi-west")  # signed as east
    forged = x509.load_der_x509_csr(der).public_bytes(serialization.Encoding.PEM).decode()
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    rsa_request = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pi")]))
        .sign(rsa_key, hashes.SHA256())
        .public_bytes(serialization.Encoding.PEM)
        .decode()
    )

    for request, why in (("-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n", "not a certificate request"),
                         (forged, "not signed by its own key"), (rsa_request, "EC P-256 or P-384")):  # fmt: skip
        with pytest.raises(InvalidRequestError, match=why):
            issuer.issue(request, "gw-1")


def test_a_ca_key_that_is_not_the_certificate_s_stops_the_fleet(pki: CertificateFiles, tmp_path: Path) -> None:
    other = write_certificates(tmp_path / "other")

    with pytest.raises(EnrollmentSettingsError, match="is not the key of"):
        GatewayCertificates.from_files(pki.ca_cert, other.ca_key, 365, lambda: NOW_MS)


async def test_enrollment_answers_a_request_with_a_certificate_named_after_the_gateway(
    sessions: async_sessionmaker[AsyncSession], clock: FakeClock, pki: CertificateFiles
) -> None:
    await SiteStore(sessions, clock).create_county(ADMIN, CountySpec(id="anxi", name="Anxi"))
    await SiteStore(sessions, clock).create_town(ADMIN, TownSpec(id="hutou", county_id="anxi", name="Hutou"))
    await SiteStore(sessions, clock).create_village(ADMIN, VillageSpec(id="shiqiao", town_id="hutou", name="Shiqiao"))
    enrollment = development_enrollment(sessions, clock, certificates=_issuer(pki))
    issued = await enrollment.issue_token(ADMIN, "shiqiao", "gw-shiqiao-1")
    request = EnrollmentRequest(
        token=issued.secret,
        public_key_pem=public_key_pem(Ed25519PrivateKey.generate().public_key()),
        hostname="pi",
        agent_version="1.0",
        tls_csr_pem=generate_tls_request("pi").csr_pem,
    )

    grant = await enrollment.enroll(request)

    assert grant.broker.client_cert_pem is not None
    certificate = x509.load_pem_x509_certificate(grant.broker.client_cert_pem.encode())
    assert certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "gw-shiqiao-1"
    async with sessions() as session:  # kept, to renew it before it expires
        row = await session.get(GatewayRow, "gw-shiqiao-1")
    assert row is not None
    assert row.tls_cert_pem == grant.broker.client_cert_pem
    assert row.tls_cert_not_after_ms == round(certificate.not_valid_after_utc.timestamp() * 1000)


def test_a_renewed_certificate_is_for_the_same_key_with_new_dates_and_a_new_serial(pki: CertificateFiles) -> None:
    first_pem = _issuer(pki).issue(generate_tls_request("pi").csr_pem, "gw-shiqiao-1")
    later = GatewayCertificates.from_files(pki.ca_cert, pki.ca_key, 365, lambda: NOW_MS + 335 * 86_400_000)

    first = x509.load_pem_x509_certificate(first_pem.encode())
    renewed = x509.load_pem_x509_certificate(later.reissue(first_pem, "gw-shiqiao-1").encode())

    assert renewed.public_key() == first.public_key()
    assert renewed.subject == first.subject
    assert renewed.serial_number != first.serial_number
    assert renewed.not_valid_after_utc - first.not_valid_after_utc == datetime.timedelta(days=335)
    other = write_certificates(pki.ca_cert.parent / "other")
    with pytest.raises(ValueError, match="not issued by this gateway CA"):
        GatewayCertificates.from_files(other.ca_cert, other.ca_key, 365, lambda: NOW_MS).reissue(first_pem, "gw-1")
