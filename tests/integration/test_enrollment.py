"""Enrollment end to end: the fleet's API over real HTTPS, a real Mosquitto with dynamic security, the real
``outpost gateway enroll`` command and the real agent (``outpost gateway run``) on the settings it wrote.

A technician creates a token; the gateway enrolls with its code and gets credentials the broker accepts;
its agent comes online in production mode. The token does not work twice. Revoking the gateway closes its
session (the agent runs on for the village, retrying) and its login is refused; enrolling replacement
hardware under the same gateway id gives new credentials, and the old password stays refused.
"""

import asyncio
import dataclasses
import os
import ssl
import stat
import tomllib
from collections.abc import AsyncIterator
from pathlib import Path

import aiomqtt
import httpx
import pytest
from aiomqtt.exceptions import MqttConnectError
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from typer.testing import CliRunner, Result

from edge.cli import app as gateway_cli
from edge.settings import EdgeSettings
from fleet.api.app import create_app
from fleet.api.server import HttpServer
from fleet.broker_access.bootstrap import FleetLogin, prepare_broker
from fleet.db.engine import create_engine, migrate, session_factory
from fleet.db.schema import VillageRow
from fleet.enrollment.broker import DynsecProvisioner
from fleet.enrollment.service import EnrollmentService
from fleet.settings import BrokerSettings, EnrollmentSettings, FleetSettings, GatewayBrokerSettings
from protocol.clock import utc_now_ms
from protocol.config_signing import public_key_pem
from protocol.gateway_config import DeviceKind, DeviceSpec, GatewayConfig
from protocol.reconnect import refusal_code
from protocol.topics import Channel, gateway_topic
from simulators.infra.certificates import CertificateFiles, write_certificates
from simulators.infra.mosquitto import DynsecAdmin, MosquittoBroker, dynamic_security_plugin
from tests.fleet.api_client import ADMIN_TOKEN, api_context
from tests.fleet.helpers import FakeClock
from tests.integration.gateway_process import GatewayProcess

pytestmark = pytest.mark.integration

ADMIN = DynsecAdmin("dynsec-admin", "admin-password")
FLEET_USER, FLEET_PASSWORD = "outpost-fleet", "fleet-password"
VILLAGE = "shiqiao"
NOT_AUTHORISED = 135


@dataclasses.dataclass
class Fleet:
    url: str
    api: httpx.AsyncClient
    broker: MosquittoBroker
    ca_file: Path


@pytest.fixture
async def broker() -> AsyncIterator[MosquittoBroker]:
    if not MosquittoBroker.available() or dynamic_security_plugin() is None:
        pytest.fail("mosquitto or its dynamic security plugin is not installed: run scripts/test, which installs it")
    async with MosquittoBroker(dynamic_security=ADMIN) as broker:
        # What the fleet service does at start (this test runs the API without the service).
        provisioner = DynsecProvisioner(broker.host, broker.port, username=ADMIN.username, password=ADMIN.password)
        async with provisioner.access() as access:
            await prepare_broker(access, FleetLogin(FLEET_USER, FLEET_PASSWORD, share_group=None))
        yield broker


async def _village(sessions: async_sessionmaker[AsyncSession]) -> None:
    async with sessions.begin() as session:
        session.add(VillageRow(id=VILLAGE, name="Shiqiao", first_seen_ms=utc_now_ms()))


