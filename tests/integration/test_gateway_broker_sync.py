"""The broker follows the inventory: the real fleet service on a real Mosquitto with dynamic security.

At start the fleet creates its own client and role and sets deny-by-default, again after a restart. A
gateway enrolled through the API and then moved to another village keeps its credentials, but may use
only the new village's topics; its retained desired config is erased from the old village's topic and
published, made for the new village, on the new one. A removed gateway's credentials are refused at
CONNECT and its retained config is gone. A move the broker cannot take is refused and changes nothing.

Retained messages are read by an observer client the test creates through the dynamic security
administrator: it subscribes to the gateway's config topics and then to a retained marker of its own, so
the marker arriving means every retained config there was has arrived before it (the broker sends a
subscription's retained messages in order).
"""

import asyncio
import contextlib
import logging
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiomqtt
import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from fleet.access.audit import AuditLog
from fleet.access.roles import Actor, Role
from fleet.broker_access import DOWNLINK_ROLE, DynsecControl, downlink_acls, ingest_acls
from fleet.broker_access import commands as dynsec
from fleet.broker_access.acls import Acl, AclType, DefaultAccessType
from fleet.broker_access.bootstrap import FleetLogin, prepare_broker
from fleet.broker_access.policy import FLEET_ROLE, gateway_role
from fleet.broker_access.responses import BrokerClient, CommandResponse, raise_for_errors
from fleet.configs.push import ConfigPush
from fleet.configs.signing import ConfigSigner
from fleet.db.engine import create_engine, migrate, session_factory
from fleet.db.schema import GatewayRow
from fleet.enrollment.broker import DynsecProvisioner
from fleet.errors import DownlinkUnavailableError
from fleet.layers.scope import Scope
from fleet.mqtt.downlink import Downlink
from fleet.service import FleetService
from fleet.settings import (
    ApiSettings,
    BrokerSettings,
    EnrollmentSettings,
    FleetSettings,
    GatewayBrokerSettings,
    IngestSettings,
    PresenceSettings,
)
from fleet.sites.inventory import GatewayInventory
from fleet.sites.schemas import CountySpec, GatewayPatch, GatewaySpec, TownSpec, VillageSpec
from fleet.sites.store import SiteStore
from protocol.clock import utc_now_ms
from protocol.config_signing import public_key_pem
from protocol.messages import ConfigDesired
from protocol.reconnect import Backoff, refusal_code
from protocol.topics import Channel, gateway_topic
from simulators.infra.mosquitto import DynsecAdmin, MosquittoBroker, dynamic_security_plugin
from tests.integration.conftest import eventually, fleet_api, running_service
from tests.integration.test_broker_acl import Gateway, connect_refusal, gateway_client, mqtt5_puback
from tests.signing_keys import SigningKeys

pytestmark = pytest.mark.integration

ADMIN = DynsecAdmin("dynsec-admin", "admin-password")
FLEET_USER, FLEET_PASSWORD = "outpost-fleet", "fleet-password"
DOWNLINK_USER, DOWNLINK_PASSWORD = "outpost-fleet-downlink", "downlink-password"
SHARE_GROUP = "outpost-ingest"
OBSERVER, OBSERVER_PASSWORD = "test-observer", "observer-password"
MARKER = "observer/marker"  # not an Outpost topic: the observer's own
OLD, NEW = "shiqiao", "dongcun"
NOT_AUTHORISED = 135
TECHNICIAN = Actor("wang-fang", Role.TECHNICIAN)
SUBACK_FAILURE = 0x80


@pytest.fixture
async def broker() -> AsyncIterator[MosquittoBroker]:
    """A fresh dynamic security broker: its administrator is its only client."""
    if not MosquittoBroker.available() or dynamic_security_plugin() is None:
        pytest.fail("mosquitto or its dynamic security plugin is not installed: run scripts/test, which installs it")
    async with MosquittoBroker(dynamic_security=ADMIN, persistence=True) as broker:
        yield broker


async def as_admin(broker: MosquittoBroker, *batch: dynsec.Command) -> list[CommandResponse]:
    async with DynsecControl(broker.host, broker.port, username=ADMIN.username, password=ADMIN.password) as control:
        responses = await control.execute(list(batch))
    raise_for_errors(batch, responses)
    return responses


