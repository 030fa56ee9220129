"""A config pushed through a real Mosquitto is validated, its signature checked, applied live, reported, rolled back
on failure, and kept."""

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path

import aiomqtt
import pytest

from edge.adapters.registry import build_devices
from edge.adapters.simulated import SimulatedPanicButton
from edge.agent import GatewayAgent
from edge.settings import BrokerSettings, EdgeSettings
from protocol.clock import utc_now_ms
from protocol.codec import encode
from protocol.gateway_config import DeviceKind, DeviceSpec, DriverKind, GatewayConfig
from protocol.messages import Alert, ConfigDesired, ConfigReported, ConfigStatus
from protocol.topics import Channel, gateway_topic
from simulators.infra.mosquitto import MosquittoBroker
from tests.integration.conftest import eventually
from tests.integration.recorder import Recorder
from tests.signing_keys import SigningKeys

pytestmark = [pytest.mark.integration, pytest.mark.filterwarnings("ignore::gpiozero.exc.PinFactoryFallback")]

VILLAGE = "hekou"
GATEWAY = "gw-hekou"
PANIC = DeviceSpec(kind=DeviceKind.PANIC_BUTTON, id="panic-square")
ADDED = DeviceSpec(kind=DeviceKind.PANIC_BUTTON, id="panic-clinic", grid_id="hekou-grid-1")
NO_SUCH_PINS = DeviceSpec(kind=DeviceKind.PANIC_BUTTON, id="panic-wired", driver=DriverKind.GPIO, params={"pin": 17})
FLEET_KEY = SigningKeys.generate()
"""The fleet's config-signing key; the gateway holds its public half, as enrollment leaves it."""


def _settings(tmp_path: Path, broker: MosquittoBroker) -> EdgeSettings:
    return EdgeSettings(
        environment="development",
        village_id=VILLAGE,
        gateway_id=GATEWAY,
        broker=BrokerSettings(port=broker.port),
        state_dir=tmp_path / "gateway",
        config_signing_key=FLEET_KEY.write_public_key(tmp_path / "etc" / "config-signing.pem"),
        config=GatewayConfig(heartbeat_interval_s=1.0, telemetry_interval_s=0.5),
        devices=[PANIC],
    )


@asynccontextmanager
async def _running(settings: EdgeSettings) -> AsyncIterator[GatewayAgent]:
    agent = GatewayAgent(settings, partial(build_devices, clock=utc_now_ms), probation_s=0.5)
    stop = asyncio.Event()
    task = asyncio.create_task(agent.run(stop))
    try:
        await eventually(lambda: _flag(agent.uplink.connected), what="gateway connecting")
        yield agent
    finally:
        stop.set()
        await task


async def _push(
    broker: MosquittoBroker, version: int, config: GatewayConfig | bytes, *, key: SigningKeys | None = FLEET_KEY
) -> None:
    """Publish a retained desired config signed with ``key``, as the fleet does (or raw bytes, as a broken fleet
    might; or unsigned, with ``key=None``)."""
    if isinstance(config, bytes):
        payload = config
    else:
        desired = ConfigDesired(
            gateway_id=GATEWAY, seq=version, event_id=uuid.uuid4(), ts=utc_now_ms(), version=version, config=config
        )
        payload = encode(desired if key is None else key.sign(VILLAGE, desired))
    async with aiomqtt.Client(broker.host, broker.port, identifier="test-fleet-config") as client:
        await client.publish(gateway_topic(VILLAGE, GATEWAY, Channel.CONFIG_DESIRED), payload, qos=1, retain=True)


def _reports(recorder: Recorder) -> list[ConfigReported]:
    return [i.message for i in recorder.arrivals if isinstance(i.message, ConfigReported)]


