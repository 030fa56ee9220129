"""The site hierarchy, gateways and devices through the REST API, on SQLite and on PostgreSQL."""

from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from fleet.api.context import ApiContext
from tests.fleet.api_client import api_client, api_context
from tests.fleet.helpers import FakeClock


@pytest.fixture
def context(any_sessions: async_sessionmaker[AsyncSession], clock: FakeClock) -> ApiContext:
    return api_context(any_sessions, clock)


@pytest.fixture
async def admin(context: ApiContext) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(context) as client:
        yield client


async def _hierarchy(admin: httpx.AsyncClient) -> None:
    for path, body in (
        ("/counties", {"id": "anxi", "name": "Anxi County"}),
        ("/towns", {"id": "hutou", "county_id": "anxi", "name": "Hutou Town"}),
        ("/villages", {"id": "shiqiao", "town_id": "hutou", "name": "Shiqiao", "latitude": 25.05, "longitude": 118.0}),
        ("/villages/shiqiao/grids", {"id": "g01", "name": "Grid 1"}),
    ):
        response = await admin.post(path, json=body)
        assert response.status_code == 201, response.text


async def test_the_hierarchy_is_built_top_down_and_listed_by_parent(admin: httpx.AsyncClient) -> None:
    await _hierarchy(admin)

    assert [t["id"] for t in (await admin.get("/towns", params={"county_id": "anxi"})).json()] == ["hutou"]
    villages = (await admin.get("/villages", params={"county_id": "anxi"})).json()
    assert [(v["id"], v["town_id"], v["latitude"]) for v in villages] == [("shiqiao", "hutou", 25.05)]
    assert (await admin.get("/villages/shiqiao/grids/g01")).json()["name"] == "Grid 1"
    assert (await admin.get("/counties/anxi")).json()["name"] == "Anxi County"


async def test_a_child_of_a_missing_parent_is_refused_with_404(admin: httpx.AsyncClient) -> None:
    response = await admin.post("/towns", json={"id": "hutou", "county_id": "nowhere", "name": "Hutou"})

    assert response.status_code == 404
    assert "county 'nowhere'" in response.json()["detail"]


async def test_a_duplicate_id_is_a_conflict(admin: httpx.AsyncClient) -> None:
    await _hierarchy(admin)

    response = await admin.post("/counties", json={"id": "anxi", "name": "Again"})

    assert response.status_code == 409
    assert (await admin.get("/counties/anxi")).json()["name"] == "Anxi County"


async def test_removing_a_site_in_use_is_refused_and_removing_bottom_up_works(admin: httpx.AsyncClient) -> None:
    await _hierarchy(admin)

    refused = await admin.delete("/counties/anxi")
    assert refused.status_code == 409
    assert "1 towns" in refused.json()["detail"]

    for path in ("/villages/shiqiao/grids/g01", "/villages/shiqiao", "/towns/hutou", "/counties/anxi"):
        assert (await admin.delete(path)).status_code == 204, path
    assert (await admin.get("/counties")).json() == []


async def test_patching_moves_and_renames_and_validates(admin: httpx.AsyncClient) -> None:
    await _hierarchy(admin)
    await admin.post("/towns", json={"id": "xiping", "county_id": "anxi", "name": "Xiping"})

    moved = await admin.patch("/villages/shiqiao", json={"town_id": "xiping", "name": "Shiqiao Village"})
    half = await admin.patch("/villages/shiqiao", json={"latitude": None})
    unknown_field = await admin.patch("/villages/shiqiao", json={"mayor": "x"})

    assert moved.status_code == 200
    assert (moved.json()["town_id"], moved.json()["name"]) == ("xiping", "Shiqiao Village")
    assert half.status_code == 409  # a village has both coordinates or neither
    assert unknown_field.status_code == 422


async def test_gateways_and_devices_are_recorded_on_grids_of_their_village(admin: httpx.AsyncClient) -> None:
    await _hierarchy(admin)

    created = await admin.post("/gateways", json={"id": "gw-shiqiao", "village_id": "shiqiao", "name": "East gate"})
    device = await admin.put(
        "/gateways/gw-shiqiao/devices/panic-1", json={"kind": "panic_button", "name": "Shop", "grid_id": "g01"}
    )
    wrong_grid = await admin.put("/gateways/gw-shiqiao/devices/door-1", json={"kind": "door_sensor", "grid_id": "g99"})
    changed = await admin.put("/gateways/gw-shiqiao/devices/panic-1", json={"kind": "panic_button", "grid_id": None})

    assert created.status_code == 201
    gateway = (await admin.get("/gateways/gw-shiqiao")).json()
    assert (gateway["name"], gateway["online"], gateway["presence_reason"]) == ("East gate", False, "never_connected")
    assert device.json()["grid_id"] == "g01"
    assert wrong_grid.status_code == 422
    assert changed.json()["grid_id"] is None
    assert [d["id"] for d in (await admin.get("/gateways/gw-shiqiao/devices")).json()] == ["panic-1"]

    assert (await admin.delete("/gateways/gw-shiqiao")).status_code == 204
    assert (await admin.get("/gateways/gw-shiqiao/devices")).status_code == 404


async def test_a_gateway_with_devices_on_grids_cannot_move_village(admin: httpx.AsyncClient) -> None:
    await _hierarchy(admin)
    await admin.post("/villages", json={"id": "dongcun", "town_id": "hutou", "name": "Dongcun"})
    await admin.post("/gateways", json={"id": "gw-1", "village_id": "shiqiao"})
    await admin.put("/gateways/gw-1/devices/panic-1", json={"kind": "panic_button", "grid_id": "g01"})

    response = await admin.patch("/gateways/gw-1", json={"village_id": "dongcun"})

    assert response.status_code == 409
    assert "panic-1" in response.json()["detail"]


async def test_every_change_is_in_the_audit_log_with_before_and_after(admin: httpx.AsyncClient) -> None:
    await _hierarchy(admin)
    await admin.patch("/counties/anxi", json={"name": "Anxi"})
    await admin.patch("/counties/anxi", json={"name": "Anxi"})  # no change: no entry

    entries = (await admin.get("/audit", params={"target_type": "county"})).json()

    assert [e["action"] for e in entries] == ["county.update", "county.create"]
    update = entries[0]
    assert (update["actor"], update["role"]) == ("bootstrap-admin", "admin")
    assert (update["before"]["name"], update["after"]["name"]) == ("Anxi County", "Anxi")
    assert entries[1]["before"] is None
