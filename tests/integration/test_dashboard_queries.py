"""Every committed dashboard's queries against real servers seeded by the fleet from the simulated county.

The PromQL flavour runs against VictoriaMetrics, the InfluxQL flavour against InfluxDB 1.6, both seeded
through the fleet's own time-series writer (:mod:`tests.integration.dashboard_seed`). Each panel target,
with its variables substituted as Grafana does (:mod:`tests.integration.dashboard_targets`), must return
series with the labels or tags its legend names; each dashboard's place variables must list the seeded
places. One test per dashboard and check, reporting every failing target of the dashboard at once.
"""

import os
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import pytest_asyncio

from dashboards.catalogue import GENERATED_DIR
from dashboards.generated_files import read_generated
from dashboards.model import Flavour, GeneratedDashboard
from dashboards.preview.interpolation import Interpolation, TimeRange
from dashboards.preview.render import panel_data
from dashboards.preview.run import preview
from dashboards.preview.sources import InfluxSource, PromSource, Source
from protocol.clock import utc_now_ms
from tests.integration.dashboard_seed import Seed, seeded
from tests.integration.dashboard_targets import (
    Choice,
    check_influx_target,
    check_prom_target,
    influx_variable_values,
    prom_variable_values,
    query_variables,
    substitute,
    targets,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]
IN_THE_SEEDS_LOOP = pytest.mark.asyncio(loop_scope="module")

COMMITTED = read_generated(GENERATED_DIR)
"""What is committed (and provisioned into Grafana), not what the code would build now."""
PREVIEWS_ENV = "OUTPOST_DASHBOARD_PREVIEWS"
CHOSEN_VILLAGE = "dongshan"
"""The village the dashboards are looked at for: the one with sensor nodes (batteries, signal)."""


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def seed(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Seed]:
    async with seeded(tmp_path_factory.mktemp("dashboard-seed")) as seeded_servers:
        yield seeded_servers


def choice(seed: Seed) -> Choice:
    return Choice(seed.county, seed.town_of[CHOSEN_VILLAGE], CHOSEN_VILLAGE)


def span(seed: Seed) -> TimeRange:
    """From before the county started to now, as "the last few minutes" in Grafana."""
    return TimeRange(seed.started_ms, max(seed.ended_ms, utc_now_ms()))


def _client(seed: Seed, flavour: Flavour) -> httpx.AsyncClient:
    url = seed.victoria_url if flavour is Flavour.PROMETHEUS else seed.influxdb_url
    return httpx.AsyncClient(base_url=url, timeout=10.0)


def test_both_flavours_have_committed_dashboards() -> None:
    flavours = {dashboard.flavour for dashboard in COMMITTED}
    assert flavours == set(Flavour), f"committed dashboards only for {flavours}"


@IN_THE_SEEDS_LOOP
@pytest.mark.parametrize("dashboard", COMMITTED, ids=lambda d: d.uid)
async def test_every_panel_query_returns_the_series_its_panel_shows(seed: Seed, dashboard: GeneratedDashboard) -> None:
    chosen, window = choice(seed), span(seed)
    failures: list[str] = []
    checked = 0
    async with _client(seed, dashboard.flavour) as client:
        for target in targets(dashboard.model):
            key = "expr" if dashboard.flavour is Flavour.PROMETHEUS else "query"
            query = substitute(str(target.model[key]), dashboard.flavour, chosen, window, target.interval_s)
            if dashboard.flavour is Flavour.PROMETHEUS:
                problems = await check_prom_target(client, target, query, window)
            else:
                problems = await check_influx_target(client, seed.database, target, query)
            failures += [f"{target.name}: {problem}" for problem in problems]
            checked += 1
    assert checked > 0, f"{dashboard.uid} has no query targets"
    assert not failures, (
        f"{len(failures)} of {checked} targets of {dashboard.uid} ({chosen}, {window}, seeded: {dict(seed.happened)}) "
        "failed:\n" + "\n".join(failures)
    )


@IN_THE_SEEDS_LOOP
@pytest.mark.parametrize("dashboard", COMMITTED, ids=lambda d: d.uid)
async def test_the_place_variables_list_the_seeded_places(seed: Seed, dashboard: GeneratedDashboard) -> None:
    chosen, window = choice(seed), span(seed)
    expected = {
        "county": {seed.county},
        "town": seed.towns(),  # the county's towns
        "village": seed.villages_of(chosen.town),  # the chosen town's villages
    }
    failures: list[str] = []
    variables = query_variables(dashboard.model)
    async with _client(seed, dashboard.flavour) as client:
        for variable in variables:
            name = str(variable["name"])
            query = substitute(str(variable["query"]), dashboard.flavour, chosen, window, 15)
            if dashboard.flavour is Flavour.PROMETHEUS:
                values, shown = await prom_variable_values(client, query, window)
            else:
                values, shown = await influx_variable_values(client, seed.database, query)
            if set(values) != expected.get(name):
                failures.append(f"${name} lists {sorted(values)}, not {sorted(expected.get(name, ()))}: {shown}")
    assert [v["name"] for v in variables], f"{dashboard.uid} has no place variables"
    assert not failures, f"template variables of {dashboard.uid} ({chosen}):\n" + "\n".join(failures)


@IN_THE_SEEDS_LOOP
@pytest.mark.parametrize("flavour", list(Flavour))
async def test_previews_draw_every_dashboard_from_the_seeded_servers_without_a_failed_panel(
    seed: Seed, flavour: Flavour, tmp_path: Path
) -> None:
    """``outpost dashboards preview``'s drawing, on the seeded servers. With OUTPOST_DASHBOARD_PREVIEWS set
    to a directory (docs/dashboards), the PNGs are written there: that is how the docs' previews are made."""
    chosen, window = choice(seed), span(seed)
    out = Path(os.environ.get(PREVIEWS_ENV) or tmp_path) / flavour.value
    url = seed.victoria_url if flavour is Flavour.PROMETHEUS else seed.influxdb_url
    places = {name: [value] for name, value in chosen.values().items()}
    interpolation = Interpolation(window, places)
    dashboards = [d for d in COMMITTED if d.flavour is flavour]
    async with httpx.AsyncClient(timeout=10.0) as client:
        source: Source = (
            PromSource(client, url, interpolation)
            if flavour is Flavour.PROMETHEUS
            else InfluxSource(client, url, interpolation, seed.database)
        )
        failed = {
            f"{d.uid} / {d.model['panels'][index]['title']}": data
            for d in dashboards
            for index, data in (await panel_data(d, source)).items()
            if isinstance(data, str) or (d.model["panels"][index]["type"] != "row" and not data)
        }
        assert failed == {}, "panels without data in a preview"
        written = await preview(dashboards, flavour, url, interpolation.time_range, places, out, database=seed.database)
    assert sorted(path.name for path in written) == sorted(f"{d.uid}.png" for d in dashboards)
    for path in written:
        assert path.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
        assert path.stat().st_size > 20_000, f"{path} is suspiciously small for a drawn dashboard"
