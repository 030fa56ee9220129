"""Per-gateway credentials and ACLs, enforced by a real Mosquitto's dynamic security plugin.

Gateway A (village v1) and gateway B (village v2) are provisioned through the fleet's control client.
A publishes its own uplink to the fleet, but cannot speak as B nor read B's downlink; a revoked gateway,
an old password after re-enrolment and wrong passwords are all refused at CONNECT.

MQTT 3.1.1 has no way to tell a client that its publish was denied: Mosquitto 2.0 acknowledges it (QoS 1),
drops it and closes the connection. The checks then publish a marker on an allowed topic: Mosquitto
handles messages one at a time, so once the marker reached the fleet, the denied message would have
arrived before it. MQTT 5 clients also get the refusal's reason code (135, not authorised) in the PUBACK
and SUBACK.
"""

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiomqtt
import paho.mqtt.client as paho
import pytest
from aiomqtt.exceptions import MqttConnectError
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

from edge.adapters.simulated import SimulatedPanicButton
from edge.agent import GatewayAgent
from edge.devices import prebuilt
from edge.settings import BrokerSettings, EdgeSettings
from fleet.broker_access import BrokerAccess, DynsecControl, gateway_role
from fleet.errors import BrokerAccessConflictError, BrokerAccessNotFoundError, BrokerRefusedError
from protocol.clock import utc_now_ms
from protocol.gateway_config import DeviceKind, DeviceSpec, GatewayConfig
from protocol.reconnect import refusal_code
from protocol.topics import Channel, fleet_filter, gateway_filters, gateway_topic, shared_filter, uplink_filters
from simulators.infra.mosquitto import DynsecAdmin, MosquittoBroker, dynamic_security_plugin
from tests.background_listener import BackgroundListener
from tests.integration.conftest import eventually

pytestmark = pytest.mark.integration

ADMIN = DynsecAdmin("dynsec-admin", "admin-password")
FLEET_USER, FLEET_PASSWORD = "outpost-fleet", "fleet-password"
SHARE_GROUP = "outpost-ingest"
NOT_AUTHORISED = 135  # MQTT 5 reason code; paho reports MQTT 3.1.1's CONNACK 5 and SUBACK 0x80 as 135 / 128
SUBACK_FAILURE = 0x80
QUIET_S = 0.3
"""How long to go on listening after a marker arrived, for a message that should not arrive."""


@dataclass(frozen=True)
class Gateway:
    village_id: str
    gateway_id: str
    password: str
    client_id: str

    def topic(self, channel: Channel) -> str:
        return gateway_topic(self.village_id, self.gateway_id, channel)


A = Gateway("v1", "gw-a", "password-a", "gw-a-3f9c1d2e7b6a5f40")
B = Gateway("v2", "gw-b", "password-b", "gw-b-8e2d4c6a1f3b5d79")
CLIENT_IDS = {gateway.gateway_id: gateway.client_id for gateway in (A, B)}
"""The client id each gateway's login is bound to: it connects with it, and only with it."""


@pytest.fixture
async def broker() -> AsyncIterator[MosquittoBroker]:
    if not MosquittoBroker.available() or dynamic_security_plugin() is None:
        pytest.fail("mosquitto or its dynamic security plugin is not installed: run scripts/test, which installs it")
    async with MosquittoBroker(dynamic_security=ADMIN) as broker:
        yield broker


@pytest.fixture
async def access(broker: MosquittoBroker) -> AsyncIterator[BrokerAccess]:
    """The fleet's control session, with the fleet's client and gateways A and B provisioned."""
    async with DynsecControl(broker.host, broker.port, username=ADMIN.username, password=ADMIN.password) as control:
        access = BrokerAccess(control)
        await access.deny_by_default()
        assert await access.ensure_fleet_client(FLEET_USER, FLEET_PASSWORD, share_group=SHARE_GROUP)
        for gateway in (A, B):
            assert await access.provision_gateway(
                gateway.village_id, gateway.gateway_id, gateway.password, gateway.client_id
            )
        yield access


