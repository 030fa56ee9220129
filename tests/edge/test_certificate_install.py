"""Installing a renewed TLS client certificate: only one for this gateway's own key and id, from the issuer of the
one it replaces and valid now; the replaced one is kept beside it."""

import datetime
from pathlib import Path

import pytest
from cryptography import x509

from edge.certificate_install import PREVIOUS_SUFFIX, CertificateInstaller, CertificateRefusedError
from edge.enrollment.keys import generate_tls_request
from fleet.enrollment.certificates import GatewayCertificates
from protocol.mqtt_tls import MqttTlsSettings
from simulators.infra.certificates import CertificateFiles, write_certificates

NOW_MS = 1_800_000_000_000
DAY_MS = 86_400_000
GATEWAY = "gw-shiqiao-1"


@pytest.fixture
def pki(tmp_path: Path) -> CertificateFiles:
    return write_certificates(tmp_path / "pki")


def _ca(pki: CertificateFiles, at_ms: int = NOW_MS, days: int = 365) -> GatewayCertificates:
    return GatewayCertificates.from_files(pki.ca_cert, pki.ca_key, days, lambda: at_ms)


@pytest.fixture
def tls(tmp_path: Path, pki: CertificateFiles) -> MqttTlsSettings:
    return enrolled_tls(tmp_path, pki)


def enrolled_tls(directory: Path, pki: CertificateFiles, gateway_id: str = GATEWAY) -> MqttTlsSettings:
    """The gateway's key and the certificate it was enrolled with 300 days ago, as enrollment writes them."""
    request = generate_tls_request("pi")
    cert_file, key_file = directory / "gateway.pem", directory / "gateway.key"
    key_file.write_text(request.private_pem, encoding="ascii")
    cert_file.write_text(_ca(pki, NOW_MS - 300 * DAY_MS).issue(request.csr_pem, gateway_id), encoding="ascii")
    return MqttTlsSettings(ca_file=pki.ca_cert, cert_file=cert_file, key_file=key_file)


def _installer(tls: MqttTlsSettings | None, gateway_id: str = GATEWAY) -> CertificateInstaller:
    return CertificateInstaller(tls, gateway_id, lambda: NOW_MS)


def renewed_for(pki: CertificateFiles, tls: MqttTlsSettings, gateway_id: str = GATEWAY, **issuer: int) -> bytes:
    """What the fleet's renewal sends: the certificate reissued for the same key, now."""
    assert tls.cert_file is not None
    return _ca(pki, **issuer).reissue(tls.cert_file.read_text(encoding="ascii"), gateway_id).encode("ascii")


def test_a_renewed_certificate_replaces_the_old_one_which_is_kept_beside_it(
    pki: CertificateFiles, tls: MqttTlsSettings
) -> None:
    assert tls.cert_file is not None
    old = tls.cert_file.read_bytes()
    renewed = renewed_for(pki, tls)

    result = _installer(tls).install(renewed)

    assert tls.cert_file.read_bytes() == renewed
    assert tls.cert_file.with_name(tls.cert_file.name + PREVIOUS_SUFFIX).read_bytes() == old
    expiry = datetime.datetime.fromtimestamp(NOW_MS / 1000 + 365 * 86400, tz=datetime.UTC)
    assert result["not_after"] == expiry.isoformat()
    assert x509.load_pem_x509_certificate(renewed).serial_number == int(str(result["serial"]), 16)


def test_a_certificate_for_another_key_or_another_gateway_is_refused(
    pki: CertificateFiles, tls: MqttTlsSettings
) -> None:
    assert tls.cert_file is not None
    old = tls.cert_file.read_bytes()
    another_key = _ca(pki).issue(generate_tls_request("pi").csr_pem, GATEWAY).encode("ascii")

    with pytest.raises(CertificateRefusedError, match="not for this gateway's key"):
        _installer(tls).install(another_key)
    with pytest.raises(CertificateRefusedError, match="this is gateway gw-other"):
        _installer(tls, "gw-other").install(renewed_for(pki, tls))

    assert tls.cert_file.read_bytes() == old


def test_a_certificate_from_another_issuer_expired_or_not_yet_valid_is_refused(
    tmp_path: Path, pki: CertificateFiles, tls: MqttTlsSettings
) -> None:
    assert tls.cert_file is not None
    other = write_certificates(tmp_path / "other-pki")
    current = tls.cert_file.read_text(encoding="ascii")
    foreign = GatewayCertificates.from_files(other.ca_cert, other.ca_key, 365, lambda: NOW_MS)
    cases = [
        (foreign._certificate(x509.load_pem_x509_certificate(current.encode()).public_key(), GATEWAY), "issued by"),  # type: ignore[arg-type]
        (renewed_for(pki, tls, at_ms=NOW_MS - 2 * DAY_MS, days=1).decode(), "expired"),
        (renewed_for(pki, tls, at_ms=NOW_MS + DAY_MS).decode(), "clock is wrong"),
    ]

    for pem, why in cases:
        with pytest.raises(CertificateRefusedError, match=why):
            _installer(tls).install(pem.encode("ascii"))

    assert tls.cert_file.read_text(encoding="ascii") == current


def test_a_gateway_without_a_client_certificate_or_with_its_key_inside_it_refuses(
    pki: CertificateFiles, tls: MqttTlsSettings
) -> None:
    renewed = renewed_for(pki, tls)
    shared = tls.model_copy(update={"key_file": None})

    with pytest.raises(CertificateRefusedError, match="no TLS client certificate"):
        _installer(None).install(renewed)
    with pytest.raises(CertificateRefusedError, match=r"set broker\.tls\.key_file"):
        _installer(shared).install(renewed)
    with pytest.raises(CertificateRefusedError, match="not a PEM certificate"):
        _installer(tls).install(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
