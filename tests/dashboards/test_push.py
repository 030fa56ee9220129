"""Publishing dashboards to Grafana's HTTP API, against the Grafana imitation over real HTTP.

grafana-client blocks, and the imitation serves from this test's event loop, so every push runs in a
thread (``asyncio.to_thread``), as async callers of :func:`dashboards.grafana_push.push` must.
"""

import asyncio
import json
import socket
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

import httpx
import pytest

from dashboards.catalogue import GENERATED_DIR
from dashboards.county_copies import County, county_variable_value
from dashboards.errors import DashboardsError, GrafanaAuthError, GrafanaPushError, GrafanaUnreachableError
from dashboards.generated_files import read_generated
from dashboards.grafana_http import GrafanaHttp
from dashboards.grafana_push import Outcome, PushReport, push
from dashboards.model import Flavour, GeneratedDashboard
from simulators.grafana.imitation import GrafanaImitation
from simulators.infra.ports import free_port

TOKEN = "glsa_editor-token"
VIEWER_TOKEN = "glsa_viewer-token"
XIHE = County("xihe", "Xihe County")
DONGSHAN = County("dongshan")


def sample_model(uid: str, title: str, flavour: Flavour = Flavour.PROMETHEUS) -> dict[str, Any]:
    """A small dashboard shaped like the generated ones: data-source variable, place variables, one panel."""
    datasource = {"type": flavour.value, "uid": "${datasource}"}
    return {
        "uid": uid,
        "title": title,
        "tags": ["outpost", flavour.value],
        "editable": True,
        "schemaVersion": 39,
        "time": {"from": "now-6h", "to": "now"},
        "templating": {
            "list": [
                {
                    "name": "datasource",
                    "type": "datasource",
                    "query": flavour.value,
                    "current": {
                        "selected": True,
                        "text": "outpost-victoriametrics",
                        "value": "outpost-victoriametrics",
                    },
                },
                {
                    "name": "county",
                    "type": "query",
                    "datasource": datasource,
                    "query": "label_values(village_state_status, county)",
                    "multi": True,
                    "includeAll": True,
                    "allValue": ".*",
                    "current": {"selected": True, "text": "All", "value": "$__all"},
                    "options": [],
                },
                {
                    "name": "town",
                    "type": "query",
                    "datasource": datasource,
                    "query": 'label_values(village_state_status{county=~"$county"}, town)',
                    "multi": True,
                    "includeAll": True,
                    "current": {"selected": True, "text": "All", "value": "$__all"},
                },
            ]
        },
        "panels": [
            {
                "id": 1,
                "type": "stat",
                "title": "Villages online",
                "datasource": datasource,
                "gridPos": {"h": 4, "w": 6, "x": 0, "y": 0},
                "targets": [{"refId": "A", "expr": 'count(village_state_status{county=~"$county"} == 1)'}],
            }
        ],
    }


def sample(uid: str, title: str | None = None, flavour: Flavour = Flavour.PROMETHEUS) -> GeneratedDashboard:
    name = title or uid.replace("-", " ").title()
    return GeneratedDashboard(flavour, uid, name, sample_model(uid, name, flavour))


DASHBOARDS = (
    sample("outpost-county-overview-prom", "County overview (VictoriaMetrics)"),
    sample("outpost-alerts-prom", "Alerts (VictoriaMetrics)"),
    sample("outpost-alerts-influx", "Alerts (InfluxDB)", Flavour.INFLUXDB),
)


async def push_to(
    grafana: GrafanaImitation | str,
    dashboards: Sequence[GeneratedDashboard] = DASHBOARDS,
    counties: Sequence[County] = (XIHE, DONGSHAN),
    *,
    token: str = TOKEN,
    flavour: Flavour = Flavour.PROMETHEUS,
    **options: Any,
) -> PushReport:
    url = grafana if isinstance(grafana, str) else grafana.url
    return await asyncio.to_thread(push, dashboards, url, token, counties, flavour=flavour, **options)