def client(
    broker: MosquittoBroker,
    username: str | None,
    password: str | None,
    *,
    v5: bool = False,
    name: str = "",
    identifier: str | None = None,
) -> aiomqtt.Client:
    """A client logging in as ``username``: with ``identifier``, or a gateway's bound client id, or one made of
    ``name`` (or the username) and the protocol."""
    protocol = aiomqtt.ProtocolVersion.V5 if v5 else aiomqtt.ProtocolVersion.V311
    identifier = identifier or (CLIENT_IDS.get(username or "") if not name else None)
    identifier = identifier or f"{name or username}-{'v5' if v5 else 'v311'}"
    return aiomqtt.Client(
        broker.host, broker.port, username=username, password=password, identifier=identifier, protocol=protocol
    )


def gateway_client(broker: MosquittoBroker, gateway: Gateway, *, password: str | None = None) -> aiomqtt.Client:
    return client(broker, gateway.gateway_id, password or gateway.password, identifier=gateway.client_id)


class FleetListener(BackgroundListener):
    """Logged in with the fleet's credentials, subscribed to every uplink channel; keeps what arrives."""

    def __init__(self, broker: MosquittoBroker) -> None:
        super().__init__()
        self._broker = broker
        self.received: list[tuple[str, bytes]] = []

    async def listen(self) -> None:
        async with client(self._broker, FLEET_USER, FLEET_PASSWORD, name="fleet-listener") as fleet:
            for topic_filter in uplink_filters():
                [code] = await fleet.subscribe(topic_filter, qos=1)
                assert refusal_code(code) == 1, f"the fleet may not subscribe to {topic_filter}: {code}"
            self.subscribed.set()
            async for message in fleet.messages:
                assert isinstance(message.payload, bytes)
                self.received.append((str(message.topic), message.payload))

    async def wait_for(self, topic: str, payload: bytes) -> None:
        async def arrived() -> bool:
            return (topic, payload) in self.received

        await eventually(arrived, timeout_s=5, what=f"{payload!r} on {topic} reaching the fleet")

    def topics(self) -> set[str]:
        return {topic for topic, _ in self.received}


@pytest.fixture
async def fleet(broker: MosquittoBroker, access: BrokerAccess) -> AsyncIterator[FleetListener]:
    async with FleetListener(broker) as listener:
        yield listener


async def next_payload(subscriber: aiomqtt.Client, within_s: float = 5.0) -> tuple[str, bytes]:
    async with asyncio.timeout(within_s):
        async for message in subscriber.messages:
            assert isinstance(message.payload, bytes)
            return str(message.topic), message.payload
    raise AssertionError("the message iterator ended")


async def connect_refusal(
    broker: MosquittoBroker, username: str | None, password: str | None, *, v5: bool, identifier: str | None = None
) -> int:
    """The CONNACK code with which the broker refuses these credentials (fails the test if it accepts them)."""
    try:
        async with client(broker, username, password, v5=v5, identifier=identifier):
            pass
    except MqttConnectError as exc:
        code = refusal_code(exc.rc)
        assert code is not None
        return code
    raise AssertionError(f"the broker accepted {username!r} with password {password!r}")


async def publish_denied(broker: MosquittoBroker, gateway: Gateway, topic: str, *, retain: bool = False) -> None:
    """Publish as ``gateway`` on a topic it may not use, over MQTT 3.1.1; Mosquitto 2.0 hangs up on it."""
    async with gateway_client(broker, gateway) as denied:
        with contextlib.suppress(aiomqtt.MqttError):  # the PUBACK may or may not beat the hang-up
            await denied.publish(topic, b"forged", qos=1, retain=retain)
        with pytest.raises(aiomqtt.MqttError):
            await next_payload(denied)


async def mqtt5_puback(broker: MosquittoBroker, gateway: Gateway, topic: str, *, retain: bool = False) -> int:
    """The PUBACK reason code when ``gateway`` publishes at QoS 1 (retained with ``retain``) on ``topic`` over MQTT 5.

    aiomqtt does not expose PUBACK reason codes, so this is a bare paho client on paho's own thread.
    """
    loop = asyncio.get_running_loop()
    connected: asyncio.Future[int] = loop.create_future()
    acknowledged: asyncio.Future[int] = loop.create_future()

    def settle(future: "asyncio.Future[int]", code: ReasonCode) -> None:  # on paho's thread
        def set_result() -> None:
            if not future.done():
                future.set_result(int(code.value))

        loop.call_soon_threadsafe(set_result)

    probe = paho.Client(CallbackAPIVersion.VERSION2, client_id=gateway.client_id, protocol=paho.MQTTv5)
    probe.username_pw_set(gateway.gateway_id, gateway.password)
    probe.on_connect = lambda _client, _userdata, _flags, code, _properties: settle(connected, code)
    probe.on_publish = lambda _client, _userdata, _mid, code, _properties: settle(acknowledged, code)
    await asyncio.to_thread(probe.connect, broker.host, broker.port)
    probe.loop_start()
    try:
        async with asyncio.timeout(5):
            assert await connected == 0
            probe.publish(topic, b"probe", qos=1, retain=retain)
            return await acknowledged
    finally:
        probe.disconnect()
        await asyncio.to_thread(probe.loop_stop)


