"""The sensor-node protocol: node topics round trip, nodes' plain JSON decodes strictly, and every bad input is
refused and counted, never raised."""

import json
import logging
from typing import Any

import aiomqtt
import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol.bounds import MAX_INTERVAL_S, MIN_INTERVAL_S
from protocol.codec import Rejection, RejectReason
from protocol.errors import TopicError
from protocol.identifiers import IDENTIFIER_PATTERN
from protocol.node import (
    MAX_NODE_PAYLOAD_BYTES,
    MODEL_FOR_NODE_CHANNEL,
    NODE_INBOUND_CHANNELS,
    NodeChannel,
    NodeConfig,
    NodeConfigResult,
    NodeDecoder,
    NodeEvent,
    NodeEventKind,
    NodeHeartbeat,
    NodeInbound,
    NodeReceived,
    NodeSettings,
    NodeState,
    NodeStatus,
    NodeTopic,
    node_filters,
    node_topic,
)
from protocol.topics import Channel, gateway_topic

NODE = "panic-3"

identifiers = st.from_regex(IDENTIFIER_PATTERN, fullmatch=True)
channels = st.sampled_from(NodeChannel)
inbound_channels = st.sampled_from(NODE_INBOUND_CHANNELS)


def micropython_dumps(document: dict[str, Any]) -> bytes:
    """What a node publishes: MicroPython's ``json.dumps`` of a dict (``", "`` and ``": "`` separators)."""
    return json.dumps(document).encode()


def status_json(**changes: Any) -> dict[str, Any]:
    return _with({"schema_version": 1, "node_id": NODE, "boot": 12, "uptime_ms": 4_000, "state": "online"}, changes)


def heartbeat_json(**changes: Any) -> dict[str, Any]:
    document = {
        "schema_version": 1,
        "node_id": NODE,
        "boot": 12,
        "uptime_ms": 65_000,
        "interval_s": 30.0,
        "battery_v": 3.71,
        "rssi_dbm": -67,
        "reset_cause": "deepsleep",
        "firmware": "1.4.0",
        "queued": 2,
    }
    return _with(document, changes)


def event_json(**changes: Any) -> dict[str, Any]:
    document = {
        "schema_version": 1,
        "node_id": NODE,
        "boot": 12,
        "uptime_ms": 70_250,
        "seq": 41,
        "kind": "press",
        "age_ms": 250,
        "held_ms": 180,
        "count": 1,
    }
    return _with(document, changes)


