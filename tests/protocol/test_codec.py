"""Encoding and decoding: every message survives the wire, and every bad input is refused and counted."""

import json
import logging
import math
import uuid
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from protocol import SCHEMA_VERSION
from protocol.bounds import MAX_EPOCH_MS, MAX_INTERVAL_S, MAX_SAFE_INTEGER, MAX_UPTIME_S, MIN_INTERVAL_S
from protocol.codec import DEFAULT_MAX_PAYLOAD_BYTES, STRICT_BY_CALL, Decoder, Inbound, Rejection, RejectReason, encode
from protocol.gateway_config import GatewayConfig
from protocol.identifiers import IDENTIFIER_PATTERN
from protocol.messages import (
    MAX_BATCH_POINTS,
    MODEL_FOR_CHANNEL,
    Alert,
    AlertKind,
    Command,
    CommandName,
    CommandResponse,
    ConfigDesired,
    ConfigReported,
    ConfigStatus,
    DeviceEvent,
    EventKind,
    GatewayHealth,
    Heartbeat,
    Message,
    Presence,
    PresenceReason,
    PresenceState,
    Severity,
    TelemetryBatch,
    TelemetryPoint,
    channel_of,
)
from protocol.topics import Channel, gateway_topic

VILLAGE = "lakeside"
GATEWAY = "gw-01"

# --- strategies honouring the contract's field constraints ------------------------------------------

identifiers = st.from_regex(IDENTIFIER_PATTERN, fullmatch=True)
metric_names = st.from_regex(r"^[a-z][a-z0-9_]{0,63}$", fullmatch=True)
epoch_ms = st.integers(min_value=0, max_value=MAX_EPOCH_MS)
sequence_numbers = st.integers(min_value=0, max_value=MAX_SAFE_INTEGER)
versions = st.integers(min_value=0, max_value=MAX_SAFE_INTEGER)
short_text = st.text(max_size=256)
finite_floats = st.floats(allow_nan=False, allow_infinity=False)
percents = st.floats(min_value=0, max_value=100)
intervals = st.floats(min_value=MIN_INTERVAL_S, max_value=MAX_INTERVAL_S)
evidence_values = st.one_of(
    finite_floats, st.integers(min_value=-MAX_SAFE_INTEGER, max_value=MAX_SAFE_INTEGER), st.booleans(), short_text
)
evidence = st.dictionaries(metric_names, evidence_values, max_size=8)
optional_text = st.none() | short_text


def envelope() -> dict[str, st.SearchStrategy[Any]]:
    return {"gateway_id": identifiers, "seq": sequence_numbers, "event_id": st.uuids(), "ts": epoch_ms}


health = st.builds(
    GatewayHealth,
    cpu_percent=percents,
    memory_percent=percents,
    disk_percent=percents,
    uptime_s=st.floats(min_value=0, max_value=MAX_UPTIME_S),
)
telemetry_points = st.builds(
    TelemetryPoint, device_id=identifiers, metric=metric_names, value=finite_floats, ts=epoch_ms
)

MESSAGE_STRATEGIES: dict[type[Message], st.SearchStrategy[Any]] = {
    Presence: st.builds(
        Presence,
        **envelope(),
        state=st.sampled_from(PresenceState),
        reason=st.sampled_from(PresenceReason),
        agent_version=short_text,
    ),
    Heartbeat: st.builds(Heartbeat, **envelope(), interval_s=intervals, health=health),
    TelemetryBatch: st.builds(TelemetryBatch, **envelope(), points=st.lists(telemetry_points, min_size=1, max_size=20)),
    DeviceEvent: st.builds(
        DeviceEvent, **envelope(), device_id=identifiers, kind=st.sampled_from(EventKind), evidence=evidence
    ),
    Alert: st.builds(
        Alert,
        **envelope(),
        device_id=identifiers,
        kind=st.sampled_from(AlertKind),
        severity=st.sampled_from(Severity),
        grid_id=st.none() | identifiers,
        evidence=evidence,
        summary=short_text,
    ),
    ConfigDesired: st.builds(
        ConfigDesired,
        **envelope(),
        version=versions,
        config=st.builds(GatewayConfig, heartbeat_interval_s=intervals, telemetry_interval_s=intervals),
    ),
    ConfigReported: st.builds(
        ConfigReported, **envelope(), version=versions, status=st.sampled_from(ConfigStatus), error=optional_text
    ),
    Command: st.builds(
        Command, **envelope(), request_id=st.uuids(), name=st.sampled_from(CommandName), timeout_s=intervals
    ),
    CommandResponse: st.builds(
        CommandResponse,
        **envelope(),
        request_id=st.uuids(),
        ok=st.booleans(),
        result=evidence,
        error=optional_text,
    ),
}
messages = st.one_of(*MESSAGE_STRATEGIES.values())