@contextlib.asynccontextmanager
async def running_fleet(tmp_path: Path, broker: MosquittoBroker, name: str) -> AsyncIterator[FleetService]:
    """The fleet service on ``broker`` as its own clients (``FLEET_USER`` receiving, ``DOWNLINK_USER`` publishing),
    managing access as ``ADMIN``."""
    settings = FleetSettings(
        environment="development",
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'fleet.db'}",
        broker=BrokerSettings(
            host=broker.host,
            port=broker.port,
            client_id=name,
            username=FLEET_USER,
            password=FLEET_PASSWORD,
            downlink_username=DOWNLINK_USER,
            downlink_password=DOWNLINK_PASSWORD,
        ),
        api=ApiSettings(port=0),
        timeseries={"embedded_path": tmp_path / "timeseries.db", "flush_interval_s": 0.1},
        presence=PresenceSettings(default_interval_s=1.0, sweep_interval_s=0.1),
        ingest=IngestSettings(share_group=SHARE_GROUP),
        enrollment=EnrollmentSettings(
            broker=GatewayBrokerSettings(host=broker.host, port=broker.port),
            dynsec_username=ADMIN.username,
            dynsec_password=ADMIN.password,
        ),
        registry_flush_interval_s=0.2,
    )
    async with running_service(settings) as service:
        yield service


async def fleet_footing(broker: MosquittoBroker) -> tuple[dict[str, bool], BrokerClient, set[tuple[str, str, bool]]]:
    """The broker's default access, the fleet's client, and its role's ACLs as (type, topic, allow)."""
    default, fleet, role = await as_admin(
        broker, dynsec.get_default_acl_access(), dynsec.get_client(FLEET_USER), dynsec.get_role(FLEET_ROLE)
    )
    default_acls: Any = default.data["acls"]
    role_data: Any = role.data["role"]
    defaults = {acl["acltype"]: acl["allow"] for acl in default_acls}
    acls = {(acl["acltype"], acl["topic"], acl["allow"]) for acl in role_data["acls"]}
    return defaults, BrokerClient.from_response(fleet), acls


async def test_the_fleet_creates_its_client_and_denies_by_default_at_every_start(
    tmp_path: Path, broker: MosquittoBroker, caplog: pytest.LogCaptureFixture
) -> None:
    everything_open = dict.fromkeys(DefaultAccessType, True)
    await as_admin(broker, dynsec.set_default_acl_access(everything_open))
    expected_acls = {(acl.acltype.value, acl.topic, acl.allow) for acl in ingest_acls(SHARE_GROUP)}

    with caplog.at_level(logging.INFO, logger="fleet.broker_access.bootstrap"):
        async with running_fleet(tmp_path, broker, "fleet-a"):
            first = await fleet_footing(broker)
        # Someone opened the broker and emptied the fleet's role while it was down: a restart puts both right.
        await as_admin(broker, dynsec.set_default_acl_access(everything_open), dynsec.modify_role(FLEET_ROLE, []))
        async with running_fleet(tmp_path, broker, "fleet-b"):
            second = await fleet_footing(broker)
        async with running_fleet(tmp_path, broker, "fleet-c"):
            third = await fleet_footing(broker)

    defaults, fleet, acls = first
    assert defaults == dict.fromkeys([access.value for access in DefaultAccessType], False)
    assert (fleet.username, fleet.roles, fleet.disabled) == (FLEET_USER, (FLEET_ROLE,), False)
    assert acls == expected_acls
    assert second == first
    assert third == first
    [listed] = await as_admin(broker, dynsec.list_clients())
    clients: Any = listed.data["clients"]
    assert sorted(clients) == sorted([ADMIN.username, FLEET_USER, DOWNLINK_USER])
    [downlink_client, downlink_role] = await as_admin(
        broker, dynsec.get_client(DOWNLINK_USER), dynsec.get_role(DOWNLINK_ROLE)
    )
    assert BrokerClient.from_response(downlink_client).roles == (DOWNLINK_ROLE,)
    role_data: Any = downlink_role.data["role"]
    assert {(a["acltype"], a["topic"], a["allow"]) for a in role_data["acls"]} == {
        (acl.acltype.value, acl.topic, acl.allow) for acl in downlink_acls()
    }
    prepared = [message for message in caplog.messages if message.startswith("broker prepared")]
    assert len(prepared) == 3
    assert "created" in prepared[0]
    assert all("already there" in message for message in prepared[1:])