def _with(document: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """``document`` with ``changes`` applied; a value of ``...`` removes the key."""
    for key, value in changes.items():
        if value is ...:
            del document[key]
        else:
            document[key] = value
    return document


def config_result_json(**changes: Any) -> dict[str, Any]:
    document = {
        "schema_version": 1,
        "node_id": NODE,
        "boot": 12,
        "uptime_ms": 9_000,
        "revision": "5f2a",
        "accepted": True,
        "errors": [],
    }
    return _with(document, changes)


JSON_FOR_CHANNEL = {
    NodeChannel.CONFIG_RESULT: config_result_json,
    NodeChannel.STATUS: status_json,
    NodeChannel.HEARTBEAT: heartbeat_json,
    NodeChannel.EVENT: event_json,
}


def decode(
    channel: NodeChannel, document: dict[str, Any], decoder: NodeDecoder | None = None
) -> NodeReceived | Rejection:
    return (decoder or NodeDecoder()).decode(node_topic(NODE, channel), micropython_dumps(document))


def received(result: NodeReceived | Rejection) -> NodeInbound:
    assert isinstance(result, NodeReceived), f"expected a decoded message, got {result!r}"
    return result.message


def rejection_reason(result: NodeReceived | Rejection) -> RejectReason:
    assert isinstance(result, Rejection), f"expected a rejection, got {result!r}"
    return result.reason


# --- topics -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("channel", list(NodeChannel))
def test_a_node_topic_is_the_node_prefix_then_the_node_then_the_channel(channel: NodeChannel) -> None:
    assert node_topic(NODE, channel) == f"outpost-node/v1/panic-3/{channel.value}"


@given(node_id=identifiers, channel=channels)
def test_every_node_topic_parses_back_to_its_node_and_channel(node_id: str, channel: NodeChannel) -> None:
    topic = node_topic(node_id, channel)

    parsed = NodeTopic.parse(topic)

    assert parsed == NodeTopic(node_id, channel)
    assert parsed.node_id == node_id
    assert parsed.channel is channel
    assert str(parsed) == topic


@pytest.mark.parametrize(
    "topic",
    [
        "outpost-node/v1/Panic-3/status",
        "outpost-node/v1/panic 3/status",
        "outpost-node/v1/+/status",
        "outpost-node/v1/#/status",
        "outpost-node/v1//status",
        "outpost-node/v1/-panic/status",
        f"outpost-node/v1/{'p' * 65}/status",
    ],
    ids=["upper-case", "space", "single-level-wildcard", "multi-level-wildcard", "empty", "leading-dash", "too-long"],
)
def test_parse_refuses_a_topic_with_a_bad_node_id(topic: str) -> None:
    with pytest.raises(TopicError, match="is not a valid identifier"):
        NodeTopic.parse(topic)


@pytest.mark.parametrize(
    "topic",
    [
        "outpost/v1/panic-3/status",
        "outpost-node/v2/panic-3/status",
        "Outpost-node/v1/panic-3/status",
        "/outpost-node/v1/panic-3/status",
        "outpost-local/v1/panic-3/status",
        "v1/panic-3/status/x",
        "outpost-node/v1/panic-3",
        "outpost-node/v1",
        "",
    ],
    ids=[
        "fleet-root",
        "wrong-version",
        "upper-case-root",
        "leading-slash",
        "village-centre-root",
        "no-root",
        "no-channel",
        "prefix-only",
        "empty",
    ],
)
def test_parse_refuses_a_topic_outside_the_node_prefix(topic: str) -> None:
    with pytest.raises(TopicError, match="not an outpost-node/v1 node topic"):
        NodeTopic.parse(topic)


@pytest.mark.parametrize(
    "topic",
    [
        "outpost-node/v1/panic-3/alert",
        "outpost-node/v1/panic-3/STATUS",
        "outpost-node/v1/panic-3/",
        "outpost-node/v1/panic-3/+",
    ],
    ids=["alert", "upper-case", "empty", "wildcard"],
)
def test_parse_refuses_an_unknown_channel(topic: str) -> None:
    with pytest.raises(TopicError, match="unknown node channel"):
        NodeTopic.parse(topic)


@pytest.mark.parametrize(
    "topic",
    [
        "outpost-node/v1/panic-3/status/extra",
        "outpost-node/v1/panic-3/event/",
        "outpost-node/v1/lakeside/panic-3/event",
        "outpost-node/v1/panic-3/heartbeat/heartbeat",
    ],
    ids=["trailing-level", "trailing-slash", "village-level", "doubled-channel"],
)
def test_parse_refuses_extra_levels(topic: str) -> None:
    with pytest.raises(TopicError):
        NodeTopic.parse(topic)


@pytest.mark.parametrize("node_id", ["Panic-3", "panic/3", "+", "#", "", "p" * 65])
def test_no_topic_is_built_for_an_invalid_node_id(node_id: str) -> None:
    with pytest.raises(TopicError, match="is not a valid identifier"):
        node_topic(node_id, NodeChannel.EVENT)


def test_a_topic_error_is_a_value_error_so_callers_can_catch_either() -> None:
    with pytest.raises(ValueError, match="not a valid identifier"):
        NodeTopic("Bad", NodeChannel.STATUS)


def test_the_node_filters_are_one_per_channel_a_node_sends_and_leave_out_the_gateways_own_config() -> None:
    assert sorted(node_filters()) == sorted(
        [
            "outpost-node/v1/+/status",
            "outpost-node/v1/+/heartbeat",
            "outpost-node/v1/+/event",
            "outpost-node/v1/+/config_result",
        ]
    )


def test_a_message_on_a_config_topic_is_refused_as_not_sent_by_nodes() -> None:
    decoder = NodeDecoder()
    payload = (
        NodeConfig(node_id="node-1", revision="r1", settings=NodeSettings(heartbeat_s=30)).model_dump_json().encode()
    )
    rejection = decoder.decode(node_topic("node-1", NodeChannel.CONFIG), payload)
    assert isinstance(rejection, Rejection)
    assert rejection.reason is RejectReason.BAD_TOPIC
    assert "not sent by nodes" in rejection.detail


def test_a_config_result_lists_the_problems_the_node_found() -> None:
    payload = (
        b'{"schema_version":1,"node_id":"node-1","boot":2,"uptime_ms":10,"revision":"r1","accepted":false,'
        b'"errors":["wifi_ssid: set only when flashing the node"]}'
    )
    received = NodeDecoder().decode(node_topic("node-1", NodeChannel.CONFIG_RESULT), payload)
    assert isinstance(received, NodeReceived)
    assert isinstance(received.message, NodeConfigResult)
    assert received.message.errors == ["wifi_ssid: set only when flashing the node"]


@given(node_id=identifiers, channel=inbound_channels)
def test_every_node_topic_is_heard_through_exactly_the_filter_of_its_channel(
    node_id: str, channel: NodeChannel
) -> None:
    topic = aiomqtt.Topic(node_topic(node_id, channel))

    matching = [topic_filter for topic_filter in node_filters() if topic.matches(topic_filter)]

    assert matching == [f"outpost-node/v1/+/{channel.value}"]


@pytest.mark.parametrize("channel", list(Channel))
def test_the_node_filters_hear_none_of_the_fleet_traffic(channel: Channel) -> None:
    topic = aiomqtt.Topic(gateway_topic("lakeside", "gw-01", channel))

    assert not any(topic.matches(topic_filter) for topic_filter in node_filters())


# --- decoding what nodes write ----------------------------------------------------------------------------


def test_a_nodes_online_status_decodes() -> None:
    message = received(decode(NodeChannel.STATUS, status_json()))

    assert message == NodeStatus(node_id=NODE, boot=12, uptime_ms=4_000, state=NodeState.ONLINE)


def test_a_nodes_last_will_decodes_as_offline() -> None:
    message = received(decode(NodeChannel.STATUS, status_json(state="offline")))

    assert isinstance(message, NodeStatus)
    assert message.state is NodeState.OFFLINE


def test_a_heartbeat_decodes_with_battery_rssi_and_firmware() -> None:
    message = received(decode(NodeChannel.HEARTBEAT, heartbeat_json()))

    assert message == NodeHeartbeat(
        node_id=NODE,
        boot=12,
        uptime_ms=65_000,
        interval_s=30.0,
        battery_v=3.71,
        rssi_dbm=-67,
        reset_cause="deepsleep",
        firmware="1.4.0",
        queued=2,
    )


def test_a_heartbeat_may_carry_whole_numbers_where_floats_are_expected() -> None:
    """MicroPython writes ``30`` for an int; a node computing ``interval_s = 30`` is not wrong."""
    message = received(decode(NodeChannel.HEARTBEAT, heartbeat_json(interval_s=30, battery_v=4)))

    assert isinstance(message, NodeHeartbeat)
    assert message.interval_s == 30.0
    assert message.battery_v == 4.0


def test_a_mains_powered_nodes_heartbeat_needs_only_its_interval() -> None:
    document = heartbeat_json(battery_v=..., rssi_dbm=..., reset_cause=..., firmware=..., queued=...)

    message = received(decode(NodeChannel.HEARTBEAT, document))

    assert isinstance(message, NodeHeartbeat)
    assert message.battery_v is None
    assert message.rssi_dbm is None
    assert message.reset_cause == ""
    assert message.firmware == ""
    assert message.queued == 0


def test_a_heartbeat_may_say_battery_and_rssi_are_unknown_with_null() -> None:
    message = received(decode(NodeChannel.HEARTBEAT, heartbeat_json(battery_v=None, rssi_dbm=None)))

    assert isinstance(message, NodeHeartbeat)
    assert message.battery_v is None
    assert message.rssi_dbm is None


def test_a_press_event_decodes_with_its_boot_seq_and_age() -> None:
    message = received(decode(NodeChannel.EVENT, event_json()))

    assert message == NodeEvent(
        node_id=NODE, boot=12, uptime_ms=70_250, seq=41, kind=NodeEventKind.PRESS, age_ms=250, held_ms=180, count=1
    )


@pytest.mark.parametrize("kind", list(NodeEventKind))
def test_every_event_kind_decodes(kind: NodeEventKind) -> None:
    message = received(decode(NodeChannel.EVENT, event_json(kind=kind.value)))

    assert isinstance(message, NodeEvent)
    assert message.kind is kind


def test_an_event_kept_on_flash_across_a_reset_has_no_age() -> None:
    omitted = received(decode(NodeChannel.EVENT, event_json(age_ms=...)))
    null = received(decode(NodeChannel.EVENT, event_json(age_ms=None)))

    assert isinstance(omitted, NodeEvent)
    assert omitted.age_ms is None
    assert null == omitted


def test_an_event_defaults_to_one_press_not_held() -> None:
    message = received(decode(NodeChannel.EVENT, event_json(kind="door_open", held_ms=..., count=...)))

    assert isinstance(message, NodeEvent)
    assert message.held_ms == 0
    assert message.count == 1


def test_a_multi_press_carries_its_count() -> None:
    message = received(decode(NodeChannel.EVENT, event_json(kind="multi_press", count=3)))

    assert isinstance(message, NodeEvent)
    assert message.count == 3


def test_compact_json_decodes_as_well_as_micropythons_spaced_json() -> None:
    compact = json.dumps(event_json(), separators=(",", ":")).encode()

    result = NodeDecoder().decode(node_topic(NODE, NodeChannel.EVENT), compact)

    assert received(result) == received(decode(NodeChannel.EVENT, event_json()))


def test_the_decoded_topic_names_the_node_and_channel() -> None:
    result = decode(NodeChannel.HEARTBEAT, heartbeat_json())

    assert isinstance(result, NodeReceived)
    assert result.topic == NodeTopic(NODE, NodeChannel.HEARTBEAT)


def test_every_channel_a_node_sends_has_a_model() -> None:
    assert set(MODEL_FOR_NODE_CHANNEL) == set(NODE_INBOUND_CHANNELS)
    assert MODEL_FOR_NODE_CHANNEL[NodeChannel.STATUS] is NodeStatus
    assert MODEL_FOR_NODE_CHANNEL[NodeChannel.HEARTBEAT] is NodeHeartbeat
    assert MODEL_FOR_NODE_CHANNEL[NodeChannel.EVENT] is NodeEvent


# --- round trips ------------------------------------------------------------------------------------------

boots = st.integers(min_value=0, max_value=2**31 - 1)
uptimes = st.integers(min_value=0, max_value=2**53 - 1)
short_text = st.text(max_size=256)


def node_envelope() -> dict[str, st.SearchStrategy[Any]]:
    return {"node_id": identifiers, "boot": boots, "uptime_ms": uptimes}


NODE_MESSAGES: dict[type[NodeInbound], st.SearchStrategy[Any]] = {
    NodeStatus: st.builds(NodeStatus, **node_envelope(), state=st.sampled_from(NodeState)),
    NodeHeartbeat: st.builds(
        NodeHeartbeat,
        **node_envelope(),
        interval_s=st.floats(min_value=MIN_INTERVAL_S, max_value=MAX_INTERVAL_S),
        battery_v=st.none() | st.floats(min_value=0, max_value=60),
        rssi_dbm=st.none() | st.integers(min_value=-150, max_value=0),
        reset_cause=short_text,
        firmware=short_text,
        queued=st.integers(min_value=0, max_value=2**31 - 1),
    ),
    NodeEvent: st.builds(
        NodeEvent,
        **node_envelope(),
        seq=boots,
        kind=st.sampled_from(NodeEventKind),
        age_ms=st.none() | st.integers(min_value=0, max_value=2**31 - 1),
        held_ms=st.integers(min_value=0, max_value=2**31 - 1),
        count=st.integers(min_value=1, max_value=100),
    ),
}
CHANNEL_FOR_NODE_MODEL = {model: channel for channel, model in MODEL_FOR_NODE_CHANNEL.items()}


@pytest.mark.parametrize("model", list(NODE_MESSAGES), ids=lambda model: model.__name__)
@given(data=st.data())
def test_every_node_message_round_trips_through_plain_json(model: type[NodeInbound], data: st.DataObject) -> None:
    message = data.draw(NODE_MESSAGES[model])
    channel = CHANNEL_FOR_NODE_MODEL[model]
    decoder = NodeDecoder()

    result = decoder.decode(node_topic(message.node_id, channel), micropython_dumps(message.model_dump(mode="json")))

    assert received(result) == message
    assert type(received(result)) is model
    assert decoder.tally.counts.total() == 0


# --- rejections -------------------------------------------------------------------------------------------


def test_a_payload_over_the_limit_is_refused_as_oversize_and_counted() -> None:
    decoder = NodeDecoder(max_payload_bytes=100)
    payload = micropython_dumps(heartbeat_json())
    assert len(payload) > 100

    result = decoder.decode(node_topic(NODE, NodeChannel.HEARTBEAT), payload)

    assert rejection_reason(result) is RejectReason.OVERSIZE
    assert isinstance(result, Rejection)
    assert f"{len(payload)} bytes > limit 100" in result.detail
    assert decoder.tally.counts == {RejectReason.OVERSIZE: 1}


def test_the_default_limit_is_2_kib_inclusive() -> None:
    decoder = NodeDecoder()
    topic = node_topic(NODE, NodeChannel.EVENT)
    payload = micropython_dumps(event_json())
    at_limit = payload + b" " * (MAX_NODE_PAYLOAD_BYTES - len(payload))

    assert MAX_NODE_PAYLOAD_BYTES == 2048
    assert isinstance(decoder.decode(topic, at_limit), NodeReceived)
    assert rejection_reason(decoder.decode(topic, at_limit + b" ")) is RejectReason.OVERSIZE


def test_size_is_checked_before_the_topic_or_the_json() -> None:
    result = NodeDecoder(max_payload_bytes=4).decode("not/a/node/topic", b"{not json at all")

    assert rejection_reason(result) is RejectReason.OVERSIZE


@pytest.mark.parametrize(
    "topic",
    [
        "outpost-node/v1/panic-3/alarm",
        "outpost-node/v2/panic-3/event",
        "outpost-node/v1/+/event",
        "outpost-node/v1/Panic-3/event",
        "outpost-node/v1/panic-3/event/extra",
        "outpost/v1/lakeside/gw-01/event",
        "$SYS/broker/load",
        "",
    ],
)
def test_a_bad_topic_is_refused_and_counted(topic: str) -> None:
    decoder = NodeDecoder()

    result = decoder.decode(topic, micropython_dumps(event_json()))

    assert rejection_reason(result) is RejectReason.BAD_TOPIC
    assert isinstance(result, Rejection)
    assert result.topic == topic
    assert decoder.tally.counts == {RejectReason.BAD_TOPIC: 1}


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"{",
        b"{not json",
        b'{"node_id": "panic-3",}',
        b"\xff\xfe\x00",
        micropython_dumps(event_json())[:-1],
        micropython_dumps(heartbeat_json()).replace(b"3.71", b"nan"),
        micropython_dumps(heartbeat_json()).replace(b"3.71", b"inf"),
        b"{'node_id': 'panic-3'}",
    ],
    ids=[
        "empty",
        "open-brace",
        "bare-word",
        "trailing-comma",
        "not-utf8",
        "truncated",
        "micropython-nan",
        "micropython-inf",
        "python-repr",
    ],
)
def test_malformed_json_is_refused_and_counted(payload: bytes) -> None:
    decoder = NodeDecoder()

    result = decoder.decode(node_topic(NODE, NodeChannel.HEARTBEAT), payload)

    assert rejection_reason(result) is RejectReason.MALFORMED_JSON
    assert decoder.tally.counts == {RejectReason.MALFORMED_JSON: 1}


