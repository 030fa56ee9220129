"""``outpost fleet command send|list|show`` against the fleet's API served over real HTTP, its commands published
through a real Mosquitto and answered as the ingest router hands a gateway's answer over."""

import asyncio
import dataclasses
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from fleet.api.context import ApiContext
from fleet.cli.app import app
from fleet.mqtt.downlink import Downlink
from protocol.messages import Command, CommandResponse
from tests.fleet.api_client import ADMIN_TOKEN, api_context
from tests.fleet.commands.conftest import GATEWAY, VILLAGE
from tests.fleet.commands.parts import dispatcher
from tests.fleet.helpers import FakeClock
from tests.fleet.served_api import invoke, served_api

pytestmark = pytest.mark.integration

JPEG = b"\xff\xd8\xff\xe0" + bytes(500) + b"\xff\xd9"


@pytest.fixture
async def context(sessions: async_sessionmaker[AsyncSession], clock: FakeClock, downlink: Downlink) -> ApiContext:
    context = api_context(sessions, clock)
    await context.registry.register(VILLAGE, GATEWAY)
    return dataclasses.replace(context, commands=dispatcher(sessions, clock, downlink))


@pytest.fixture
async def fleet(context: ApiContext) -> AsyncIterator[str]:
    async with served_api(context) as url:
        yield url


async def test_a_snapshot_is_fetched_and_saved_from_the_terminal(
    context: ApiContext, fleet: str, tmp_path: Path, gateway_inbox: "asyncio.Queue[Command]"
) -> None:
    gateway = asyncio.create_task(_answer(context, gateway_inbox))
    saved = tmp_path / "evidence.jpg"
    args = ["command", "send", GATEWAY, "fetch_snapshot", "--arg", f"snapshot_id={'ab' * 16}"]
    fetched = await invoke(
        app, [*args, "--reason", "case 5", "--timeout", "1m30s", "--save-attachment", str(saved)],
        token=ADMIN_TOKEN, fleet=fleet,
    )  # fmt: skip
    received = await gateway

    assert fetched.exit_code == 0, fetched.output
    assert "state: succeeded" in fetched.stdout
    assert f"saved {len(JPEG)} bytes to {saved}" in fetched.stderr
    assert saved.read_bytes() == JPEG
    assert (received.args, received.reason, received.timeout_s) == ({"snapshot_id": "ab" * 16}, "case 5", 90.0)
    request_id = str(received.request_id)
    listed = await invoke(app, ["command", "list", GATEWAY], token=ADMIN_TOKEN, fleet=fleet)
    assert request_id in listed.output
    shown = await invoke(app, ["command", "show", request_id], token=ADMIN_TOKEN, fleet=fleet)
    assert f"attachment: {len(JPEG)} bytes, image/jpeg" in shown.output
    as_json = await invoke(app, ["command", "show", request_id, "--json"], token=ADMIN_TOKEN, fleet=fleet)
    assert json.loads(as_json.stdout)["attachment"]["bytes"] == len(JPEG)


async def test_typed_arguments_and_an_unanswered_command_exit_non_zero(
    fleet: str, gateway_inbox: "asyncio.Queue[Command]"
) -> None:
    """No gateway answers: with --wait the CLI gives up after the fleet's max_wait_s and says so with exit 1."""
    args = ["command", "send", GATEWAY, "list_snapshots", "--arg", "device_id=cam-1", "--arg", "before_ts:=1700"]
    unanswered = await invoke(app, args, token=ADMIN_TOKEN, fleet=fleet)
    not_waiting = await invoke(app, [*args, "--no-wait"], token=ADMIN_TOKEN, fleet=fleet)
    malformed = await invoke(app, [*args, "--arg", "oops"], token=ADMIN_TOKEN, fleet=fleet)

    too_long = await invoke(app, [*args, "--timeout", "2h"], token=ADMIN_TOKEN, fleet=fleet)

    assert (await gateway_inbox.get()).args == {"device_id": "cam-1", "before_ts": 1700}
    assert (unanswered.exit_code, not_waiting.exit_code, malformed.exit_code) == (1, 0, 2)
    assert "state: sent" in unanswered.stdout
    assert unanswered.stderr == f"waiting for {GATEWAY} to answer list_snapshots (it has 30s)…\n", "said while it waits"
    assert not_waiting.stderr == "", "nothing to wait for"
    assert "key=value" in malformed.output
    assert too_long.exit_code == 2
    assert "'2h' is longer than 1h" in " ".join(too_long.output.replace("│", " ").split())


async def _answer(context: ApiContext, inbox: "asyncio.Queue[Command]") -> Command:
    command = await asyncio.wait_for(inbox.get(), 10)
    response = CommandResponse(
        gateway_id=GATEWAY,
        seq=2,
        event_id=uuid.uuid4(),
        ts=command.ts + 30,
        request_id=command.request_id,
        ok=True,
        result={"snapshot_id": "ab" * 16, "device_id": "cam-1"},
        attachment=JPEG,
    )
    await context.commands.on_response(VILLAGE, response)
    return command