async def test_a_gateway_publishes_its_own_alert_and_telemetry_to_the_fleet(
    broker: MosquittoBroker, fleet: FleetListener
) -> None:
    async with gateway_client(broker, A) as gateway:
        await gateway.publish(A.topic(Channel.ALERT), b"alert-a", qos=1)
        await gateway.publish(A.topic(Channel.TELEMETRY), b"telemetry-a", qos=1)
        await gateway.publish(A.topic(Channel.PRESENCE), b"online", qos=1, retain=True)

    await fleet.wait_for(A.topic(Channel.ALERT), b"alert-a")
    await fleet.wait_for(A.topic(Channel.TELEMETRY), b"telemetry-a")
    await fleet.wait_for(A.topic(Channel.PRESENCE), b"online")


async def test_a_gateway_cannot_publish_as_another_gateway_or_another_village(
    broker: MosquittoBroker, fleet: FleetListener
) -> None:
    forged = [
        B.topic(Channel.ALERT),  # as B
        gateway_topic(B.village_id, A.gateway_id, Channel.ALERT),  # as itself, but in B's village
        A.topic(Channel.CONFIG_DESIRED),  # the fleet's downlink to itself
    ]
    for topic in forged:
        await publish_denied(broker, A, topic)
    async with gateway_client(broker, A) as gateway:
        await gateway.publish(A.topic(Channel.EVENT), b"marker", qos=1)

    await fleet.wait_for(A.topic(Channel.EVENT), b"marker")
    await asyncio.sleep(QUIET_S)
    assert fleet.topics() == {A.topic(Channel.EVENT)}

    assert await mqtt5_puback(broker, A, B.topic(Channel.ALERT)) == NOT_AUTHORISED
    assert await mqtt5_puback(broker, A, A.topic(Channel.ALERT)) == 0  # what makes the line above a refusal


async def test_a_gateway_cannot_subscribe_to_or_receive_another_gateways_config(
    broker: MosquittoBroker, access: BrokerAccess
) -> None:
    async with client(broker, FLEET_USER, FLEET_PASSWORD, name="fleet-publisher") as fleet:
        for desired in (A, B):
            payload = f"desired-{desired.gateway_id}".encode()
            await fleet.publish(desired.topic(Channel.CONFIG_DESIRED), payload, qos=1, retain=True)

    async with gateway_client(broker, A) as gateway:
        [to_b] = await gateway.subscribe(B.topic(Channel.CONFIG_DESIRED), qos=1)
        [to_all] = await gateway.subscribe(fleet_filter(Channel.CONFIG_DESIRED), qos=1)
        [to_own] = await gateway.subscribe(A.topic(Channel.CONFIG_DESIRED), qos=1)

        assert (refusal_code(to_b), refusal_code(to_all), refusal_code(to_own)) == (SUBACK_FAILURE, SUBACK_FAILURE, 1)
        assert await next_payload(gateway) == (A.topic(Channel.CONFIG_DESIRED), b"desired-gw-a")
        with pytest.raises(TimeoutError):  # B's retained config never comes
            await next_payload(gateway, within_s=QUIET_S)

    async with client(broker, A.gateway_id, A.password, v5=True) as gateway_v5:
        [to_b] = await gateway_v5.subscribe(B.topic(Channel.CONFIG_DESIRED), qos=1)
        assert refusal_code(to_b) == NOT_AUTHORISED
        with pytest.raises(TimeoutError):
            await next_payload(gateway_v5, within_s=QUIET_S)


