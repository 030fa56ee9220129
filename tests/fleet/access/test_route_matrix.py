"""Every route of the fleet's API, every role, scoped and not, generated from the route table: no token is a 401;
a role without the route's permission a 403; a token scoped to town ``hutou`` is refused (403) whatever names a
place outside it (village ``yonder`` of county ``other``, its gateway, alert, command, enrollment token or layer)
and every fleet-wide route, and is let through (not 401/403) within it. Listings show a scoped token its own
places only.

The out-of-scope places are only ever named by the scoped token (which is refused), so they stand for the whole
run; the in-scope ones may be changed or deleted by an earlier call, which answers 404 after, never 401/403.
"""

import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from fleet.access.roles import GRANTS, Role
from fleet.api.app import create_app
from fleet.api.context import Allowed
from tests.fleet.api_client import ADMIN_TOKEN, api_context
from tests.fleet.helpers import FakeClock, make_alert

PLACES = {
    "in": {"county_id": "anxi", "town_id": "hutou", "village_id": "shiqiao", "gateway_id": "gw-in"},
    "out": {"county_id": "other", "town_id": "far", "village_id": "yonder", "gateway_id": "gw-out"},
}
SCOPE = {"kind": "town", "id": "hutou"}


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    allowed: Allowed | None  # None: a route anyone may call (it authenticates in its body, or not at all)

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


def routes(app: FastAPI) -> Iterator[Route]:
    """Every operation of ``app`` with the permission its caller dependency asks for."""
    pending = list(app.router.routes)
    while pending:
        route = pending.pop(0)
        included = getattr(route, "original_router", None)
        if included is not None:
            pending.extend(included.routes)
        if isinstance(route, APIRoute):
            checks = [d.call for d in _dependencies(route) if isinstance(d.call, Allowed)]
            for method in sorted(route.methods or ()):
                yield Route(method, route.path, checks[0] if checks else None)


def _dependencies(route: APIRoute) -> Iterator[Dependant]:
    pending = list(route.dependant.dependencies)
    while pending:
        dependency = pending.pop()
        pending.extend(dependency.dependencies)
        yield dependency


@dataclass
class World:
    """What the matrix calls the routes with: the place ids, in scope and out, and one token per role and scope."""

    ids: dict[str, dict[str, str]]
    tokens: dict[tuple[Role, bool], str]  # (role, scoped) -> bearer secret


async def _build_world(admin: httpx.AsyncClient) -> World:
    ids: dict[str, dict[str, str]] = {}
    for side, place in PLACES.items():
        for path, body in (
            ("/counties", {"id": place["county_id"], "name": place["county_id"]}),
            ("/towns", {"id": place["town_id"], "county_id": place["county_id"], "name": place["town_id"]}),
            ("/villages", {"id": place["village_id"], "town_id": place["town_id"], "name": place["village_id"]}),
            ("/gateways", {"id": place["gateway_id"], "village_id": place["village_id"]}),
            (f"/villages/{place['village_id']}/grids", {"id": "g1", "name": "grid one"}),
        ):
            response = await admin.post(path, json=body)
            assert response.status_code == 201, (path, response.text)
        token = await admin.post("/enrollment-tokens", json={"village_id": place["village_id"]})
        command = await admin.post(f"/gateways/{place['gateway_id']}/commands", json={"name": "diagnostics"})
        layer = await admin.put(f"/config/layers/village/{place['village_id']}", json={"heartbeat_interval_s": 9.0})
        assert (token.status_code, layer.status_code) == (201, 200), (token.text, layer.text)
        ids[side] = {
            **place,
            "token_id": token.json()["id"],
            "request_id": command.json().get("request_id", str(uuid.uuid4())),
            "scope": "village",
            "scope_id": place["village_id"],
            "grid_id": "g1",
            "device_id": "dev-1",
            "name": "nobody",
            "kind": "agent",  # releases: none is stored, so an admin is let in to a 404
            "version": "1.2.0",
            "path": "constraints.txt",
            "job_id": "job-none",
        }
    tokens: dict[tuple[Role, bool], str] = {}
    for role in Role:
        for scoped in (False, True):
            body = {"name": f"{role.value}-{'scoped' if scoped else 'fleet'}", "role": role.value}
            issued = await admin.post("/tokens", json=body | ({"scope": SCOPE} if scoped else {}))
            assert issued.status_code == 201, issued.text
            tokens[(role, scoped)] = issued.json()["secret"]
    return World(ids, tokens)


@pytest.fixture
async def served(sessions: async_sessionmaker[AsyncSession], clock: FakeClock) -> tuple[FastAPI, World]:
    context = api_context(sessions, clock)
    app = create_app(context)
    transport = httpx.ASGITransport(app=app)
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    async with httpx.AsyncClient(transport=transport, base_url="http://fleet", headers=headers) as admin:
        world = await _build_world(admin)
    for side in ("in", "out"):  # an alert from each side's gateway
        alert = make_alert(gateway_id=world.ids[side]["gateway_id"])
        assert await context.alerts.record(world.ids[side]["village_id"], alert)
        world.ids[side]["alert_id"] = str(alert.event_id)
    return app, world


