"""Retained messages on a real Mosquitto with dynamic security, and the fleet's ingest sessions.

A gateway's login cannot leave a retained message where it may not publish (another gateway's uplink, any
downlink topic, a village centre's): the broker refuses the publish, so nothing is retained and no later
subscriber gets anything.

On its own uplink a gateway may publish, and Mosquitto's dynamic security cannot refuse the retain flag on a
topic a client may publish on. Only ``presence`` and ``config/reported`` are retained by contract
(``Channel.retained``): they are state, and the fleet takes the retained ones at every subscription (a restart
knows at once who said goodbye and what each gateway runs). A message a gateway published retained on an event
channel (alert, heartbeat, telemetry, event, command/response) would otherwise come back at every subscription:
after each restart, after each reconnect. The fleet subscribes to those channels with MQTT 5's Retain Handling 2
(no retained message at subscribe) and Retain As Published, so it takes such a message once, live (or from its
session's queue), and counts it (``/healthz``: ``ingest.retained``, by channel).

Negative checks do not wait for silence: a subscriber's retained messages are sent while the broker handles the
SUBSCRIBE, before any message published after the SUBACK, so a live marker arriving means nothing retained came
before it; an observer subscribing to a retained marker of its own after ``outpost/#`` does the same.
"""

import itertools
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import aiomqtt
import pytest
from pydantic import SecretStr

from fleet.api.schemas import AlertPublic, GatewayPublic
from fleet.broker_access import BrokerAccess, DynsecControl
from fleet.broker_access import commands as dynsec
from fleet.broker_access.acls import Acl, AclType
from fleet.broker_access.responses import raise_for_errors
from fleet.configs.schemas import StatusReport
from fleet.ingest.subscriptions import Lane
from fleet.service import FleetService
from fleet.settings import BrokerSettings, EnrollmentSettings, FleetSettings
from protocol.clock import utc_now_ms
from protocol.codec import encode
from protocol.messages import (
    Alert,
    AlertKind,
    ConfigReported,
    ConfigStatus,
    GatewayHealth,
    Heartbeat,
    Message,
    Presence,
    PresenceReason,
    PresenceState,
    Severity,
)
from protocol.reconnect import refusal_code
from protocol.topics import Channel, gateway_filters, gateway_topic, uplink_filters, village_notify_topic
from simulators.infra.mosquitto import MosquittoBroker, dynamic_security_plugin
from tests.integration.conftest import Platform, eventually, fleet_api, fleet_settings, running_service
from tests.integration.test_broker_acl import (
    ADMIN,
    FLEET_PASSWORD,
    FLEET_USER,
    NOT_AUTHORISED,
    SHARE_GROUP,
    A,
    B,
    Gateway,
    client,
    gateway_client,
    mqtt5_puback,
    publish_denied,
)

pytestmark = pytest.mark.integration

OBSERVER, OBSERVER_PASSWORD = "test-observer", "observer-password"
MARKER = "observer/marker"  # not an Outpost topic: the observer's own
HEARTBEAT_S = 30.0
"""The gateway's heartbeat interval: no gateway goes offline by silence while a test runs."""
TEN_MINUTES_MS = 600_000
"""The age of a message sent long before (old traffic brings no gateway online: the presence the fleet shows after
a restart is then the retained one)."""

FORBIDDEN = [
    B.topic(Channel.ALERT),  # another gateway's uplink: an event
    B.topic(Channel.PRESENCE),  # another gateway's uplink: state (a forged "online" or Last Will)
    B.topic(Channel.CONFIG_REPORTED),
    gateway_topic(B.village_id, A.gateway_id, Channel.ALERT),  # as itself, in another village
    A.topic(Channel.CONFIG_DESIRED),  # its own downlink: only the fleet may put a desired config there
    A.topic(Channel.COMMAND),
    B.topic(Channel.CONFIG_DESIRED),  # another gateway's downlink
    B.topic(Channel.COMMAND),
    village_notify_topic(A.village_id),  # the village centres'
    village_notify_topic(B.village_id),
]


