"""A dashboard's frame: identity per flavour, time range, refresh, tags and template variables."""

import json
from typing import Any, Final

from grafana_foundation_sdk.builders.dashboard import Dashboard
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.common import TimeZoneBrowser

from dashboards.model import Flavour, GeneratedDashboard
from dashboards.variables import datasource_variable, place_variable

_UID_SUFFIX: Final = {Flavour.PROMETHEUS: "prom", Flavour.INFLUXDB: "influx"}
_SOURCE_NAME: Final = {Flavour.PROMETHEUS: "VictoriaMetrics", Flavour.INFLUXDB: "InfluxDB"}
REFRESH: Final = "30s"
"""A wall screen refreshes itself; the fleet exports its state every 15 s."""


def frame(flavour: Flavour, slug: str, title: str, description: str, places: tuple[str, ...]) -> Dashboard:
    """An empty dashboard ``outpost-{slug}-{flavour}`` with the data-source variable and ``places`` variables."""
    dashboard = (
        Dashboard(f"{title} ({_SOURCE_NAME[flavour]})")
        .uid(f"outpost-{slug}-{_UID_SUFFIX[flavour]}")
        .description(description)
        .tags(["outpost", flavour.value])
        .time("now-6h", "now")
        .timezone(TimeZoneBrowser)
        .refresh(REFRESH)
        .editable()
        .with_variable(datasource_variable(flavour))
    )
    for place in places:
        dashboard = dashboard.with_variable(place_variable(flavour, place))
    return dashboard


def generated(flavour: Flavour, dashboard: Dashboard) -> GeneratedDashboard:
    """The built dashboard as Grafana's JSON model (the SDK's own encoding, read back as plain data)."""
    model = dashboard.build()
    document: dict[str, Any] = json.loads(JSONEncoder().encode(model))
    return GeneratedDashboard(flavour, str(model.uid), str(model.title), document)