@pytest.fixture
async def fleet(tmp_path: Path, broker: MosquittoBroker) -> AsyncIterator[Fleet]:
    """The fleet's API over HTTPS (a throwaway CA), enrolling on ``broker`` as its dynamic security admin,
    with a config-signing key and an initial config (a simulated panic button) for every gateway."""
    certificates: CertificateFiles = write_certificates(tmp_path / "pki")
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'fleet.db'}")
    await migrate(engine)
    sessions = session_factory(engine)
    await _village(sessions)
    signing_key = public_key_pem(Ed25519PrivateKey.generate().public_key())

    async def initial_config(_village_id: str, _gateway_id: str) -> GatewayConfig:
        panic = DeviceSpec(kind=DeviceKind.PANIC_BUTTON, id="panic-clinic", grid_id="g1")
        return GatewayConfig(heartbeat_interval_s=1.0, telemetry_interval_s=0.5, devices=[panic])

    def signing_public_key() -> str:
        return signing_key

    settings = FleetSettings(
        environment="development",
        broker=BrokerSettings(host=broker.host, port=broker.port),
        enrollment=EnrollmentSettings(
            broker=GatewayBrokerSettings(host=broker.host, port=broker.port),
            dynsec_username=ADMIN.username,
            dynsec_password=ADMIN.password,
        ),
    )
    enrollment = EnrollmentService.from_settings(
        settings, sessions, utc_now_ms, initial_config=initial_config, signing_public_key=signing_public_key
    )
    context = dataclasses.replace(api_context(sessions, FakeClock()), enrollment=enrollment)
    server = HttpServer(
        create_app(context),
        "127.0.0.1",
        0,
        "fleet",
        tls_cert_file=certificates.server_cert,
        tls_key_file=certificates.server_key,
    )
    await server.start()
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    try:
        assert server.url.startswith("https://")
        trust = ssl.create_default_context(cafile=certificates.ca_cert)
        async with httpx.AsyncClient(base_url=server.url, headers=headers, verify=trust) as api:
            yield Fleet(server.url, api, broker, certificates.ca_cert)
    finally:
        await server.stop()
        await engine.dispose()


async def create_code(fleet: Fleet, gateway_id: str | None = None) -> str:
    response = await fleet.api.post("/enrollment-tokens", json={"village_id": VILLAGE, "gateway_id": gateway_id})
    assert response.status_code == 201, response.text
    return f"outpost-enroll:1?{httpx.QueryParams({'fleet': fleet.url, 'token': response.json()['secret']})}"


async def run_enroll(fleet: Fleet, code: str, root: Path) -> Result:
    """``outpost gateway enroll`` in a thread: it blocks on its HTTPS request, which this event loop serves."""
    arguments = [
        "enroll", "--code", code, "--fleet-ca", str(fleet.ca_file),
        "--config-dir", str(root / "etc-outpost"), "--state-dir", str(root / "state"),
        "--systemd-dir", str(root / "systemd"), "--group", "",
    ]  # fmt: skip
    return await asyncio.to_thread(CliRunner().invoke, gateway_cli, arguments)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def broker_login(settings_file: Path) -> tuple[str, str]:
    """The broker password and the client id it is bound to, as enrollment wrote them."""
    broker = tomllib.loads(settings_file.read_text())["broker"]
    return broker["password"], broker["client_id"]


async def login_refusal(broker: MosquittoBroker, username: str, login: tuple[str, str]) -> int | None:
    """None if the broker accepts the login (a password and its client id), else its CONNACK refusal code."""
    password, client_id = login
    try:
        async with aiomqtt.Client(broker.host, broker.port, username=username, password=password, identifier=client_id):
            return None
    except MqttConnectError as exc:
        return refusal_code(exc.rc)


async def wait_for_online(broker: MosquittoBroker, gateway_id: str) -> None:
    """The gateway's retained presence says online, read with the fleet's own credentials."""
    topic = gateway_topic(VILLAGE, gateway_id, Channel.PRESENCE)
    async with aiomqtt.Client(
        broker.host, broker.port, username=FLEET_USER, password=FLEET_PASSWORD, identifier="fleet-presence"
    ) as client:
        await client.subscribe(topic, qos=1)
        async with asyncio.timeout(20):
            async for message in client.messages:
                assert isinstance(message.payload, bytes)
                if b'"online"' in message.payload:
                    return


