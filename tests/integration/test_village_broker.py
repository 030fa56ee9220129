"""The village broker's logins and ACLs as the gateway writes them, enforced by a real Mosquitto: a node publishes
only its own topics and reads only its own settings, only the gateway sets a node's settings, the village centre
only reads alerts, and anonymous or wrong logins are refused.

Mosquitto's ACL file grants every subscription and filters at delivery, and closes the connection of a client
that publishes where it may not: so the checks are on what arrives."""

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import aiomqtt
import pytest
from aiomqtt.exceptions import MqttConnectError

from edge.village_broker import CENTRE_USER, GATEWAY_USER, VillageLogins, password_hash, write_broker_files
from protocol.node import NodeChannel, node_filters, node_topic
from protocol.reconnect import refusal_code
from protocol.village_centre import village_centre_filter, village_centre_topic
from simulators.infra.mosquitto import MosquittoBroker

pytestmark = pytest.mark.integration

NOT_AUTHORISED = 135
QUIET_S = 0.5


@pytest.fixture
async def village(tmp_path: Path) -> AsyncIterator[tuple[MosquittoBroker, VillageLogins]]:
    directory = tmp_path / "village-broker"
    logins = VillageLogins.kept_for(directory, ["panic-well", "door-clinic"])
    write_broker_files(directory, logins, port=0)
    files = [f"password_file {directory / 'passwd'}", f"acl_file {directory / 'acl'}"]
    async with MosquittoBroker(allow_anonymous=False, extra_config=files) as broker:
        yield broker, logins


def login(broker: MosquittoBroker, user: str | None, password: str | None, *, v5: bool = False) -> aiomqtt.Client:
    protocol = aiomqtt.ProtocolVersion.V5 if v5 else aiomqtt.ProtocolVersion.V311
    return aiomqtt.Client(
        broker.host, broker.port, username=user, password=password, identifier=f"{user}-probe", protocol=protocol
    )


async def publish_as(broker: MosquittoBroker, user: str, password: str, topic: str, payload: bytes) -> None:
    """Publish once as ``user``; Mosquitto closes the connection of a client that publishes where it may not."""
    with contextlib.suppress(aiomqtt.MqttError):
        async with login(broker, user, password, v5=True) as client:
            await client.publish(topic, payload, qos=1, retain=True)


async def _received(client: aiomqtt.Client, within_s: float) -> list[str]:
    topics: list[str] = []
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(within_s):
            async for message in client.messages:
                topics.append(str(message.topic))
    return topics


async def test_a_node_speaks_only_for_itself_and_the_gateway_hears_it(
    village: tuple[MosquittoBroker, VillageLogins],
) -> None:
    broker, logins = village
    async with login(broker, GATEWAY_USER, logins.gateway) as gateway:
        for topic_filter in node_filters():
            await gateway.subscribe(topic_filter, qos=1)
        well = logins.nodes["panic-well"]
        await publish_as(broker, "panic-well", well, node_topic("door-clinic", NodeChannel.EVENT), b"{}")  # as another
        await publish_as(broker, "panic-well", well, node_topic("panic-well", NodeChannel.EVENT), b"{}")  # its own
        heard = await _received(gateway, QUIET_S)

    assert heard == [node_topic("panic-well", NodeChannel.EVENT)]


async def test_only_the_gateway_sets_a_node_s_settings_and_a_node_reads_only_its_own(
    village: tuple[MosquittoBroker, VillageLogins],
) -> None:
    broker, logins = village
    async with login(broker, "panic-well", logins.nodes["panic-well"], v5=True) as node:
        await node.subscribe(node_topic("panic-well", NodeChannel.CONFIG), qos=1)
        await node.subscribe(node_topic("door-clinic", NodeChannel.CONFIG), qos=1)  # granted, delivers nothing
        forged = node_topic("panic-well", NodeChannel.CONFIG)
        await publish_as(broker, "door-clinic", logins.nodes["door-clinic"], forged, b"forged")
        await publish_as(broker, CENTRE_USER, logins.centre, forged, b"forged")
        async with login(broker, GATEWAY_USER, logins.gateway) as gateway:
            await gateway.publish(node_topic("panic-well", NodeChannel.CONFIG), b"settings", qos=1, retain=True)
            await gateway.publish(node_topic("door-clinic", NodeChannel.CONFIG), b"settings", qos=1, retain=True)
        async with asyncio.timeout(5):
            message = await anext(aiter(node.messages))
        later = await _received(node, QUIET_S)

    assert (str(message.topic), message.payload) == (node_topic("panic-well", NodeChannel.CONFIG), b"settings")
    assert later == [], "neither forgery nor another node's settings arrived"


async def test_the_village_centre_reads_alerts_and_nothing_else(
    village: tuple[MosquittoBroker, VillageLogins],
) -> None:
    broker, logins = village
    async with login(broker, CENTRE_USER, logins.centre, v5=True) as centre:
        await centre.subscribe(village_centre_filter("shiqiao"), qos=1)
        await centre.subscribe(node_topic("panic-well", NodeChannel.EVENT), qos=1)  # granted, delivers nothing
        well = logins.nodes["panic-well"]
        await publish_as(broker, "panic-well", well, node_topic("panic-well", NodeChannel.EVENT), b"{}")
        async with login(broker, GATEWAY_USER, logins.gateway) as gateway:
            await gateway.publish(village_centre_topic("shiqiao", "gw-1"), b"alert", qos=1)
        heard = await _received(centre, QUIET_S)

    assert heard == [village_centre_topic("shiqiao", "gw-1")]


@pytest.mark.parametrize(
    ("user", "password"),
    [(None, None), ("panic-well", "wrong"), ("unknown-node", "x"), (GATEWAY_USER, "guessed")],
    ids=["anonymous", "wrong-password", "unknown", "gateway-guessed"],
)
async def test_anonymous_and_wrong_logins_are_refused(
    village: tuple[MosquittoBroker, VillageLogins], user: str | None, password: str | None
) -> None:
    broker, _ = village
    with pytest.raises(MqttConnectError) as refused:
        async with login(broker, user, password, v5=True):
            pass

    assert refusal_code(refused.value.rc) in (NOT_AUTHORISED, 134)  # 134: bad user name or password


def test_logins_are_kept_made_for_new_nodes_and_dropped_for_removed_ones(tmp_path: Path) -> None:
    first = VillageLogins.kept_for(tmp_path, ["panic-well", "door-clinic"])
    again = VillageLogins.kept_for(tmp_path, ["panic-well", "pir-gate"])

    assert (again.gateway, again.nodes["panic-well"]) == (first.gateway, first.nodes["panic-well"])
    assert sorted(again.nodes) == ["panic-well", "pir-gate"]
    assert (tmp_path / "logins.json").stat().st_mode & 0o777 == 0o600
    assert password_hash("secret", bytes(12)).startswith("$7$101$AAAAAAAAAAAAAAAA$")
