"""The Grafana imitation over real HTTP: the statuses, messages and shapes Grafana's API answers with."""

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from simulators.grafana.imitation import GrafanaImitation

TOKEN = "glsa_editor"
VIEWER = "glsa_viewer"


@pytest.fixture
async def grafana() -> AsyncIterator[GrafanaImitation]:
    async with GrafanaImitation(token=TOKEN, viewer_tokens=[VIEWER]) as running:
        yield running


@pytest.fixture
async def http(grafana: GrafanaImitation) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=grafana.url, headers={"Authorization": f"Bearer {TOKEN}"}) as client:
        yield client


async def make_folder(http: httpx.AsyncClient, uid: str = "outpost-xihe", title: str = "Outpost · Xihe") -> Any:
    answer = await http.post("/api/folders", json={"uid": uid, "title": title})
    assert answer.status_code == 200, answer.text
    return answer.json()


async def save(http: httpx.AsyncClient, dashboard: dict[str, Any], **fields: Any) -> httpx.Response:
    return await http.post("/api/dashboards/db", json={"dashboard": dashboard, **fields})


async def test_health_answers_without_a_token(grafana: GrafanaImitation) -> None:
    async with httpx.AsyncClient(base_url=grafana.url) as anonymous:
        answer = await anonymous.get("/api/health")

    assert answer.status_code == 200
    assert answer.json()["database"] == "ok"


@pytest.mark.parametrize(
    ("authorization", "message", "message_id"),
    [
        (None, "Unauthorized", "auth.unauthorized"),
        ("Basic YWRtaW46YWRtaW4=", "Unauthorized", "auth.unauthorized"),
        ("Bearer glsa_wrong", "Invalid API key", "api-key.invalid"),
    ],
)
async def test_a_request_without_a_known_token_is_401_with_grafanas_body(
    grafana: GrafanaImitation, authorization: str | None, message: str, message_id: str
) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    async with httpx.AsyncClient(base_url=grafana.url, headers=headers) as client:
        answer = await client.get("/api/search", params={"type": "dash-folder"})

    assert answer.status_code == 401
    assert answer.json() == {"message": message, "messageId": message_id, "statusCode": 401, "traceID": ""}


async def test_a_viewers_token_reads_but_may_not_write(grafana: GrafanaImitation, http: httpx.AsyncClient) -> None:
    await make_folder(http)
    async with httpx.AsyncClient(base_url=grafana.url, headers={"Authorization": f"Bearer {VIEWER}"}) as viewer:
        read = await viewer.get("/api/folders/outpost-xihe")
        write = await viewer.post("/api/folders", json={"title": "Mine"})

    assert read.status_code == 200
    assert write.status_code == 403
    assert write.json()["message"].startswith("You'll need additional permissions to perform this action.")
    assert list(grafana.state.folders) == ["outpost-xihe"]


async def test_a_folder_is_created_read_listed_and_searched(http: httpx.AsyncClient) -> None:
    created = await make_folder(http)

    assert created["uid"] == "outpost-xihe"
    assert created["title"] == "Outpost · Xihe"
    assert created["version"] == 1
    assert created["url"] == "/dashboards/f/outpost-xihe/outpost-xihe"
    assert (await http.get("/api/folders/outpost-xihe")).json() == created
    assert (await http.get("/api/folders")).json() == [
        {"id": created["id"], "uid": "outpost-xihe", "title": "Outpost · Xihe"}
    ]
    hits = (await http.get("/api/search", params={"type": "dash-folder"})).json()
    assert [(hit["uid"], hit["title"], hit["type"]) for hit in hits] == [
        ("outpost-xihe", "Outpost · Xihe", "dash-folder")
    ]


async def test_a_folder_without_a_uid_gets_one(http: httpx.AsyncClient) -> None:
    created = (await http.post("/api/folders", json={"title": "Generated uid"})).json()

    assert len(created["uid"]) == 14


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"uid": "outpost-xihe", "title": "Another"}, 409, "a folder/dashboard with the same uid already exists"),
        ({"uid": "other", "title": "outpost · XIHE"}, 409, "with the same name already exists"),
        ({"uid": "bad/uid", "title": "Bad"}, 400, "uid contains illegal characters"),
        ({"uid": "x" * 41, "title": "Long"}, 400, "uid too long, max 40 characters"),
        ({"uid": "untitled", "title": " "}, 400, "folder title cannot be empty"),
        ({"uid": "child", "title": "Child", "parentUid": "nowhere"}, 404, "folder not found"),
        ({"uid": 7, "title": "Numeric uid"}, 400, "bad request data"),
    ],
)
async def test_a_folder_grafana_would_refuse_is_refused_the_same_way(
    http: httpx.AsyncClient, body: dict[str, Any], status: int, message: str
) -> None:
    await make_folder(http)

    answer = await http.post("/api/folders", json=body)

    assert answer.status_code == status
    assert message in answer.json()["message"]


async def test_a_folder_update_needs_its_version_unless_it_overwrites(http: httpx.AsyncClient) -> None:
    await make_folder(http)

    stale = await http.put("/api/folders/outpost-xihe", json={"title": "Renamed"})
    current = await http.put("/api/folders/outpost-xihe", json={"title": "Renamed", "version": 1})
    forced = await http.put("/api/folders/outpost-xihe", json={"title": "Renamed again", "overwrite": True})
    missing = await http.put("/api/folders/nowhere", json={"title": "X", "overwrite": True})

    assert stale.status_code == 412
    assert stale.json() == {"message": "the folder has been changed by someone else", "status": "version-mismatch"}
    assert (current.status_code, current.json()["version"]) == (200, 2)
    assert (forced.status_code, forced.json()["version"], forced.json()["title"]) == (200, 3, "Renamed again")
    assert (missing.status_code, missing.json()["message"]) == (404, "folder not found")


