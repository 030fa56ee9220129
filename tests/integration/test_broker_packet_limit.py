"""The broker refuses a packet larger than the contract allows, before anyone holds it whole (real Mosquitto).

An MQTT 3.1.1 client that publishes one is disconnected and nothing is delivered; an MQTT 5 client learns the
limit in CONNACK; the largest payload the contract allows still goes through."""

import asyncio
import contextlib

import aiomqtt
import pytest

from protocol.codec import DEFAULT_MAX_PAYLOAD_BYTES, MAX_PACKET_BYTES
from simulators.infra.mosquitto import MosquittoBroker

pytestmark = pytest.mark.integration

TOPIC = "outpost/v1/lakeside/gw-01/telemetry"


async def _delivered(broker: MosquittoBroker, payload: bytes) -> bool:
    """Whether ``payload`` published at QoS 1 by one client reaches a subscriber within 2 s."""
    async with aiomqtt.Client(broker.host, broker.port, identifier="limit-subscriber") as subscriber:
        await subscriber.subscribe(TOPIC, qos=1)
        with contextlib.suppress(aiomqtt.MqttError):
            async with aiomqtt.Client(broker.host, broker.port, identifier="limit-publisher") as publisher:
                await publisher.publish(TOPIC, payload, qos=1, timeout=2)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(2):
                async for message in subscriber.messages:
                    return message.payload == payload
    return False


async def test_an_oversized_packet_is_refused_and_the_largest_allowed_payload_passes(
    mosquitto: MosquittoBroker,
) -> None:
    assert await _delivered(mosquitto, b"x" * DEFAULT_MAX_PAYLOAD_BYTES)
    assert not await _delivered(mosquitto, b"x" * (MAX_PACKET_BYTES + 1))


async def test_an_mqtt5_client_is_told_the_limit(mosquitto: MosquittoBroker) -> None:
    client = aiomqtt.Client(mosquitto.host, mosquitto.port, protocol=aiomqtt.ProtocolVersion.V5)
    connected: asyncio.Future[int | None] = asyncio.get_running_loop().create_future()
    paho = client._client  # the CONNACK's properties are only on paho's callback
    previous = paho.on_connect

    def on_connect(*args: object) -> None:
        properties = args[-1]
        if not connected.done():
            connected.set_result(getattr(properties, "MaximumPacketSize", None))
        previous(*args)  # type: ignore[misc,arg-type]

    paho.on_connect = on_connect
    async with client:
        assert await asyncio.wait_for(connected, 5) == MAX_PACKET_BYTES