def topic_for(message: Message, village_id: str = VILLAGE) -> str:
    return gateway_topic(village_id, message.gateway_id, channel_of(message))


def make_alert(**changes: Any) -> Alert:
    fields: dict[str, Any] = {
        "gateway_id": GATEWAY,
        "seq": 7,
        "event_id": uuid.UUID("00000000-0000-4000-8000-000000000001"),
        "ts": 1_700_000_000_000,
        "device_id": "panic-3",
        "kind": AlertKind.PANIC,
        "severity": Severity.CRITICAL,
        "grid_id": "grid-7",
        "evidence": {"held_ms": 150, "battery_v": 3.1, "tamper": False, "note": "gate"},
        "summary": "panic_button_pressed",
    }
    fields.update(changes)
    return Alert(**fields)


def alert_json(**changes: Any) -> dict[str, Any]:
    """A valid alert payload as a JSON object, with ``changes`` applied (a value of ``...`` removes the key)."""
    payload: dict[str, Any] = json.loads(encode(make_alert()))
    for key, value in changes.items():
        if value is ...:
            del payload[key]
        else:
            payload[key] = value
    return payload


ALERT_TOPIC = gateway_topic(VILLAGE, GATEWAY, Channel.ALERT)


def decode_alert(payload: dict[str, Any], decoder: Decoder | None = None) -> Inbound | Rejection:
    return (decoder or Decoder()).decode(ALERT_TOPIC, json.dumps(payload).encode())


def rejection_reason(result: Inbound | Rejection) -> RejectReason:
    assert isinstance(result, Rejection), f"expected a rejection, got {result!r}"
    return result.reason


# --- round trip -------------------------------------------------------------------------------------------


def test_every_channel_has_a_strategy() -> None:
    assert set(MESSAGE_STRATEGIES) == set(MODEL_FOR_CHANNEL.values())


@pytest.mark.parametrize("model", list(MESSAGE_STRATEGIES), ids=lambda model: model.__name__)
@given(data=st.data())
def test_every_message_type_round_trips_through_the_decoder(model: type[Message], data: st.DataObject) -> None:
    message = data.draw(MESSAGE_STRATEGIES[model])
    topic = topic_for(message)

    result = Decoder().decode(topic, encode(message))

    assert isinstance(result, Inbound), result
    assert type(result.message) is model
    assert result.message == message
    assert str(result.topic) == topic
    assert result.topic.village_id == VILLAGE
    assert result.topic.channel is channel_of(message)


@given(message=messages, village_id=identifiers)
def test_encoded_messages_are_json_objects_carrying_the_schema_version(message: Message, village_id: str) -> None:
    payload = encode(message)

    document = json.loads(payload)

    assert document["schema_version"] == SCHEMA_VERSION
    assert document["gateway_id"] == message.gateway_id
    assert isinstance(Decoder().decode(topic_for(message, village_id), payload), Inbound)


def test_encoding_is_compact() -> None:
    payload = encode(make_alert())

    assert b" " not in payload
    assert b"\n" not in payload
    assert payload.startswith(b'{"schema_version":1,')
    assert b'"gateway_id":"gw-01"' in payload


def test_encoding_writes_uuids_enums_and_timestamps_as_json_scalars() -> None:
    document = json.loads(encode(make_alert()))

    assert document["event_id"] == "00000000-0000-4000-8000-000000000001"
    assert document["kind"] == "panic"
    assert document["severity"] == "critical"
    assert document["ts"] == 1_700_000_000_000
    assert document["evidence"] == {"held_ms": 150, "battery_v": 3.1, "tamper": False, "note": "gate"}


# --- rejections -------------------------------------------------------------------------------------------


def test_decoder_counts_oversize_payload_and_never_raises() -> None:
    decoder = Decoder(max_payload_bytes=100)
    payload = encode(make_alert())
    assert len(payload) > 100

    result = decoder.decode(ALERT_TOPIC, payload)

    assert rejection_reason(result) is RejectReason.OVERSIZE
    assert isinstance(result, Rejection)
    assert f"{len(payload)} bytes > limit 100" in result.detail
    assert decoder.rejections == {RejectReason.OVERSIZE: 1}


