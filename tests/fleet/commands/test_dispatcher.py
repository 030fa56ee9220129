"""The dispatcher: commands published through a real Mosquitto, answers matched, outcomes awaited, deadlines
kept by a sweeper that survives a fleet restart (the clock is a fake one: deadlines pass when a test says so)."""

import asyncio
import uuid

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from fleet.access.roles import Actor, Role
from fleet.commands.dispatcher import CommandDispatcher
from fleet.commands.store import NewCommand
from fleet.db.schema import CommandState
from fleet.mqtt.downlink import Downlink
from protocol.messages import Command, CommandName, CommandResponse
from tests.fleet.commands.conftest import GATEWAY, VILLAGE
from tests.fleet.commands.parts import dispatcher, unconnected_commands
from tests.fleet.helpers import FakeClock

TECHNICIAN = Actor("tech-zhao", Role.TECHNICIAN)


def diagnostics(timeout_s: float = 30.0) -> NewCommand:
    return NewCommand(GATEWAY, VILLAGE, CommandName.DIAGNOSTICS, {}, None, timeout_s)


def answer(command: Command | str, *, ok: bool = True) -> CommandResponse:
    request_id = command.request_id if isinstance(command, Command) else uuid.UUID(command)
    return CommandResponse(gateway_id=GATEWAY, seq=1, event_id=uuid.uuid4(), ts=1, request_id=request_id, ok=ok)


@pytest.mark.integration
async def test_a_command_reaches_its_gateway_with_who_why_and_its_timeout_and_is_marked_sent(
    sessions: async_sessionmaker[AsyncSession], clock: FakeClock, downlink: Downlink,
    gateway_inbox: "asyncio.Queue[Command]",
) -> None:  # fmt: skip
    commands = dispatcher(sessions, clock, downlink)
    snapshot = NewCommand(GATEWAY, VILLAGE, CommandName.FETCH_SNAPSHOT, {"snapshot_id": "ab" * 16}, "case 4", 20)

    row = await commands.send(TECHNICIAN, snapshot)

    assert row.state == CommandState.SENT
    assert row.sent_ms == clock.now_ms
    received = await asyncio.wait_for(gateway_inbox.get(), 10)
    assert str(received.request_id) == row.request_id
    assert (received.name, received.args) == (CommandName.FETCH_SNAPSHOT, {"snapshot_id": "ab" * 16})
    assert (received.requested_by, received.reason, received.timeout_s) == ("tech-zhao", "case 4", 20.0)
    assert received.ts == row.created_ms


@pytest.mark.integration
async def test_a_caller_waiting_for_the_outcome_gets_the_gateways_answer(
    sessions: async_sessionmaker[AsyncSession], clock: FakeClock, downlink: Downlink,
    gateway_inbox: "asyncio.Queue[Command]",
) -> None:  # fmt: skip
    commands = dispatcher(sessions, clock, downlink)
    row = await commands.send(TECHNICIAN, diagnostics())
    waiting = asyncio.create_task(commands.outcome(row.request_id, max_wait_s=30))

    received = await asyncio.wait_for(gateway_inbox.get(), 10)
    await commands.on_response(VILLAGE, answer(received, ok=False))

    outcome = await asyncio.wait_for(waiting, 10)
    assert outcome.state == CommandState.FAILED


@pytest.mark.integration
async def test_after_a_fleet_restart_pending_commands_are_published_or_timed_out(
    sessions: async_sessionmaker[AsyncSession], clock: FakeClock, downlink: Downlink,
    gateway_inbox: "asyncio.Queue[Command]",
) -> None:  # fmt: skip
    """A fleet stopped between recording and publishing left two commands pending: one whose deadline is still
    ahead goes out (the same request) when a new fleet starts; one whose deadline passed meanwhile times out."""
    before_restart = unconnected_commands(sessions, clock)
    still_due = await before_restart.store.record(TECHNICIAN, diagnostics(timeout_s=60))
    overdue = await before_restart.store.record(TECHNICIAN, diagnostics(timeout_s=5))
    clock.now_ms += 10_000

    after_restart = dispatcher(sessions, clock, downlink)
    await after_restart.resume()  # what run() does first, then it sweeps every sweep_interval_s
    assert await after_restart.sweep() == [overdue.request_id]

    received = await asyncio.wait_for(gateway_inbox.get(), 10)
    assert str(received.request_id) == still_due.request_id
    await after_restart.on_response(VILLAGE, answer(received))
    assert (await after_restart.store.get(still_due.request_id)).state == CommandState.SUCCEEDED  # type: ignore[union-attr]
    assert gateway_inbox.empty()


async def test_a_command_the_broker_does_not_take_is_undeliverable_with_the_reason(
    sessions: async_sessionmaker[AsyncSession], clock: FakeClock
) -> None:
    commands = unconnected_commands(sessions, clock)

    row = await commands.send(TECHNICIAN, diagnostics())

    assert row.state == CommandState.UNDELIVERABLE
    assert row.error is not None
    assert "could not publish" in row.error
    assert (await commands.outcome(row.request_id, max_wait_s=30)).state == CommandState.UNDELIVERABLE


async def test_a_caller_waiting_past_the_deadline_gets_timed_out_without_waiting_for_the_sweeper(
    sessions: async_sessionmaker[AsyncSession], clock: FakeClock
) -> None:
    commands = unconnected_commands(sessions, clock)
    row = await commands.store.record(TECHNICIAN, diagnostics(timeout_s=5))
    await commands.store.mark_sent(row.request_id, clock.now_ms)
    clock.now_ms += 5_000

    assert (await commands.outcome(row.request_id, max_wait_s=30)).state == CommandState.TIMED_OUT


async def test_the_sweeper_wakes_a_waiting_caller_at_the_deadline(
    sessions: async_sessionmaker[AsyncSession], clock: FakeClock
) -> None:
    commands = unconnected_commands(sessions, clock)
    row = await commands.store.record(TECHNICIAN, diagnostics(timeout_s=5))
    await commands.store.mark_sent(row.request_id, clock.now_ms)
    waiting = asyncio.create_task(commands.outcome(row.request_id, max_wait_s=30))
    await asyncio.sleep(0.05)  # the caller is waiting
    assert not waiting.done()

    clock.now_ms += 5_000
    assert await commands.sweep() == [row.request_id]

    assert (await asyncio.wait_for(waiting, 10)).state == CommandState.TIMED_OUT


async def test_answers_that_decide_nothing_are_counted(
    sessions: async_sessionmaker[AsyncSession], clock: FakeClock
) -> None:
    commands: CommandDispatcher = unconnected_commands(sessions, clock)
    answered = await commands.store.record(TECHNICIAN, diagnostics())
    expired = await commands.store.record(TECHNICIAN, diagnostics(timeout_s=1))
    await commands.on_response(VILLAGE, answer(answered.request_id))
    clock.now_ms += 2_000

    await commands.on_response(VILLAGE, answer(answered.request_id))  # a repeat
    await commands.on_response(VILLAGE, answer(expired.request_id))  # after its deadline
    await commands.on_response(VILLAGE, answer(str(uuid.uuid4())))  # never sent
    await commands.on_response(VILLAGE, answer(str(uuid.uuid4())))

    counts = commands.responses
    assert (counts.duplicate, counts.late, counts.unknown, counts.wrong_gateway) == (1, 1, 2, 0)
    late = await commands.store.get(expired.request_id)
    assert late is not None
    assert (late.state, late.answered_late) == (CommandState.TIMED_OUT, True)
