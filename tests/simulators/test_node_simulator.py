"""The node simulator runs the real firmware against a real Mosquitto, and the gateway's decoder accepts what it sends.

Everything a node publishes is read back by :class:`NodeTraffic`, a persistent subscriber that
decodes with ``protocol.node.NodeDecoder``, exactly as the gateway's local bus does.
"""

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import aiomqtt
import pytest

from protocol.codec import Rejection
from protocol.node import (
    NodeChannel,
    NodeConfig,
    NodeConfigResult,
    NodeDecoder,
    NodeEvent,
    NodeEventKind,
    NodeInbound,
    NodeSettings,
    NodeState,
    NodeStatus,
    node_filters,
    node_topic,
)
from simulators.infra.mosquitto import MosquittoBroker
from simulators.nodes.flash import factory_settings
from simulators.nodes.node import SimulatedNode
from tests.background_listener import BackgroundListener
from tests.integration.conftest import eventually

NODE_ID = "panic-well"


@pytest.fixture
async def broker() -> AsyncIterator[MosquittoBroker]:
    if not MosquittoBroker.available():
        pytest.fail("mosquitto is not installed: run scripts/test, which installs it")
    async with MosquittoBroker(persistence=True) as broker:  # sessions survive the restart test
        yield broker


class NodeTraffic(BackgroundListener):
    """Every message nodes publish on ``broker``, in arrival order, decoded as the gateway decodes it;
    a persistent QoS 1 session, so what arrives while it reconnects after a broker restart waits for it."""

    def __init__(self, broker: MosquittoBroker) -> None:
        super().__init__()
        self._broker = broker
        self.decoder = NodeDecoder()
        self.messages: list[NodeInbound] = []
        self.rejected: list[Rejection] = []

    def events(self) -> list[NodeEvent]:
        return [m for m in self.messages if isinstance(m, NodeEvent)]

    def states(self) -> list[NodeState]:
        return [m.state for m in self.messages if isinstance(m, NodeStatus)]

    def results(self) -> list[NodeConfigResult]:
        return [m for m in self.messages if isinstance(m, NodeConfigResult)]

    async def listen(self) -> None:
        while True:
            try:
                async with aiomqtt.Client(
                    self._broker.host, self._broker.port, identifier="node-traffic", clean_session=False
                ) as client:
                    for topic_filter in node_filters():
                        await client.subscribe(topic_filter, qos=1)
                    self.subscribed.set()
                    async for message in client.messages:
                        decoded = self.decoder.decode(str(message.topic), bytes(message.payload))
                        if isinstance(decoded, Rejection):
                            self.rejected.append(decoded)
                        else:
                            self.messages.append(decoded.message)
            except aiomqtt.MqttError:
                await asyncio.sleep(0.1)


def _node(tmp_path: Path, broker: MosquittoBroker, **settings: object) -> SimulatedNode:
    flashed = factory_settings(NODE_ID, "panic_button", broker.host, broker.port, **settings)
    return SimulatedNode(tmp_path / "flash", flashed, seed=7, reconnect_base_ms=100, reconnect_cap_ms=500)


async def _settled(node: SimulatedNode, traffic: NodeTraffic) -> bool:
    """The node has nothing left to classify or send, and every event it sent has arrived."""
    sent = [topic for topic, _ in node.published if topic == node_topic(node.node_id, NodeChannel.EVENT)]
    return node.node.idle() and len(traffic.events()) == len(sent)


async def _publish_config(broker: MosquittoBroker, payload: bytes) -> None:
    """The gateway's push: retained on the node's config topic, QoS 1."""
    async with aiomqtt.Client(broker.host, broker.port, identifier="test-gateway") as client:
        await client.publish(node_topic(NODE_ID, NodeChannel.CONFIG), payload, qos=1, retain=True)


