"""The command rows and their states, on SQLite and PostgreSQL: recorded with an audit entry, sent, answered in
time, late, twice, by the wrong gateway or for nothing known; expired at their deadline; attachments kept and
every view audited."""

import uuid
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from fleet.access.audit import AuditLog
from fleet.access.roles import Actor, Role
from fleet.commands.store import CommandStore, NewCommand, ResponseOutcome
from fleet.db.schema import CommandRow, CommandState
from fleet.errors import NotFoundError
from protocol.messages import MAX_ATTACHMENT_BYTES, CommandName, CommandResponse
from tests.fleet.helpers import FakeClock

TECHNICIAN = Actor("tech-zhao", Role.TECHNICIAN)
JPEG = b"\xff\xd8\xff\xe0" + bytes(1000) + b"\xff\xd9"


def diagnostics(gateway_id: str = "gw-01", timeout_s: float = 30.0) -> NewCommand:
    return NewCommand(gateway_id, "lakeside", CommandName.DIAGNOSTICS, {}, None, timeout_s)


def answer(row: CommandRow, *, ok: bool = True, gateway_id: str | None = None, **fields: Any) -> CommandResponse:
    return CommandResponse(
        gateway_id=gateway_id or row.gateway_id,
        seq=7,
        event_id=uuid.uuid4(),
        ts=row.created_ms + 50,
        request_id=uuid.UUID(row.request_id),
        ok=ok,
        **fields,
    )


async def state_of(store: CommandStore, row: CommandRow) -> CommandRow:
    current = await store.get(row.request_id)
    assert current is not None
    return current


async def test_a_command_is_recorded_pending_with_its_deadline_and_audited(
    store: CommandStore, any_sessions: async_sessionmaker[AsyncSession], clock: FakeClock
) -> None:
    command = NewCommand("gw-01", "lakeside", CommandName.LIST_SNAPSHOTS, {"device_id": "cam-1"}, "case 17", 12.5)
    row = await store.record(TECHNICIAN, command)

    stored = await state_of(store, row)
    assert stored.state == CommandState.PENDING
    assert stored.requested_by == "tech-zhao"
    assert stored.deadline_ms == clock.now_ms + 12_500
    [entry] = await AuditLog(any_sessions).entries(target_type="command")
    assert (entry.actor, entry.action, entry.target_id) == ("tech-zhao", "command.send", f"gw-01/{row.request_id}")
    assert entry.after is not None
    assert entry.after["reason"] == "case 17"
    assert entry.after["args"] == {"device_id": "cam-1"}


async def test_an_answer_by_the_deadline_decides_the_outcome(store: CommandStore, clock: FakeClock) -> None:
    good = await store.record(TECHNICIAN, diagnostics())
    bad = await store.record(TECHNICIAN, diagnostics())
    assert await store.mark_sent(good.request_id, clock.now_ms)
    assert await store.mark_sent(bad.request_id, clock.now_ms)
    clock.now_ms += 1_000

    assert await store.record_response(answer(good, result={"uptime_s": 12.0})) is ResponseOutcome.ANSWERED
    assert await store.record_response(answer(bad, ok=False, error="busy")) is ResponseOutcome.ANSWERED

    succeeded, failed = await state_of(store, good), await state_of(store, bad)
    assert (succeeded.state, succeeded.result, succeeded.responded_ms) == (
        "succeeded",
        {"uptime_s": 12.0},
        clock.now_ms,
    )
    assert (failed.state, failed.error) == ("failed", "busy")
    assert not succeeded.answered_late


async def test_an_answer_that_overtakes_the_sent_mark_still_counts(store: CommandStore, clock: FakeClock) -> None:
    """The gateway may answer before the dispatcher has recorded the broker's PUBACK."""
    row = await store.record(TECHNICIAN, diagnostics())
    assert await store.record_response(answer(row)) is ResponseOutcome.ANSWERED
    assert not await store.mark_sent(row.request_id, clock.now_ms)
    assert (await state_of(store, row)).state == CommandState.SUCCEEDED


@pytest.mark.parametrize("swept_first", [True, False])
async def test_an_answer_after_the_deadline_is_kept_but_the_command_stays_timed_out(
    store: CommandStore, clock: FakeClock, swept_first: bool
) -> None:
    row = await store.record(TECHNICIAN, diagnostics(timeout_s=5))
    await store.mark_sent(row.request_id, clock.now_ms)
    clock.now_ms += 5_001
    if swept_first:
        assert await store.expire(clock.now_ms) == [row.request_id]

    assert await store.record_response(answer(row, result={"uptime_s": 3.0})) is ResponseOutcome.LATE

    late = await state_of(store, row)
    assert late.state == CommandState.TIMED_OUT
    assert late.answered_late
    assert late.result == {"uptime_s": 3.0}
    assert late.responded_ms == clock.now_ms


async def test_a_second_answer_is_ignored(store: CommandStore) -> None:
    row = await store.record(TECHNICIAN, diagnostics())
    await store.record_response(answer(row, result={"first": True}))

    assert await store.record_response(answer(row, ok=False, error="again")) is ResponseOutcome.DUPLICATE
    assert (await state_of(store, row)).result == {"first": True}


