"""The push and the provisioning files against a real Grafana, when one is installed (it is not in Debian).

Grafana starts on a free loopback port with a fresh SQLite database and dashboards/provisioning
copied in, its ``$OUTPOST_*`` variables pointing at a temporary export of sample dashboards; the
push authenticates with a service-account token made through the admin API, as an operator would.
"""

import asyncio
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from dashboards.county_copies import County, county_variable_value
from dashboards.errors import GrafanaAuthError
from dashboards.generated_files import write_generated
from dashboards.grafana_push import Outcome, push
from dashboards.model import Flavour
from simulators.grafana.real import GrafanaServer
from tests.dashboards.test_push import DASHBOARDS, XIHE
from tests.dashboards.test_push_provisioning import PROVISIONING

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not GrafanaServer.available(), reason=GrafanaServer.not_installed_message()),
]


@pytest.fixture
async def grafana(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[GrafanaServer]:
    exported = tmp_path / "generated"
    write_generated(DASHBOARDS, exported)
    provisioning = tmp_path / "provisioning"
    shutil.copytree(PROVISIONING / "datasources", provisioning / "datasources")
    shutil.copytree(PROVISIONING / "dashboards", provisioning / "dashboards")
    # Grafana inherits this process's environment, and expands these in the provisioning files.
    monkeypatch.setenv("OUTPOST_VICTORIAMETRICS_URL", "http://127.0.0.1:8428")
    monkeypatch.setenv("OUTPOST_INFLUXDB_URL", "http://127.0.0.1:8086")
    monkeypatch.setenv("OUTPOST_INFLUXDB_USER", "")
    monkeypatch.setenv("OUTPOST_INFLUXDB_PASSWORD", "")
    monkeypatch.setenv("OUTPOST_DASHBOARDS_DIR", str(exported))
    async with GrafanaServer(provisioning=provisioning) as running:
        yield running


async def test_provisioning_creates_the_data_sources_and_loads_the_generated_dashboards(
    grafana: GrafanaServer,
) -> None:
    for uid, kind, url in [
        ("outpost-victoriametrics", "prometheus", "http://127.0.0.1:8428"),
        ("outpost-influxdb", "influxdb", "http://127.0.0.1:8086"),
    ]:
        answer = await grafana.get(f"/api/datasources/uid/{uid}")
        assert answer.status_code == 200, answer.text
        assert (answer.json()["type"], answer.json()["url"]) == (kind, url)

    for dashboard in DASHBOARDS:
        answer = await grafana.get(f"/api/dashboards/uid/{dashboard.uid}")
        assert answer.status_code == 200, answer.text
        assert answer.json()["meta"]["provisioned"] is True
        assert answer.json()["meta"]["folderUid"] == f"outpost-files-{dashboard.flavour.value}"


async def test_a_push_per_county_is_idempotent_on_a_real_grafana(grafana: GrafanaServer) -> None:
    token = await grafana.service_account_token()

    first = await asyncio.to_thread(push, DASHBOARDS, grafana.url, token, [XIHE], flavour=Flavour.PROMETHEUS)
    second = await asyncio.to_thread(push, DASHBOARDS, grafana.url, token, [XIHE], flavour=Flavour.PROMETHEUS)
    forced = await asyncio.to_thread(
        push, DASHBOARDS, grafana.url, token, [XIHE], flavour=Flavour.PROMETHEUS, force=True
    )

    assert {d.outcome for d in first.dashboards} == {Outcome.CREATED}
    assert [d.uid for d in second.dashboards] == [d.uid for d in first.dashboards]
    assert {d.outcome for d in second.dashboards} == {Outcome.UNCHANGED}  # Grafana keeps the JSON as sent
    assert {(d.outcome, d.version) for d in forced.dashboards} == {(Outcome.UPDATED, 2)}
    folder = await grafana.get("/api/folders/outpost-xihe")
    assert folder.json()["title"] == "Outpost · Xihe County"
    for pushed in first.dashboards:
        stored = (await grafana.get(f"/api/dashboards/uid/{pushed.uid}")).json()
        assert stored["meta"]["folderUid"] == "outpost-xihe"
        assert county_variable_value(stored["dashboard"]) == ["xihe"]
    search = await grafana.get("/api/search?type=dash-db&folderUIDs=outpost-xihe")
    assert len(search.json()) == len(first.dashboards)


async def test_a_wrong_token_is_refused_by_a_real_grafana(grafana: GrafanaServer) -> None:
    with pytest.raises(GrafanaAuthError, match="refused the token"):
        await asyncio.to_thread(
            push, DASHBOARDS, grafana.url, "glsa_wrong", [County("xihe")], flavour=Flavour.PROMETHEUS
        )
