"""An enrollment service as a development fleet runs it without a broker administrator: tokens and gateway
records are real, no broker credentials are provisioned (the integration test provisions real ones)."""

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from fleet.enrollment.certificates import GatewayCertificates
from fleet.enrollment.service import EnrollmentService, GatewayBrokerAddress, no_initial_config, no_signing_public_key
from tests.fleet.helpers import FakeClock

BROKER_ADDRESS = GatewayBrokerAddress(host="broker.county.example", port=8883, tls=True, ca_pem=None)


def development_enrollment(
    sessions: async_sessionmaker[AsyncSession],
    clock: FakeClock,
    *,
    development: bool = True,
    certificates: GatewayCertificates | None = None,
) -> EnrollmentService:
    return EnrollmentService(
        sessions,
        clock,
        BROKER_ADDRESS,
        None,
        development=development,
        initial_config=no_initial_config,
        signing_public_key=no_signing_public_key,
        public_url="https://fleet.county.example",
        certificates=certificates,
    )
