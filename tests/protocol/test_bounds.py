"""Every number on the wire has a range: out-of-range values are counted rejections, never exceptions downstream.

Two halves: a table of bounded fields, each tried through the decoders at its exact limits and with values that
broke the fleet before (2**63, 2**70, -1, 1e-300, 1e309); and a walk over the JSON Schema of every model of the
contract, so a field added later without a bound fails here.
"""

import importlib
import json
import math
import pkgutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Final

import pytest
from pydantic import BaseModel

import protocol
from protocol.bounds import (
    MAX_BYTES,
    MAX_COUNT,
    MAX_EPOCH_MS,
    MAX_INTERVAL_S,
    MAX_RTT_MS,
    MAX_SAFE_INTEGER,
    MAX_TEMPERATURE_C,
    MAX_UPTIME_S,
    MIN_INTERVAL_S,
    MIN_TEMPERATURE_C,
)
from protocol.codec import Decoder, Inbound, Rejection, RejectReason
from protocol.config_model import ConfigModel
from protocol.messages import WireModel
from protocol.node import NodeChannel, NodeDecoder, NodeReceived, node_topic
from protocol.topics import Channel, gateway_topic

GATEWAY: Final = "gw-01"
NODE: Final = "panic-node-1"


class Raw:
    """A number written into the JSON exactly as given (``1e309``, ``1180591620717411303424``)."""

    def __init__(self, text: str) -> None:
        self.text = text


def raw_json(document: Any) -> bytes:
    """``document`` as JSON, with every :class:`Raw` spliced in verbatim (json.dumps would write inf as Infinity)."""
    raws: list[str] = []

    def placeholder(value: object) -> object:
        if isinstance(value, Raw):
            raws.append(value.text)
            return f"@@raw{len(raws) - 1}@@"
        raise TypeError(value)

    text = json.dumps(document, default=placeholder)
    for index, raw in enumerate(raws):
        text = text.replace(f'"@@raw{index}@@"', raw)
    return text.encode()


def envelope(ts: int = 1_700_000_000_000) -> dict[str, Any]:
    return {"schema_version": 1, "gateway_id": GATEWAY, "seq": 1, "event_id": str(uuid.uuid4()), "ts": ts}


def alert() -> dict[str, Any]:
    return {**envelope(), "device_id": "panic-3", "kind": "panic", "severity": "critical", "evidence": {"held_ms": 1}}


def heartbeat() -> dict[str, Any]:
    health = {
        "cpu_percent": 1.0,
        "memory_percent": 1.0,
        "disk_percent": 1.0,
        "uptime_s": 1.0,
        "temperature_c": 40.0,
        "uplink_rtt_ms": 12.0,
        "buffer_depth": 0,
        "buffer_bytes": 0,
        "dropped": {"telemetry": 0},
    }
    return {**envelope(), "interval_s": 10.0, "health": health}


def telemetry() -> dict[str, Any]:
    point = {"device_id": "camera-1", "metric": "line_in", "value": 1.0, "ts": 1_700_000_000_000}
    return {**envelope(), "points": [point]}


def config_desired() -> dict[str, Any]:
    device = {"kind": "checkpoint_camera", "id": "camera-1", "driver": "camera", "params": {"fps": 10}}
    config = {"heartbeat_interval_s": 10.0, "telemetry_interval_s": 5.0, "devices": [device]}
    return {**envelope(), "version": 1, "config": config}


def config_reported() -> dict[str, Any]:
    return {**envelope(), "version": 1, "status": "applied"}


def command() -> dict[str, Any]:
    return {**envelope(), "request_id": str(uuid.uuid4()), "name": "list_snapshots", "args": {"before_ts": 1}}


def node_heartbeat() -> dict[str, Any]:
    return {"schema_version": 1, "node_id": NODE, "boot": 1, "uptime_ms": 1, "interval_s": 60.0, "queued": 0}


