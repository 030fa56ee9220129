"""Panels built from flavour-neutral queries: the same panel, with PromQL or InfluxQL targets.

Each factory takes the :class:`~dashboards.model.Flavour`, a title, the series to show (a
:class:`Shown`: a query and the name its series has when it breaks down by nothing) and how to
display them; it returns a foundation-SDK panel builder whose targets read the dashboard's
``datasource`` variable. Instant queries (a stat, a bar, a table row) are asked as such: a PromQL
instant query, an InfluxQL query without ``GROUP BY time``.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final, TypeVar

from grafana_foundation_sdk.builders import bargauge, common, geomap, prometheus, stat, table, timeseries
from grafana_foundation_sdk.builders.dashboard import ThresholdsConfig
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog import variants as cogvariants
from grafana_foundation_sdk.models.common import (
    BarGaugeDisplayMode,
    BigValueColorMode,
    BigValueGraphMode,
    BigValueTextMode,
    FrameGeometrySourceMode,
    GraphDrawStyle,
    LegendDisplayMode,
    LegendPlacement,
    StackingMode,
    VizOrientation,
)
from grafana_foundation_sdk.models.dashboard import DataSourceRef, DataTransformerConfig, DynamicConfigValue
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

from dashboards import look
from dashboards.influx_target import InfluxQLTarget
from dashboards.model import Flavour
from dashboards.queries import Query, bucket, influx_alias, influxql, is_instant, prom_legend, promql

_P = TypeVar("_P", timeseries.Panel, bargauge.Panel)
_AnyPanel = TypeVar("_AnyPanel", timeseries.Panel, stat.Panel, bargauge.Panel, table.Panel, geomap.Panel)

DATASOURCE_VARIABLE: Final = "datasource"
_REF_IDS: Final = "ABCDEFGHIJ"
_TIME_COLUMNS: Final = {"Time": True, "time": True}


@dataclass(frozen=True, slots=True)
class Shown:
    """A query on a panel; ``name`` is its series' name when it breaks down by nothing, and comes
    before the breakdown's values with ``prefixed`` (two queries by the same tags on one panel)."""

    query: Query
    name: str
    prefixed: bool = False

    def prom_legend(self) -> str:
        legend = prom_legend(self.query, self.name)
        return f"{self.name} {legend}" if self.prefixed and self.query.by else legend

    def influx_alias(self) -> str:
        alias = influx_alias(self.query, self.name)
        return f"{self.name} {alias}" if self.prefixed and self.query.by else alias


def datasource(flavour: Flavour) -> DataSourceRef:
    return DataSourceRef(type_val=flavour.value, uid="${" + DATASOURCE_VARIABLE + "}")


def _targets(
    flavour: Flavour, shown: Sequence[Shown], *, as_table: bool = False
) -> list[cogbuilder.Builder[cogvariants.Dataquery]]:
    if len(shown) > len(_REF_IDS):
        raise ValueError(f"at most {len(_REF_IDS)} queries on a panel")
    targets: list[cogbuilder.Builder[cogvariants.Dataquery]] = []
    for ref_id, item in zip(_REF_IDS, shown, strict=False):
        if flavour is Flavour.PROMETHEUS:
            target = prometheus.Dataquery().expr(promql(item.query)).ref_id(ref_id).datasource(datasource(flavour))
            target = target.instant() if is_instant(item.query) else target.range()
            target = target.format(PromQueryFormat.TABLE) if as_table else target.legend_format(item.prom_legend())
            width = bucket(item.query)
            if width is not None:
                target = target.interval(width)
            targets.append(target)
        else:
            influx = InfluxQLTarget(influxql(item.query)).ref_id(ref_id).datasource(datasource(flavour))
            targets.append(influx.table() if as_table else influx.alias(item.influx_alias()))
    return targets


def _placed(
    panel: _AnyPanel,
    flavour: Flavour,
    title: str,
    description: str,
    targets: list[cogbuilder.Builder[cogvariants.Dataquery]],
    width: int,
    height: int,
) -> _AnyPanel:
    """What every panel has: its title and description, the dashboard's data source, its targets, its size."""
    return (
        panel.title(title)
        .description(description)
        .datasource(datasource(flavour))
        .targets(targets)
        .span(width)
        .height(height)
    )


def _interval(shown: Sequence[Shown]) -> str | None:
    widths = {bucket(item.query) for item in shown} - {None}
    if len(widths) > 1:
        raise ValueError(f"one panel, one bucket width: {sorted(w for w in widths if w)}")
    return next(iter(widths), None)