@pytest.mark.parametrize("literal", [b"NaN", b"Infinity", b"-Infinity"])
def test_non_finite_number_literals_are_refused(literal: bytes) -> None:
    payload = micropython_dumps(heartbeat_json()).replace(b"3.71", literal)
    assert literal in payload

    result = NodeDecoder().decode(node_topic(NODE, NodeChannel.HEARTBEAT), payload)

    assert isinstance(result, Rejection)


@pytest.mark.parametrize("payload", [b"[]", b"null", b"1", b'"press"', b"true"])
def test_json_that_is_not_an_object_is_an_invalid_payload(payload: bytes) -> None:
    result = NodeDecoder().decode(node_topic(NODE, NodeChannel.EVENT), payload)

    assert rejection_reason(result) is RejectReason.INVALID_PAYLOAD


@pytest.mark.parametrize("channel", NODE_INBOUND_CHANNELS)
@pytest.mark.parametrize("version", [0, 2, 99])
def test_an_unknown_schema_version_is_refused_as_such(channel: NodeChannel, version: int) -> None:
    decoder = NodeDecoder()

    result = decode(channel, JSON_FOR_CHANNEL[channel](schema_version=version), decoder)

    assert rejection_reason(result) is RejectReason.UNKNOWN_SCHEMA_VERSION
    assert decoder.tally.counts == {RejectReason.UNKNOWN_SCHEMA_VERSION: 1}