MESSAGES: Final = {
    Channel.ALERT: alert,
    Channel.HEARTBEAT: heartbeat,
    Channel.TELEMETRY: telemetry,
    Channel.CONFIG_DESIRED: config_desired,
    Channel.CONFIG_REPORTED: config_reported,
    Channel.COMMAND: command,
}


@dataclass(frozen=True)
class Bounded:
    """A field (a path into a message) and the range the contract holds it to."""

    channel: Channel | NodeChannel
    path: tuple[str | int, ...]
    low: int | float
    high: int | float
    loose: bool = False
    """A loose value (evidence, a parameter, a command's argument) that may be a float as well as an integer."""

    @property
    def integral(self) -> bool:
        return isinstance(self.low, int) and isinstance(self.high, int)

    def __str__(self) -> str:
        return f"{self.channel}:{'.'.join(map(str, self.path))}"


FIELDS: Final = (
    Bounded(Channel.ALERT, ("seq",), 0, MAX_SAFE_INTEGER),
    Bounded(Channel.ALERT, ("ts",), 0, MAX_EPOCH_MS),
    Bounded(Channel.ALERT, ("evidence", "held_ms"), -MAX_SAFE_INTEGER, MAX_SAFE_INTEGER, loose=True),
    Bounded(Channel.HEARTBEAT, ("interval_s",), MIN_INTERVAL_S, MAX_INTERVAL_S),
    Bounded(Channel.HEARTBEAT, ("health", "cpu_percent"), 0.0, 100.0),
    Bounded(Channel.HEARTBEAT, ("health", "uptime_s"), 0.0, float(MAX_UPTIME_S)),
    Bounded(Channel.HEARTBEAT, ("health", "temperature_c"), MIN_TEMPERATURE_C, MAX_TEMPERATURE_C),
    Bounded(Channel.HEARTBEAT, ("health", "uplink_rtt_ms"), 0.0, float(MAX_RTT_MS)),
    Bounded(Channel.HEARTBEAT, ("health", "buffer_depth"), 0, MAX_COUNT),
    Bounded(Channel.HEARTBEAT, ("health", "buffer_bytes"), 0, MAX_BYTES),
    Bounded(Channel.HEARTBEAT, ("health", "dropped", "telemetry"), 0, MAX_COUNT),
    Bounded(Channel.TELEMETRY, ("points", 0, "ts"), 0, MAX_EPOCH_MS),
    Bounded(Channel.CONFIG_DESIRED, ("version",), 0, MAX_SAFE_INTEGER),
    Bounded(Channel.CONFIG_DESIRED, ("config", "heartbeat_interval_s"), MIN_INTERVAL_S, MAX_INTERVAL_S),
    Bounded(Channel.CONFIG_DESIRED, ("config", "telemetry_interval_s"), MIN_INTERVAL_S, MAX_INTERVAL_S),
    Bounded(
        Channel.CONFIG_DESIRED,
        ("config", "devices", 0, "params", "fps"),
        -MAX_SAFE_INTEGER,
        MAX_SAFE_INTEGER,
        loose=True,
    ),
    Bounded(Channel.CONFIG_REPORTED, ("version",), 0, MAX_SAFE_INTEGER),
    Bounded(Channel.COMMAND, ("args", "before_ts"), -MAX_SAFE_INTEGER, MAX_SAFE_INTEGER, loose=True),
    Bounded(NodeChannel.HEARTBEAT, ("interval_s",), MIN_INTERVAL_S, MAX_INTERVAL_S),
    Bounded(NodeChannel.HEARTBEAT, ("queued",), 0, 2**31 - 1),
)
"""The values that broke the fleet (a version of 2**70, an interval of 1e-300, buffer_bytes of 2**70) and their kin."""

OVERFLOWING: Final = (str(2**63), str(2**70), "1e309", "-1e309", str(10**400))
"""Refused for every bounded field, whatever its range."""


def with_value(document: dict[str, Any], path: tuple[str | int, ...], value: object) -> dict[str, Any]:
    target: Any = document
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    return document


