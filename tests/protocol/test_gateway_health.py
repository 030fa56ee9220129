"""A heartbeat's health carries each sensor node's firmware version: added without breaking older gateways,
refused where a version could not be a time-series tag, and never pushing a heartbeat over the payload limit."""

import json
import uuid
from typing import Any

import pytest
from pydantic import ValidationError

from protocol.bounds import MAX_BYTES, MAX_COUNT
from protocol.codec import DEFAULT_MAX_PAYLOAD_BYTES, Decoder, Inbound, encode
from protocol.identifiers import is_firmware_version
from protocol.messages import AdapterState, GatewayHealth, Heartbeat
from protocol.topics import Channel, gateway_topic

VILLAGE = "lakeside"
GATEWAY = "gw-01"
TOPIC = gateway_topic(VILLAGE, GATEWAY, Channel.HEARTBEAT)


def heartbeat(health: GatewayHealth) -> Heartbeat:
    return Heartbeat(gateway_id=GATEWAY, seq=1, event_id=uuid.uuid4(), ts=1, interval_s=30.0, health=health)


def vitals(**fields: Any) -> GatewayHealth:
    return GatewayHealth(cpu_percent=1, memory_percent=2, disk_percent=3, uptime_s=4, **fields)


def decoded_health(payload: bytes) -> GatewayHealth:
    result = Decoder().decode(TOPIC, payload)
    assert isinstance(result, Inbound), result
    assert isinstance(result.message, Heartbeat)
    return result.message.health


def test_node_firmware_versions_cross_the_wire_by_device() -> None:
    health = vitals(device_firmware={"panic-3": "1.0.0", "door-1": "v1.1.0-rc2+g3f2a"})

    assert decoded_health(encode(heartbeat(health))).device_firmware == {
        "panic-3": "1.0.0",
        "door-1": "v1.1.0-rc2+g3f2a",
    }


def test_a_heartbeat_from_a_gateway_that_predates_device_firmware_still_decodes() -> None:
    document = json.loads(encode(heartbeat(vitals())))
    del document["health"]["device_firmware"]

    assert decoded_health(json.dumps(document).encode()).device_firmware == {}


@pytest.mark.parametrize(
    "version",
    ["", "1.0.0\nmeasurement x=1", "1.0.0\\", "1.0 beta", "1." + "0" * 63, "v1.0-ü"],
    ids=["empty", "newline", "backslash", "space", "too-long", "non-ascii"],
)
def test_a_version_that_cannot_be_a_time_series_tag_is_refused(version: str) -> None:
    assert not is_firmware_version(version)
    with pytest.raises(ValidationError, match="device_firmware"):
        vitals(device_firmware={"panic-3": version})


def test_a_heartbeat_with_every_device_a_node_at_the_longest_versions_fits_the_payload_limit() -> None:
    devices = [f"{index:03d}-" + "d" * 60 for index in range(256)]  # the longest device ids
    health = vitals(
        temperature_c=-12.345678901234567,
        uplink_rtt_ms=12345.678901234567,
        buffer_depth=MAX_COUNT,
        buffer_bytes=MAX_BYTES,
        dropped={f"channel_{index:02d}_" + "c" * 52: MAX_COUNT for index in range(32)},
        adapters=dict.fromkeys(devices, AdapterState.RESTARTING),
        device_firmware=dict.fromkeys(devices, "v" * 64),
    )

    payload = encode(heartbeat(health))

    assert len(payload) <= DEFAULT_MAX_PAYLOAD_BYTES
    assert decoded_health(payload) == health
