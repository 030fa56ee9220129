"""The command routes: who may send (technicians, not command staff), what is refused, waiting for an answer,
the fetched snapshot and the audit trail of sending and viewing."""

import asyncio
import dataclasses
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from fleet.api.context import ApiContext
from fleet.mqtt.downlink import Downlink
from protocol.messages import Command, CommandResponse
from tests.fleet.api_client import api_client, api_context
from tests.fleet.commands.conftest import GATEWAY, VILLAGE
from tests.fleet.commands.parts import dispatcher
from tests.fleet.helpers import FakeClock

JPEG = b"\xff\xd8\xff\xe0" + bytes(2000) + b"\xff\xd9"
SNAPSHOT_ID = "0123456789abcdef" * 2


@pytest.fixture
async def context(any_sessions: async_sessionmaker[AsyncSession], clock: FakeClock) -> ApiContext:
    """The API with gateway gw-01 of lakeside registered; its downlink never connects."""
    context = api_context(any_sessions, clock)
    await context.registry.register(VILLAGE, GATEWAY)
    return context


@pytest.fixture
async def connected(
    context: ApiContext, any_sessions: async_sessionmaker[AsyncSession], clock: FakeClock, downlink: Downlink
) -> ApiContext:
    """The same API with its commands published through a real Mosquitto."""
    return dataclasses.replace(context, commands=dispatcher(any_sessions, clock, downlink))


@pytest.fixture
async def admin(context: ApiContext) -> AsyncIterator[httpx.AsyncClient]:
    """The bootstrap admin, on the API whose downlink never connects (reading and refusals need none)."""
    async with api_client(context) as client:
        yield client


async def _token(admin: httpx.AsyncClient, name: str, role: str) -> str:
    response = await admin.post("/tokens", json={"name": name, "role": role})
    assert response.status_code == 201, response.text
    secret: str = response.json()["secret"]
    return secret


async def test_technicians_may_send_commands_and_command_staff_may_only_read_them(
    context: ApiContext, admin: httpx.AsyncClient
) -> None:
    technician = await _token(admin, "tech-zhao", "technician")
    staff = await _token(admin, "duty-officer-li", "command_staff")

    async with api_client(context, technician) as caller:
        sent = await caller.post(f"/gateways/{GATEWAY}/commands", json={"name": "diagnostics"})
    async with api_client(context, staff) as caller:
        refused = await caller.post(f"/gateways/{GATEWAY}/commands", json={"name": "diagnostics"})
        listed = await caller.get(f"/gateways/{GATEWAY}/commands")
        shown = await caller.get(f"/commands/{sent.json()['request_id']}")

    assert sent.status_code == 202, sent.text
    assert sent.json()["requested_by"] == "tech-zhao"
    assert sent.json()["state"] == "undeliverable"  # no broker behind this API
    assert refused.status_code == 403
    assert [row["request_id"] for row in listed.json()] == [sent.json()["request_id"]]
    assert shown.status_code == 200


async def test_a_snapshot_fetch_without_a_reason_or_a_snapshot_is_refused_and_nothing_is_sent(
    admin: httpx.AsyncClient,
) -> None:
    no_reason = {"name": "fetch_snapshot", "args": {"snapshot_id": SNAPSHOT_ID}}
    blank_reason = {**no_reason, "reason": "   "}
    no_snapshot = {"name": "fetch_snapshot", "reason": "case 12"}

    answers = [await admin.post(f"/gateways/{GATEWAY}/commands", json=body) for body in (no_reason, blank_reason,
               no_snapshot)]  # fmt: skip

    assert [a.status_code for a in answers] == [422, 422, 422]
    assert "reason" in answers[0].text
    assert (await admin.get(f"/gateways/{GATEWAY}/commands")).json() == []
    assert (await admin.get("/audit", params={"target_type": "command"})).json() == []


async def test_an_argument_the_command_does_not_take_is_refused_before_anything_is_sent(
    admin: httpx.AsyncClient,
) -> None:
    answer = await admin.post(
        f"/gateways/{GATEWAY}/commands", json={"name": "diagnostics", "args": {"verbose": True, "depth": 2}}
    )

    assert answer.status_code == 422
    assert "diagnostics takes no argument depth, verbose" in answer.text
    assert (await admin.get(f"/gateways/{GATEWAY}/commands")).json() == []


