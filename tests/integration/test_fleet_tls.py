"""The fleet's own MQTT sessions over TLS against a real Mosquitto that speaks only TLS and requires client
certificates: a press from a gateway on TLS becomes a case through the fleet's ingest and the downlink connects;
a fleet given the wrong CA stops, naming the setting to fix; a gateway's certificate is renewed before it
expires."""

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import aiomqtt
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from edge.adapters.simulated import SimulatedPanicButton
from edge.agent import GatewayAgent
from edge.devices import prebuilt
from edge.enrollment.keys import generate_tls_request
from edge.settings import BrokerSettings as GatewayBrokerSettings
from edge.settings import EdgeSettings
from fleet.db.engine import create_engine, session_factory
from fleet.db.schema import GatewayRow
from fleet.enrollment.certificates import GatewayCertificates, not_after_ms
from fleet.errors import BrokerRefusedError
from fleet.service import FleetService
from fleet.settings import FleetSettings
from protocol.clock import utc_now_ms
from protocol.gateway_config import DeviceKind, DeviceSpec, GatewayConfig
from protocol.mqtt_tls import MqttTlsSettings, mqtt_tls_context
from simulators.infra.certificates import CertificateFiles, write_certificates
from simulators.infra.mosquitto import MosquittoBroker, TlsListener
from tests.integration.conftest import Platform, eventually, fleet_settings, running_service

pytestmark = pytest.mark.integration


@pytest.fixture
def certificates(tmp_path: Path) -> CertificateFiles:
    return write_certificates(tmp_path / "pki")


@pytest.fixture
async def tls_broker(certificates: CertificateFiles) -> AsyncIterator[MosquittoBroker]:
    listener = TlsListener(
        certificates.ca_cert, certificates.server_cert, certificates.server_key, require_certificate=True
    )
    async with MosquittoBroker(tls=listener, plain=False) as broker:
        yield broker


def _client_tls(files: CertificateFiles, ca_file: Path | None = None) -> MqttTlsSettings:
    return MqttTlsSettings(ca_file=ca_file or files.ca_cert, cert_file=files.client_cert, key_file=files.client_key)


def _fleet(tmp_path: Path, broker: MosquittoBroker, platform: Platform, tls: MqttTlsSettings) -> FleetSettings:
    settings = fleet_settings(tmp_path, broker, platform.server.url)
    return settings.model_copy(update={"broker": settings.broker.model_copy(update={"tls": tls})})


async def test_a_press_becomes_a_case_with_every_fleet_session_on_tls(
    tmp_path: Path, certificates: CertificateFiles, tls_broker: MosquittoBroker, platform: Platform
) -> None:
    gateway = EdgeSettings(
        environment="development",
        village_id="shiqiao",
        gateway_id="gw-shiqiao",
        broker=GatewayBrokerSettings(port=tls_broker.port, keepalive_s=5, tls=_client_tls(certificates)),
        state_dir=tmp_path / "gateway",
        config=GatewayConfig(heartbeat_interval_s=1.0, telemetry_interval_s=0.5),
        devices=[DeviceSpec(kind=DeviceKind.PANIC_BUTTON, id="panic-clinic", grid_id="shiqiao-grid-1")],
    )
    button = SimulatedPanicButton(gateway.devices[0], utc_now_ms)
    agent = GatewayAgent(gateway, prebuilt([button]))

    async with running_service(_fleet(tmp_path, tls_broker, platform, _client_tls(certificates))) as fleet:
        assert fleet.ingest.connected  # running_service waited for it, and for the downlink
        stop = asyncio.Event()
        running = asyncio.create_task(agent.run(stop))
        try:
            await eventually(lambda: _connected(agent), what="the gateway connecting over TLS")
            button.press()
            await eventually(lambda: _cases(platform, 1), what="the case opened through the fleet's TLS ingest")
        finally:
            stop.set()
            await running


async def test_a_fleet_given_the_wrong_ca_stops_and_says_which_setting_to_fix(
    tmp_path: Path, certificates: CertificateFiles, tls_broker: MosquittoBroker, platform: Platform
) -> None:
    """A broker the fleet cannot trust is a setting to fix, like a refused login: it stops loudly (systemd shows
    why), rather than retry with alerts going nowhere."""
    other_ca = write_certificates(tmp_path / "another-pki").ca_cert
    fleet = FleetService(_fleet(tmp_path, tls_broker, platform, _client_tls(certificates, ca_file=other_ca)))

    with pytest.raises(BrokerRefusedError, match="does not trust broker") as refused:
        await asyncio.wait_for(fleet.run(asyncio.Event()), 60)

    assert str(other_ca) in str(refused.value)


async def _connected(agent: GatewayAgent) -> bool:
    return agent.uplink.connected.is_set()


async def _cases(platform: Platform, count: int) -> bool:
    return len(platform.ledger.cases) >= count


