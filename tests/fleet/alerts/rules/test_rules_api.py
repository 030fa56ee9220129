"""Alert rules through the REST API, on SQLite and on PostgreSQL: layers set, read and removed by admins,
refusals with the reason, the audit log, and the rules a village runs by with the layers they come from."""

from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from fleet.api.context import ApiContext
from protocol.messages import AlertKind, Severity
from protocol.notifications import AlertLevel
from tests.fleet.api_client import api_client, api_context
from tests.fleet.configs.sites import build_county
from tests.fleet.helpers import FakeClock

COUNTY_RULES = {
    "kinds": {
        "camera_offline": {"severity": "minor", "hold_off_s": 300},
        "gateway_offline": {"rate_limit": {"max_alerts": 3, "per_s": 3600}},
    },
    "quiet_hours": {"start": "22:00", "end": "06:30", "timezone": "Asia/Shanghai"},
}


@pytest.fixture
async def context(any_sessions: async_sessionmaker[AsyncSession], clock: FakeClock) -> ApiContext:
    await build_county(any_sessions, clock)
    context = api_context(any_sessions, clock)
    await context.rules.load()
    return context


@pytest.fixture
async def admin(context: ApiContext) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(context) as client:
        yield client


async def issued_token(admin: httpx.AsyncClient, name: str, role: str) -> str:
    issued = await admin.post("/tokens", json={"name": name, "role": role})
    assert issued.status_code == 201, issued.text
    return str(issued.json()["secret"])


async def test_the_village_runs_by_the_county_rules_with_its_own_override_on_top(
    admin: httpx.AsyncClient, context: ApiContext
) -> None:
    county = await admin.put("/alert-rules/county/anxi", json=COUNTY_RULES)
    village = await admin.put("/alert-rules/village/shiqiao", json={"kinds": {"camera_offline": {"severity": "major"}}})

    assert (county.status_code, village.status_code) == (200, 200), county.text + village.text
    assert county.json()["overrides"] == COUNTY_RULES
    assert (await admin.get("/alert-rules/county/anxi")).json()["updated_by"] == "bootstrap-admin"
    view = (await admin.get("/villages/shiqiao/alert-rules")).json()
    assert (view["town_id"], view["county_id"]) == ("hutou", "anxi")
    assert [(layer["scope"], layer["scope_id"]) for layer in view["layers"]] == [
        ("county", "anxi"),
        ("village", "shiqiao"),
    ]
    assert view["ignored"] == []
    kinds = view["rules"]["kinds"]
    assert kinds["camera_offline"]["severity"] == "major", "the village wins"
    assert kinds["camera_offline"]["hold_off_s"] == 300, "the county's other fields of that kind are kept"
    assert kinds["gateway_offline"]["rate_limit"] == {"max_alerts": 3, "per_s": 3600}, "and its other kinds"
    assert view["rules"]["quiet_hours"]["timezone"] == "Asia/Shanghai"
    assert view["rules"]["watch"]["offline_after_missed_heartbeats"] == 2, "a default"
    served = context.rules.for_village("shiqiao")
    assert served.severity_of(AlertKind.CAMERA_OFFLINE) is Severity.MAJOR, "what the alert store gets, at once"
    assert context.rules.for_village("beicun").severity_of(AlertKind.CAMERA_OFFLINE, Severity.MAJOR) is Severity.MINOR


async def test_removing_a_layer_falls_back_on_the_others(admin: httpx.AsyncClient) -> None:
    await admin.put("/alert-rules/town/hutou", json={"clear_hold_s": 5})
    await admin.put("/alert-rules/village/shiqiao", json={"clear_hold_s": 9})

    removed = await admin.delete("/alert-rules/village/shiqiao")

    assert (removed.status_code, removed.content) == (204, b"")
    assert (await admin.get("/alert-rules/village/shiqiao")).status_code == 404
    assert (await admin.get("/villages/shiqiao/alert-rules")).json()["rules"]["clear_hold_s"] == 5
    assert (await admin.delete("/alert-rules/village/shiqiao")).status_code == 404


async def test_an_invalid_layer_or_unknown_place_is_refused_with_the_reason_and_nothing_changes(
    admin: httpx.AsyncClient,
) -> None:
    unknown_key = await admin.put("/alert-rules/village/shiqiao", json={"kinds": {"panic": {"mute": True}}})
    bad_zone = await admin.put(
        "/alert-rules/town/hutou", json={"quiet_hours": {"start": "22:00", "end": "06:00", "timezone": "Asia/Beijing"}}
    )
    not_an_object = await admin.put("/alert-rules/town/hutou", json=["kinds"])
    unknown_village = await admin.put("/alert-rules/village/nowhere", json={})
    unknown_scope = await admin.put("/alert-rules/gateway/gw-1", json={})
    bad_id = await admin.put("/alert-rules/village/NOT%20AN%20ID", json={})

    assert unknown_key.status_code == 422
    assert unknown_key.json()["detail"] == (
        "village alert rules 'shiqiao' is not valid: kinds.panic.mute: Extra inputs are not permitted"
    )
    assert bad_zone.status_code == 422
    assert "quiet_hours.timezone: Value error, unknown time zone 'Asia/Beijing'" in bad_zone.json()["detail"]
    assert not_an_object.status_code == 422
    assert (unknown_village.status_code, unknown_village.json()["detail"]) == (404, "no village 'nowhere'")
    assert (unknown_scope.status_code, bad_id.status_code) == (422, 422)
    assert (await admin.get("/villages/nowhere/alert-rules")).status_code == 404
    assert (await admin.get("/audit", params={"target_type": "alert_rule_layer"})).json() == []