def decode(field: Bounded, value: object) -> Inbound | NodeReceived | Rejection:
    """``field``'s message with ``value`` at its path, through the decoder its receiver runs."""
    if isinstance(field.channel, NodeChannel):
        payload = raw_json(with_value(node_heartbeat(), field.path, value))
        return NodeDecoder().decode(node_topic(NODE, field.channel), payload)
    payload = raw_json(with_value(MESSAGES[field.channel](), field.path, value))
    return Decoder().decode(gateway_topic("lakeside", GATEWAY, field.channel), payload)


def number(value: int | float, integral: bool) -> Raw:
    return Raw(str(value) if integral else repr(float(value)))


def outside(field: Bounded) -> tuple[int | float, int | float]:
    """The nearest values beyond each end: one more integer, or the next float."""
    if field.integral:
        return field.low - 1, field.high + 1
    return math.nextafter(field.low, -math.inf), math.nextafter(field.high, math.inf)


def assert_refused(field: Bounded, value: object) -> None:
    result = decode(field, value)
    assert isinstance(result, Rejection), f"{field} took {value!r}"
    assert result.reason is RejectReason.INVALID_PAYLOAD
    assert str(field.path[0]) in result.detail


@pytest.mark.parametrize("field", FIELDS, ids=str)
def test_each_end_of_the_range_is_accepted(field: Bounded) -> None:
    for value in (field.low, field.high):
        result = decode(field, number(value, field.integral))
        assert isinstance(result, Inbound | NodeReceived), f"{field} refused {value!r}: {result}"
        message: Any = result.message
        for step in field.path:
            message = message[step] if isinstance(step, int) or isinstance(message, dict) else getattr(message, step)
        assert message == value


@pytest.mark.parametrize("field", FIELDS, ids=str)
def test_one_step_beyond_either_end_is_refused(field: Bounded) -> None:
    for value in outside(field):
        assert_refused(field, number(value, field.integral))


@pytest.mark.parametrize("field", FIELDS, ids=str)
@pytest.mark.parametrize("text", OVERFLOWING)
def test_overflowing_numbers_are_refused(field: Bounded, text: str) -> None:
    assert_refused(field, Raw(text))


@pytest.mark.parametrize("field", [field for field in FIELDS if field.low >= 0], ids=str)
def test_negative_values_are_refused_where_the_range_starts_at_zero(field: Bounded) -> None:
    assert_refused(field, Raw("-1"))


@pytest.mark.parametrize(
    "field", [field for field in FIELDS if (field.integral and not field.loose) or field.low > 0], ids=str
)
def test_a_vanishing_fraction_is_refused_where_it_is_out_of_range_or_not_an_integer(field: Bounded) -> None:
    assert_refused(field, Raw("1e-300"))


def test_a_rejection_is_counted_not_raised() -> None:
    decoder = Decoder()
    topic = gateway_topic("lakeside", GATEWAY, Channel.CONFIG_REPORTED)

    result = decoder.decode(topic, raw_json({**config_reported(), "version": Raw(str(2**70))}))

    assert isinstance(result, Rejection)
    assert decoder.rejections == {RejectReason.INVALID_PAYLOAD: 1}


def test_telemetry_readings_need_only_be_finite() -> None:
    field = Bounded(Channel.TELEMETRY, ("points", 0, "value"), -math.inf, math.inf)

    assert isinstance(decode(field, Raw("-1.7976931348623157e308")), Inbound)
    assert isinstance(decode(field, Raw("1e-300")), Inbound)
    assert_refused(field, Raw("1e309"))


# --- every model's JSON Schema carries the bounds ----------------------------------------------------

UNBOUNDED_NUMBERS: Final = frozenset(
    {
        ("TelemetryPoint", "value"),  # a reading: any finite float (InfluxDB's float64 holds it)
        ("DeviceEvent", "evidence"),
        ("Alert", "evidence"),
        ("Command", "args"),
        ("CommandResponse", "result"),
        ("CaseRequest", "evidence"),
        ("AlertNotification", "evidence"),
        ("DeviceSpec", "params"),
    }
)
"""(model, field) pairs whose floats are free measurements, bounded only by being finite (the models refuse
NaN and infinity); their integers are bounded like every other."""