async def test_a_certificate_issued_at_enrollment_gets_the_gateway_through_a_broker_that_requires_one(
    tmp_path: Path, certificates: CertificateFiles, tls_broker: MosquittoBroker
) -> None:
    """The gateway's request (its key stays on it), the fleet's gateway CA (here the broker's own CA), and the
    broker taking the certificate: the whole chain enrollment sets up, against a real Mosquitto."""
    request = generate_tls_request("pi-clinic")
    issuer = GatewayCertificates.from_files(certificates.ca_cert, certificates.ca_key, 365, utc_now_ms)
    cert_file, key_file = tmp_path / "client.pem", tmp_path / "client.key"
    cert_file.write_text(issuer.issue(request.csr_pem, "gw-shiqiao-1"), encoding="ascii")
    key_file.write_text(request.private_pem, encoding="ascii")
    tls = mqtt_tls_context(MqttTlsSettings(ca_file=certificates.ca_cert, cert_file=cert_file, key_file=key_file), "b")

    async with aiomqtt.Client(tls_broker.host, tls_broker.port, identifier="gw-shiqiao-1", tls_context=tls) as client:
        await client.publish("outpost/v1/shiqiao/gw-shiqiao-1/heartbeat", b"{}", qos=1)


EXPIRES_IN_S = 8.0
DAY_MS = 86_400_000


@pytest.mark.security
async def test_a_certificate_about_to_expire_is_renewed_and_the_next_connection_uses_the_new_one(
    tmp_path: Path, certificates: CertificateFiles, tls_broker: MosquittoBroker, platform: Platform
) -> None:
    """The whole renewal against a broker that requires client certificates: the fleet (its gateway CA is the
    broker's CA here) reissues the certificate of a gateway whose one expires in seconds and sends it signed; the
    gateway installs it, and after the old one expired it still gets in when the broker restarts."""
    request = generate_tls_request("pi-clinic")
    short_lived = GatewayCertificates.from_files(
        certificates.ca_cert, certificates.ca_key, 1, lambda: utc_now_ms() - DAY_MS + round(EXPIRES_IN_S * 1000)
    ).issue(request.csr_pem, "gw-shiqiao")
    cert_file, key_file = tmp_path / "gateway.pem", tmp_path / "gateway.key"
    cert_file.write_text(short_lived, encoding="ascii")
    key_file.write_text(request.private_pem, encoding="ascii")
    tls = MqttTlsSettings(ca_file=certificates.ca_cert, cert_file=cert_file, key_file=key_file)
    gateway = EdgeSettings(
        environment="development",
        village_id="shiqiao",
        gateway_id="gw-shiqiao",
        broker=GatewayBrokerSettings(port=tls_broker.port, keepalive_s=5, tls=tls, client_id="gw-shiqiao-7f3a"),
        state_dir=tmp_path / "gateway",
        config=GatewayConfig(heartbeat_interval_s=1.0, telemetry_interval_s=0.5),
        devices=[],
    )
    settings = _fleet(tmp_path, tls_broker, platform, _client_tls(certificates))
    enrollment = settings.enrollment.model_copy(
        update={
            "gateway_ca_cert_file": certificates.ca_cert,
            "gateway_ca_key_file": certificates.ca_key,
            "gateway_cert_check_interval_s": 0.5,
        }
    )
    agent = GatewayAgent(gateway, prebuilt([]))
    engine = create_engine(settings.database_url)
    sessions = session_factory(engine)

    async with running_service(settings.model_copy(update={"enrollment": enrollment})):
        stop = asyncio.Event()
        running = asyncio.create_task(agent.run(stop))
        try:
            await eventually(lambda: _online(sessions, "gw-shiqiao"), what="the gateway registered online")
            async with sessions.begin() as session:  # as enrollment records the certificate it issued
                row = await session.get(GatewayRow, "gw-shiqiao")
                assert row is not None
                row.tls_cert_pem, row.tls_cert_not_after_ms = short_lived, not_after_ms(short_lived)
            await eventually(lambda: _renewed(sessions, "gw-shiqiao"), what="the renewed certificate recorded")
            assert cert_file.read_text(encoding="ascii") != short_lived
            await asyncio.sleep(max(0.0, (not_after_ms(short_lived) - utc_now_ms()) / 1000 + 1))  # the old one expired
            connections = _connections(tls_broker, "gw-shiqiao-7f3a")
            await tls_broker.restart()
            await eventually(
                lambda: _more_connections(tls_broker, "gw-shiqiao-7f3a", connections),
                timeout_s=30,
                what="the gateway connecting again with its renewed certificate",
            )
        finally:
            stop.set()
            await running
            await engine.dispose()


async def _online(sessions: async_sessionmaker[AsyncSession], gateway_id: str) -> bool:
    async with sessions() as session:
        row = await session.get(GatewayRow, gateway_id)
        return row is not None and row.online


async def _renewed(sessions: async_sessionmaker[AsyncSession], gateway_id: str) -> bool:
    async with sessions() as session:
        row = await session.get(GatewayRow, gateway_id)
        return row is not None and (row.tls_cert_not_after_ms or 0) > utc_now_ms() + 300 * DAY_MS


def _connections(broker: MosquittoBroker, client_id: str) -> int:
    """How many times ``client_id`` connected (Mosquitto logs every connection, after the TLS handshake)."""
    return broker.log_path.read_text(encoding="utf-8").count(f" as {client_id} ")


async def _more_connections(broker: MosquittoBroker, client_id: str, than: int) -> bool:
    return _connections(broker, client_id) > than
