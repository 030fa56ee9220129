"""The outbound queue: order, retries at the front, and what is dropped first when it is full."""

import asyncio
import uuid
from collections import Counter
from collections.abc import Callable
from itertools import count

import pytest

from edge.envelope import EnvelopeFields
from edge.outbound import OutboundQueue, Outgoing
from protocol.codec import Decoder, Inbound, encode
from protocol.messages import (
    Alert,
    AlertKind,
    CommandResponse,
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
)
from protocol.topics import Channel

VILLAGE = "lakeside"
GATEWAY = "gw-01"
_seq = count()


def _envelope() -> EnvelopeFields:
    return EnvelopeFields(gateway_id=GATEWAY, seq=next(_seq), event_id=uuid.uuid4(), ts=1_700_000_000_000)


def alert() -> Alert:
    return Alert(
        **_envelope(),
        device_id="panic-1",
        kind=AlertKind.PANIC,
        severity=Severity.CRITICAL,
    )


def event() -> DeviceEvent:
    return DeviceEvent(**_envelope(), device_id="door-1", kind=EventKind.DOOR_OPENED)


def telemetry() -> TelemetryBatch:
    point = TelemetryPoint(device_id="camera-1", metric="line_in", value=2.0, ts=1)
    return TelemetryBatch(**_envelope(), points=[point])


def heartbeat() -> Heartbeat:
    health = GatewayHealth(cpu_percent=1.0, memory_percent=2.0, disk_percent=3.0, uptime_s=4.0)
    return Heartbeat(**_envelope(), interval_s=10.0, health=health)


def config_reported() -> ConfigReported:
    return ConfigReported(**_envelope(), version=1, status=ConfigStatus.APPLIED)


def command_response() -> CommandResponse:
    return CommandResponse(**_envelope(), request_id=uuid.uuid4(), ok=True)


def presence() -> Presence:
    return Presence(
        **_envelope(),
        state=PresenceState.ONLINE,
        reason=PresenceReason.CONNECTED,
        agent_version="0.1.0",
    )


def decoded(item: Outgoing) -> Message:
    result = Decoder().decode(item.topic, item.payload)
    assert isinstance(result, Inbound), result
    return result.message


async def drain(queue: OutboundQueue) -> list[Message]:
    messages = []
    while len(queue):
        item = await queue.get()
        messages.append(decoded(item))
        queue.task_done()
    return messages


def test_wrap_addresses_the_message_to_its_gateway_topic() -> None:
    queue = OutboundQueue(VILLAGE, GATEWAY, limit=10)
    message = alert()

    item = queue.wrap(message)

    assert item.channel is Channel.ALERT
    assert item.topic == "outpost/v1/lakeside/gw-01/alert"
    assert item.payload == encode(message)
    assert decoded(item) == message


@pytest.mark.parametrize(
    ("factory", "qos", "retain"),
    [
        (alert, 1, False),
        (event, 1, False),
        (telemetry, 1, False),
        (heartbeat, 0, False),
        (config_reported, 1, True),
        (command_response, 1, False),
        (presence, 1, True),
    ],
    ids=lambda value: getattr(value, "__name__", repr(value)),
)
def test_heartbeats_go_at_qos_0_everything_else_at_qos_1_and_state_is_retained(
    factory: Callable[[], Message], qos: int, retain: bool
) -> None:
    item = OutboundQueue(VILLAGE, GATEWAY, limit=10).wrap(factory())

    assert item.qos == qos
    assert item.retain is retain


async def test_messages_leave_in_the_order_they_were_put() -> None:
    queue = OutboundQueue(VILLAGE, GATEWAY, limit=10)
    messages: list[Message] = [alert(), telemetry(), event(), heartbeat()]
    for message in messages:
        queue.put(message)

    assert len(queue) == 4
    assert await drain(queue) == messages
    assert len(queue) == 0


async def test_a_requeued_item_is_sent_before_everything_else() -> None:
    queue = OutboundQueue(VILLAGE, GATEWAY, limit=10)
    first, second, third = alert(), event(), telemetry()
    for message in (first, second, third):
        queue.put(message)

    failed = await queue.get()
    queue.requeue(failed)

    assert await drain(queue) == [first, second, third]


async def test_get_waits_for_a_message() -> None:
    queue = OutboundQueue(VILLAGE, GATEWAY, limit=10)
    getter = asyncio.create_task(queue.get())
    await asyncio.sleep(0)
    assert not getter.done()

    message = alert()
    queue.put(message)

    assert decoded(await getter) == message


async def test_get_wakes_for_a_requeued_item() -> None:
    queue = OutboundQueue(VILLAGE, GATEWAY, limit=10)
    message = alert()
    queue.put(message)
    item = await queue.get()
    getter = asyncio.create_task(queue.get())
    await asyncio.sleep(0)
    assert not getter.done()

    queue.requeue(item)

    assert await getter == item


async def test_when_full_the_oldest_telemetry_goes_first_then_heartbeats_then_events() -> None:
    queue = OutboundQueue(VILLAGE, GATEWAY, limit=5)
    first_alert, old_event, old_telemetry, new_telemetry, beat = alert(), event(), telemetry(), telemetry(), heartbeat()
    for message in (first_alert, old_event, old_telemetry, new_telemetry, beat):
        queue.put(message)

    newer_alerts = [alert() for _ in range(4)]
    for message in newer_alerts:
        queue.put(message)

    assert queue.dropped == Counter({Channel.TELEMETRY: 2, Channel.HEARTBEAT: 1, Channel.EVENT: 1})
    assert await drain(queue) == [first_alert, *newer_alerts]


