"""A fleet whose certificate a private CA signed, served over real HTTPS: every ``outpost fleet`` command trusts
it given the CA (``--ca-file`` or ``OUTPOST_CA_FILE``), and without it says what to give."""

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from fleet.api.app import create_app
from fleet.api.server import HttpServer
from simulators.infra.certificates import CertificateFiles, write_certificates
from tests.fleet.alert_county import alert_county
from tests.fleet.cli.busy_county import outpost_fleet, words_of
from tests.fleet.helpers import FakeClock


@pytest.fixture
def certificates(tmp_path: Path) -> CertificateFiles:
    return write_certificates(tmp_path / "tls")


@pytest.fixture
async def fleet(
    sessions: async_sessionmaker[AsyncSession], clock: FakeClock, certificates: CertificateFiles
) -> AsyncIterator[str]:
    context = await alert_county(sessions, clock)
    server = HttpServer(
        create_app(context),
        "127.0.0.1",
        0,
        "fleet",
        tls_cert_file=certificates.server_cert,
        tls_key_file=certificates.server_key,
    )
    await server.start()
    try:
        yield server.url
    finally:
        await server.stop()


NO_SYSTEM_CA = {"SSL_CERT_FILE": None, "SSL_CERT_DIR": None}


async def test_the_private_ca_is_given_by_option_or_environment(fleet: str, certificates: CertificateFiles) -> None:
    assert fleet.startswith("https://")
    ca = str(certificates.ca_cert)

    untrusted = await outpost_fleet(fleet, "gateways", "list", env=NO_SYSTEM_CA)
    by_option = await outpost_fleet(fleet, "gateways", "list", "--ca-file", ca, env=NO_SYSTEM_CA)
    by_environment = await outpost_fleet(fleet, "alerts", "list", env={**NO_SYSTEM_CA, "OUTPOST_CA_FILE": ca})
    a_write = await outpost_fleet(
        fleet,
        "devices",
        "set",
        "gw-01",
        "panic-1",
        "--kind",
        "panic_button",
        env={**NO_SYSTEM_CA, "OUTPOST_CA_FILE": ca},
    )

    assert untrusted.exit_code == 2
    assert f"cannot reach the fleet at {fleet}" in untrusted.stderr
    assert "CERTIFICATE_VERIFY_FAILED" in untrusted.stderr
    assert "give it with --ca-file (or OUTPOST_CA_FILE)" in untrusted.stderr
    assert by_option.exit_code == 0, by_option.output
    assert "gw-01" in by_option.stdout
    assert by_environment.exit_code == 0, by_environment.output
    assert (a_write.exit_code, a_write.stdout) == (0, "set device panic-1 on gw-01: panic_button\n")


async def test_a_ca_that_did_not_sign_the_fleet_or_is_no_ca_is_named(
    fleet: str, certificates: CertificateFiles, tmp_path: Path
) -> None:
    other = write_certificates(tmp_path / "other")
    not_pem = tmp_path / "ca.pem"
    not_pem.write_text("not a certificate\n", encoding="utf-8")

    wrong_ca = await outpost_fleet(fleet, "gateways", "list", "--ca-file", str(other.ca_cert), env=NO_SYSTEM_CA)
    no_ca = await outpost_fleet(fleet, "gateways", "list", "--ca-file", str(not_pem), env=NO_SYSTEM_CA)
    missing = await outpost_fleet(fleet, "gateways", "list", "--ca-file", str(tmp_path / "nowhere.pem"))

    assert wrong_ca.exit_code == 2
    assert f"the fleet's certificate is not signed by {other.ca_cert}" in wrong_ca.stderr
    assert no_ca.exit_code == 2
    assert no_ca.stderr.startswith(f"cannot use {not_pem} as the fleet's CA (--ca-file, OUTPOST_CA_FILE): ")
    assert missing.exit_code == 2
    assert "does not exist" in words_of(missing)