def test_default_size_limit_is_64_kib_inclusive() -> None:
    decoder = Decoder()
    message = encode(make_alert())
    at_limit = message + b" " * (64 * 1024 - len(message))

    assert DEFAULT_MAX_PAYLOAD_BYTES == 64 * 1024
    assert isinstance(decoder.decode(ALERT_TOPIC, at_limit), Inbound)
    assert rejection_reason(decoder.decode(ALERT_TOPIC, at_limit + b" ")) is RejectReason.OVERSIZE


def test_oversize_is_checked_before_anything_else() -> None:
    result = Decoder(max_payload_bytes=4).decode("not/a/topic", b"{not json at all")

    assert rejection_reason(result) is RejectReason.OVERSIZE


@pytest.mark.parametrize("limit", [0, -1])
def test_decoder_needs_a_positive_size_limit(limit: int) -> None:
    with pytest.raises(ValueError, match="positive"):
        Decoder(max_payload_bytes=limit)


@pytest.mark.parametrize(
    "topic",
    [
        "outpost/v1/lakeside/gw-01/alarm",
        "outpost/v2/lakeside/gw-01/alert",
        "outpost/v1/lakeside/+/alert",
        "outpost/v1/Lakeside/gw-01/alert",
        "outpost/v1/lakeside/gw-01",
        "$SYS/broker/load",
        "",
    ],
)
def test_decoder_rejects_a_bad_topic(topic: str) -> None:
    decoder = Decoder()

    result = decoder.decode(topic, encode(make_alert()))

    assert rejection_reason(result) is RejectReason.BAD_TOPIC
    assert isinstance(result, Rejection)
    assert result.topic == topic
    assert decoder.rejections == {RejectReason.BAD_TOPIC: 1}


@pytest.mark.parametrize(
    "payload",
    [b"", b"{", b"{not json", b'{"gateway_id": "gw-01",}', b"\xff\xfe\x00", encode(make_alert())[:-1], b"nul"],
    ids=["empty", "open-brace", "bare-word", "trailing-comma", "not-utf8", "truncated", "bad-literal"],
)
def test_decoder_rejects_malformed_json(payload: bytes) -> None:
    decoder = Decoder()

    assert rejection_reason(decoder.decode(ALERT_TOPIC, payload)) is RejectReason.MALFORMED_JSON
    assert decoder.rejections == {RejectReason.MALFORMED_JSON: 1}


@pytest.mark.parametrize("payload", [b"[]", b"null", b"1", b'"alert"', b"true"])
def test_decoder_rejects_json_that_is_not_an_object(payload: bytes) -> None:
    assert rejection_reason(Decoder().decode(ALERT_TOPIC, payload)) is RejectReason.INVALID_PAYLOAD


@given(topic=st.sampled_from([ALERT_TOPIC, gateway_topic(VILLAGE, GATEWAY, Channel.TELEMETRY)]), payload=st.binary())
def test_arbitrary_bytes_never_raise_and_are_counted_when_refused(topic: str, payload: bytes) -> None:
    decoder = Decoder()

    result = decoder.decode(topic, payload)

    assert isinstance(result, Inbound | Rejection)
    assert decoder.rejected_total == (1 if isinstance(result, Rejection) else 0)


@given(topic=st.text(max_size=300), payload=st.binary(max_size=200))
def test_arbitrary_topics_and_payloads_never_raise(topic: str, payload: bytes) -> None:
    result = Decoder().decode(topic, payload)

    assert isinstance(result, Inbound | Rejection)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("seq", "7"),
        ("seq", 7.0),
        ("seq", True),
        ("ts", "1700000000000"),
        ("ts", 1.7e12),
        ("event_id", 1),
        ("kind", "earthquake"),
        ("severity", "CRITICAL"),
        ("gateway_id", 1),
        ("grid_id", 7),
        ("summary", 5),
        ("evidence", []),
        ("evidence", {"Held-MS": 1}),
        ("evidence", {"held_ms": None}),
        ("evidence", {"held_ms": [1]}),
    ],
)
def test_decoder_is_strict_about_types(field: str, value: Any) -> None:
    decoder = Decoder()

    result = decode_alert(alert_json(**{field: value}), decoder)

    assert rejection_reason(result) is RejectReason.INVALID_PAYLOAD
    assert isinstance(result, Rejection)
    assert field in result.detail
    assert decoder.rejections == {RejectReason.INVALID_PAYLOAD: 1}


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("seq", -1),
        ("seq", 2**53),
        ("seq", 2**63),
        ("ts", -1),
        ("ts", MAX_EPOCH_MS + 1),
        ("ts", 2**53),
        ("gateway_id", "GW-01"),
        ("device_id", "panic 3"),
        ("summary", "x" * 257),
        ("evidence", {f"k{i}": i for i in range(33)}),
    ],
)
def test_decoder_rejects_values_out_of_range(field: str, value: Any) -> None:
    assert rejection_reason(decode_alert(alert_json(**{field: value}))) is RejectReason.INVALID_PAYLOAD