# --- a gateway moved and removed -------------------------------------------------------------------


async def add_observer(broker: MosquittoBroker) -> None:
    """A client that may read every Outpost topic and keep a retained marker of its own."""
    acls = [
        Acl(AclType.SUBSCRIBE_PATTERN, "outpost/#"),
        Acl(AclType.PUBLISH_CLIENT_RECEIVE, "outpost/#"),
        *Acl.allowing(AclType.PUBLISH_CLIENT_SEND, [MARKER]),
        *Acl.allowing(AclType.SUBSCRIBE_LITERAL, [MARKER]),
        *Acl.allowing(AclType.PUBLISH_CLIENT_RECEIVE, [MARKER]),
    ]
    await as_admin(
        broker,
        dynsec.create_role("test-observer", acls),
        dynsec.create_client(OBSERVER, OBSERVER_PASSWORD, roles=["test-observer"]),
    )


async def retained_configs(broker: MosquittoBroker, gateway_id: str) -> dict[str, ConfigDesired]:
    """The retained desired configs of ``gateway_id`` on the old and the new village's topics, by village."""
    topics = {village: gateway_topic(village, gateway_id, Channel.CONFIG_DESIRED) for village in (OLD, NEW)}
    identifier = f"observer-{secrets.token_hex(4)}"
    found: dict[str, ConfigDesired] = {}
    async with aiomqtt.Client(
        broker.host, broker.port, username=OBSERVER, password=OBSERVER_PASSWORD, identifier=identifier
    ) as observer:
        await observer.publish(MARKER, b"marker", qos=1, retain=True)
        for topic in [*topics.values(), MARKER]:
            [granted] = await observer.subscribe(topic, qos=1)
            assert refusal_code(granted) == 1
        async with asyncio.timeout(10):
            async for message in observer.messages:
                if message.topic.matches(MARKER):
                    return found
                assert isinstance(message.payload, bytes)
                [village] = [village for village, topic in topics.items() if message.topic.matches(topic)]
                found[village] = ConfigDesired.model_validate_json(message.payload)
    raise AssertionError("the observer's messages ended")


async def sites(api: httpx.AsyncClient) -> None:
    """Two villages of one town."""
    for path, body in (
        ("/counties", {"id": "anxi", "name": "Anxi"}),
        ("/towns", {"id": "hutou", "county_id": "anxi", "name": "Hutou"}),
        ("/villages", {"id": OLD, "town_id": "hutou", "name": "Shiqiao"}),
        ("/villages", {"id": NEW, "town_id": "hutou", "name": "Dongcun"}),
    ):
        response = await api.post(path, json=body)
        assert response.status_code == 201, response.text


async def layers(api: httpx.AsyncClient) -> None:
    """Each village its own heartbeat interval: 20 s in OLD, 30 s in NEW."""
    for village, interval in ((OLD, 20.0), (NEW, 30.0)):
        response = await api.put(f"/config/layers/village/{village}", json={"heartbeat_interval_s": interval})
        assert response.status_code == 200, response.text


async def enroll(api: httpx.AsyncClient) -> Gateway:
    """A gateway enrolled in OLD through the API, with the broker credentials the fleet gave it."""
    token = await api.post("/enrollment-tokens", json={"village_id": OLD})
    assert token.status_code == 201, token.text
    key = public_key_pem(Ed25519PrivateKey.generate().public_key())
    request = {"token": token.json()["secret"], "public_key_pem": key, "hostname": "pi-1", "agent_version": "1.0"}
    grant = await api.post("/enroll", json=request)
    assert grant.status_code == 200, grant.text
    body = grant.json()
    assert body["broker"]["username"] == body["gateway_id"]
    return Gateway(OLD, body["gateway_id"], body["broker"]["password"], body["broker"]["client_id"])