async def test_a_gateway_subscribes_to_exactly_its_downlink_filters(
    broker: MosquittoBroker, access: BrokerAccess
) -> None:
    """What the edge subscribes to (``gateway_filters``) is what its role grants; it may unsubscribe too."""
    async with gateway_client(broker, A) as gateway:
        for topic_filter in gateway_filters(A.village_id, A.gateway_id):
            [code] = await gateway.subscribe(topic_filter, qos=1)
            assert refusal_code(code) == 1, topic_filter
            await gateway.unsubscribe(topic_filter)
        [uplink] = await gateway.subscribe(A.topic(Channel.ALERT), qos=1)
        assert refusal_code(uplink) == SUBACK_FAILURE


async def test_a_revoked_gateway_is_disconnected_and_refused_until_restored(
    broker: MosquittoBroker, access: BrokerAccess
) -> None:
    async with gateway_client(broker, A) as gateway:
        await access.revoke_gateway(A.gateway_id)
        with pytest.raises(aiomqtt.MqttError):
            await next_payload(gateway)

    assert await connect_refusal(broker, A.gateway_id, A.password, v5=False) == NOT_AUTHORISED
    assert await connect_refusal(broker, A.gateway_id, A.password, v5=True) == NOT_AUTHORISED
    client_a = await access.get_client(A.gateway_id)
    assert client_a is not None
    assert client_a.disabled

    await access.restore_gateway(A.gateway_id)
    async with gateway_client(broker, A):
        pass


async def test_a_quarantined_gateway_is_denied_only_the_channel_it_flooded_until_released(
    broker: MosquittoBroker, access: BrokerAccess, fleet: FleetListener
) -> None:
    await access.quarantine(A.gateway_id, [A.topic(Channel.ALERT)])

    assert await access.quarantined() == [A.gateway_id]
    assert await mqtt5_puback(broker, A, A.topic(Channel.ALERT)) == NOT_AUTHORISED
    assert await mqtt5_puback(broker, A, A.topic(Channel.TELEMETRY)) == 0, "its other channels stay open"
    assert await mqtt5_puback(broker, B, B.topic(Channel.ALERT)) == 0, "other gateways are untouched"
    await access.quarantine(A.gateway_id, [A.topic(Channel.ALERT), A.topic(Channel.EVENT)])  # widened in place
    assert await mqtt5_puback(broker, A, A.topic(Channel.EVENT)) == NOT_AUTHORISED

    await access.revoke_gateway(A.gateway_id)  # a revocation meanwhile is its own business
    assert await access.release(A.gateway_id)
    assert await connect_refusal(broker, A.gateway_id, A.password, v5=True) == NOT_AUTHORISED
    await access.restore_gateway(A.gateway_id)

    assert await access.quarantined() == []
    assert not await access.release(A.gateway_id), "nothing left to release"
    assert await mqtt5_puback(broker, A, A.topic(Channel.ALERT)) == 0
    async with gateway_client(broker, A) as gateway:
        await gateway.publish(A.topic(Channel.ALERT), b"after quarantine", qos=1)
    await fleet.wait_for(A.topic(Channel.ALERT), b"after quarantine")
    client_a = await access.get_client(A.gateway_id)
    assert client_a is not None
    assert client_a.roles == (gateway_role(A.gateway_id),), "the quarantine role is gone from the client"


async def test_a_re_enrolled_gateways_old_password_no_longer_works(
    broker: MosquittoBroker, access: BrokerAccess, fleet: FleetListener
) -> None:
    async with gateway_client(broker, A) as gateway:
        await access.set_gateway_login(A.gateway_id, "password-a-2", A.client_id)
        with pytest.raises(aiomqtt.MqttError):  # the session that logged in with the old one is closed
            await next_payload(gateway)

    assert await connect_refusal(broker, A.gateway_id, A.password, v5=False) == NOT_AUTHORISED
    async with gateway_client(broker, A, password="password-a-2") as gateway:
        await gateway.publish(A.topic(Channel.ALERT), b"after re-enrolment", qos=1)
    await fleet.wait_for(A.topic(Channel.ALERT), b"after re-enrolment")