def contract_models() -> list[type[BaseModel]]:
    """Every model of the contract: each subclass of WireModel and ConfigModel in any protocol module."""
    for module in pkgutil.iter_modules(protocol.__path__):
        importlib.import_module(f"protocol.{module.name}")
    found: list[type[BaseModel]] = []
    pending: list[type[BaseModel]] = [WireModel, ConfigModel]
    while pending:
        model = pending.pop()
        found.append(model)
        pending.extend(model.__subclasses__())
    return [model for model in found if model.model_fields]


def schema_nodes(node: object, where: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every sub-schema under ``node``, with the path to it."""
    if isinstance(node, dict):
        yield where, node
        for key, value in node.items():
            yield from schema_nodes(value, f"{where}/{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from schema_nodes(value, f"{where}/{index}")


def model_properties(model: type[BaseModel]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(model name, field name, field schema) for the model and every model it nests."""
    schema = model.model_json_schema()
    for name, definition in [(model.__name__, schema), *schema.get("$defs", {}).items()]:
        for field, field_schema in definition.get("properties", {}).items():
            yield name, field, field_schema


def unbounded(node: dict[str, Any], *, free_numbers: bool) -> list[str]:
    """What is missing from one schema node: an integer's bounds within ±(2**53 - 1), a number's bounds, a
    list's or a map's greatest size."""
    problems: list[str] = []
    kind = node.get("type")
    if kind == "integer" and "const" not in node and "enum" not in node:
        highest = node.get("maximum", node.get("exclusiveMaximum"))
        lowest = node.get("minimum", node.get("exclusiveMinimum"))
        if highest is None or highest > MAX_SAFE_INTEGER + ("exclusiveMaximum" in node):
            problems.append(f"integer without a maximum within 2**53 - 1 ({highest})")
        if lowest is None or lowest < -MAX_SAFE_INTEGER - ("exclusiveMinimum" in node):
            problems.append(f"integer without a minimum within -(2**53 - 1) ({lowest})")
    bounded_number = {"maximum", "exclusiveMaximum"} & node.keys() and {"minimum", "exclusiveMinimum"} & node.keys()
    if kind == "number" and not free_numbers and not bounded_number:
        problems.append("number without both bounds")
    if kind == "array" and "maxItems" not in node:
        problems.append("list without maxItems")
    is_map = "patternProperties" in node or isinstance(node.get("additionalProperties"), dict)
    if kind == "object" and is_map and "maxProperties" not in node:
        problems.append("map without maxProperties")
    return problems


def test_the_walk_finds_every_model_of_the_contract() -> None:
    names = {model.__name__ for model in contract_models()}

    expected = {"Heartbeat", "GatewayHealth", "ConfigDesired", "NodeHeartbeat", "CaseRequest", "EnrollmentGrant"}
    assert expected <= names
    assert {"SnapshotPolicy", "ClassifierSettings", "AlertNotification", "CaseFeedback"} <= names


@pytest.mark.parametrize("model", contract_models(), ids=lambda model: model.__name__)
def test_every_number_list_and_map_of_every_model_is_bounded(model: type[BaseModel]) -> None:
    problems = [
        f"{name}.{field}{where}: {problem}"
        for name, field, field_schema in model_properties(model)
        for where, node in schema_nodes(field_schema, "")
        for problem in unbounded(node, free_numbers=(name, field) in UNBOUNDED_NUMBERS)
    ]

    assert problems == []


def test_the_schema_walk_would_catch_a_field_without_a_bound() -> None:
    class Careless(WireModel):
        count: int
        ratio: float
        names: list[str]

    problems = [
        problem
        for _, field, field_schema in model_properties(Careless)
        for _, node in schema_nodes(field_schema, "")
        for problem in unbounded(node, free_numbers=False)
    ]

    assert len(problems) == 4  # the integer's two ends, the float's bounds, the list's size