@pytest.fixture
async def broker() -> AsyncIterator[MosquittoBroker]:
    if not MosquittoBroker.available() or dynamic_security_plugin() is None:
        pytest.fail("mosquitto or its dynamic security plugin is not installed: run scripts/test, which installs it")
    async with MosquittoBroker(dynamic_security=ADMIN, persistence=True) as broker:
        yield broker


@pytest.fixture
async def access(broker: MosquittoBroker) -> AsyncIterator[BrokerAccess]:
    """Deny by default, the fleet's client, gateways A and B, and an observer that may read every Outpost topic."""
    async with DynsecControl(broker.host, broker.port, username=ADMIN.username, password=ADMIN.password) as control:
        access = BrokerAccess(control)
        await access.deny_by_default()
        await access.ensure_fleet_client(FLEET_USER, FLEET_PASSWORD, share_group=SHARE_GROUP)
        for gateway in (A, B):
            await access.provision_gateway(gateway.village_id, gateway.gateway_id, gateway.password, gateway.client_id)
        observer = [
            dynsec.create_role(
                "test-observer",
                [
                    Acl(AclType.SUBSCRIBE_PATTERN, "outpost/#"),
                    Acl(AclType.PUBLISH_CLIENT_RECEIVE, "outpost/#"),
                    *Acl.allowing(AclType.PUBLISH_CLIENT_SEND, [MARKER]),
                    *Acl.allowing(AclType.SUBSCRIBE_LITERAL, [MARKER]),
                    *Acl.allowing(AclType.PUBLISH_CLIENT_RECEIVE, [MARKER]),
                ],
            ),
            dynsec.create_client(OBSERVER, OBSERVER_PASSWORD, roles=["test-observer"]),
        ]
        raise_for_errors(observer, await control.execute(observer))
        yield access


async def retained_on_outpost_topics(broker: MosquittoBroker) -> dict[str, bytes]:
    """Every retained message under ``outpost/#``, by topic: read by the observer, up to its own retained marker."""
    found: dict[str, bytes] = {}
    async with client(broker, OBSERVER, OBSERVER_PASSWORD, name="observer") as observer:
        await observer.publish(MARKER, b"marker", qos=1, retain=True)
        for topic_filter in ("outpost/#", MARKER):
            [granted] = await observer.subscribe(topic_filter, qos=1)
            assert refusal_code(granted) == 1
        async for message in observer.messages:
            if message.topic.matches(MARKER):
                return found
            assert isinstance(message.payload, bytes)
            found[str(message.topic)] = message.payload
    raise AssertionError("the observer's messages ended")


async def received_before_marker(subscriber: aiomqtt.Client, marker_topic: str) -> list[tuple[str, bytes, bool]]:
    """What ``subscriber`` received (topic, payload, retain flag) before the first message on ``marker_topic``."""
    before: list[tuple[str, bytes, bool]] = []
    async for message in subscriber.messages:
        if message.topic.matches(marker_topic):
            return before
        assert isinstance(message.payload, bytes)
        before.append((str(message.topic), message.payload, message.retain))
    raise AssertionError("the subscriber's messages ended")