def bodies(grafana: GrafanaImitation, method: str, path: str) -> list[Any]:
    return [json.loads(entry.body) for entry in grafana.requests.matching(method, path)]


@pytest.fixture
async def grafana() -> AsyncIterator[GrafanaImitation]:
    async with GrafanaImitation(token=TOKEN, viewer_tokens=[VIEWER_TOKEN]) as running:
        yield running


async def test_a_push_creates_a_folder_per_county_with_a_copy_of_each_dashboard_opening_on_that_county(
    grafana: GrafanaImitation,
) -> None:
    report = await push_to(grafana)

    assert {uid: f.title for uid, f in grafana.state.folders.items()} == {
        "outpost-xihe": "Outpost · Xihe County",
        "outpost-dongshan": "Outpost · dongshan",
    }
    assert [f.outcome for f in report.folders] == [Outcome.CREATED, Outcome.CREATED]
    stored = grafana.state.dashboards
    assert sorted(stored) == [
        "outpost-alerts-prom-dongshan",
        "outpost-alerts-prom-xihe",
        "outpost-county-overview-prom-dongshan",
        "outpost-county-overview-prom-xihe",
    ]  # the influxdb flavour was not chosen
    for uid, dashboard in stored.items():
        county = uid.rsplit("-", 1)[1]
        assert dashboard.folder_uid == f"outpost-{county}"
        assert county_variable_value(dashboard.data) == [county]  # multi-value variable: a list
        county_variable = dashboard.data["templating"]["list"][1]
        assert county_variable["options"] == [{"selected": True, "text": county, "value": county}]
        assert dashboard.version == 1
    assert {(d.uid, d.outcome, d.version) for d in report.dashboards} == {(uid, Outcome.CREATED, 1) for uid in stored}
    assert all(d.url.startswith(f"{grafana.url}/d/{d.uid}/") for d in report.dashboards)
    sent = bodies(grafana, "POST", "/api/dashboards/db")
    assert all("id" not in body["dashboard"] and body["overwrite"] is True for body in sent)


async def test_a_second_push_changes_nothing_and_creates_no_duplicates(grafana: GrafanaImitation) -> None:
    first = await push_to(grafana)
    requests_before = len(grafana.requests)

    second = await push_to(grafana)

    assert [d.uid for d in second.dashboards] == [d.uid for d in first.dashboards]
    assert {d.outcome for d in second.dashboards} == {Outcome.UNCHANGED}
    assert {f.outcome for f in second.folders} == {Outcome.UNCHANGED}
    assert len(grafana.state.folders) == 2
    assert len(grafana.state.dashboards) == 4
    assert {d.version for d in grafana.state.dashboards.values()} == {1}
    later = grafana.requests.entries[requests_before:]
    assert [entry.method for entry in later if entry.method != "GET"] == []  # read-only: nothing saved again


async def test_a_forced_push_overwrites_in_place_and_advances_every_version(grafana: GrafanaImitation) -> None:
    first = await push_to(grafana)

    forced = await push_to(grafana, force=True)

    assert [d.uid for d in forced.dashboards] == [d.uid for d in first.dashboards]
    assert {(d.outcome, d.version) for d in forced.dashboards} == {(Outcome.UPDATED, 2)}
    assert len(grafana.state.dashboards) == 4
    assert {d.version for d in grafana.state.dashboards.values()} == {2}
    assert len(grafana.requests.matching("POST", "/api/folders")) == 2  # folders created once
    updates = [saved for saved in grafana.state.history if not saved.created]
    assert len(updates) == 4
    assert all(saved.overwrite for saved in updates)