def test_a_newer_schema_with_new_fields_is_still_an_unknown_schema_version() -> None:
    result = decode(NodeChannel.HEARTBEAT, heartbeat_json(schema_version=2, temperature_c=21.5))

    assert rejection_reason(result) is RejectReason.UNKNOWN_SCHEMA_VERSION


@pytest.mark.parametrize(
    ("channel", "field", "value"),
    [
        (NodeChannel.STATUS, "boot", "12"),
        (NodeChannel.STATUS, "boot", 12.0),
        (NodeChannel.STATUS, "boot", True),
        (NodeChannel.STATUS, "uptime_ms", "4000"),
        (NodeChannel.STATUS, "state", "OFFLINE"),
        (NodeChannel.STATUS, "state", True),
        (NodeChannel.STATUS, "node_id", 3),
        (NodeChannel.HEARTBEAT, "interval_s", "30"),
        (NodeChannel.HEARTBEAT, "battery_v", "3.7"),
        (NodeChannel.HEARTBEAT, "battery_v", True),
        (NodeChannel.HEARTBEAT, "rssi_dbm", -67.5),
        (NodeChannel.HEARTBEAT, "queued", "2"),
        (NodeChannel.HEARTBEAT, "firmware", 1.4),
        (NodeChannel.EVENT, "seq", "41"),
        (NodeChannel.EVENT, "seq", 41.0),
        (NodeChannel.EVENT, "kind", "PRESS"),
        (NodeChannel.EVENT, "kind", "earthquake"),
        (NodeChannel.EVENT, "age_ms", 250.5),
        (NodeChannel.EVENT, "held_ms", "180"),
        (NodeChannel.EVENT, "count", False),
    ],
)
def test_the_decoder_is_strict_about_types(channel: NodeChannel, field: str, value: Any) -> None:
    decoder = NodeDecoder()

    result = decode(channel, JSON_FOR_CHANNEL[channel](**{field: value}), decoder)

    assert rejection_reason(result) is RejectReason.INVALID_PAYLOAD
    assert isinstance(result, Rejection)
    assert field in result.detail
    assert decoder.tally.counts == {RejectReason.INVALID_PAYLOAD: 1}