async def test_a_gateway_cannot_retain_a_message_where_it_may_not_publish(
    broker: MosquittoBroker, access: BrokerAccess
) -> None:
    for topic in FORBIDDEN:
        assert await mqtt5_puback(broker, A, topic, retain=True) == NOT_AUTHORISED, topic
        await publish_denied(broker, A, topic, retain=True)  # MQTT 3.1.1: acknowledged, dropped, hung up on
    assert await mqtt5_puback(broker, A, A.topic(Channel.PRESENCE), retain=True) < 0x80  # its own state: taken
    async with gateway_client(broker, A) as gateway:
        await gateway.publish(A.topic(Channel.PRESENCE), b"online", qos=1, retain=True)

    # Nothing but A's own presence is retained anywhere under outpost/.
    assert await retained_on_outpost_topics(broker) == {A.topic(Channel.PRESENCE): b"online"}

    # A new subscriber with the fleet's ingest login, asking for every retained message, gets A's presence only.
    async with client(broker, FLEET_USER, FLEET_PASSWORD, v5=True, name="late-fleet") as fleet:
        for topic_filter in uplink_filters():
            [granted] = await fleet.subscribe(topic_filter, qos=1)
            assert refusal_code(granted) == 1
        async with gateway_client(broker, A) as gateway:
            await gateway.publish(A.topic(Channel.EVENT), b"marker", qos=1)
        assert await received_before_marker(fleet, A.topic(Channel.EVENT)) == [
            (A.topic(Channel.PRESENCE), b"online", True)
        ]

    # Each gateway subscribing to its downlink gets nothing retained there either.
    for each in (A, B):
        async with gateway_client(broker, each) as subscriber:
            for topic_filter in gateway_filters(each.village_id, each.gateway_id):
                [granted] = await subscriber.subscribe(topic_filter, qos=1)
                assert refusal_code(granted) == 1
            async with client(broker, FLEET_USER, FLEET_PASSWORD, name="fleet-marker") as fleet:
                await fleet.publish(each.topic(Channel.COMMAND), b"marker", qos=1)
            assert await received_before_marker(subscriber, each.topic(Channel.COMMAND)) == []


# --- the fleet and what a gateway retains on its own uplink -------------------------------------------------


SEQ = itertools.count(1)


def panic(device_id: str, *, age_ms: int = 0) -> Alert:
    return Alert(
        gateway_id=A.gateway_id, seq=next(SEQ), event_id=uuid.uuid4(), ts=utc_now_ms() - age_ms,
        device_id=device_id, kind=AlertKind.PANIC, severity=Severity.CRITICAL, grid_id="v1-grid-1",
    )  # fmt: skip


def heartbeat(uptime_s: float) -> Heartbeat:
    health = GatewayHealth(cpu_percent=10.0, memory_percent=20.0, disk_percent=30.0, uptime_s=uptime_s)
    return Heartbeat(
        gateway_id=A.gateway_id, seq=next(SEQ), event_id=uuid.uuid4(), ts=utc_now_ms(),
        interval_s=HEARTBEAT_S, health=health,
    )  # fmt: skip


def said_goodbye() -> Presence:
    return Presence(
        gateway_id=A.gateway_id, seq=next(SEQ), event_id=uuid.uuid4(), ts=utc_now_ms(),
        state=PresenceState.OFFLINE, reason=PresenceReason.SHUTDOWN, agent_version="test",
    )  # fmt: skip


def came_online(gateway: Gateway) -> Presence:
    return Presence(
        gateway_id=gateway.gateway_id, seq=next(SEQ), event_id=uuid.uuid4(), ts=utc_now_ms(),
        state=PresenceState.ONLINE, reason=PresenceReason.CONNECTED, agent_version="test",
    )  # fmt: skip


def runs_config(version: int, *, age_ms: int) -> ConfigReported:
    return ConfigReported(
        gateway_id=A.gateway_id, seq=next(SEQ), event_id=uuid.uuid4(), ts=utc_now_ms() - age_ms,
        version=version, status=ConfigStatus.APPLIED,
    )  # fmt: skip


async def send(broker: MosquittoBroker, gateway: Gateway, *messages: tuple[Channel, Message, bool]) -> None:
    """Publish each (channel, message, retain) as ``gateway``, with its own login, over MQTT 5."""
    async with client(broker, gateway.gateway_id, gateway.password, v5=True, identifier=gateway.client_id) as sender:
        for channel, message, retain in messages:
            await sender.publish(gateway.topic(channel), encode(message), qos=1, retain=retain)


def administered_fleet(tmp_path: Path, broker: MosquittoBroker, platform: Platform) -> FleetSettings:
    """The fleet as in production: its own login (the fleet's client, made at start), the broker's administrator."""
    settings = fleet_settings(tmp_path, broker, platform.server.url, heartbeat_interval_s=HEARTBEAT_S)
    return settings.model_copy(
        update={
            "broker": BrokerSettings(
                host=broker.host, port=broker.port, username=FLEET_USER, password=SecretStr(FLEET_PASSWORD)
            ),
            "enrollment": EnrollmentSettings(dynsec_username=ADMIN.username, dynsec_password=SecretStr(ADMIN.password)),
        }
    )


