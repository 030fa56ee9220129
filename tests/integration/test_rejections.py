"""Bad input on the broker is refused and counted, and the fleet keeps serving."""

import uuid

import aiomqtt
import pytest

from protocol.clock import utc_now_ms
from protocol.codec import encode
from protocol.messages import GatewayHealth, Heartbeat
from protocol.topics import Channel, gateway_topic
from simulators.infra.mosquitto import MosquittoBroker
from tests.integration.conftest import FleetFactory, eventually, fleet_api

pytestmark = pytest.mark.integration


def _heartbeat(gateway_id: str, seq: int) -> bytes:
    return encode(
        Heartbeat(
            gateway_id=gateway_id,
            seq=seq,
            event_id=uuid.uuid4(),
            ts=utc_now_ms(),
            interval_s=5.0,
            health=GatewayHealth(cpu_percent=12.5, memory_percent=40.0, disk_percent=51.0, uptime_s=3600.0),
        )
    )


async def test_malformed_and_impersonating_payloads_are_rejected_counted_and_harmless(
    mosquitto: MosquittoBroker, start_fleet: FleetFactory
) -> None:
    fleet = await start_fleet()
    topic = gateway_topic("nanping", "gw-nanping", Channel.HEARTBEAT)
    async with aiomqtt.Client(mosquitto.host, mosquitto.port, identifier="attacker") as client:
        await client.publish(topic, b'{"schema_version": 1, "gateway_id": "gw-nanp', qos=1)
        # A valid heartbeat of another gateway, sent on gw-nanping's topic.
        await client.publish(topic, _heartbeat("gw-beiling", 1), qos=1)

    async with fleet_api(fleet.http.url) as api:

        async def both_counted() -> bool:
            rejected = (await api.get("/healthz")).json()["ingest"]["rejected"]
            return bool(rejected.get("malformed_json") == 1 and rejected.get("gateway_mismatch") == 1)

        await eventually(both_counted, what="both rejections counted")
        assert (await api.get("/gateways")).json() == []  # neither registered a gateway

        # The fleet keeps serving: a genuine heartbeat is taken in as usual.
        async with aiomqtt.Client(mosquitto.host, mosquitto.port, identifier="gw-nanping") as client:
            await client.publish(topic, _heartbeat("gw-nanping", 2), qos=1)

        async def registered_online() -> bool:
            response = await api.get("/gateways/gw-nanping")
            return response.status_code == 200 and response.json()["online"]

        await eventually(registered_online, what="genuine heartbeat taken in")
        gateway = (await api.get("/gateways/gw-nanping")).json()
        assert gateway["village_id"] == "nanping"
        health = (await api.get("/healthz")).json()
        assert health["ingest"]["handler_errors"] == 0
        assert sum(health["ingest"]["rejected"].values()) == 2