async def test_commands_to_unknown_gateways_and_unknown_commands_are_not_found(admin: httpx.AsyncClient) -> None:
    assert (await admin.post("/gateways/gw-nowhere/commands", json={"name": "diagnostics"})).status_code == 404
    assert (await admin.get(f"/commands/{uuid.uuid4()}")).status_code == 404
    assert (await admin.get(f"/commands/{uuid.uuid4()}/attachment")).status_code == 404


@pytest.mark.integration
async def test_waiting_for_a_snapshot_fetch_answers_with_the_outcome_and_the_jpeg_is_viewed_audited(
    connected: ApiContext, admin: httpx.AsyncClient, gateway_inbox: "asyncio.Queue[Command]"
) -> None:
    technician = await _token(admin, "tech-zhao", "technician")
    staff = await _token(admin, "duty-officer-li", "command_staff")
    gateway = asyncio.create_task(_answer_with_a_jpeg(connected, gateway_inbox))
    body = {
        "name": "fetch_snapshot",
        "args": {"snapshot_id": SNAPSHOT_ID},
        "reason": "case 2026-88: the north gate at night",
        "wait": True,
    }

    async with api_client(connected, technician) as caller:
        answered = await caller.post(f"/gateways/{GATEWAY}/commands", json=body)
        assert answered.status_code == 200, answered.text
        viewed = await caller.get(answered.json()["attachment"]["url"])
    async with api_client(connected, staff) as caller:
        refused = await caller.get(answered.json()["attachment"]["url"])
    await gateway

    outcome = answered.json()
    assert outcome["state"] == "succeeded"
    assert outcome["result"]["snapshot_id"] == SNAPSHOT_ID
    assert outcome["attachment"]["bytes"] == len(JPEG)
    assert viewed.status_code == 200
    assert viewed.headers["content-type"] == "image/jpeg"
    assert viewed.headers["cache-control"] == "no-store"
    assert viewed.content == JPEG
    assert refused.status_code == 403
    audit = (await admin.get("/audit", params={"target_type": "command"})).json()
    trail = sorted((entry["actor"], entry["action"]) for entry in audit)
    assert trail == [("tech-zhao", "command.send"), ("tech-zhao", "snapshot.view")]
    sent = next(entry for entry in audit if entry["action"] == "command.send")
    assert sent["target_id"] == f"{GATEWAY}/{outcome['request_id']}"
    assert sent["after"]["reason"] == body["reason"]


@pytest.mark.integration
async def test_a_command_not_answered_is_timed_out_at_its_deadline(
    connected: ApiContext, admin: httpx.AsyncClient, clock: FakeClock, gateway_inbox: "asyncio.Queue[Command]"
) -> None:
    async with api_client(connected) as caller:
        sent = await caller.post(f"/gateways/{GATEWAY}/commands", json={"name": "diagnostics", "timeout_s": 10})
        held = await caller.post(f"/gateways/{GATEWAY}/commands", json={"name": "diagnostics", "wait": True})
    assert (sent.status_code, sent.json()["state"]) == (202, "sent")
    assert (held.status_code, held.json()["state"]) == (202, "sent")  # max_wait_s passed before any answer
    assert gateway_inbox.qsize() == 2

    clock.now_ms += 10_000
    await connected.commands.sweep()

    timed_out = (await admin.get(f"/gateways/{GATEWAY}/commands", params={"state": "timed_out"})).json()
    assert [row["request_id"] for row in timed_out] == [sent.json()["request_id"]]
    shown = (await admin.get(f"/commands/{sent.json()['request_id']}")).json()
    assert (shown["state"], shown["responded_ms"], shown["answered_late"]) == ("timed_out", None, False)


async def _answer_with_a_jpeg(context: ApiContext, inbox: "asyncio.Queue[Command]") -> None:
    """The gateway's side, as the ingest router hands its answer over."""
    command = await asyncio.wait_for(inbox.get(), 10)
    response = CommandResponse(
        gateway_id=GATEWAY,
        seq=3,
        event_id=uuid.uuid4(),
        ts=command.ts + 40,
        request_id=command.request_id,
        ok=True,
        result={"snapshot_id": SNAPSHOT_ID, "device_id": "cam-north", "bytes": len(JPEG), "content_type": "image/jpeg"},
        attachment=JPEG,
    )
    await context.commands.on_response(VILLAGE, response)