async def test_answers_for_unknown_commands_or_from_another_gateway_change_nothing(store: CommandStore) -> None:
    row = await store.record(TECHNICIAN, diagnostics("gw-01"))
    stranger = CommandResponse(gateway_id="gw-01", seq=1, event_id=uuid.uuid4(), ts=1, request_id=uuid.uuid4(), ok=True)

    assert await store.record_response(stranger) is ResponseOutcome.UNKNOWN
    assert await store.record_response(answer(row, gateway_id="gw-02")) is ResponseOutcome.WRONG_GATEWAY
    assert (await state_of(store, row)).state == CommandState.PENDING


async def test_expiry_ends_only_open_commands_whose_deadline_has_come(store: CommandStore, clock: FakeClock) -> None:
    pending = await store.record(TECHNICIAN, diagnostics(timeout_s=5))
    sent = await store.record(TECHNICIAN, diagnostics(timeout_s=5))
    answered = await store.record(TECHNICIAN, diagnostics(timeout_s=5))
    undeliverable = await store.record(TECHNICIAN, diagnostics(timeout_s=5))
    later = await store.record(TECHNICIAN, diagnostics(timeout_s=60))
    await store.mark_sent(sent.request_id, clock.now_ms)
    await store.record_response(answer(answered))
    await store.mark_undeliverable(undeliverable.request_id, "no broker connection")

    clock.now_ms += 4_999
    assert await store.expire(clock.now_ms) == []
    clock.now_ms += 1
    assert sorted(await store.expire(clock.now_ms)) == sorted([pending.request_id, sent.request_id])

    states = {row.request_id: (await state_of(store, row)).state for row in (answered, undeliverable, later)}
    assert states == {
        answered.request_id: CommandState.SUCCEEDED,
        undeliverable.request_id: CommandState.UNDELIVERABLE,
        later.request_id: CommandState.PENDING,
    }
    assert await store.expire(clock.now_ms) == []


async def test_an_undeliverable_command_that_reached_the_gateway_after_all_takes_its_answer(
    store: CommandStore,
) -> None:
    """A publish that timed out may still have reached the broker: the gateway's answer is the truth."""
    row = await store.record(TECHNICIAN, diagnostics())
    await store.mark_undeliverable(row.request_id, "could not publish within 5 s")

    assert await store.record_response(answer(row)) is ResponseOutcome.ANSWERED
    assert (await state_of(store, row)).state == CommandState.SUCCEEDED


async def test_a_fetched_snapshot_is_kept_with_its_size_and_type_and_each_view_is_audited(
    store: CommandStore, any_sessions: async_sessionmaker[AsyncSession]
) -> None:
    command = NewCommand("gw-01", "lakeside", CommandName.FETCH_SNAPSHOT, {"snapshot_id": "ab" * 16}, "case 9", 30)
    row = await store.record(TECHNICIAN, command)
    result = {"snapshot_id": "ab" * 16, "device_id": "cam-1", "bytes": len(JPEG)}
    await store.record_response(answer(row, result=result, attachment=JPEG))

    listed = await store.list("gw-01")
    assert [(r.attachment_bytes, r.attachment_content_type) for r in listed] == [(len(JPEG), "image/jpeg")]
    viewer = Actor("tech-qian", Role.TECHNICIAN)
    viewed, content = await store.view_attachment(viewer, row.request_id)

    assert content == JPEG
    assert viewed.request_id == row.request_id
    views = [e for e in await AuditLog(any_sessions).entries(target_type="command") if e.action == "snapshot.view"]
    assert [(e.actor, e.target_id) for e in views] == [("tech-qian", f"gw-01/{row.request_id}")]
    assert views[0].after is not None
    assert views[0].after["snapshot_id"] == "ab" * 16


async def test_a_command_without_an_attachment_has_none_to_view(store: CommandStore) -> None:
    row = await store.record(TECHNICIAN, diagnostics())
    await store.record_response(answer(row))
    with pytest.raises(NotFoundError):
        await store.view_attachment(TECHNICIAN, row.request_id)
    with pytest.raises(NotFoundError):
        await store.view_attachment(TECHNICIAN, str(uuid.uuid4()))


async def test_an_attachment_that_is_not_a_jpeg_is_not_served_as_one(store: CommandStore) -> None:
    row = await store.record(TECHNICIAN, diagnostics())
    await store.record_response(answer(row, attachment=b"<html>" + bytes(MAX_ATTACHMENT_BYTES - 6)))
    assert (await state_of(store, row)).attachment_content_type == "application/octet-stream"


async def test_listing_is_per_gateway_newest_first_and_filters_by_state(store: CommandStore, clock: FakeClock) -> None:
    first = await store.record(TECHNICIAN, diagnostics("gw-01"))
    second = await store.record(TECHNICIAN, diagnostics("gw-01"))
    await store.record(TECHNICIAN, diagnostics("gw-02"))
    await store.mark_sent(second.request_id, clock.now_ms)

    assert [r.request_id for r in await store.list("gw-01")] == [second.request_id, first.request_id]
    assert [r.request_id for r in await store.list("gw-01", state=CommandState.PENDING)] == [first.request_id]
    assert [r.request_id for r in await store.list("gw-01", limit=1)] == [second.request_id]