async def test_a_moved_gateway_speaks_only_in_its_new_village_and_a_removed_one_is_refused(
    tmp_path: Path, broker: MosquittoBroker
) -> None:
    async with running_fleet(tmp_path, broker, "fleet-a") as fleet, fleet_api(fleet.http.url) as api:
        await add_observer(broker)
        await sites(api)
        gateway = await enroll(api)
        await layers(api)
        await eventually(
            lambda: _retained_in(broker, gateway.gateway_id, {OLD}), what="the desired config retained in OLD"
        )
        assert await mqtt5_puback(broker, gateway, gateway_topic(OLD, gateway.gateway_id, Channel.HEARTBEAT)) < 0x80

        moved = await api.patch(f"/gateways/{gateway.gateway_id}", json={"village_id": NEW})

        assert moved.status_code == 200, moved.text
        assert OLD not in await retained_configs(broker, gateway.gateway_id)  # erased before the answer
        await eventually(
            lambda: _retained_in(broker, gateway.gateway_id, {NEW}), what="the desired config retained in NEW"
        )
        desired = (await retained_configs(broker, gateway.gateway_id))[NEW]
        assert desired.config.heartbeat_interval_s == 30.0
        assert desired.signature is not None
        moved_gateway = Gateway(NEW, gateway.gateway_id, gateway.password, gateway.client_id)  # the same credentials
        for channel in (Channel.HEARTBEAT, Channel.TELEMETRY, Channel.ALERT):
            assert await mqtt5_puback(broker, moved_gateway, moved_gateway.topic(channel)) < 0x80
            assert await mqtt5_puback(broker, moved_gateway, gateway.topic(channel)) == NOT_AUTHORISED
        async with gateway_client(broker, gateway) as agent:
            [old_config] = await agent.subscribe(gateway.topic(Channel.CONFIG_DESIRED), qos=1)
            [new_config] = await agent.subscribe(moved_gateway.topic(Channel.CONFIG_DESIRED), qos=1)
            assert (refusal_code(old_config), refusal_code(new_config)) == (SUBACK_FAILURE, 1)
            async with asyncio.timeout(10):
                message = await anext(aiter(agent.messages))
            assert str(message.topic) == moved_gateway.topic(Channel.CONFIG_DESIRED)

        removed = await api.delete(f"/gateways/{gateway.gateway_id}")

        assert removed.status_code == 204, removed.text
        assert (
            await connect_refusal(broker, gateway.gateway_id, gateway.password, v5=False, identifier=gateway.client_id)
            == NOT_AUTHORISED
        )
        assert (
            await connect_refusal(broker, gateway.gateway_id, gateway.password, v5=True, identifier=gateway.client_id)
            == NOT_AUTHORISED
        )
        client_gone, role_gone = await _admin_answers(
            broker, dynsec.get_client(gateway.gateway_id), dynsec.get_role(gateway_role(gateway.gateway_id))
        )
        assert (client_gone.error, role_gone.error) == ("Client not found", "Role not found")
        assert await retained_configs(broker, gateway.gateway_id) == {}
        actions = [e["action"] for e in (await api.get("/audit", params={"target_id": gateway.gateway_id})).json()]
        assert actions[:2] == ["gateway.delete", "gateway.update"]


async def test_a_move_the_broker_cannot_take_is_refused_and_changes_nothing(
    tmp_path: Path, broker: MosquittoBroker
) -> None:
    async with running_fleet(tmp_path, broker, "fleet-a") as fleet, fleet_api(fleet.http.url) as api:
        await sites(api)
        gateway = await enroll(api)
        await broker.stop()

        refused = await api.patch(f"/gateways/{gateway.gateway_id}", json={"village_id": NEW})
        refused_removal = await api.delete(f"/gateways/{gateway.gateway_id}")

        assert refused.status_code == 503, refused.text
        assert "try again" in refused.json()["detail"]
        assert refused_removal.status_code == 503, refused_removal.text
        assert (await api.get(f"/gateways/{gateway.gateway_id}")).json()["village_id"] == OLD
        actions = [e["action"] for e in (await api.get("/audit", params={"target_id": gateway.gateway_id})).json()]
        assert not {"gateway.update", "gateway.delete"} & set(actions)

        await broker.start()
        assert await mqtt5_puback(broker, gateway, gateway.topic(Channel.HEARTBEAT)) < 0x80  # still in OLD
        moved = await api.patch(f"/gateways/{gateway.gateway_id}", json={"village_id": NEW})
        assert moved.status_code == 200, moved.text
        moved_gateway = Gateway(NEW, gateway.gateway_id, gateway.password, gateway.client_id)
        assert await mqtt5_puback(broker, moved_gateway, moved_gateway.topic(Channel.HEARTBEAT)) < 0x80