async def test_a_changed_dashboard_is_updated_and_the_others_are_left_alone(grafana: GrafanaImitation) -> None:
    await push_to(grafana, counties=[XIHE])
    changed = sample_model("outpost-alerts-prom", "Alerts (VictoriaMetrics)")
    changed["panels"][0]["title"] = "Villages reporting"
    dashboards = [
        DASHBOARDS[0],
        GeneratedDashboard(Flavour.PROMETHEUS, "outpost-alerts-prom", changed["title"], changed),
    ]

    report = await push_to(grafana, dashboards, counties=[XIHE])

    outcomes = {d.uid: (d.outcome, d.version) for d in report.dashboards}
    assert outcomes == {
        "outpost-county-overview-prom-xihe": (Outcome.UNCHANGED, 1),
        "outpost-alerts-prom-xihe": (Outcome.UPDATED, 2),
    }
    stored = grafana.state.dashboards["outpost-alerts-prom-xihe"].data
    assert stored["panels"][0]["title"] == "Villages reporting"
    assert county_variable_value(stored) == ["xihe"]


async def test_without_counties_the_dashboards_go_as_generated_into_one_outpost_folder(
    grafana: GrafanaImitation,
) -> None:
    report = await push_to(grafana, counties=())

    assert [(f.uid, f.title) for f in report.folders] == [("outpost", "Outpost")]
    assert sorted(grafana.state.dashboards) == ["outpost-alerts-prom", "outpost-county-overview-prom"]
    for dashboard in grafana.state.dashboards.values():
        assert dashboard.folder_uid == "outpost"
        assert county_variable_value(dashboard.data) == "$__all"  # every county, as generated


async def test_a_county_given_a_new_name_gets_its_folder_renamed_not_a_second_folder(grafana: GrafanaImitation) -> None:
    await push_to(grafana, counties=[County("xihe", "Xihe")])

    report = await push_to(grafana, counties=[XIHE])

    assert [(f.uid, f.title, f.outcome) for f in report.folders] == [
        ("outpost-xihe", "Outpost · Xihe County", Outcome.UPDATED)
    ]
    assert list(grafana.state.folders) == ["outpost-xihe"]
    assert grafana.state.folders["outpost-xihe"].version == 2
    assert {d.outcome for d in report.dashboards} == {Outcome.UNCHANGED}


async def test_a_dashboard_moved_out_of_its_folder_is_put_back(grafana: GrafanaImitation) -> None:
    await push_to(grafana, counties=[XIHE])
    moved = grafana.state.dashboard_json("outpost-alerts-prom-xihe")["dashboard"]
    async with httpx.AsyncClient(base_url=grafana.url, headers={"Authorization": f"Bearer {TOKEN}"}) as http:
        answer = await http.post("/api/dashboards/db", json={"dashboard": moved, "folderUid": ""})
    assert answer.status_code == 200, answer.text
    assert grafana.state.dashboards["outpost-alerts-prom-xihe"].folder_uid is None  # in General now

    report = await push_to(grafana, counties=[XIHE])

    assert {d.uid: d.outcome for d in report.dashboards}["outpost-alerts-prom-xihe"] is Outcome.UPDATED
    assert grafana.state.dashboards["outpost-alerts-prom-xihe"].folder_uid == "outpost-xihe"


async def test_the_committed_generated_dashboards_push_per_county_within_grafanas_rules(
    grafana: GrafanaImitation,
) -> None:
    generated = read_generated(GENERATED_DIR)
    counties = [XIHE, County("a-county-with-a-rather-long-identifier", "Long")]

    for flavour in Flavour:
        report = await push_to(grafana, generated, counties, flavour=flavour)
        assert {d.outcome for d in report.dashboards} == {Outcome.CREATED}

    per_flavour = len([d for d in generated if d.flavour is Flavour.PROMETHEUS])
    assert per_flavour > 0
    assert len(grafana.state.dashboards) == len(generated) * len(counties)
    for dashboard in grafana.state.dashboards.values():
        assert len(dashboard.uid) <= 40
        county = "xihe" if dashboard.folder_uid == "outpost-xihe" else counties[1].id
        assert county_variable_value(dashboard.data) in (county, [county])