async def test_a_dashboard_is_saved_into_its_folder_and_read_back(http: httpx.AsyncClient) -> None:
    folder = await make_folder(http)

    answer = await save(
        http,
        {"id": None, "uid": "alerts-xihe", "title": "Alerts · Xihe", "panels": []},
        folderUid="outpost-xihe",
        message="first",
        overwrite=False,
    )

    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body == {
        "id": body["id"],
        "uid": "alerts-xihe",
        "url": "/d/alerts-xihe/alerts-xihe",
        "status": "success",
        "version": 1,
        "slug": "alerts-xihe",
        "folderUid": "outpost-xihe",
    }
    read = (await http.get("/api/dashboards/uid/alerts-xihe")).json()
    assert read["dashboard"] == {
        "id": body["id"],
        "uid": "alerts-xihe",
        "title": "Alerts · Xihe",
        "panels": [],
        "version": 1,
    }
    assert read["meta"]["folderUid"] == "outpost-xihe"
    assert read["meta"]["folderId"] == folder["id"]
    assert read["meta"]["url"] == "/d/alerts-xihe/alerts-xihe"
    hits = (await http.get("/api/search", params={"type": "dash-db", "folderUIDs": "outpost-xihe"})).json()
    assert [(hit["uid"], hit["folderUid"]) for hit in hits] == [("alerts-xihe", "outpost-xihe")]


async def test_saving_over_a_dashboard_needs_its_version_unless_it_overwrites(
    grafana: GrafanaImitation, http: httpx.AsyncClient
) -> None:
    dashboard = {"uid": "alerts", "title": "Alerts"}
    assert (await save(http, dashboard)).json()["version"] == 1

    without_version = await save(http, dashboard)
    stale_version = await save(http, dashboard | {"version": 7})
    current_version = await save(http, dashboard | {"version": 1})
    overwritten = await save(http, dashboard | {"version": 1}, overwrite=True)

    assert without_version.status_code == stale_version.status_code == 412
    assert without_version.json() == {
        "message": "The dashboard has been changed by someone else",
        "status": "version-mismatch",
    }
    assert (current_version.status_code, current_version.json()["version"]) == (200, 2)
    assert (overwritten.status_code, overwritten.json()["version"]) == (200, 3)
    assert [(s.version, s.overwrite, s.created) for s in grafana.state.history] == [
        (1, False, True),
        (2, False, False),
        (3, True, False),
    ]
    assert len(grafana.state.dashboards) == 1


@pytest.mark.parametrize(
    ("fields", "status", "body"),
    [
        ({"dashboard": {"uid": "x", "title": " "}}, 400, {"message": "Dashboard title cannot be empty"}),
        ({"dashboard": {"uid": "x" * 41, "title": "T"}}, 400, {"message": "uid too long, max 40 characters"}),
        ({"dashboard": {"uid": "a b", "title": "T"}}, 400, {"message": "uid contains illegal characters"}),
        ({"dashboard": {"uid": "x", "title": "T"}, "folderUid": "nowhere"}, 400, {"message": "folder not found"}),
        ({"dashboard": {"id": 99, "title": "T"}}, 404, {"message": "Dashboard not found", "status": "not-found"}),
        ({"dashboard": "not an object"}, 400, {"message": "bad request data"}),
        ({"folderUid": "outpost-xihe"}, 400, {"message": "bad request data"}),
    ],
)
async def test_a_dashboard_grafana_would_refuse_is_refused_the_same_way(
    grafana: GrafanaImitation, http: httpx.AsyncClient, fields: dict[str, Any], status: int, body: dict[str, Any]
) -> None:
    answer = await http.post("/api/dashboards/db", json=fields)

    assert answer.status_code == status
    assert answer.json() == body
    assert grafana.state.dashboards == {}


async def test_a_body_that_is_not_json_is_bad_request_data(http: httpx.AsyncClient) -> None:
    answer = await http.post("/api/dashboards/db", content=b"{not json", headers={"Content-Type": "application/json"})

    assert (answer.status_code, answer.json()) == (400, {"message": "bad request data"})


async def test_a_dashboard_without_a_uid_gets_one_and_a_title_taken_in_its_folder_is_refused(
    http: httpx.AsyncClient,
) -> None:
    first = (await save(http, {"uid": None, "title": "Alerts"})).json()
    clash = await save(http, {"uid": "other", "title": "alerts"})
    forced = await save(http, {"uid": "other", "title": "alerts"}, overwrite=True)

    assert len(first["uid"]) == 14
    assert clash.status_code == 412
    assert clash.json()["status"] == "name-exists"
    assert forced.status_code == 200


async def test_an_unknown_dashboard_is_404(http: httpx.AsyncClient) -> None:
    answer = await http.get("/api/dashboards/uid/nowhere")

    assert (answer.status_code, answer.json()) == (404, {"message": "Dashboard not found", "status": "not-found"})


async def test_every_request_is_recorded_as_received(grafana: GrafanaImitation, http: httpx.AsyncClient) -> None:
    await make_folder(http)
    await save(http, {"uid": "alerts", "title": "Alerts"}, folderUid="outpost-xihe", overwrite=True)

    posted = grafana.requests.matching("POST", "/api/dashboards/db")
    assert len(posted) == 1
    assert json.loads(posted[0].body) == {
        "dashboard": {"uid": "alerts", "title": "Alerts"},
        "folderUid": "outpost-xihe",
        "overwrite": True,
    }
    assert posted[0].header("authorization") == f"Bearer {TOKEN}"
    assert posted[0].status == 200
    assert [entry.method for entry in grafana.requests.entries] == ["POST", "POST"]
