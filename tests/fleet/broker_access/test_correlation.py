"""Answers reach the commands awaiting them by correlation id, whatever their order or company."""

import asyncio

import pytest

from fleet.broker_access.correlation import PendingResponses
from fleet.broker_access.responses import CommandResponse
from fleet.errors import BrokerControlUnavailableError


async def test_answers_in_any_order_complete_their_own_commands() -> None:
    pending = PendingResponses("s")
    futures = pending.expect(2)
    first, second = futures

    assert (first, second) == ("s-1", "s-2")
    resolved = pending.resolve(
        [CommandResponse("b", correlation_data=second), CommandResponse("a", error="nope", correlation_data=first)]
    )

    assert resolved == 2
    assert (await futures[first]).error == "nope"
    assert (await futures[second]).command == "b"
    assert len(pending) == 0


async def test_other_sessions_answers_and_uncorrelated_ones_are_ignored() -> None:
    pending = PendingResponses("mine")
    [correlation] = pending.expect(1)

    resolved = pending.resolve(
        [
            CommandResponse("getClient", correlation_data="theirs-1"),
            CommandResponse("Unknown command", error="Payload not valid JSON"),
        ]
    )

    assert resolved == 0
    assert len(pending) == 1
    assert pending.resolve([CommandResponse("getClient", correlation_data=correlation)]) == 1


async def test_ids_keep_increasing_and_sessions_get_distinct_prefixes() -> None:
    pending = PendingResponses("p")

    assert list(pending.expect(2)) == ["p-1", "p-2"]
    assert list(pending.expect(1)) == ["p-3"]
    assert PendingResponses().expect(1).keys() != PendingResponses().expect(1).keys()


async def test_a_discarded_command_ignores_its_late_answer() -> None:
    pending = PendingResponses("p")
    futures = pending.expect(1)

    pending.discard(futures)

    assert futures["p-1"].cancelled()
    assert pending.resolve([CommandResponse("getClient", correlation_data="p-1")]) == 0


async def test_a_lost_session_fails_every_waiting_command_and_every_later_one() -> None:
    pending = PendingResponses("p")
    futures = pending.expect(2)
    lost = BrokerControlUnavailableError("gone")

    pending.fail_all(lost)

    for future in futures.values():
        with pytest.raises(BrokerControlUnavailableError, match="gone"):
            await future
    with pytest.raises(BrokerControlUnavailableError, match="gone"):
        pending.expect(1)
    await asyncio.sleep(0)