@pytest.mark.parametrize("version", [2, 0, 99])
def test_decoder_rejects_an_unknown_schema_version(version: int) -> None:
    decoder = Decoder()

    result = decode_alert(alert_json(schema_version=version), decoder)

    assert rejection_reason(result) is RejectReason.UNKNOWN_SCHEMA_VERSION
    assert decoder.rejections == {RejectReason.UNKNOWN_SCHEMA_VERSION: 1}


@pytest.mark.parametrize("field", ["gateway_id", "seq", "event_id", "ts", "device_id", "kind", "severity"])
def test_decoder_rejects_a_missing_field(field: str) -> None:
    result = decode_alert(alert_json(**{field: ...}))

    assert rejection_reason(result) is RejectReason.INVALID_PAYLOAD
    assert isinstance(result, Rejection)
    assert field in result.detail


def test_decoder_rejects_an_extra_field() -> None:
    result = decode_alert(alert_json(priority="urgent"))

    assert rejection_reason(result) is RejectReason.INVALID_PAYLOAD
    assert isinstance(result, Rejection)
    assert "priority" in result.detail


def test_decoder_rejects_an_extra_field_in_a_nested_model() -> None:
    heartbeat = Heartbeat(
        gateway_id=GATEWAY,
        seq=1,
        event_id=uuid.uuid4(),
        ts=1,
        interval_s=10.0,
        health=GatewayHealth(cpu_percent=1, memory_percent=2, disk_percent=3, uptime_s=4),
    )
    document = json.loads(encode(heartbeat))
    document["health"]["humidity_pct"] = 40.0

    result = Decoder().decode(topic_for(heartbeat), json.dumps(document).encode())

    assert rejection_reason(result) is RejectReason.INVALID_PAYLOAD


def test_decoder_rejects_a_payload_for_another_channel() -> None:
    heartbeat_topic = gateway_topic(VILLAGE, GATEWAY, Channel.HEARTBEAT)

    result = Decoder().decode(heartbeat_topic, encode(make_alert()))

    assert rejection_reason(result) is RejectReason.INVALID_PAYLOAD


def test_decoder_rejects_a_payload_naming_another_gateway_than_its_topic() -> None:
    decoder = Decoder()
    topic = gateway_topic(VILLAGE, "gw-02", Channel.ALERT)

    result = decoder.decode(topic, encode(make_alert(gateway_id="gw-01")))

    assert rejection_reason(result) is RejectReason.GATEWAY_MISMATCH
    assert isinstance(result, Rejection)
    assert "gw-01" in result.detail
    assert "gw-02" in result.detail
    assert decoder.rejections == {RejectReason.GATEWAY_MISMATCH: 1}


def test_rejections_are_counted_per_reason_and_decoding_carries_on() -> None:
    decoder = Decoder(max_payload_bytes=1024)
    good = encode(make_alert())

    decoder.decode(ALERT_TOPIC, b"x" * 2000)
    decoder.decode("nope", good)
    decoder.decode("nope", good)
    decoder.decode(ALERT_TOPIC, b"{")
    decoder.decode(ALERT_TOPIC, json.dumps(alert_json(schema_version=2)).encode())
    decoder.decode(ALERT_TOPIC, json.dumps(alert_json(seq="1")).encode())
    decoder.decode(gateway_topic(VILLAGE, "gw-02", Channel.ALERT), good)
    result = decoder.decode(ALERT_TOPIC, good)

    assert isinstance(result, Inbound)
    assert result.message == make_alert()
    assert decoder.rejections == {
        RejectReason.OVERSIZE: 1,
        RejectReason.BAD_TOPIC: 2,
        RejectReason.MALFORMED_JSON: 1,
        RejectReason.UNKNOWN_SCHEMA_VERSION: 1,
        RejectReason.INVALID_PAYLOAD: 1,
        RejectReason.GATEWAY_MISMATCH: 1,
    }
    assert decoder.rejected_total == 7


def test_a_fresh_decoder_has_refused_nothing() -> None:
    decoder = Decoder()

    assert decoder.rejected_total == 0
    assert isinstance(decoder.decode(ALERT_TOPIC, encode(make_alert())), Inbound)
    assert decoder.rejected_total == 0


def test_rejection_topic_and_detail_are_truncated() -> None:
    topic = "x" * 5000

    result = Decoder().decode(topic, encode(make_alert()))

    assert isinstance(result, Rejection)
    assert result.topic == "x" * 300
    assert len(result.detail) <= 300