async def test_a_short_press_is_one_press_event_the_gateway_accepts(tmp_path: Path, broker: MosquittoBroker) -> None:
    async with NodeTraffic(broker) as traffic, _node(tmp_path, broker) as node:
        await eventually(lambda: _flag(node.online), what="the node connecting")
        await node.press()
        await eventually(lambda: _settled_with_events(node, traffic, 1), what="the press arriving")

    [press] = traffic.events()
    assert (press.kind, press.node_id, press.boot, press.seq) == (NodeEventKind.PRESS, NODE_ID, 0, 0)
    assert press.age_ms is not None
    assert traffic.rejected == []


async def test_a_press_bouncing_on_every_edge_is_still_one_press(tmp_path: Path, broker: MosquittoBroker) -> None:
    flashed = factory_settings(NODE_ID, "panic_button", broker.host, broker.port)
    node = SimulatedNode(tmp_path / "flash", flashed, seed=11, bounces=(8, 12), bounce_span_ms=4.0)
    async with NodeTraffic(broker) as traffic, node:
        await eventually(lambda: _flag(node.online), what="the node connecting")
        await node.press()
        await eventually(lambda: _settled_with_events(node, traffic, 1), what="the press arriving")

    assert node.input.edges >= 2 * (1 + 2 * 8)  # the contact really bounced, going down and coming up
    assert [event.kind for event in traffic.events()] == [NodeEventKind.PRESS]


async def test_a_long_hold_is_a_press_then_a_long_press(tmp_path: Path, broker: MosquittoBroker) -> None:
    async with NodeTraffic(broker) as traffic, _node(tmp_path, broker, long_press_ms=500) as node:
        await eventually(lambda: _flag(node.online), what="the node connecting")
        await node.long_press()
        await eventually(lambda: _settled_with_events(node, traffic, 2), what="both events arriving")

    press, long_press = traffic.events()
    assert (press.kind, long_press.kind) == (NodeEventKind.PRESS, NodeEventKind.LONG_PRESS)
    assert long_press.held_ms >= 500


async def test_quick_presses_are_a_press_then_one_multi_press(tmp_path: Path, broker: MosquittoBroker) -> None:
    async with NodeTraffic(broker) as traffic, _node(tmp_path, broker) as node:
        await eventually(lambda: _flag(node.online), what="the node connecting")
        await node.presses(3)
        await eventually(lambda: _settled_with_events(node, traffic, 2), what="both events arriving")

    press, multi = traffic.events()
    assert (press.kind, multi.kind, multi.count) == (NodeEventKind.PRESS, NodeEventKind.MULTI_PRESS, 3)


async def test_a_press_during_an_outage_survives_a_reset_and_is_sent_after_the_reboot(
    tmp_path: Path, broker: MosquittoBroker
) -> None:
    async with NodeTraffic(broker) as traffic, _node(tmp_path, broker) as node:
        await eventually(lambda: _flag(node.online), what="the node connecting")
        first_boot = node.boot
        await broker.stop()
        await eventually(lambda: _not(node.online), what="the node noticing the broker is gone")
        await node.press()
        await eventually(lambda: _queued(node, 1), what="the press being queued")

        await node.reset()
        assert node.boot == first_boot + 1
        assert node.queued == 1  # read back from the flash ring

        await broker.start()
        await eventually(lambda: _settled_with_events(node, traffic, 1), what="the press arriving after the reboot")

    [press] = traffic.events()
    assert (press.kind, press.boot, press.seq) == (NodeEventKind.PRESS, first_boot, 0)
    assert press.age_ms is None  # when it happened is unknown after a reset
    assert traffic.rejected == []