def time_series(
    flavour: Flavour,
    title: str,
    shown: Sequence[Shown],
    *,
    unit: str,
    description: str,
    stacked: bool = False,
    bars: bool = False,
    thresholds: ThresholdsConfig | None = None,
    colours: Mapping[str, str] | None = None,
    width: int = 12,
    height: int = 8,
) -> timeseries.Panel:
    panel = (
        _placed(timeseries.Panel(), flavour, title, description, _targets(flavour, shown), width, height)
        .unit(unit)
        .min(0)
        .line_width(2)
        .fill_opacity(25 if stacked or bars else 10)
        .legend(common.VizLegendOptions().display_mode(LegendDisplayMode.LIST).placement(LegendPlacement.BOTTOM))
        .interval(_interval(shown) or "15s")  # never finer than the fleet's 15 s state export
    )
    if stacked:
        panel = panel.stacking(common.StackingConfig().mode(StackingMode.NORMAL))
    if bars:
        panel = panel.draw_style(GraphDrawStyle.BARS)
    if thresholds is not None:
        panel = panel.thresholds(thresholds)
    return _coloured(panel, colours)


def big_number(
    flavour: Flavour,
    title: str,
    shown: Sequence[Shown],
    *,
    unit: str,
    description: str,
    thresholds: ThresholdsConfig,
    mappings: list[look.ValueMapping] | None = None,
    width: int = 4,
    height: int = 5,
) -> stat.Panel:
    """A number to read from across the room: its background in its threshold's colour; no data reads 0."""
    panel = (
        _placed(stat.Panel(), flavour, title, description, _targets(flavour, shown), width, height)
        .unit(unit)
        .thresholds(thresholds)
        .color_mode(BigValueColorMode.BACKGROUND_SOLID)
        .graph_mode(BigValueGraphMode.NONE)
        .text_mode(BigValueTextMode.VALUE_AND_NAME if len(shown) > 1 or shown[0].query.by else BigValueTextMode.VALUE)
        .reduce_options(common.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
        .no_value("0")
    )
    return panel.mappings(mappings) if mappings else panel


def bars(
    flavour: Flavour,
    title: str,
    shown: Sequence[Shown],
    *,
    unit: str,
    description: str,
    thresholds: ThresholdsConfig,
    colours: Mapping[str, str] | None = None,
    width: int = 8,
    height: int = 8,
) -> bargauge.Panel:
    """One horizontal bar per group (town, state, version), coloured by its threshold, or by
    ``colours`` for the groups it names (severities in their own colours)."""
    panel = (
        _placed(bargauge.Panel(), flavour, title, description, _targets(flavour, shown), width, height)
        .unit(unit)
        .min(0)
        .thresholds(thresholds)
        .orientation(VizOrientation.HORIZONTAL)
        .display_mode(BarGaugeDisplayMode.BASIC)
        .show_unfilled(True)
        .reduce_options(common.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
        .no_value("none")
    )
    return _coloured(panel, colours)


def _coloured(panel: _P, colours: Mapping[str, str] | None) -> _P:
    """``panel`` with each series named in ``colours`` drawn in its colour (a severity in its own)."""
    for name, colour in (colours or {}).items():
        panel = panel.override_by_name(name, [DynamicConfigValue("color", {"mode": "fixed", "fixedColor": colour})])
    return panel


def listing(
    flavour: Flavour,
    title: str,
    shown: Shown,
    *,
    description: str,
    width: int = 12,
    height: int = 8,
) -> table.Panel:
    """A table: one row per group of the query's ``by`` tags, with its value."""
    targets = _targets(flavour, [shown], as_table=True)
    return _placed(table.Panel(), flavour, title, description, targets, width, height).with_transformation(
        DataTransformerConfig(id_val="organize", options={"excludeByName": _TIME_COLUMNS})
    )


def village_map(flavour: Flavour, title: str, shown: Shown, *, description: str) -> geomap.Panel:
    """Villages as markers at their coordinates (tags ``latitude``/``longitude``), coloured by their status."""
    value_column = "Value" if flavour is Flavour.PROMETHEUS else shown.query.field.name
    conversions = [{"targetField": tag, "destinationType": "number"} for tag in ("latitude", "longitude")]
    location = (
        common.FrameGeometrySource().mode(FrameGeometrySourceMode.COORDS).latitude("latitude").longitude("longitude")
    )
    markers = (
        common.MapLayerOptions()
        .type("markers")
        .name("Villages")
        .location(location)
        .config(
            {
                "showLegend": True,
                "style": {
                    "color": {"field": value_column, "fixed": look.OK},
                    "size": {"fixed": 12},
                    "text": {"field": "village", "mode": "field"},
                    "textConfig": {"fontSize": 12, "offsetY": -16},
                },
            }
        )
    )
    return (
        _placed(geomap.Panel(), flavour, title, description, _targets(flavour, [shown], as_table=True), 12, 14)
        .with_transformation(DataTransformerConfig(id_val="convertFieldType", options={"conversions": conversions}))
        .thresholds(look.thresholds(*look.STATUS_THRESHOLDS))
        .mappings(look.village_status_text())
        .view(geomap.MapViewConfig().id("fit").zoom(10).all_layers(True))
        .layers([markers])
    )