@pytest.mark.parametrize(
    ("channel", "field", "value"),
    [
        (NodeChannel.STATUS, "node_id", "Panic-3"),
        (NodeChannel.STATUS, "boot", -1),
        (NodeChannel.STATUS, "boot", 2**31),
        (NodeChannel.STATUS, "uptime_ms", -1),
        (NodeChannel.STATUS, "uptime_ms", 2**53),
        (NodeChannel.HEARTBEAT, "interval_s", 0),
        (NodeChannel.HEARTBEAT, "interval_s", 3600.5),
        (NodeChannel.HEARTBEAT, "battery_v", -0.1),
        (NodeChannel.HEARTBEAT, "battery_v", 60.5),
        (NodeChannel.HEARTBEAT, "rssi_dbm", 1),
        (NodeChannel.HEARTBEAT, "rssi_dbm", -151),
        (NodeChannel.HEARTBEAT, "queued", -1),
        (NodeChannel.HEARTBEAT, "firmware", "x" * 257),
        (NodeChannel.EVENT, "seq", -1),
        (NodeChannel.EVENT, "seq", 2**31),
        (NodeChannel.EVENT, "age_ms", -1),
        (NodeChannel.EVENT, "held_ms", -1),
        (NodeChannel.EVENT, "count", 0),
        (NodeChannel.EVENT, "count", 101),
    ],
)
def test_the_decoder_refuses_values_out_of_range(channel: NodeChannel, field: str, value: Any) -> None:
    result = decode(channel, JSON_FOR_CHANNEL[channel](**{field: value}))

    assert rejection_reason(result) is RejectReason.INVALID_PAYLOAD
    assert isinstance(result, Rejection)
    assert field in result.detail