async def test_a_wrong_token_stops_the_push_at_its_first_request_and_says_so(grafana: GrafanaImitation) -> None:
    with pytest.raises(GrafanaAuthError, match=r"refused the token while listing folders \(401 Invalid API key\)"):
        await push_to(grafana, token="glsa_not-a-token")

    assert len(grafana.requests) == 1
    assert grafana.state.folders == {}
    assert grafana.state.dashboards == {}


async def test_a_read_only_token_fails_saying_what_permission_it_lacks(grafana: GrafanaImitation) -> None:
    with pytest.raises(GrafanaAuthError, match=r"does not let this token do creating folder 'outpost-xihe' \(403"):
        await push_to(grafana, token=VIEWER_TOKEN)

    assert grafana.state.folders == {}


async def test_an_unreachable_grafana_fails_saying_it_cannot_be_reached() -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there

    with pytest.raises(GrafanaUnreachableError, match=rf"cannot reach Grafana at {url} while listing folders"):
        await push_to(url)


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port whose listener accepts connections (the kernel does) but never answers."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        yield listener.getsockname()[1]


async def test_a_grafana_that_never_answers_fails_after_the_timeout(silent_port: int) -> None:
    url = f"http://127.0.0.1:{silent_port}"

    with pytest.raises(GrafanaUnreachableError, match=rf"Grafana at {url} did not answer within 0.2 s"):
        await push_to(url, timeout_s=0.2)


async def test_a_dashboard_without_a_county_variable_is_refused_before_any_request(grafana: GrafanaImitation) -> None:
    model = sample_model("outpost-bare-prom", "Bare")
    model["templating"]["list"] = [v for v in model["templating"]["list"] if v["name"] != "county"]

    with pytest.raises(DashboardsError, match="has no template variable 'county'"):
        await push_to(grafana, [GeneratedDashboard(Flavour.PROMETHEUS, "outpost-bare-prom", "Bare", model)])

    assert len(grafana.requests) == 0


async def test_choosing_a_flavour_with_no_dashboards_is_refused(grafana: GrafanaImitation) -> None:
    with pytest.raises(DashboardsError, match="no influxdb dashboards to push"):
        await push_to(grafana, DASHBOARDS[:2], flavour=Flavour.INFLUXDB)


async def test_a_folder_title_held_by_another_folder_is_explained(grafana: GrafanaImitation) -> None:
    async with httpx.AsyncClient(base_url=grafana.url, headers={"Authorization": f"Bearer {TOKEN}"}) as http:
        made = await http.post("/api/folders", json={"uid": "handmade", "title": "Outpost · Xihe County"})
    assert made.status_code == 200, made.text

    with pytest.raises(GrafanaPushError, match="already exists with uid 'handmade': rename or delete it"):
        await push_to(grafana, counties=[XIHE])


def test_a_grafana_under_a_sub_path_is_addressed_there() -> None:
    assert GrafanaHttp("https://ops.example/grafana", TOKEN).api_url == "https://ops.example/grafana/api"
    assert GrafanaHttp("http://127.0.0.1:3000/", TOKEN).api_url == "http://127.0.0.1:3000/api"
    assert GrafanaHttp("https://ops.example/grafana", TOKEN).absolute("/grafana/d/x/y") == (
        "https://ops.example/grafana/d/x/y"
    )


@pytest.mark.parametrize("url", ["ops.example:3000", "ftp://ops.example", "http://"])
def test_an_address_that_is_not_http_is_refused(url: str) -> None:
    with pytest.raises(GrafanaPushError, match="not a Grafana URL"):
        GrafanaHttp(url, TOKEN)


def test_an_empty_token_is_refused_before_any_request() -> None:
    with pytest.raises(GrafanaAuthError, match="no Grafana token given"):
        GrafanaHttp("http://127.0.0.1:3000", "  ")