async def test_ingest_workers_share_the_uplink_in_their_group_and_may_not_join_another(
    broker: MosquittoBroker, access: BrokerAccess
) -> None:
    telemetry = fleet_filter(Channel.TELEMETRY)
    async with (
        client(broker, FLEET_USER, FLEET_PASSWORD, v5=True, name="worker-0") as first,
        client(broker, FLEET_USER, FLEET_PASSWORD, v5=True, name="worker-1") as second,
    ):
        for worker in (first, second):
            [granted] = await worker.subscribe(shared_filter(SHARE_GROUP, telemetry), qos=1)
            assert refusal_code(granted) == 1
        [refused] = await first.subscribe(shared_filter("another-group", telemetry), qos=1)
        assert refusal_code(refused) == NOT_AUTHORISED

        async with gateway_client(broker, A) as gateway:
            for n in range(20):
                await gateway.publish(A.topic(Channel.TELEMETRY), b"%d" % n, qos=1)
        taken = await asyncio.gather(_drain(first), _drain(second))

    assert sorted(int(payload) for share in taken for payload in share) == list(range(20))
    assert all(taken), "the group split the messages between its two workers"


async def _drain(subscriber: aiomqtt.Client) -> list[bytes]:
    """What arrives until the subscriber has been quiet for :data:`QUIET_S`."""
    payloads = []
    with contextlib.suppress(TimeoutError):
        while True:
            _, payload = await next_payload(subscriber, within_s=QUIET_S * 3)
            payloads.append(payload)
    return payloads


@pytest.mark.parametrize(
    ("username", "password"),
    [
        (A.gateway_id, B.password),  # another gateway's password
        (A.gateway_id, ""),
        ("gw-unknown", "password-a"),
        (FLEET_USER, A.password),
        (None, None),  # anonymous
    ],
)
async def test_wrong_credentials_are_refused(
    broker: MosquittoBroker, access: BrokerAccess, username: str | None, password: str | None
) -> None:
    assert await connect_refusal(broker, username, password, v5=False) == NOT_AUTHORISED
    assert await connect_refusal(broker, username, password, v5=True) == NOT_AUTHORISED


async def test_provisioning_is_idempotent_and_never_touches_clients_that_are_not_the_gateways(
    broker: MosquittoBroker, access: BrokerAccess
) -> None:
    assert not await access.provision_gateway(A.village_id, A.gateway_id, "another-password", "gw-a-other")
    assert not await access.ensure_fleet_client(FLEET_USER, FLEET_PASSWORD)
    async with gateway_client(broker, A):  # provisioning again left the password alone
        pass

    with pytest.raises(BrokerAccessConflictError):
        await access.provision_gateway("v1", ADMIN.username, "x", "x")  # a gateway id that is the admin's username
    admin = await access.get_client(ADMIN.username)
    assert admin is not None
    assert admin.roles == ("admin",)
    with pytest.raises(BrokerAccessConflictError):
        await access.revoke_gateway(FLEET_USER)
    with pytest.raises(BrokerAccessNotFoundError):
        await access.set_gateway_login("gw-unknown", "x", "x")

    assert await access.delete_gateway(A.gateway_id)
    assert not await access.delete_gateway(A.gateway_id)
    assert await connect_refusal(broker, A.gateway_id, A.password, v5=False) == NOT_AUTHORISED
    assert sorted(await access.list_clients()) == sorted([ADMIN.username, FLEET_USER, B.gateway_id])


async def test_a_gateway_that_moved_village_may_only_use_its_new_villages_topics(
    broker: MosquittoBroker, access: BrokerAccess, fleet: FleetListener
) -> None:
    await access.ensure_gateway_role("v3", A.gateway_id)  # rewrites the role's ACLs

    await publish_denied(broker, A, A.topic(Channel.ALERT))
    async with gateway_client(broker, A) as gateway:
        await gateway.publish(gateway_topic("v3", A.gateway_id, Channel.ALERT), b"new village", qos=1)

    await fleet.wait_for(gateway_topic("v3", A.gateway_id, Channel.ALERT), b"new village")
    await asyncio.sleep(QUIET_S)
    assert fleet.topics() == {gateway_topic("v3", A.gateway_id, Channel.ALERT)}