async def test_a_gateway_enrolls_comes_online_and_is_revoked_and_replaced(tmp_path: Path, fleet: Fleet) -> None:
    code = await create_code(fleet)

    enrolled = await run_enroll(fleet, code, tmp_path / "pi")

    assert enrolled.exit_code == 0, enrolled.output
    config_dir = tmp_path / "pi" / "etc-outpost"
    settings_file = config_dir / "gateway.toml"
    assert mode(config_dir) == 0o700
    assert (mode(settings_file), mode(config_dir / "gateway-key.pem")) == (0o600, 0o600)
    assert mode(config_dir / "config-signing.pem") == 0o644
    settings = EdgeSettings.load(settings_file)
    assert settings.environment == "production"
    gateway_id = settings.gateway_id
    assert settings.village_id == VILLAGE
    assert [device.id for device in settings.devices] == ["panic-clinic"]
    unit = (tmp_path / "pi" / "systemd" / "outpost-gateway.service").read_text()
    assert f"--config {settings_file}" in unit
    first_login = broker_login(settings_file)

    async with GatewayProcess(settings_file) as agent:
        await wait_for_online(fleet.broker, gateway_id)

        reused = await run_enroll(fleet, code, tmp_path / "another-pi")
        assert reused.exit_code == 1
        assert "used already" in reused.output

        revoked = await fleet.api.post(f"/gateways/{gateway_id}/revoke")
        assert revoked.status_code == 200, revoked.text
        assert agent.process is not None
        # Its session is closed and its reconnection refused; the agent runs on, keeping the village's devices,
        # rules and sirens, and retries its login with a long backoff (it used to exit with 3 within seconds).
        await asyncio.sleep(5.0)
        assert agent.process.returncode is None, "a refused login no longer stops the agent"
    assert await login_refusal(fleet.broker, gateway_id, first_login) == NOT_AUTHORISED

    replaced = await run_enroll(fleet, await create_code(fleet, gateway_id), tmp_path / "pi")

    assert replaced.exit_code == 0, replaced.output
    assert "re-enrolled" in replaced.output
    assert EdgeSettings.load(settings_file).gateway_id == gateway_id
    backups = [path for path in config_dir.iterdir() if path.name.startswith("backup-")]
    assert len(backups) == 1
    assert broker_login(backups[0] / "gateway.toml") == first_login
    new_login = broker_login(settings_file)
    assert new_login[0] != first_login[0]
    assert new_login[1] != first_login[1], "a new client id, bound to the new login"
    assert await login_refusal(fleet.broker, gateway_id, first_login) == NOT_AUTHORISED
    assert await login_refusal(fleet.broker, gateway_id, (new_login[0], first_login[1])) == NOT_AUTHORISED
    assert await login_refusal(fleet.broker, gateway_id, new_login) is None


async def test_enrolling_over_https_needs_the_fleets_ca(tmp_path: Path, fleet: Fleet) -> None:
    code = await create_code(fleet)
    arguments = ["enroll", "--code", code, "--config-dir", str(tmp_path / "etc"), "--no-systemd", "--group", ""]
    env = {"SSL_CERT_FILE": os.devnull}  # no system CA may vouch for the throwaway one

    untrusted = await asyncio.to_thread(CliRunner().invoke, gateway_cli, arguments, env=env)

    assert untrusted.exit_code == 3
    assert "--fleet-ca" in untrusted.output
    assert not (tmp_path / "etc" / "gateway.toml").exists()
    listed = (await fleet.api.get("/enrollment-tokens")).json()
    assert len(listed) == 1  # the token was never sent: still usable


async def test_a_technician_creates_lists_and_revokes_codes_from_a_terminal(tmp_path: Path, fleet: Fleet) -> None:
    from fleet.cli.app import app as fleet_cli  # noqa: PLC0415 - the CLI root, as `outpost fleet` mounts it

    env = {"SSL_CERT_FILE": str(fleet.ca_file), "OUTPOST_FLEET_URL": fleet.url, "OUTPOST_TOKEN": ADMIN_TOKEN}

    async def fleet_command(*arguments: str) -> Result:
        return await asyncio.to_thread(CliRunner().invoke, fleet_cli, list(arguments), env=env)

    created = await fleet_command("enrollment", "create", "--village", VILLAGE, "--ttl", "2h")

    assert created.exit_code == 0, created.output
    *drawing, code = created.stdout.strip().splitlines()
    assert "▀" in "".join(drawing) or "█" in "".join(drawing)  # the QR code, drawn for the terminal
    listed = await fleet_command("enrollment", "list")
    token_id = listed.stdout.splitlines()[1].split()[0]
    assert (await fleet_command("enrollment", "revoke-token", token_id)).exit_code == 0

    refused = await run_enroll(fleet, code, tmp_path / "pi")

    assert refused.exit_code == 1
    assert "revoked" in refused.output
