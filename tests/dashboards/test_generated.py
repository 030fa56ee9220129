"""The committed dashboard JSON is exactly what the code builds, and every dashboard is well formed."""

import re

import pytest

from dashboards.catalogue import GENERATED_DIR, build_all
from dashboards.generated_files import read_generated, render
from dashboards.model import Flavour, GeneratedDashboard
from protocol.series import MEASUREMENTS

BUILT = build_all()


def test_the_committed_json_is_what_the_code_generates() -> None:
    committed = {(d.flavour, d.uid): render(d) for d in read_generated(GENERATED_DIR)}
    built = {(d.flavour, d.uid): render(d) for d in BUILT}
    stale = sorted(key[1] for key, text in built.items() if committed.get(key) != text)
    extra = sorted(uid for (_, uid) in committed.keys() - built.keys())
    hint = "dashboards/generated is out of date: run `outpost dashboards export`"
    assert stale == [], hint
    assert extra == [], hint


def test_every_dashboard_exists_in_both_flavours_with_a_short_unique_uid() -> None:
    by_flavour = {
        flavour: sorted(d.uid.rsplit("-", 1)[0] for d in BUILT if d.flavour is flavour) for flavour in Flavour
    }
    assert by_flavour[Flavour.PROMETHEUS] == by_flavour[Flavour.INFLUXDB]
    assert len(by_flavour[Flavour.PROMETHEUS]) == 4
    assert len({d.uid for d in BUILT}) == len(BUILT)
    assert all(len(d.uid) <= 40 for d in BUILT)


def _targets(dashboard: GeneratedDashboard) -> list[dict[str, object]]:
    return [target for panel in dashboard.model["panels"] for target in panel.get("targets", [])]


@pytest.mark.parametrize("dashboard", BUILT, ids=lambda d: d.uid)
def test_every_panel_reads_the_dashboards_data_source_variable_in_its_own_language(
    dashboard: GeneratedDashboard,
) -> None:
    panels = [p for p in dashboard.model["panels"] if p["type"] != "row"]
    assert panels
    for panel in panels:
        assert panel["datasource"] == {"type": dashboard.flavour.value, "uid": "${datasource}"}, panel["title"]
        assert panel["targets"], panel["title"]
        assert panel.get("description"), f"{panel['title']} says nothing about what it shows"
    key = "expr" if dashboard.flavour is Flavour.PROMETHEUS else "query"
    assert all(isinstance(target[key], str) and target[key] for target in _targets(dashboard))
    names = [variable["name"] for variable in dashboard.model["templating"]["list"]]
    assert names[0] == "datasource"
    assert "county" in names


@pytest.mark.parametrize("dashboard", BUILT, ids=lambda d: d.uid)
def test_panels_read_only_series_the_fleet_writes(dashboard: GeneratedDashboard) -> None:
    if dashboard.flavour is Flavour.INFLUXDB:
        read = {name for t in _targets(dashboard) for name in re.findall(r'FROM "([^"]+)"', str(t["query"]))}
        assert read
        assert read <= {m.name for m in MEASUREMENTS}, read
    else:
        written = {m.field(f).prom_name for m in MEASUREMENTS for f in m.fields}
        read = {name for t in _targets(dashboard) for name in re.findall(r"([a-z_]+)(?=[{\[])", str(t["expr"]))}
        assert read
        assert read <= written, read - written
