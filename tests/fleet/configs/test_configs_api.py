"""Config push through the REST API, on SQLite and on PostgreSQL: layers, permissions, views and the audit log."""

from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from fleet.api.context import ApiContext
from tests.fleet.api_client import api_client, api_context
from tests.fleet.configs.sites import build_county
from tests.fleet.helpers import FakeClock


@pytest.fixture
async def context(any_sessions: async_sessionmaker[AsyncSession], clock: FakeClock) -> ApiContext:
    await build_county(any_sessions, clock)
    return api_context(any_sessions, clock)


@pytest.fixture
async def admin(context: ApiContext) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(context) as client:
        yield client


@pytest.fixture
async def technician(context: ApiContext, admin: httpx.AsyncClient) -> AsyncIterator[httpx.AsyncClient]:
    issued = await admin.post("/tokens", json={"name": "wang-fang", "role": "technician"})
    async with api_client(context, issued.json()["secret"]) as client:
        yield client


async def test_a_layer_is_set_shown_and_reaches_the_gateways_below_it(admin: httpx.AsyncClient) -> None:
    put = await admin.put("/config/layers/town/hutou", json={"heartbeat_interval_s": 20.0})
    await admin.put("/config/layers/gateway/gw-1", json={"devices": [{"kind": "panic_button", "id": "panic-1"}]})

    assert put.status_code == 200, put.text
    assert put.json()["gateways"] == 3
    assert put.json()["changed"] == 3
    layer = (await admin.get("/config/layers/town/hutou")).json()
    assert (layer["overrides"], layer["updated_by"]) == ({"heartbeat_interval_s": 20.0}, "bootstrap-admin")
    listed = (await admin.get("/config/layers")).json()
    assert [(item["scope"], item["scope_id"]) for item in listed] == [("gateway", "gw-1"), ("town", "hutou")]
    view = (await admin.get("/gateways/gw-1/config")).json()
    assert [(item["scope"], item["scope_id"]) for item in view["layers"]] == [("town", "hutou"), ("gateway", "gw-1")]
    assert view["resolved"]["heartbeat_interval_s"] == 20.0
    assert [device["id"] for device in view["resolved"]["devices"]] == ["panic-1"]
    assert (view["sync"]["status"], view["sync"]["desired_version"]) == ("not_published", 2)
    assert (view["town_id"], view["county_id"]) == ("hutou", "anxi")


async def test_an_invalid_layer_is_refused_with_the_reason_and_nothing_changes(admin: httpx.AsyncClient) -> None:
    unknown = await admin.put("/config/layers/village/shiqiao", json={"heartbeat_every": 20})
    bad_value = await admin.put("/config/layers/village/shiqiao", json={"snapshots": {"retention_s": 1}})
    missing = await admin.put("/config/layers/village/nowhere", json={})
    bad_scope = await admin.put("/config/layers/province/anxi", json={})

    assert unknown.status_code == 422
    assert "heartbeat_every: Extra inputs are not permitted" in unknown.json()["detail"]
    assert bad_value.status_code == 422
    assert "snapshots.retention_s" in bad_value.json()["detail"]
    assert missing.status_code == 404
    assert bad_scope.status_code == 422
    assert (await admin.get("/config/layers")).json() == []
    assert (await admin.get("/audit", params={"target_type": "config_layer"})).json() == []


async def test_technicians_set_village_and_gateway_layers_but_not_county_or_town_ones(
    technician: httpx.AsyncClient,
) -> None:
    village = await technician.put("/config/layers/village/shiqiao", json={"heartbeat_interval_s": 20.0})
    gateway = await technician.put("/config/layers/gateway/gw-3", json={"heartbeat_interval_s": 20.0})
    county = await technician.put("/config/layers/county/anxi", json={"heartbeat_interval_s": 20.0})
    town = await technician.delete("/config/layers/town/hutou")

    assert (village.status_code, gateway.status_code) == (200, 200)
    assert (county.status_code, town.status_code) == (403, 403)
    assert "may not set county config layers" in county.json()["detail"]