def _url(route: Route, ids: dict[str, str]) -> str:
    return re.sub(r"\{(\w+)(?::\w+)?\}", lambda m: ids[m.group(1)], route.path)


def _above_the_scope(route: Route) -> bool:
    """A county's own record: a town-scoped token does not reach it (only what stands in its town)."""
    return "{county_id}" in route.path


def _names_a_place(route: Route) -> bool:
    return bool(
        re.search(r"\{(county_id|town_id|village_id|gateway_id|alert_id|request_id|token_id|scope_id)", route.path)
    )


async def test_every_route_refuses_whom_it_must_and_lets_in_whom_it_may(served: tuple[FastAPI, World]) -> None:
    app, world = served
    table = sorted(routes(app), key=lambda r: (r.method == "DELETE", r.method != "GET", r.path))
    guarded = [route for route in table if route.allowed is not None]
    assert len(guarded) >= 60, "the route table was read"
    wrong: list[str] = []
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://fleet") as client:

        async def call(route: Route, ids: dict[str, str], token: str | None) -> int:
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            body: dict[str, object] | None = {} if route.method in ("POST", "PUT", "PATCH") else None
            response = await client.request(route.method, _url(route, ids), headers=headers, json=body)
            return response.status_code

        for route in guarded:
            assert route.allowed is not None
            permission, fleet_wide = route.allowed.permission, route.allowed.fleet_wide
            checks: list[tuple[str, int, bool]] = [("no token", await call(route, world.ids["in"], None), False)]
            for role in Role:
                may = permission in GRANTS[role]
                scoped_in = await call(route, world.ids["in"], world.tokens[(role, True)])
                if _names_a_place(route):
                    scoped_out = await call(route, world.ids["out"], world.tokens[(role, True)])
                    checks.append((f"{role.value} scoped, outside", scoped_out, False))
                inside = may and not fleet_wide and not _above_the_scope(route)
                checks.append((f"{role.value} scoped, inside", scoped_in, inside))
                checks.append((f"{role.value}", await call(route, world.ids["in"], world.tokens[(role, False)]), may))
            for who, status, let_in in checks:
                expected_refusal = 401 if who == "no token" else 403
                if let_in == (status in (401, 403)) or (not let_in and status != expected_refusal):
                    wrong.append(f"{route}: {who} got {status}, expected {'in' if let_in else expected_refusal}")
    assert not wrong, "\n".join(wrong)


async def test_a_scoped_token_lists_its_own_places_only(served: tuple[FastAPI, World]) -> None:
    app, world = served
    headers = {"Authorization": f"Bearer {world.tokens[(Role.ADMIN, True)]}"}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://fleet", headers=headers) as c:
        listed = {path: (await c.get(path)).json() for path in (
            "/counties", "/towns", "/villages", "/gateways", "/config/layers", "/config/status", "/enrollment-tokens",
            "/alerts",
        )}  # fmt: skip

        filtered_out = [(await c.get(path)).status_code for path in (
            "/alerts?village_id=yonder", "/gateways?village_id=yonder",
            "/villages?town_id=far", "/towns?county_id=other",
        )]  # fmt: skip

    assert filtered_out == [403] * 4, "a filter naming a place outside the scope is refused, not answered empty"
    assert listed["/counties"] == [], "a town-scoped token does not reach its county's record"
    assert [town["id"] for town in listed["/towns"]] == ["hutou"]
    assert [village["id"] for village in listed["/villages"]] == ["shiqiao"]
    assert [gateway["id"] for gateway in listed["/gateways"]] == ["gw-in"]
    assert [(layer["scope"], layer["scope_id"]) for layer in listed["/config/layers"]] == [("village", "shiqiao")]
    assert [sync["gateway_id"] for sync in listed["/config/status"]["gateways"]] == ["gw-in"]
    assert [token["village_id"] for token in listed["/enrollment-tokens"]] == ["shiqiao"]
    assert [alert["village_id"] for alert in listed["/alerts"]] == ["shiqiao"]


async def test_a_token_is_scoped_only_to_a_place_that_exists(served: tuple[FastAPI, World]) -> None:
    app, _ = served
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://fleet", headers=headers) as c:
        nowhere = await c.post(
            "/tokens", json={"name": "x", "role": "technician", "scope": {"kind": "town", "id": "no"}}
        )
        listed = (await c.get("/tokens")).json()

    assert nowhere.status_code == 404
    assert {"kind": "town", "id": "hutou"} in [token["scope"] for token in listed]