async def test_a_move_whose_config_cannot_follow_is_refused_and_the_login_moved_back(
    tmp_path: Path, broker: MosquittoBroker
) -> None:
    """The broker took the new role, then erasing the old retained config failed (the eraser's login is
    refused): the move is refused, nothing is recorded, and the gateway's login is back in its village."""
    gateway = Gateway(OLD, "gw-stuck", "gateway-password", "gw-stuck-5a6b7c8d9e0f1a2b")
    provisioner = DynsecProvisioner(broker.host, broker.port, username=ADMIN.username, password=ADMIN.password)
    async with provisioner.access() as access:
        await prepare_broker(access, FleetLogin(FLEET_USER, FLEET_PASSWORD, SHARE_GROUP))
        await access.provision_gateway(OLD, gateway.gateway_id, gateway.password, gateway.client_id)
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'fleet.db'}")
    await migrate(engine)
    sessions = session_factory(engine)
    try:
        refused_login = BrokerSettings(host=broker.host, port=broker.port, username=FLEET_USER, password="wrong")
        downlink = Downlink(refused_login, "fleet-downlink", backoff=Backoff(base_s=0.1, cap_s=0.5))
        running = asyncio.create_task(downlink.run())  # refused: it never connects

        async def erase_soon(topic: str) -> None:
            await downlink.erase_retained(topic, timeout_s=2.0)

        push = ConfigPush(sessions, utc_now_ms, ConfigSigner(SigningKeys.generate().private), erase_retained=erase_soon)
        inventory = GatewayInventory(sessions, utc_now_ms, access=provisioner, configs=push)
        sites = SiteStore(sessions, utc_now_ms)
        await sites.create_county(TECHNICIAN, CountySpec(id="anxi", name="Anxi"))
        await sites.create_town(TECHNICIAN, TownSpec(id="hutou", county_id="anxi", name="Hutou"))
        for village in (OLD, NEW):
            await sites.create_village(TECHNICIAN, VillageSpec(id=village, town_id="hutou", name=village))
        await inventory.create_gateway(TECHNICIAN, GatewaySpec(id=gateway.gateway_id, village_id=OLD))
        await push.put_layer(TECHNICIAN, Scope.VILLAGE, OLD, {"heartbeat_interval_s": 20.0})

        with pytest.raises(DownlinkUnavailableError, match="could not erase the retained message"):
            await inventory.update_gateway(TECHNICIAN, gateway.gateway_id, GatewayPatch(village_id=NEW))

        async with sessions() as session:
            row = await session.get(GatewayRow, gateway.gateway_id)
            assert row is not None
            assert row.village_id == OLD
        entries = await AuditLog(sessions).entries(target_type="gateway", target_id=gateway.gateway_id)
        assert [entry.action for entry in entries] == ["gateway.create"]
        moved = Gateway(NEW, gateway.gateway_id, gateway.password, gateway.client_id)
        assert await mqtt5_puback(broker, gateway, gateway.topic(Channel.HEARTBEAT)) < 0x80
        assert await mqtt5_puback(broker, moved, moved.topic(Channel.HEARTBEAT)) == NOT_AUTHORISED
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
        await engine.dispose()


async def _retained_in(broker: MosquittoBroker, gateway_id: str, villages: set[str]) -> bool:
    return set(await retained_configs(broker, gateway_id)) == villages


async def _admin_answers(broker: MosquittoBroker, *batch: dynsec.Command) -> list[CommandResponse]:
    async with DynsecControl(broker.host, broker.port, username=ADMIN.username, password=ADMIN.password) as control:
        return await control.execute(list(batch))