async def test_a_pushed_config_is_applied_live_reported_and_rolled_back_when_it_fails(
    tmp_path: Path, mosquitto: MosquittoBroker
) -> None:
    settings = _settings(tmp_path, mosquitto)
    recording = Recorder(mosquitto.host, mosquitto.port, [Channel.CONFIG_REPORTED, Channel.ALERT])
    async with recording as recorder, _running(settings) as agent:
        running_before = agent.devices.adapters[PANIC.id]

        # v1 adds a device and slows the heartbeat: applied without restarting the first device.
        await _push(mosquitto, 1, GatewayConfig(heartbeat_interval_s=2.0, devices=[PANIC, ADDED]))
        await eventually(lambda: _reported(recorder, 1), what="v1 reported")
        assert agent.config.heartbeat_interval_s == 2.0
        assert agent.devices.adapters[PANIC.id] is running_before
        added = agent.devices.adapters[ADDED.id]
        assert isinstance(added, SimulatedPanicButton)
        added.press()
        await eventually(lambda: _alert_from(recorder, ADDED.id), what="an alert from the added device")

        # v2 is malformed: refused by validation, reported under its version, nothing changes.
        broken = encode(
            ConfigDesired(gateway_id=GATEWAY, seq=2, event_id=uuid.uuid4(), ts=1, version=2, config=GatewayConfig())
        ).replace(b'"heartbeat_interval_s":10.0', b'"heartbeat_interval_s":-1')
        await _push(mosquitto, 2, broken)
        await eventually(lambda: _reported(recorder, 2), what="v2 reported")

        # v3 declares a wired button this machine has no GPIO for: it fails on start and is rolled back.
        await _push(mosquitto, 3, GatewayConfig(devices=[PANIC, NO_SUCH_PINS]))
        await eventually(lambda: _reported(recorder, 3), timeout_s=15, what="v3 reported")
        assert set(agent.devices.adapters) == {PANIC.id, ADDED.id}
        assert agent.config.heartbeat_interval_s == 2.0

    applied, refused, rolled_back = _reports(recorder)
    assert (applied.version, applied.status, applied.error) == (1, ConfigStatus.APPLIED, None)
    assert (refused.version, refused.status) == (2, ConfigStatus.REJECTED)
    assert refused.error is not None
    assert "heartbeat_interval_s" in refused.error
    assert (rolled_back.version, rolled_back.status) == (3, ConfigStatus.REJECTED)
    assert rolled_back.error is not None
    assert "rolled back" in rolled_back.error
    assert NO_SUCH_PINS.id in rolled_back.error


async def test_a_restarted_gateway_runs_the_config_it_last_applied(tmp_path: Path, mosquitto: MosquittoBroker) -> None:
    settings = _settings(tmp_path, mosquitto)
    async with Recorder(mosquitto.host, mosquitto.port, [Channel.CONFIG_REPORTED]) as recorder:
        async with _running(settings):
            await _push(mosquitto, 4, GatewayConfig(devices=[ADDED]))
            await eventually(lambda: _reported(recorder, 4), what="v4 reported")

        async with _running(settings) as restarted:
            assert set(restarted.devices.adapters) == {ADDED.id}
            assert restarted.config_updates.applied.version == 4
            # The retained v4 arrives again on reconnect and is re-reported, not re-applied.
            await eventually(lambda: _reported(recorder, 4, times=2), what="v4 re-reported")


async def test_a_config_unsigned_or_signed_with_another_key_is_reported_rejected_and_not_applied(
    tmp_path: Path, mosquitto: MosquittoBroker
) -> None:
    settings = _settings(tmp_path, mosquitto)
    intruder = SigningKeys.generate()
    recording = Recorder(mosquitto.host, mosquitto.port, [Channel.CONFIG_REPORTED])
    async with recording as recorder, _running(settings) as agent:
        await _push(mosquitto, 1, GatewayConfig(devices=[PANIC, ADDED]), key=intruder)
        await eventually(lambda: _reported(recorder, 1), what="v1 reported")
        await _push(mosquitto, 2, GatewayConfig(devices=[PANIC, ADDED]), key=None)
        await eventually(lambda: _reported(recorder, 2), what="v2 reported")
        assert set(agent.devices.adapters) == {PANIC.id}
        assert agent.config_updates.applied.version == 0

        # the same config properly signed runs
        await _push(mosquitto, 3, GatewayConfig(devices=[PANIC, ADDED]))
        await eventually(lambda: _reported(recorder, 3), what="v3 reported")
        assert set(agent.devices.adapters) == {PANIC.id, ADDED.id}
        assert agent.config_updates.applied.key_id == FLEET_KEY.key_id

    wrongly_signed, unsigned, applied = _reports(recorder)
    assert (wrongly_signed.version, wrongly_signed.status) == (1, ConfigStatus.REJECTED)
    assert wrongly_signed.error == (
        f"config signature does not verify with key {FLEET_KEY.key_id} (signed with key {intruder.key_id})"
    )
    assert (unsigned.version, unsigned.status) == (2, ConfigStatus.REJECTED)
    assert unsigned.error is not None
    assert unsigned.error.startswith("unsigned config refused")
    assert (applied.version, applied.status, applied.error) == (3, ConfigStatus.APPLIED, None)


async def _reported(recorder: Recorder, version: int, *, times: int = 1) -> bool:
    return sum(1 for report in _reports(recorder) if report.version == version) >= times


async def _alert_from(recorder: Recorder, device_id: str) -> bool:
    return any(isinstance(i.message, Alert) and i.message.device_id == device_id for i in recorder.arrivals)


async def _flag(event: asyncio.Event) -> bool:
    return event.is_set()
