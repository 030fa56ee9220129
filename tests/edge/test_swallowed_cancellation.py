"""A gateway asked to stop just as its broker connection completes stops: Python 3.11's ``asyncio.wait_for`` (which
aiomqtt connects through) returns the connection instead of raising the cancellation, and the session re-raises it."""

import asyncio

import pytest

from edge.broker_connection import raise_if_cancelled

HANG_DETECTOR_S = 5.0


async def test_a_cancellation_swallowed_as_the_connection_completes_is_raised_again() -> None:
    connected: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    steps: list[str] = []

    async def session() -> None:
        await asyncio.wait_for(connected, 10)  # as aiomqtt's Client.__aenter__ connects
        steps.append("connected")
        raise_if_cancelled()
        steps.append("in session")
        await asyncio.sleep(3600)  # waiting for messages

    task = asyncio.create_task(session())
    await asyncio.sleep(0)  # the session waits for the connection
    connected.set_result(None)  # the CONNACK arrives ...
    task.cancel()  # ... as the gateway is asked to stop

    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, HANG_DETECTOR_S)
    assert "in session" not in steps


async def test_a_task_nobody_cancelled_goes_on() -> None:
    raise_if_cancelled()