@pytest.mark.parametrize(
    ("channel", "field"),
    [
        (NodeChannel.STATUS, "node_id"),
        (NodeChannel.STATUS, "boot"),
        (NodeChannel.STATUS, "uptime_ms"),
        (NodeChannel.STATUS, "state"),
        (NodeChannel.HEARTBEAT, "interval_s"),
        (NodeChannel.EVENT, "seq"),
        (NodeChannel.EVENT, "kind"),
    ],
)
def test_the_decoder_refuses_a_missing_field(channel: NodeChannel, field: str) -> None:
    result = decode(channel, JSON_FOR_CHANNEL[channel](**{field: ...}))

    assert rejection_reason(result) is RejectReason.INVALID_PAYLOAD
    assert isinstance(result, Rejection)
    assert field in result.detail


@pytest.mark.parametrize("channel", NODE_INBOUND_CHANNELS)
def test_the_decoder_refuses_an_unknown_field(channel: NodeChannel) -> None:
    result = decode(channel, JSON_FOR_CHANNEL[channel](temperature_c=21.5))

    assert rejection_reason(result) is RejectReason.INVALID_PAYLOAD
    assert isinstance(result, Rejection)
    assert "temperature_c" in result.detail


@pytest.mark.parametrize(
    ("channel", "document"),
    [
        (NodeChannel.STATUS, heartbeat_json()),
        (NodeChannel.HEARTBEAT, event_json()),
        (NodeChannel.EVENT, status_json()),
        (NodeChannel.EVENT, heartbeat_json()),
    ],
    ids=["heartbeat-on-status", "event-on-heartbeat", "status-on-event", "heartbeat-on-event"],
)
def test_a_payload_on_another_channels_topic_is_refused(channel: NodeChannel, document: dict[str, Any]) -> None:
    assert rejection_reason(decode(channel, document)) is RejectReason.INVALID_PAYLOAD