async def test_when_full_the_oldest_telemetry_batch_is_dropped() -> None:
    queue = OutboundQueue(VILLAGE, GATEWAY, limit=3)
    old_telemetry, panic, new_telemetry = telemetry(), alert(), telemetry()
    for message in (old_telemetry, panic, new_telemetry):
        queue.put(message)

    latest = event()
    queue.put(latest)

    assert queue.dropped == Counter({Channel.TELEMETRY: 1})
    assert await drain(queue) == [panic, new_telemetry, latest]


async def test_config_reports_are_dropped_after_events_and_before_alerts() -> None:
    queue = OutboundQueue(VILLAGE, GATEWAY, limit=3)
    first_alert, report, old_event = alert(), config_reported(), event()
    for message in (first_alert, report, old_event):
        queue.put(message)

    second_alert, third_alert = alert(), alert()
    queue.put(second_alert)
    queue.put(third_alert)

    assert queue.dropped == Counter({Channel.EVENT: 1, Channel.CONFIG_REPORTED: 1})
    assert await drain(queue) == [first_alert, second_alert, third_alert]


async def test_alerts_are_dropped_only_when_nothing_else_is_left_and_then_the_oldest() -> None:
    queue = OutboundQueue(VILLAGE, GATEWAY, limit=3)
    alerts = [alert() for _ in range(5)]
    for message in alerts:
        queue.put(message)

    assert queue.dropped == Counter({Channel.ALERT: 2})
    assert len(queue) == 3
    assert await drain(queue) == alerts[2:]


async def test_a_full_queue_keeps_its_limit_and_counts_every_drop() -> None:
    queue = OutboundQueue(VILLAGE, GATEWAY, limit=10)

    for _ in range(25):
        queue.put(telemetry())

    assert len(queue) == 10
    assert queue.dropped == Counter({Channel.TELEMETRY: 15})


async def test_an_alert_outlives_any_other_kind_of_message_when_full() -> None:
    queue = OutboundQueue(VILLAGE, GATEWAY, limit=2)
    panic, response = alert(), command_response()
    queue.put(panic)
    queue.put(response)

    queue.put(heartbeat())

    assert queue.dropped[Channel.ALERT] == 0
    assert panic in await drain(queue)


async def test_join_returns_at_once_when_nothing_was_queued() -> None:
    await OutboundQueue(VILLAGE, GATEWAY, limit=10).join()


async def test_join_waits_until_every_item_is_published() -> None:
    queue = OutboundQueue(VILLAGE, GATEWAY, limit=10)
    queue.put(alert())
    queue.put(event())
    joiner = asyncio.create_task(queue.join())

    await queue.get()
    queue.task_done()
    await queue.get()
    await asyncio.sleep(0)
    assert not joiner.done(), "one message is still in flight"

    queue.task_done()
    await joiner


async def test_an_item_requeued_after_a_failed_publish_still_holds_join_back() -> None:
    queue = OutboundQueue(VILLAGE, GATEWAY, limit=10)
    queue.put(alert())
    joiner = asyncio.create_task(queue.join())

    queue.requeue(await queue.get())
    await asyncio.sleep(0)
    assert not joiner.done()

    await queue.get()
    queue.task_done()
    await joiner


async def test_dropped_items_count_as_settled_for_join() -> None:
    queue = OutboundQueue(VILLAGE, GATEWAY, limit=2)
    for _ in range(5):
        queue.put(telemetry())
    joiner = asyncio.create_task(queue.join())
    await asyncio.sleep(0)
    assert not joiner.done()

    await drain(queue)

    await joiner
    assert queue.dropped == Counter({Channel.TELEMETRY: 3})


async def test_join_waits_again_after_new_messages_arrive() -> None:
    queue = OutboundQueue(VILLAGE, GATEWAY, limit=10)
    queue.put(alert())
    await drain(queue)
    await queue.join()

    queue.put(event())
    joiner = asyncio.create_task(queue.join())
    await asyncio.sleep(0)

    assert not joiner.done()
    await drain(queue)
    await joiner


async def test_new_telemetry_is_refused_rather_than_pushing_out_a_queued_alert() -> None:
    queue = OutboundQueue(VILLAGE, GATEWAY, limit=3)
    alerts = [alert() for _ in range(3)]
    for item in alerts:
        queue.put(item)

    queue.put(telemetry())

    assert queue.dropped == Counter({Channel.TELEMETRY: 1})
    assert [decoded(item) for item in [await queue.get() for _ in range(3)]] == alerts
    assert len(queue) == 0


async def test_a_new_alert_into_a_queue_of_alerts_drops_the_oldest_alert() -> None:
    queue = OutboundQueue(VILLAGE, GATEWAY, limit=2)
    oldest, middle, newest = alert(), alert(), alert()
    for item in (oldest, middle, newest):
        queue.put(item)

    assert queue.dropped == Counter({Channel.ALERT: 1})
    assert [decoded(await queue.get()), decoded(await queue.get())] == [middle, newest]