async def test_writes_are_in_the_audit_log(admin: httpx.AsyncClient) -> None:
    await admin.put("/alert-rules/county/anxi", json={"clear_hold_s": 5})
    await admin.put("/alert-rules/county/anxi", json={"clear_hold_s": 6})
    await admin.delete("/alert-rules/county/anxi")

    entries = (await admin.get("/audit", params={"target_type": "alert_rule_layer"})).json()

    assert [(e["action"], e["target_id"], e["actor"]) for e in entries] == [
        ("alert_rule_layer.delete", "county/anxi", "bootstrap-admin"),
        ("alert_rule_layer.update", "county/anxi", "bootstrap-admin"),
        ("alert_rule_layer.create", "county/anxi", "bootstrap-admin"),
    ]
    assert entries[1]["before"]["overrides"] == {"clear_hold_s": 5}
    assert entries[1]["after"]["overrides"] == {"clear_hold_s": 6}


@pytest.mark.parametrize("role", ["technician", "command_staff"])
async def test_only_admins_set_or_remove_rules_others_read_them(
    context: ApiContext, admin: httpx.AsyncClient, role: str
) -> None:
    await admin.put("/alert-rules/village/shiqiao", json={"clear_hold_s": 5})
    async with api_client(context, await issued_token(admin, "wang-fang", role)) as other:
        village = await other.put("/alert-rules/village/shiqiao", json={"kinds": {"panic": {"enabled": False}}})
        county = await other.put("/alert-rules/county/anxi", json={})
        removed = await other.delete("/alert-rules/village/shiqiao")
        layer = await other.get("/alert-rules/village/shiqiao")
        view = await other.get("/villages/shiqiao/alert-rules")

    assert (village.status_code, county.status_code, removed.status_code) == (403, 403, 403)
    assert village.json()["detail"] == f"role {role} may not manage sites"
    assert (layer.status_code, view.status_code) == (200, 200)
    assert view.json()["rules"]["clear_hold_s"] == 5


async def test_every_route_needs_a_token(context: ApiContext) -> None:
    async with api_client(context, token=None) as anonymous:
        answers = [
            await anonymous.get("/alert-rules/county/anxi"),
            await anonymous.put("/alert-rules/county/anxi", json={}),
            await anonymous.delete("/alert-rules/county/anxi"),
            await anonymous.get("/villages/shiqiao/alert-rules"),
        ]

    assert [answer.status_code for answer in answers] == [401, 401, 401, 401]


async def test_a_layer_turns_a_severitys_escalation_off_with_null(
    admin: httpx.AsyncClient, context: ApiContext
) -> None:
    changed = await admin.put("/alert-rules/village/shiqiao", json={"ack_deadline_s": {"major": None}})
    assert changed.status_code == 200, changed.text
    rules = context.rules.for_village("shiqiao")
    assert rules.escalates_at_ms(Severity.MAJOR, AlertLevel.VILLAGE, 0) is None
    assert rules.escalates_at_ms(Severity.CRITICAL, AlertLevel.VILLAGE, 0) == 120_000
    assert context.rules.for_village("dongcun").escalates_at_ms(Severity.MAJOR, AlertLevel.VILLAGE, 0) == 600_000


async def test_a_village_created_or_moved_runs_by_its_towns_rules_at_once(
    admin: httpx.AsyncClient, context: ApiContext
) -> None:
    await admin.put("/alert-rules/town/xiping", json={"kinds": {"panic": {"severity": "major"}}})
    created = await admin.post("/villages", json={"id": "nancun", "town_id": "xiping", "name": "Nancun"})
    assert created.status_code == 201, created.text
    assert context.rules.for_village("nancun").severity_of(AlertKind.PANIC, Severity.CRITICAL) is Severity.MAJOR
    moved = await admin.patch("/villages/shiqiao", json={"town_id": "xiping"})
    assert moved.status_code == 200, moved.text
    assert context.rules.for_village("shiqiao").severity_of(AlertKind.PANIC, Severity.CRITICAL) is Severity.MAJOR


async def test_removing_a_village_removes_its_rules_so_a_new_one_of_that_id_does_not_inherit_them(
    admin: httpx.AsyncClient, context: ApiContext
) -> None:
    await admin.post("/villages", json={"id": "nancun", "town_id": "xiping", "name": "Nancun"})
    await admin.put("/alert-rules/village/nancun", json={"kinds": {"panic": {"enabled": False}}})
    removed = await admin.delete("/villages/nancun")
    assert removed.status_code == 204, removed.text
    assert (await admin.get("/alert-rules/village/nancun")).status_code == 404
    await admin.post("/villages", json={"id": "nancun", "town_id": "xiping", "name": "Nancun"})
    assert context.rules.for_village("nancun").rule(AlertKind.PANIC).enabled