def panic_cases(platform: Platform) -> list[str]:
    """The alert ids of the platform's panic cases (A's goodbye may open a gateway_offline case too)."""
    return sorted(str(case.alert_id) for case in platform.ledger.cases if case.request.kind == AlertKind.PANIC)


async def case_opened(platform: Platform, *alerts: Alert) -> None:
    async def opened() -> bool:
        return {str(alert.event_id) for alert in alerts} <= set(panic_cases(platform))

    await eventually(opened, what=f"the cases of {len(alerts)} presses")


async def gateway_a(fleet: FleetService) -> GatewayPublic:
    async with fleet_api(fleet.http.url) as api:
        response = await api.get(f"/gateways/{A.gateway_id}")
    response.raise_for_status()
    return GatewayPublic.model_validate(response.json())


async def reported_ms(fleet: FleetService) -> int | None:
    async with fleet_api(fleet.http.url) as api:
        response = await api.get("/config/status")
    response.raise_for_status()
    [sync] = [sync for sync in StatusReport.model_validate(response.json()).gateways if sync.gateway_id == A.gateway_id]
    return sync.reported_ms


async def panic_alerts(fleet: FleetService) -> list[AlertPublic]:
    async with fleet_api(fleet.http.url) as api:
        response = await api.get("/alerts", params={"kind": AlertKind.PANIC.value})
    response.raise_for_status()
    return [AlertPublic.model_validate(row) for row in response.json()]


async def health_reports_uptime(fleet: FleetService, uptime_s: float) -> bool:
    health = (await gateway_a(fleet)).health
    return health is not None and health.uptime_s == uptime_s


async def test_a_retained_alert_is_one_case_and_comes_back_neither_after_a_restart_while_state_does(
    tmp_path: Path, broker: MosquittoBroker, access: BrokerAccess, platform: Platform
) -> None:
    settings = administered_fleet(tmp_path, broker, platform)
    first, marker = panic("panic-well"), panic("panic-clinic")
    queued = panic("panic-school", age_ms=TEN_MINUTES_MS)  # pressed during an uplink outage
    async with running_service(settings) as fleet:
        # A gateway (broken, or abusing its login) retains an alert and a heartbeat, and its state as it should.
        await send(
            broker,
            A,
            (Channel.ALERT, first, True),
            (Channel.HEARTBEAT, heartbeat(uptime_s=111.0), True),
            (Channel.CONFIG_REPORTED, runs_config(3, age_ms=TEN_MINUTES_MS), True),
            (Channel.PRESENCE, said_goodbye(), True),
        )
        await case_opened(platform, first)
        await eventually(lambda: health_reports_uptime(fleet, 111.0), what="the retained heartbeat taken")
        await eventually(
            lambda: _holds(fleet.health().ingest.retained == {"alert": 1, "heartbeat": 1}),
            what="the retained alert and heartbeat counted",
        )
    # While the fleet is down, another press, retained too: the broker queues it in the fleet's session.
    await send(broker, A, (Channel.ALERT, queued, True))

    restarted_ms = utc_now_ms()
    async with running_service(settings) as fleet:

        async def state_taken_again() -> bool:
            gateway, report_ms = await gateway_a(fleet), await reported_ms(fleet)
            presence_again = (gateway.presence_changed_ms or 0) >= restarted_ms
            gone = gateway.presence_reason == PresenceReason.SHUTDOWN.value
            return presence_again and gone and (report_ms or 0) >= restarted_ms

        await eventually(state_taken_again, what="the retained presence and config report taken after the restart")
        await send(broker, A, (Channel.ALERT, marker, False), (Channel.HEARTBEAT, heartbeat(uptime_s=222.0), False))
        await case_opened(platform, queued, marker)
        await eventually(lambda: health_reports_uptime(fleet, 222.0), what="the live heartbeat taken")

        # Alerts lane: the press queued while down, and the live one; not the retained one again.
        # Control lane: the retained presence and config report, and the live heartbeat; not the retained one.
        assert (fleet.ingest[Lane.ALERTS].received, fleet.ingest[Lane.CONTROL].received) == (2, 3)
        assert fleet.health().ingest.retained == {"alert": 1}  # the queued press, published retained
        assert fleet.health().ingest.duplicates == 0
        stored = await panic_alerts(fleet)

    pressed = sorted(str(alert.event_id) for alert in (first, queued, marker))
    assert panic_cases(platform) == pressed  # one case each
    assert sorted(alert.id for alert in stored) == pressed
    assert [alert.occurrences for alert in stored] == [1, 1, 1]