@pytest.mark.parametrize("channel", NODE_INBOUND_CHANNELS)
def test_a_payload_naming_another_node_than_its_topic_is_refused(channel: NodeChannel) -> None:
    decoder = NodeDecoder()

    result = decoder.decode(node_topic("door-9", channel), micropython_dumps(JSON_FOR_CHANNEL[channel]()))

    assert rejection_reason(result) is RejectReason.NODE_MISMATCH
    assert isinstance(result, Rejection)
    assert "panic-3" in result.detail
    assert "door-9" in result.detail
    assert decoder.tally.counts == {RejectReason.NODE_MISMATCH: 1}


def test_rejections_are_counted_per_reason_and_decoding_carries_on() -> None:
    decoder = NodeDecoder(max_payload_bytes=1024)
    event_topic = node_topic(NODE, NodeChannel.EVENT)
    good = micropython_dumps(event_json())

    decoder.decode(event_topic, b"x" * 2000)
    decoder.decode("outpost-node/v1/panic-3/alarm", good)
    decoder.decode("nope", good)
    decoder.decode(event_topic, b"{")
    decoder.decode(event_topic, micropython_dumps(event_json(schema_version=2)))
    decoder.decode(event_topic, micropython_dumps(event_json(seq="41")))
    decoder.decode(node_topic("door-9", NodeChannel.EVENT), good)
    result = decoder.decode(event_topic, good)

    assert received(result) == received(NodeDecoder().decode(event_topic, good))
    assert decoder.tally.counts == {
        RejectReason.OVERSIZE: 1,
        RejectReason.BAD_TOPIC: 2,
        RejectReason.MALFORMED_JSON: 1,
        RejectReason.UNKNOWN_SCHEMA_VERSION: 1,
        RejectReason.INVALID_PAYLOAD: 1,
        RejectReason.NODE_MISMATCH: 1,
    }


