"""The gateway loses nothing across a broker outage or its own hard kill, and replays in order."""

import asyncio
import os
import signal
import sqlite3
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from edge.adapters.simulated import SimulatedPanicButton
from edge.agent import GatewayAgent
from edge.devices import prebuilt
from edge.settings import BrokerSettings, EdgeSettings
from protocol.clock import utc_now_ms
from protocol.codec import Decoder, Inbound
from protocol.gateway_config import DeviceKind, DeviceSpec, GatewayConfig
from protocol.topics import Channel
from simulators.infra.mosquitto import MosquittoBroker
from tests.integration.conftest import eventually
from tests.integration.gateway_process import gateway_toml
from tests.integration.recorder import Recorder

pytestmark = pytest.mark.integration

OUTAGE_S = float(os.environ.get("OUTPOST_FAULT_OUTAGE_S", "30"))


@pytest.fixture
async def broker() -> AsyncIterator[MosquittoBroker]:
    """Sessions kept on disk, as on a production broker."""
    async with MosquittoBroker(persistence=True) as running:
        yield running


async def test_every_alert_arrives_exactly_once_and_in_order_across_a_broker_outage(
    tmp_path: Path, broker: MosquittoBroker
) -> None:
    settings = EdgeSettings(
        environment="development",
        village_id="shiqiao",
        gateway_id="gw-shiqiao",
        broker=BrokerSettings(port=broker.port, keepalive_s=5),
        state_dir=tmp_path / "gateway",
        config=GatewayConfig(heartbeat_interval_s=1.0, telemetry_interval_s=0.5),
        devices=[DeviceSpec(kind=DeviceKind.PANIC_BUTTON, id="panic-centre")],
    )
    button = SimulatedPanicButton(settings.devices[0], utc_now_ms)
    agent = GatewayAgent(settings, prebuilt([button]))
    stop = asyncio.Event()
    presses = 0

    async def keep_pressing(seconds: float) -> None:
        nonlocal presses
        deadline = asyncio.get_running_loop().time() + seconds
        while asyncio.get_running_loop().time() < deadline:
            button.press()
            presses += 1
            await asyncio.sleep(0.05)

    async with Recorder(broker.host, broker.port, [Channel.ALERT, Channel.EVENT]) as recorder:
        running = asyncio.create_task(agent.run(stop))
        try:
            await eventually(lambda: _flag(agent.uplink.connected), what="gateway connecting")
            await keep_pressing(2.0)
            await broker.kill()  # mid-stream, as a crash would
            await keep_pressing(OUTAGE_S)
            await broker.start()
            await keep_pressing(2.0)

            async def all_arrived() -> bool:
                return sum(1 for i in recorder.unique().values() if i.topic.channel is Channel.ALERT) >= presses

            await eventually(all_arrived, timeout_s=OUTAGE_S + 60, what="every alert after the outage")
        finally:
            stop.set()
            await running

    alerts = [i.message for i in recorder.unique().values() if i.topic.channel is Channel.ALERT]
    events = [i.message for i in recorder.unique().values() if i.topic.channel is Channel.EVENT]
    assert len(alerts) == presses
    assert len(events) == presses
    # First arrivals keep the order the gateway produced them in, per stream.
    assert [a.seq for a in alerts] == sorted(a.seq for a in alerts)
    assert [e.seq for e in events] == sorted(e.seq for e in events)
    assert agent.buffer.dropped.total() == 0


def _buffered_event_ids(database: Path) -> set[str]:
    decoder = Decoder()
    with sqlite3.connect(database) as db:
        rows = db.execute("SELECT topic, payload FROM outbox").fetchall()
    ids = set()
    for topic, payload in rows:
        decoded = decoder.decode(topic, bytes(payload))
        assert isinstance(decoded, Inbound)
        ids.add(str(decoded.message.event_id))
    return ids


async def _start_gateway(config: Path) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "outpost_cli", "--log-level", "warning", "gateway", "run", "--config", str(config)
    )


async def test_a_hard_killed_agent_loses_nothing_it_had_stored(tmp_path: Path, broker: MosquittoBroker) -> None:
    config = tmp_path / "gateway.toml"
    config.write_text(
        gateway_toml(
            village_id="taoyuan",
            gateway_id="gw-taoyuan",
            broker_port=broker.port,
            state_dir=tmp_path / "state",
            heartbeat_interval_s=1.0,
        ).replace("period_s = 0.5", "period_s = 0.02")
    )
    async with Recorder(broker.host, broker.port, [Channel.TELEMETRY]) as recorder:
        gateway = await _start_gateway(config)
        try:
            await eventually(lambda: _has(recorder, 5), timeout_s=20, what="telemetry flowing")
            await broker.stop()  # the gateway keeps measuring into its buffer
            await asyncio.sleep(2.0)
            gateway.send_signal(signal.SIGKILL)  # mid-write: the camera writes every 20 ms
            await gateway.wait()
        finally:
            if gateway.returncode is None:
                gateway.kill()
                await gateway.wait()

        stored = _buffered_event_ids(tmp_path / "state" / "buffer.db")
        assert stored, "the outage should have left batches in the buffer"
        delivered_before = {str(i.message.event_id) for i in recorder.arrivals}
        seq_before = max(i.message.seq for i in recorder.arrivals)

        await broker.start()
        restarted = await _start_gateway(config)
        try:

            async def everything_stored_arrived() -> bool:
                return stored <= {str(event_id) for event_id in recorder.unique()}

            await eventually(everything_stored_arrived, timeout_s=30, what="the killed agent's buffer replayed")
            replayed = len(recorder.unique())
            await eventually(lambda: _has(recorder, replayed + 3), what="new telemetry after restart")
        finally:
            restarted.send_signal(signal.SIGTERM)
            await restarted.wait()

    new = [i.message for i in recorder.unique().values() if str(i.message.event_id) not in stored | delivered_before]
    assert new, "the restarted agent should send fresh telemetry"
    assert min(message.seq for message in new) > seq_before  # sequence numbers never go back


async def _flag(event: asyncio.Event) -> bool:
    return event.is_set()


async def _has(recorder: Recorder, count: int) -> bool:
    return len(recorder.unique()) >= count