async def test_status_lists_every_gateway_with_counts_and_filters(admin: httpx.AsyncClient) -> None:
    await admin.put("/config/layers/county/anxi", json={"heartbeat_interval_s": 20.0})

    everyone = (await admin.get("/config/status")).json()
    in_town = (await admin.get("/config/status", params={"town": "hutou"})).json()
    unconfigured = (await admin.get("/config/status", params={"status": "not_configured"})).json()
    in_village = (await admin.get("/config/status", params={"village": "beicun", "county": "anxi"})).json()

    assert [g["gateway_id"] for g in everyone["gateways"]] == ["gw-1", "gw-2", "gw-3", "gw-4", "gw-5"]
    assert (everyone["counts"]["not_published"], everyone["counts"]["not_configured"]) == (4, 1)
    assert [g["gateway_id"] for g in in_town["gateways"]] == ["gw-1", "gw-2", "gw-3"]
    assert [g["gateway_id"] for g in unconfigured["gateways"]] == ["gw-5"]
    assert [g["gateway_id"] for g in in_village["gateways"]] == ["gw-4"]
    assert (await admin.get("/gateways/gw-nope/config")).status_code == 404


async def test_every_layer_change_is_audited_with_before_and_after(admin: httpx.AsyncClient) -> None:
    await admin.put("/config/layers/village/shiqiao", json={"heartbeat_interval_s": 20.0})
    await admin.put("/config/layers/village/shiqiao", json={"heartbeat_interval_s": 20.0})  # no change: no entry
    await admin.put("/config/layers/village/shiqiao", json={"heartbeat_interval_s": 30.0})
    removed = await admin.delete("/config/layers/village/shiqiao")

    entries = (await admin.get("/audit", params={"target_type": "config_layer"})).json()

    assert removed.status_code == 200
    assert removed.json()["layer"] is None
    assert [e["action"] for e in entries] == ["config_layer.delete", "config_layer.update", "config_layer.create"]
    assert {e["target_id"] for e in entries} == {"village/shiqiao"}
    delete, update, create = entries
    assert (create["before"], create["after"]["overrides"]) == (None, {"heartbeat_interval_s": 20.0})
    assert (update["before"]["overrides"], update["after"]["overrides"]) == (
        {"heartbeat_interval_s": 20.0},
        {"heartbeat_interval_s": 30.0},
    )
    assert (delete["before"]["overrides"], delete["after"]) == ({"heartbeat_interval_s": 30.0}, None)
    assert (await admin.get("/config/layers/village/shiqiao")).status_code == 404
    assert (await admin.get("/config/status", params={"village": "shiqiao"})).json()["counts"]["not_configured"] == 2


async def test_the_signing_key_is_shown_for_gateways_to_hold(admin: httpx.AsyncClient, context: ApiContext) -> None:
    key = (await admin.get("/config/signing-key")).json()

    assert key["key_id"] == context.configs.signer.key_id
    assert key["public_key_pem"].startswith("-----BEGIN PUBLIC KEY-----")


async def test_camera_logins_in_configs_are_shown_only_to_roles_that_set_cameras_up(
    context: ApiContext, admin: httpx.AsyncClient, technician: httpx.AsyncClient
) -> None:
    camera = {
        "kind": "checkpoint_camera",
        "id": "cam-east",
        "driver": "camera",
        "params": {"source": "rtsp://viewer:s3cret@192.168.1.20:554/stream1?token=abc", "fps": 5.0},
    }
    assert (await admin.put("/config/layers/village/shiqiao", json={"devices": [camera]})).status_code == 200
    issued = await admin.post("/tokens", json={"name": "duty-officer", "role": "command_staff"})
    async with api_client(context, issued.json()["secret"]) as staff:
        staff_layer = (await staff.get("/config/layers/village/shiqiao")).json()
        staff_view = (await staff.get("/gateways/gw-1/config")).json()
        staff_list = (await staff.get("/config/layers")).text
    technician_layer = (await technician.get("/config/layers/village/shiqiao")).json()

    assert staff_layer["overrides"]["devices"][0]["params"]["source"] == "rtsp://192.168.1.20:554/stream1?..."
    assert staff_view["resolved"]["devices"][0]["params"]["source"] == "rtsp://192.168.1.20:554/stream1?..."
    assert "s3cret" not in str(staff_view)
    assert "s3cret" not in staff_list
    assert technician_layer["overrides"]["devices"][0]["params"]["source"] == camera["params"]["source"]  # type: ignore[index]
