"""The gateway's local bus against a real Mosquitto: alerts wait out a local broker outage; strangers are counted."""

import asyncio
import uuid
from collections.abc import AsyncIterator

import aiomqtt
import pytest

from edge.errors import EdgeConfigError, LocalBrokerRefusedError
from edge.local_bus import LocalBus
from edge.settings import BrokerSettings
from protocol.clock import utc_now_ms
from protocol.codec import RejectReason
from protocol.messages import Alert, AlertKind, Severity
from protocol.node import NodeChannel, NodeInbound, node_topic
from protocol.reconnect import Backoff
from protocol.village_centre import village_centre_filter
from simulators.infra.mosquitto import MosquittoBroker
from tests.integration.conftest import eventually

pytestmark = pytest.mark.integration

VILLAGE, GATEWAY = "liucun", "gw-liucun"


class Listener:
    def __init__(self) -> None:
        self.heard: list[NodeInbound] = []

    def on_node_message(self, message: NodeInbound, received_ms: int) -> None:
        self.heard.append(message)


def _alert(seq: int) -> Alert:
    return Alert(gateway_id=GATEWAY, seq=seq, event_id=uuid.uuid4(), ts=utc_now_ms(), device_id="panic-1",
                 kind=AlertKind.PANIC, severity=Severity.CRITICAL)  # fmt: skip


@pytest.fixture
async def broker() -> AsyncIterator[MosquittoBroker]:
    async with MosquittoBroker(persistence=True) as running:
        yield running


async def test_alerts_raised_while_the_local_broker_is_down_reach_the_village_centre_when_it_returns(
    broker: MosquittoBroker,
) -> None:
    bus = LocalBus(BrokerSettings(port=broker.port, keepalive_s=5), VILLAGE, GATEWAY, utc_now_ms,
                   backoff=Backoff(base_s=0.1, cap_s=0.5))  # fmt: skip
    heard: list[bytes] = []
    ready = asyncio.Event()

    async def village_centre() -> None:
        while True:
            try:
                async with aiomqtt.Client(broker.host, broker.port, identifier="centre", clean_session=False) as client:
                    await client.subscribe(village_centre_filter(VILLAGE), qos=1)
                    ready.set()
                    async for message in client.messages:
                        heard.append(bytes(message.payload))
            except aiomqtt.MqttError:
                await asyncio.sleep(0.1)

    tasks = [asyncio.create_task(bus.run()), asyncio.create_task(village_centre())]
    try:
        await asyncio.wait_for(ready.wait(), 10)
        await eventually(lambda: _flag(bus.connected), what="the bus connecting")
        await eventually(lambda: _saved(broker), what="the broker saving the centre's session")  # it survives the kill
        await broker.kill()
        await eventually(lambda: _not(bus.connected), what="the bus noticing the outage")
        for seq in (1, 2):
            bus.notify_village_centre(_alert(seq))
        await broker.start()
        await eventually(lambda: _count(heard, 2), timeout_s=20, what="both alerts after the outage")
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    assert [Alert.model_validate_json(payload).seq for payload in heard] == [1, 2]
    assert bus.notifications_dropped == 0


async def test_undeclared_and_malformed_node_messages_are_counted_and_declared_ones_delivered(
    broker: MosquittoBroker,
) -> None:
    bus = LocalBus(BrokerSettings(port=broker.port), VILLAGE, GATEWAY, utc_now_ms)
    listener = Listener()
    bus.attach("node-door-1", listener)
    with pytest.raises(EdgeConfigError, match="two devices"):
        bus.attach("node-door-1", Listener())
    running = asyncio.create_task(bus.run())
    try:
        await eventually(lambda: _flag(bus.connected), what="the bus connecting")
        async with aiomqtt.Client(broker.host, broker.port, identifier="nodes") as nodes:
            beat = b'{"schema_version":1,"node_id":"%s","boot":1,"uptime_ms":5,"interval_s":30}'
            await nodes.publish(node_topic("node-stranger", NodeChannel.HEARTBEAT), beat % b"node-stranger", qos=1)
            await nodes.publish(node_topic("node-door-1", NodeChannel.HEARTBEAT), b"{not json", qos=1)
            await nodes.publish(node_topic("node-door-1", NodeChannel.HEARTBEAT), beat % b"node-door-1", qos=1)
        await eventually(lambda: _count(listener.heard, 1), what="the declared node's heartbeat")
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)

    assert bus.unknown_nodes == {"node-stranger": 1}
    assert bus.decoder.tally.counts == {RejectReason.MALFORMED_JSON: 1}


async def test_a_local_broker_refusing_the_gateway_stops_the_bus_naming_the_setting() -> None:
    async with MosquittoBroker(allow_anonymous=False) as refusing:
        bus = LocalBus(BrokerSettings(port=refusing.port), VILLAGE, GATEWAY, utc_now_ms)
        with pytest.raises(LocalBrokerRefusedError, match=r"local_broker .* check its credentials \(local_broker\."):
            await asyncio.wait_for(bus.run(), timeout=20)


async def _flag(event: asyncio.Event) -> bool:
    return event.is_set()


async def _saved(broker: MosquittoBroker) -> bool:
    return broker.persistence_path is not None and broker.persistence_path.exists()


async def _not(event: asyncio.Event) -> bool:
    return not event.is_set()


async def _count(items: list[bytes] | list[NodeInbound], count: int) -> bool:
    return len(items) >= count