def test_rejection_logging_is_throttled(caplog: pytest.LogCaptureFixture) -> None:
    decoder = Decoder()

    with caplog.at_level(logging.WARNING, logger="protocol.codec"):
        for _ in range(25):
            decoder.decode("nope", b"{}")

    assert decoder.rejected_total == 25
    assert len(caplog.records) == 10


# --- non-finite numbers -----------------------------------------------------------------------------------


def _telemetry_with(value: float) -> TelemetryBatch:
    point = TelemetryPoint(device_id="camera-1", metric="line_in", value=value, ts=1)
    return TelemetryBatch(gateway_id=GATEWAY, seq=1, event_id=uuid.uuid4(), ts=1, points=[point])


@pytest.mark.parametrize("value", [math.inf, -math.inf, math.nan])
def test_a_telemetry_batch_that_validates_survives_the_wire(value: float) -> None:
    try:
        batch = _telemetry_with(value)
    except ValidationError:
        return  # refusing non-finite values where they are made would be a fix as well
    result = Decoder().decode(topic_for(batch), encode(batch))

    assert isinstance(result, Inbound), result


@pytest.mark.parametrize("literal", [b"NaN", b"Infinity", b"-Infinity"])
def test_decoder_refuses_non_finite_number_literals(literal: bytes) -> None:
    batch = _telemetry_with(1.5)
    payload = encode(batch).replace(b'"value":1.5', b'"value":' + literal)
    assert literal in payload

    result = Decoder().decode(topic_for(batch), payload)

    assert isinstance(result, Rejection)


def test_a_batch_holds_at_most_max_batch_points() -> None:
    point = {"device_id": "camera-1", "metric": "line_in", "value": 1.0, "ts": 1}
    document = json.loads(encode(_telemetry_with(1.0)))
    document["points"] = [point] * (MAX_BATCH_POINTS + 1)
    decoder = Decoder(max_payload_bytes=10 * 1024 * 1024)

    too_many = decoder.decode(gateway_topic(VILLAGE, GATEWAY, Channel.TELEMETRY), json.dumps(document).encode())
    document["points"] = [point] * MAX_BATCH_POINTS
    enough = decoder.decode(gateway_topic(VILLAGE, GATEWAY, Channel.TELEMETRY), json.dumps(document).encode())

    assert rejection_reason(too_many) is RejectReason.INVALID_PAYLOAD
    assert isinstance(enough, Inbound)


def test_an_empty_telemetry_batch_is_refused() -> None:
    document = json.loads(encode(_telemetry_with(1.0)))
    document["points"] = []

    result = Decoder().decode(gateway_topic(VILLAGE, GATEWAY, Channel.TELEMETRY), json.dumps(document).encode())

    assert rejection_reason(result) is RejectReason.INVALID_PAYLOAD


def test_a_config_off_the_wire_is_validated_strictly_though_local_settings_are_lax() -> None:
    desired = ConfigDesired(gateway_id=GATEWAY, seq=1, event_id=uuid.uuid4(), ts=1, version=1, config=GatewayConfig())
    payload = encode(desired).replace(b'"heartbeat_interval_s":10.0', b'"heartbeat_interval_s":"10"')

    decoded = Decoder().decode(gateway_topic("v", GATEWAY, Channel.CONFIG_DESIRED), payload)

    assert isinstance(decoded, Rejection)
    assert decoded.reason is RejectReason.INVALID_PAYLOAD
    assert GatewayConfig.model_validate({"heartbeat_interval_s": "10"}).heartbeat_interval_s == 10.0


@pytest.mark.parametrize(
    ("field", "value"),
    [("value", "1.5"), ("value", None), ("ts", 1.0), ("ts", "1"), ("device_id", 7), ("metric", True)],
)
def test_telemetry_points_are_strict_about_types_too(field: str, value: Any) -> None:
    """Telemetry is validated by its models' own strict config (the Decoder passes ``strict=True`` only
    where lax config models are nested): coercion must still be refused at every level."""
    document = json.loads(encode(_telemetry_with(1.0)))
    document["points"][0][field] = value

    result = Decoder().decode(gateway_topic(VILLAGE, GATEWAY, Channel.TELEMETRY), json.dumps(document).encode())

    assert rejection_reason(result) is RejectReason.INVALID_PAYLOAD


def test_only_channels_nesting_lax_config_models_are_validated_with_strict_passed_in() -> None:
    assert set(STRICT_BY_CALL) == {Channel.CONFIG_DESIRED}