async def test_a_pushed_config_is_applied_kept_on_flash_and_answered(tmp_path: Path, broker: MosquittoBroker) -> None:
    config = NodeConfig(node_id=NODE_ID, revision="r1", settings=NodeSettings(long_press_ms=1500, heartbeat_s=30))
    async with NodeTraffic(broker) as traffic, _node(tmp_path, broker) as node:
        await eventually(lambda: _flag(node.online), what="the node connecting")
        await _publish_config(broker, config.encode())
        await eventually(lambda: _results(traffic, 1), what="the node answering")
        applied = node.settings

        await node.reset()  # the retained update is heard again: answered, not applied twice
        await eventually(lambda: _results(traffic, 2), what="the rebooted node answering")
        after_reset = node.settings

    assert [(r.revision, r.accepted, r.errors) for r in traffic.results()] == [("r1", True, [])] * 2
    for settings in (applied, after_reset):
        assert (settings["long_press_ms"], settings["heartbeat_s"], settings["revision"]) == (1500, 30, "r1")


async def test_a_config_the_firmware_refuses_is_answered_with_its_reason_and_changes_nothing(
    tmp_path: Path, broker: MosquittoBroker
) -> None:
    # NodeSettings would not let a gateway build this: the firmware must refuse it on its own.
    update = {"schema_version": 1, "node_id": NODE_ID, "revision": "r-bad", "settings": {"wifi_ssid": "x"}}
    async with NodeTraffic(broker) as traffic, _node(tmp_path, broker) as node:
        await eventually(lambda: _flag(node.online), what="the node connecting")
        before = node.settings
        await _publish_config(broker, json.dumps(update).encode())
        await eventually(lambda: _results(traffic, 1), what="the node answering")
        after = node.settings

    [result] = traffic.results()
    assert (result.revision, result.accepted) == ("r-bad", False)
    assert result.errors == ["wifi_ssid: set only when flashing the node"]
    assert after == before


async def test_lost_wifi_is_the_last_will_offline_then_online_again(tmp_path: Path, broker: MosquittoBroker) -> None:
    async with NodeTraffic(broker) as traffic, _node(tmp_path, broker) as node:
        await eventually(lambda: _states(traffic, [NodeState.ONLINE]), what="the node saying online")
        await node.lose_wifi(1.0)
        await eventually(lambda: _states(traffic, [NodeState.ONLINE, NodeState.OFFLINE]), what="its Last Will")
        await eventually(
            lambda: _states(traffic, [NodeState.ONLINE, NodeState.OFFLINE, NodeState.ONLINE]), what="it coming back"
        )
        assert node.boot == 0  # the same boot: the link dropped, the node ran on


async def test_a_door_node_reports_open_close_and_a_cut_tamper_loop(tmp_path: Path, broker: MosquittoBroker) -> None:
    flashed = factory_settings("door-store", "door_contact", broker.host, broker.port, tamper_pin=5)
    node = SimulatedNode(tmp_path / "flash", flashed, seed=3)
    async with NodeTraffic(broker) as traffic, node:
        await eventually(lambda: _flag(node.online), what="the node connecting")
        await node.open_door()
        await asyncio.sleep(0.1)  # the door stays open a moment (longer than the debounce settle time)
        await node.close_door()
        await node.tamper()
        await eventually(lambda: _settled_with_events(node, traffic, 3), what="the three events arriving")

    kinds = [event.kind for event in traffic.events()]
    assert kinds == [NodeEventKind.DOOR_OPEN, NodeEventKind.DOOR_CLOSED, NodeEventKind.TAMPER]


async def _settled_with_events(node: SimulatedNode, traffic: NodeTraffic, count: int) -> bool:
    return len(traffic.events()) >= count and await _settled(node, traffic)


async def _results(traffic: NodeTraffic, count: int) -> bool:
    return len(traffic.results()) >= count


async def _states(traffic: NodeTraffic, expected: list[NodeState]) -> bool:
    return traffic.states() == expected


async def _queued(node: SimulatedNode, count: int) -> bool:
    return node.queued == count


async def _flag(event: asyncio.Event) -> bool:
    return event.is_set()


async def _not(event: asyncio.Event) -> bool:
    return not event.is_set()
