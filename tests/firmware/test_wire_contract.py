"""The firmware and the gateway agree on the node protocol: everything the firmware writes, the
gateway's decoder accepts as meant; the settings a gateway may push are the ones the firmware takes."""

from typing import Any

import pytest
from outpost_node import FIRMWARE_VERSION, settings, wire
from outpost_node.flash_ring import FlashRing
from outpost_node.node import Node

from protocol.node import (
    NODE_INBOUND_CHANNELS,
    NodeChannel,
    NodeConfig,
    NodeConfigResult,
    NodeDecoder,
    NodeEvent,
    NodeEventKind,
    NodeHeartbeat,
    NodeReceived,
    NodeSettings,
    NodeState,
    NodeStatus,
    node_topic,
)
from tests.firmware.scenarios import Pin, _settings

NODE = "panic-3"


def decoded(topic: str, payload: bytes) -> Any:
    result = NodeDecoder().decode(topic, payload)
    assert isinstance(result, NodeReceived), result
    return result.message


@pytest.mark.parametrize("channel", list(NodeChannel))
def test_the_firmware_builds_the_gateways_topics(channel: NodeChannel) -> None:
    assert wire.topic(NODE, channel.value) == node_topic(NODE, channel)


def test_the_firmware_knows_every_event_kind_the_gateway_does() -> None:
    firmware_kinds = {value for name, value in vars(wire).items() if name.isupper() and value in set(NodeEventKind)}
    assert firmware_kinds == {kind.value for kind in NodeEventKind}


def test_status_heartbeat_and_event_decode_as_written() -> None:
    status = decoded(node_topic(NODE, NodeChannel.STATUS), wire.status(NODE, 3, 1_000, online=False))
    assert status == NodeStatus(node_id=NODE, boot=3, uptime_ms=1_000, state=NodeState.OFFLINE)
    beat = decoded(
        node_topic(NODE, NodeChannel.HEARTBEAT),
        wire.heartbeat(NODE, 3, 60_000, 60, 3.71234, -67, "watchdog", FIRMWARE_VERSION, 2),
    )
    assert beat == NodeHeartbeat(
        node_id=NODE, boot=3, uptime_ms=60_000, interval_s=60.0, battery_v=3.712, rssi_dbm=-67,
        reset_cause="watchdog", firmware=FIRMWARE_VERSION, queued=2,
    )  # fmt: skip
    event = decoded(node_topic(NODE, NodeChannel.EVENT), wire.event(NODE, 3, 5_000, 3, 9, "multi_press", 4_000, 120, 3))
    assert event == NodeEvent(
        node_id=NODE, boot=3, uptime_ms=5_000, seq=9, kind=NodeEventKind.MULTI_PRESS, age_ms=1_000, held_ms=120, count=3
    )


def test_an_event_from_an_earlier_boot_has_no_age() -> None:
    event = decoded(node_topic(NODE, NodeChannel.EVENT), wire.event(NODE, 4, 200, 3, 0, "press", 0, 0, 1))
    assert (event.boot, event.age_ms) == (3, None)


def test_a_config_result_decodes_with_its_reasons() -> None:
    payload = wire.config_result(NODE, 3, 10, "5f2a", False, ["long_press_ms: must be 300..60000"])
    result = decoded(node_topic(NODE, NodeChannel.CONFIG_RESULT), payload)
    assert result == NodeConfigResult(
        node_id=NODE,
        boot=3,
        uptime_ms=10,
        revision="5f2a",
        accepted=False,
        errors=["long_press_ms: must be 300..60000"],
    )


def test_every_inbound_channel_is_one_the_firmware_writes() -> None:
    written = {wire.STATUS, wire.HEARTBEAT, wire.EVENT, wire.CONFIG_RESULT}
    assert {channel.value for channel in NODE_INBOUND_CHANNELS} == written


def test_the_settings_a_gateway_may_push_are_exactly_those_the_firmware_lets_it_change() -> None:
    assert set(NodeSettings.model_fields) == set(settings.REMOTE)
    for name, field in NodeSettings.model_fields.items():
        kind, _, low, high = settings._SPEC[name]
        bounds = {type(m).__name__: getattr(m, type(m).__name__.lower(), None) for m in field.metadata}
        if kind is int:
            assert (bounds.get("Ge"), bounds.get("Le")) == (low, high), name
        else:
            assert name == "sleep"
            assert set(settings.SLEEP_MODES) == {"none", "light", "deep"}


def test_a_config_the_gateway_pushes_is_applied_by_the_firmware(tmp_path: Any) -> None:
    node = Node(_settings(), 1, "power_on", FlashRing(str(tmp_path / "ring"), 4), Pin(1))
    node.start(0)
    config = NodeConfig(node_id=NODE, revision="a1b2", settings=NodeSettings(long_press_ms=1_500, sleep="light"))
    assert node.configure(config.encode(), 0) is True
    applied = (node.settings["long_press_ms"], node.settings["sleep"], node.settings["revision"])
    assert applied == (1_500, "light", "a1b2")