async def test_the_gateway_agent_runs_on_its_provisioned_credentials(
    tmp_path: Path, broker: MosquittoBroker, fleet: FleetListener
) -> None:
    """The role grants everything the real agent does: presence with its Last Will, heartbeats, alerts,
    subscribing to its downlink."""
    settings = EdgeSettings(
        environment="development",
        village_id=A.village_id,
        gateway_id=A.gateway_id,
        broker=BrokerSettings(
            port=broker.port, username=A.gateway_id, password=A.password, client_id=A.client_id, keepalive_s=5
        ),
        state_dir=tmp_path / "gateway",
        config=GatewayConfig(heartbeat_interval_s=1.0, telemetry_interval_s=0.5),
        devices=[DeviceSpec(kind=DeviceKind.PANIC_BUTTON, id="panic-clinic", grid_id="v1-grid-1")],
    )
    button = SimulatedPanicButton(settings.devices[0], utc_now_ms)
    agent = GatewayAgent(settings, prebuilt([button]))
    stop = asyncio.Event()
    running = asyncio.create_task(agent.run(stop))
    try:

        async def connected() -> bool:
            if running.done():
                running.result()
            return agent.uplink.connected.is_set()

        await eventually(connected, what="the gateway connecting with its credentials")
        button.press(held_ms=800)

        async def alert_and_heartbeat_arrived() -> bool:
            return {A.topic(Channel.ALERT), A.topic(Channel.HEARTBEAT), A.topic(Channel.PRESENCE)} <= fleet.topics()

        await eventually(alert_and_heartbeat_arrived, what="the gateway's presence, heartbeat and alert")
    finally:
        stop.set()
        await running


async def test_the_control_client_refuses_wrong_admin_credentials_and_non_admins(broker: MosquittoBroker) -> None:
    with pytest.raises(BrokerRefusedError, match="refused dynamic security administrator"):
        async with DynsecControl(broker.host, broker.port, username=ADMIN.username, password="wrong"):
            pass
    async with DynsecControl(broker.host, broker.port, username=ADMIN.username, password=ADMIN.password) as control:
        await BrokerAccess(control).provision_gateway(A.village_id, A.gateway_id, A.password, A.client_id)
    with pytest.raises(BrokerRefusedError, match="is it a dynamic security administrator"):
        async with DynsecControl(
            broker.host, broker.port, username=A.gateway_id, password=A.password, identifier=A.client_id
        ):
            pass


async def test_a_gateway_login_works_with_its_bound_client_id_only(
    broker: MosquittoBroker, access: BrokerAccess
) -> None:
    """Client ids are unguessable and bound: a gateway cannot connect as another id, and the id another gateway
    would need to take over its session (and fire its Will) is never known to it."""
    refused = client(broker, A.gateway_id, A.password, identifier="gw-a-guessed")

    with pytest.raises(MqttConnectError) as caught:
        async with refused:
            pass

    assert refusal_code(caught.value.rc) == NOT_AUTHORISED
    async with gateway_client(broker, A):
        pass


async def test_re_enrolling_binds_the_login_to_the_new_client_id(broker: MosquittoBroker, access: BrokerAccess) -> None:
    await access.set_gateway_login(A.gateway_id, "password-a-2", "gw-a-0123456789abcdef")

    assert await connect_refusal(broker, A.gateway_id, "password-a-2", v5=False) == NOT_AUTHORISED  # the old id
    async with client(broker, A.gateway_id, "password-a-2", identifier="gw-a-0123456789abcdef") as renewed:
        assert renewed.identifier == "gw-a-0123456789abcdef"


async def test_the_fleet_s_ingest_login_publishes_nothing_and_its_downlink_login_only_publishes(
    broker: MosquittoBroker, access: BrokerAccess
) -> None:
    """One identity per job: a leaked ingest credential (shared by every ingest worker) cannot command a gateway;
    the downlink's cannot read what gateways send."""
    assert not await access.ensure_fleet_client(FLEET_USER, FLEET_PASSWORD, share_group=SHARE_GROUP, receive_only=True)
    assert await access.ensure_downlink_client("outpost-fleet-downlink", "downlink-password")
    ingest = Gateway("v1", FLEET_USER, FLEET_PASSWORD, "ingest-probe")  # logins as mqtt5_puback takes them
    downlink = Gateway("v1", "outpost-fleet-downlink", "downlink-password", "downlink-probe")
    command_topic = A.topic(Channel.COMMAND)

    assert await mqtt5_puback(broker, ingest, command_topic) == NOT_AUTHORISED
    assert await mqtt5_puback(broker, downlink, command_topic) < 0x80  # 16: taken, nobody subscribed yet
    async with client(broker, "outpost-fleet-downlink", "downlink-password", v5=True) as publisher:
        [code] = await publisher.subscribe(A.topic(Channel.ALERT), qos=1)
    assert refusal_code(code) == NOT_AUTHORISED
