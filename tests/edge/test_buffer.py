"""The store-and-forward buffer on a real SQLite file: durable, ordered, bounded, never losing alerts."""

import uuid
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from edge.buffer import StoreAndForwardBuffer, Stored
from edge.faults import BUFFER_IN_MEMORY, STORE, GatewayFaults
from edge.outgoing import Outgoing, outgoing
from protocol.codec import Decoder, Inbound
from protocol.messages import (
    Alert,
    AlertKind,
    DeviceEvent,
    EventKind,
    Message,
    Severity,
    TelemetryBatch,
    TelemetryPoint,
)
from protocol.topics import Channel

VILLAGE, GATEWAY = "dongshan", "gw-dongshan"
_seq = iter(range(1, 1_000_000))


def _envelope() -> dict[str, object]:
    return {"gateway_id": GATEWAY, "seq": next(_seq), "event_id": uuid.uuid4(), "ts": 1_795_000_000_000}


def alert() -> Outgoing:
    return outgoing(
        VILLAGE,
        GATEWAY,
        Alert(**_envelope(), device_id="panic-1", kind=AlertKind.PANIC, severity=Severity.CRITICAL),  # type: ignore[arg-type]
    )


def event() -> Outgoing:
    return outgoing(VILLAGE, GATEWAY, DeviceEvent(**_envelope(), device_id="door-1", kind=EventKind.DOOR_OPENED))  # type: ignore[arg-type]


def telemetry(points: int = 50) -> Outgoing:
    batch = TelemetryBatch(
        **_envelope(),  # type: ignore[arg-type]
        points=[TelemetryPoint(device_id="cam-1", metric="line_in", value=float(i), ts=1) for i in range(points)],
    )
    return outgoing(VILLAGE, GATEWAY, batch)


def decoded(stored: Stored) -> Message:
    result = Decoder().decode(stored.item.topic, stored.item.payload)
    assert isinstance(result, Inbound)
    return result.message


@pytest.fixture
async def buffer(tmp_path: Path) -> AsyncIterator[StoreAndForwardBuffer]:
    opened = StoreAndForwardBuffer(tmp_path / "buffer.db", max_bytes=1024 * 1024)
    await opened.open()
    yield opened
    await opened.close()


async def test_messages_come_back_in_the_order_they_were_stored(buffer: StoreAndForwardBuffer) -> None:
    items = [alert(), event(), telemetry(), alert(), event()]
    await buffer.put(items)

    taken = await buffer.take(10)

    assert [stored.item for stored in taken] == items
    assert [decoded(stored).seq for stored in taken] == sorted(decoded(stored).seq for stored in taken)


async def test_a_stored_message_survives_a_restart_until_confirmed(tmp_path: Path) -> None:
    first = StoreAndForwardBuffer(tmp_path / "buffer.db", max_bytes=1024 * 1024)
    await first.open()
    kept, sent = alert(), event()
    await first.put([sent, kept])
    batch = await first.take(1)
    await first.confirm(batch)
    await first.close()

    second = StoreAndForwardBuffer(tmp_path / "buffer.db", max_bytes=1024 * 1024)
    await second.open()
    try:
        assert second.depth == 1
        [stored] = await second.take(10)
        assert stored.item == kept
    finally:
        await second.close()


async def test_released_messages_are_handed_out_again_in_order(buffer: StoreAndForwardBuffer) -> None:
    items = [alert() for _ in range(5)]
    await buffer.put(items)
    first = await buffer.take(3)

    buffer.release()  # the connection dropped before the broker acknowledged them

    again = await buffer.take(10)
    assert [stored.item for stored in again] == items
    assert [stored.id for stored in again[:3]] == [stored.id for stored in first]


async def test_take_hands_out_each_message_once_until_released(buffer: StoreAndForwardBuffer) -> None:
    await buffer.put([alert() for _ in range(4)])
    first = await buffer.take(2)
    second = await buffer.take(2)
    assert {s.id for s in first}.isdisjoint({s.id for s in second})


async def test_confirmed_messages_are_gone_and_drained_returns(buffer: StoreAndForwardBuffer) -> None:
    await buffer.put([alert(), telemetry()])
    await buffer.confirm(await buffer.take(10))

    assert buffer.depth == 0
    assert buffer.size_bytes == 0
    await buffer.drained()


async def test_when_full_the_oldest_telemetry_goes_first_and_alerts_never(tmp_path: Path) -> None:
    buffer = StoreAndForwardBuffer(tmp_path / "buffer.db", max_bytes=64 * 1024)
    await buffer.open()
    try:
        alerts = [alert() for _ in range(20)]
        await buffer.put(alerts[:10])
        await buffer.put([telemetry(200) for _ in range(8)])  # ~90 KiB of telemetry: over the bound
        await buffer.put(alerts[10:])

        kept = [stored.item for stored in await buffer.take(1000)]
    finally:
        await buffer.close()

    assert [item for item in kept if item.channel is Channel.ALERT] == alerts
    telemetry_kept = [item for item in kept if item.channel is Channel.TELEMETRY]
    assert 0 < len(telemetry_kept) < 8
    assert buffer.dropped == Counter({Channel.TELEMETRY: 8 - len(telemetry_kept)})
    assert buffer.dropped[Channel.ALERT] == 0


async def test_alerts_are_kept_even_beyond_the_bound(tmp_path: Path) -> None:
    buffer = StoreAndForwardBuffer(tmp_path / "buffer.db", max_bytes=64 * 1024)
    await buffer.open()
    try:
        alerts = [alert() for _ in range(400)]  # ~100 KiB of alerts and nothing else
        await buffer.put(alerts)
        kept = [stored.item for stored in await buffer.take(1000)]
    finally:
        await buffer.close()
    assert kept == alerts
    assert buffer.dropped == Counter()


async def test_events_go_before_alerts_once_telemetry_is_gone(tmp_path: Path) -> None:
    buffer = StoreAndForwardBuffer(tmp_path / "buffer.db", max_bytes=64 * 1024)
    await buffer.open()
    try:
        events = [event() for _ in range(200)]
        alerts = [alert() for _ in range(200)]
        await buffer.put(events)
        await buffer.put(alerts)
        kept = [stored.item for stored in await buffer.take(1000)]
    finally:
        await buffer.close()
    assert [item for item in kept if item.channel is Channel.ALERT] == alerts
    assert buffer.dropped[Channel.EVENT] > 0
    assert buffer.dropped[Channel.ALERT] == 0


async def test_a_submitted_message_is_durable_once_its_future_completes(tmp_path: Path) -> None:
    buffer = StoreAndForwardBuffer(tmp_path / "buffer.db", max_bytes=1024 * 1024)
    await buffer.open()
    item = alert()
    await buffer.submit(item)
    # Read the file with a second connection, as a restarted agent would.
    reader = StoreAndForwardBuffer(tmp_path / "buffer.db", max_bytes=1024 * 1024)
    await reader.open()
    try:
        assert [stored.item for stored in await reader.take(10)] == [item]
    finally:
        await reader.close()
        await buffer.close()


async def test_an_unusable_location_leaves_the_buffer_in_memory_and_says_so(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    faults = GatewayFaults()
    buffer = StoreAndForwardBuffer(blocker / "buffer.db", max_bytes=1024 * 1024, faults=faults)
    await buffer.open()
    try:
        item = alert()
        await buffer.put([item])
        assert [stored.item for stored in await buffer.take(10)] == [item]
    finally:
        await buffer.close()

    assert buffer.in_memory
    assert faults.counts[BUFFER_IN_MEMORY] == 1
    assert "cannot open the buffer" in (faults.reason(STORE) or "")