async def test_a_retained_alert_is_not_taken_again_when_the_fleets_sessions_reconnect(
    tmp_path: Path, broker: MosquittoBroker, access: BrokerAccess, platform: Platform
) -> None:
    first, marker = panic("panic-well"), panic("panic-clinic")
    async with running_service(administered_fleet(tmp_path, broker, platform)) as fleet:
        await send(broker, A, (Channel.ALERT, first, True), (Channel.PRESENCE, said_goodbye(), True))
        await case_opened(platform, first)
        alerts_lane, control_lane = fleet.ingest[Lane.ALERTS], fleet.ingest[Lane.CONTROL]
        await eventually(lambda: _holds(control_lane.received == 1), what="the presence taken")
        assert alerts_lane.received == 1

        await broker.restart()  # every session reconnects and subscribes again; retained messages are kept

        async def reconnected() -> bool:
            return all(lane.session.connects == 2 for lane in fleet.ingest) and fleet.ingest.connected

        await eventually(reconnected, timeout_s=30, what="every ingest lane reconnected")
        await eventually(lambda: _holds(control_lane.received == 2), what="the retained presence taken again")
        await send(broker, A, (Channel.ALERT, marker, False))
        await case_opened(platform, marker)

        assert alerts_lane.received == 2  # the first press and the live one; not the retained one again
        ingest = fleet.health().ingest
        assert ingest.duplicates == 1  # the retained presence, taken again: state, a repeat of the one handled
        assert ingest.retained == {"alert": 1}
    assert panic_cases(platform) == sorted(str(alert.event_id) for alert in (first, marker))


async def test_a_deleted_or_moved_gateway_s_retained_presence_brings_it_back_nowhere_after_a_restart(
    tmp_path: Path, broker: MosquittoBroker, access: BrokerAccess, platform: Platform
) -> None:
    """A gateway's last presence stays retained on the broker after an admin deleted it or moved it to another
    village (the fleet's login cannot erase what a gateway retained). After a restart the fleet takes it again: it
    must neither bring the deleted gateway back nor move the moved one back (only live traffic, which the broker's
    ACLs hold to the gateway's own village, registers or moves a gateway)."""
    settings = administered_fleet(tmp_path, broker, platform)
    async with running_service(settings) as fleet:
        await send(broker, A, (Channel.PRESENCE, came_online(A), True))
        await send(broker, B, (Channel.PRESENCE, came_online(B), True))
        await eventually(lambda: _holds(len(fleet.registry.known_gateways()) == 2), what="both gateways registered")
        async with fleet_api(fleet.http.url) as api:
            deleting = await api.delete(f"/gateways/{A.gateway_id}")
            assert deleting.status_code == 204, deleting.text
            (await api.patch(f"/gateways/{B.gateway_id}", json={"village_id": A.village_id})).raise_for_status()

    async with running_service(settings) as fleet:
        await eventually(lambda: _holds(fleet.router.stale_retained == 2), what="both retained presences ignored")
        async with fleet_api(fleet.http.url) as api:
            deleted = await api.get(f"/gateways/{A.gateway_id}")
            moved = (await api.get(f"/gateways/{B.gateway_id}")).json()

    assert deleted.status_code == 404
    assert moved["village_id"] == A.village_id


async def _holds(condition: bool) -> bool:
    return condition
