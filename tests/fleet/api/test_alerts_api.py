"""Command staff handle alerts through the API, on SQLite and PostgreSQL: find, acknowledge, note, cancel,
resolve; illegal steps are refused with 409 and every step is in the alert's history and the audit log."""

from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from fleet.alerts.store import AlertStore
from fleet.api.context import ApiContext
from protocol.messages import Alert, Severity
from tests.fleet.alert_county import alert_county
from tests.fleet.api_client import api_client
from tests.fleet.helpers import RAISED_MS, FakeClock, default_escalation, make_alert


@pytest.fixture
async def context(any_sessions: async_sessionmaker[AsyncSession], clock: FakeClock) -> ApiContext:
    return await alert_county(any_sessions, clock)


@pytest.fixture
async def staff(context: ApiContext) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(context) as admin:
        created = await admin.post("/tokens", json={"name": "duty-officer", "role": "command_staff"})
        secret = created.json()["secret"]
    async with api_client(context, secret) as client:
        yield client


async def raised(
    sessions: async_sessionmaker[AsyncSession], clock: FakeClock, village: str = "lakeside", **changes: object
) -> Alert:
    alert = make_alert(gateway_id="gw-01" if village == "lakeside" else "gw-02", **changes)
    await AlertStore(sessions, clock, default_escalation()).record(village, alert)
    return alert


async def test_staff_acknowledge_note_and_resolve_an_alert_and_its_history_tells_who_when_why(
    staff: httpx.AsyncClient, any_sessions: async_sessionmaker[AsyncSession], clock: FakeClock
) -> None:
    alert = await raised(any_sessions, clock)
    url = f"/alerts/{alert.event_id}"
    shown = (await staff.get(url)).json()
    assert (shown["state"], shown["level"], shown["escalate_at_ms"]) == ("raised", "village", RAISED_MS + 120_000)

    clock.now_ms += 30_000
    acknowledged = await staff.post(f"{url}/acknowledge")
    noted = await staff.post(f"{url}/notes", json={"text": "grid officer Wang on the phone with the caller"})
    clock.now_ms += 60_000
    resolved = await staff.post(f"{url}/resolve", json={"reason": "elderly resident fell; family helped"})

    assert acknowledged.status_code == 200, acknowledged.text
    assert (acknowledged.json()["state"], acknowledged.json()["acknowledged_by"]) == ("acknowledged", "duty-officer")
    assert acknowledged.json()["escalate_at_ms"] is None, "taken on: it no longer escalates"
    assert noted.status_code == 201
    assert resolved.json()["state"] == "resolved"
    history = (await staff.get(f"{url}/history")).json()
    assert [(h["step"], h["from_state"], h["to_state"], h["actor"]) for h in history] == [
        ("raise", None, "raised", "gateway gw-01"),
        ("acknowledge", "raised", "acknowledged", "duty-officer"),
        ("note", "acknowledged", "acknowledged", "duty-officer"),
        ("resolve", "acknowledged", "resolved", "duty-officer"),
    ]
    assert history[2]["reason"] == "grid officer Wang on the phone with the caller"
    assert history[3]["at_ms"] == clock.now_ms


async def test_an_illegal_step_is_refused_with_409_naming_the_states_it_is_allowed_from(
    staff: httpx.AsyncClient, any_sessions: async_sessionmaker[AsyncSession], clock: FakeClock
) -> None:
    alert = await raised(any_sessions, clock)
    url = f"/alerts/{alert.event_id}"

    early = await staff.post(f"{url}/resolve")
    await staff.post(f"{url}/cancel", json={"reason": "test press during the drill"})
    late = await staff.post(f"{url}/acknowledge")

    assert early.status_code == 409
    assert "cannot resolve an alert that is raised" in early.json()["detail"]
    assert late.status_code == 409
    assert "cancelled" in late.json()["detail"]
    assert [h["step"] for h in (await staff.get(f"{url}/history")).json()] == ["raise", "cancel"]