def test_a_fresh_decoder_has_refused_nothing_and_counts_no_success() -> None:
    decoder = NodeDecoder()

    assert isinstance(decode(NodeChannel.STATUS, status_json(), decoder), NodeReceived)
    assert decoder.tally.counts.total() == 0


def test_rejections_are_logged_with_the_topic_and_reason(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="protocol.codec"):
        decode(NodeChannel.EVENT, event_json(kind="earthquake"))

    assert len(caplog.records) == 1
    assert "outpost-node/v1/panic-3/event" in caplog.text
    assert "invalid_payload" in caplog.text


@given(channel=channels, payload=st.binary(max_size=3000))
def test_arbitrary_bytes_on_a_node_topic_never_raise_and_are_counted_when_refused(
    channel: NodeChannel, payload: bytes
) -> None:
    decoder = NodeDecoder()

    result = decoder.decode(node_topic(NODE, channel), payload)

    assert isinstance(result, NodeReceived | Rejection)
    assert decoder.tally.counts.total() == (1 if isinstance(result, Rejection) else 0)


@given(topic=st.text(max_size=300), payload=st.binary(max_size=200))
def test_arbitrary_topics_and_payloads_never_raise(topic: str, payload: bytes) -> None:
    assert isinstance(NodeDecoder().decode(topic, payload), NodeReceived | Rejection)


@given(channel=channels, document=st.dictionaries(st.text(max_size=20), st.none() | st.integers() | st.text()))
def test_arbitrary_json_objects_never_raise(channel: NodeChannel, document: dict[str, Any]) -> None:
    decoder = NodeDecoder()

    result = decoder.decode(node_topic(NODE, channel), json.dumps(document).encode())

    assert isinstance(result, NodeReceived | Rejection)
    assert decoder.tally.counts.total() == (1 if isinstance(result, Rejection) else 0)