async def test_cancelling_needs_a_reason_and_unknown_alerts_are_404(
    staff: httpx.AsyncClient, any_sessions: async_sessionmaker[AsyncSession], clock: FakeClock
) -> None:
    alert = await raised(any_sessions, clock)

    no_reason = await staff.post(f"/alerts/{alert.event_id}/cancel", json={})
    blank = await staff.post(f"/alerts/{alert.event_id}/cancel", json={"reason": "  "})
    unknown = await staff.post("/alerts/00000000-0000-0000-0000-000000000000/acknowledge")

    assert (no_reason.status_code, blank.status_code, unknown.status_code) == (422, 422, 404)


async def test_every_action_is_audited_with_the_alert_before_and_after(
    context: ApiContext, staff: httpx.AsyncClient, any_sessions: async_sessionmaker[AsyncSession], clock: FakeClock
) -> None:
    alert = await raised(any_sessions, clock)

    await staff.post(f"/alerts/{alert.event_id}/acknowledge")
    await staff.post(f"/alerts/{alert.event_id}/notes", json={"text": "called the village centre"})

    entries = await context.audit.entries(target_type="alert", target_id=str(alert.event_id))
    assert sorted((entry.action, entry.actor) for entry in entries) == [
        ("alert.acknowledge", "duty-officer"),
        ("alert.note", "duty-officer"),
    ]
    [ack] = [entry for entry in entries if entry.action == "alert.acknowledge"]
    assert ack.before is not None
    assert ack.after is not None
    assert (ack.before["state"], ack.after["state"]) == ("raised", "acknowledged")


async def test_alerts_are_found_by_village_town_state_severity_level_and_age(
    staff: httpx.AsyncClient, any_sessions: async_sessionmaker[AsyncSession], clock: FakeClock
) -> None:
    old_critical = await raised(any_sessions, clock, ts=RAISED_MS - 3_600_000)
    fresh_minor = await raised(any_sessions, clock, severity=Severity.MINOR, device_id="door-3")
    other_town = await raised(any_sessions, clock, village="riverside")
    await staff.post(f"/alerts/{fresh_minor.event_id}/acknowledge")

    async def ids(**params: str | int | list[str]) -> list[str]:
        answer = await staff.get("/alerts", params=params)
        assert answer.status_code == 200, answer.text
        return [row["id"] for row in answer.json()]

    everything = await ids()
    assert everything[-1] == str(old_critical.event_id), "newest first"
    assert set(everything) == {str(old_critical.event_id), str(fresh_minor.event_id), str(other_town.event_id)}
    assert set(await ids(town_id="hutou")) == {str(old_critical.event_id), str(fresh_minor.event_id)}
    assert await ids(village_id="riverside") == [str(other_town.event_id)]
    assert set(await ids(state=["raised"])) == {str(old_critical.event_id), str(other_town.event_id)}
    assert await ids(state=["acknowledged"], severity=["minor"]) == [str(fresh_minor.event_id)]
    assert await ids(older_than_s=1800) == [str(old_critical.event_id)]
    assert await ids(level="town") == []
    assert (await staff.get("/alerts", params={"state": "sleeping"})).status_code == 422


async def test_reading_alerts_needs_a_token_and_acting_on_them_needs_the_handle_permission(
    context: ApiContext, any_sessions: async_sessionmaker[AsyncSession], clock: FakeClock
) -> None:
    alert = await raised(any_sessions, clock)
    async with api_client(context) as admin:
        technician = (await admin.post("/tokens", json={"name": "tech-li", "role": "technician"})).json()["secret"]
    async with api_client(context, technician) as tech, api_client(context, None) as anonymous:
        assert (await tech.get(f"/alerts/{alert.event_id}")).status_code == 200
        assert (await tech.post(f"/alerts/{alert.event_id}/acknowledge")).status_code == 403
        assert (await anonymous.get("/alerts")).status_code == 401
