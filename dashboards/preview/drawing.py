"""Draws a dashboard's panels with matplotlib, at their grid positions, in Grafana's dark theme.

Each panel type is drawn the way Grafana shows it, simplified: a time series as lines (bars, or
stacked, as configured), a stat as its last value on its threshold's colour, a bar gauge as
horizontal bars, a table as rows of labels and values, the geomap as village markers at their
coordinates in their status colour. Value mappings (a village's 0/1/2 as OK/Attention/Act now) and
units are applied. A panel whose query failed shows the error in red instead of data.
"""

import itertools
import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Final

import matplotlib as mpl

mpl.use("Agg")  # files only: no display, no GUI toolkit

import matplotlib.pyplot as plt
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from matplotlib.ticker import FuncFormatter

from dashboards.preview.sources import Series

BACKGROUND: Final = "#111217"
PANEL: Final = "#181b1f"
TEXT: Final = "#ccccdc"
GRID: Final = "#2c3235"
NAMED_COLOURS: Final = {
    "green": "#73BF69",
    "red": "#F2495C",
    "orange": "#FF9830",
    "yellow": "#FADE2A",
    "blue": "#5794F2",
    "text": TEXT,
    "dark-green": "#37872D",
}
PALETTE: Final = ("#73BF69", "#F2CC0C", "#8AB8FF", "#FF780A", "#F2495C", "#5794F2", "#B877D9", "#705DA0")
_MS_PER_DAY: Final = 86_400_000
_COLUMN_IN: Final = 0.8
_ROW_IN: Final = 0.34
_TICK_LABELS_IN: Final = 0.7
_TITLE_IN: Final = 0.3
_MARKED_POINTS: Final = 3
_UNITS: Final = {"percent": "%", "volt": " V", "celsius": " °C", "ms": " ms", "dBm": " dBm", "s": " s"}

PanelData = Sequence[Series] | str
"""A panel's series, or the error its query gave."""


def colour(name: str) -> str:
    return NAMED_COLOURS.get(name, name)


def threshold_colour(panel: Mapping[str, Any], value: float | None) -> str:
    steps = panel.get("fieldConfig", {}).get("defaults", {}).get("thresholds", {}).get("steps", [])
    chosen = NAMED_COLOURS["green"]
    for step in steps:
        if value is not None and (step.get("value") is None or value >= step["value"]):
            chosen = colour(step["color"])
    return chosen


def formatted(panel: Mapping[str, Any], value: float | None) -> str:
    """``value`` as the panel shows it: through its value mappings, else with its unit."""
    defaults = panel.get("fieldConfig", {}).get("defaults", {})
    if value is None:
        return str(defaults.get("noValue", "No data"))
    for mapping in defaults.get("mappings", []):
        result = mapping.get("options", {}).get(str(round(value)))
        if mapping.get("type") == "value" and result is not None and math.isclose(value, round(value)):
            return str(result.get("text", value))
    unit = str(defaults.get("unit", ""))
    number = f"{value:.0f}" if math.isclose(value, round(value)) or abs(value) >= 100 else f"{value:.2f}"
    if unit.startswith("suffix:"):
        return number + unit.removeprefix("suffix:")
    if unit == "s" and value >= 120:
        return f"{value / 60:.1f} min" if value < 7200 else f"{value / 3600:.1f} h"
    return number + _UNITS.get(unit, "")


def figure(dashboard: Mapping[str, Any], data: Mapping[int, PanelData]) -> Figure:
    """The dashboard as one figure; ``data`` by panel index in ``dashboard["panels"]``."""
    panels: list[dict[str, Any]] = dashboard["panels"]
    rows = max(p["gridPos"]["y"] + p["gridPos"]["h"] for p in panels)
    fig = plt.figure(figsize=(24 * _COLUMN_IN, rows * _ROW_IN + 0.6), facecolor=BACKGROUND)
    fig.suptitle(dashboard["title"], color=TEXT, fontsize=16, x=0.01, ha="left", y=1 - 0.15 / (rows * _ROW_IN))
    top = 1 - 0.6 / (rows * _ROW_IN + 0.6)
    for index, panel in enumerate(panels):
        grid = panel["gridPos"]
        pad = 0.004
        box = (
            grid["x"] / 24 + pad,
            top - (grid["y"] + grid["h"]) / rows * top + pad,
            grid["w"] / 24 - 2 * pad,
            grid["h"] / rows * top - 2 * pad,
        )
        if panel["type"] == "row":
            fig.text(box[0], box[1] + box[3] / 2, panel.get("title", ""), color=TEXT, fontsize=13, weight="bold")
            continue
        background = fig.add_axes(box)
        _frame(background, panel["title"])
        _blank(background)
        axes = fig.add_axes(_inside(fig, box, axes_labels=panel["type"] in _WITH_AXES))
        axes.set_facecolor(PANEL)
        axes.tick_params(colors=TEXT, labelsize=7)
        for spine in axes.spines.values():
            spine.set_color(GRID)
        found = data.get(index, [])
        if isinstance(found, str):
            # parse_math: the `$` of an InfluxQL regex in the error would start mathtext, and drawing would fail
            axes.text(0.5, 0.5, found[:160], color=NAMED_COLOURS["red"], ha="center", va="center", wrap=True,
                      parse_math=False)  # fmt: skip
            continue
        draw = _DRAWERS.get(panel["type"], _unsupported)
        draw(axes, panel, found)
    return fig


def _inside(
    fig: Figure, box: tuple[float, float, float, float], *, axes_labels: bool
) -> tuple[float, float, float, float]:
    """The drawing area inside a panel's ``box``: below its title, and clear of tick labels if it has axes."""
    width_in, height_in = fig.get_size_inches()
    left = (_TICK_LABELS_IN if axes_labels else 0.05) / width_in
    bottom = (0.3 if axes_labels else 0.05) / height_in
    top = _TITLE_IN / height_in
    right = 0.1 / width_in
    x, y, w, h = box
    return (x + left, y + bottom, max(0.01, w - left - right), max(0.01, h - bottom - top))


def _frame(axes: Axes, title: str) -> None:
    axes.set_facecolor(PANEL)
    for spine in axes.spines.values():
        spine.set_color(GRID)
    axes.set_title(title, color=TEXT, fontsize=10, loc="left")
    axes.tick_params(colors=TEXT, labelsize=7)


def _blank(axes: Axes) -> None:
    axes.set_xticks([])
    axes.set_yticks([])


def _no_data(axes: Axes, panel: Mapping[str, Any]) -> None:
    _blank(axes)
    axes.text(0.5, 0.5, formatted(panel, None), color=TEXT, ha="center", va="center", transform=axes.transAxes)


def _time_series(axes: Axes, panel: Mapping[str, Any], series: Sequence[Series]) -> None:
    drawn = [s for s in series if s.points]
    if not drawn:
        _no_data(axes, panel)
        return
    custom = panel.get("fieldConfig", {}).get("defaults", {}).get("custom", {})
    bars = custom.get("drawStyle") == "bars"
    stacked = custom.get("stacking", {}).get("mode") == "normal"
    fixed = _fixed_colours(panel)
    base: dict[int, float] = {}
    for number, one in enumerate(drawn):
        times = [ts / _MS_PER_DAY for ts, _ in one.points]  # matplotlib's dates: days since 1970
        values = [value for _, value in one.points]
        bottoms = [base.get(ts, 0.0) for ts, _ in one.points] if stacked else [0.0] * len(values)
        tint = fixed.get(one.name, PALETTE[number % len(PALETTE)])
        if bars:
            width = _bar_width(one.points) / (1 if stacked else len(drawn))
            shift = 0.0 if stacked else (number - (len(drawn) - 1) / 2) * width
            lefts = [time + shift for time in times]
            axes.bar(lefts, values, width=width, bottom=bottoms, color=tint, label=one.name, alpha=0.8)
        else:
            tops = [b + v for b, v in zip(bottoms, values, strict=True)]
            marker = "o" if len(tops) <= _MARKED_POINTS else None  # a line of one point draws nothing
            axes.plot(times, tops, color=tint, label=one.name, linewidth=1.5, marker=marker, markersize=4)
        if stacked:
            for (ts, value), bottom in zip(one.points, bottoms, strict=True):
                base[ts] = bottom + value
    axes.grid(color=GRID, linewidth=0.5)
    axes.xaxis.set_major_formatter(FuncFormatter(_clock))
    if all(value >= 0 for one in drawn for _, value in one.points):
        axes.set_ylim(bottom=0)
    if len(drawn) <= 12:
        axes.legend(fontsize=6, facecolor=PANEL, edgecolor=GRID, labelcolor=TEXT, loc="upper left")


def _clock(days: float, _: int | None = None) -> str:
    return datetime.fromtimestamp(days * _MS_PER_DAY / 1000, UTC).strftime("%H:%M")


def _bar_width(points: Sequence[tuple[int, float]]) -> float:
    gaps = [b[0] - a[0] for a, b in itertools.pairwise(points)]
    return (min(gaps) if gaps else 60_000) / _MS_PER_DAY * 0.8


def _stat(axes: Axes, panel: Mapping[str, Any], series: Sequence[Series]) -> None:
    _blank(axes)
    shown = list(series) or [Series("", {}, ())]
    width = 1 / len(shown)
    for number, one in enumerate(shown):
        value = one.last
        axes.add_patch(
            Rectangle((number * width, 0), width, 1, color=threshold_colour(panel, value), transform=axes.transAxes)
        )
        centre = number * width + width / 2
        axes.text(centre, 0.45, formatted(panel, value), color="white", fontsize=28, ha="center", va="center",
                  weight="bold", transform=axes.transAxes)  # fmt: skip
        if len(shown) > 1 and one.name:
            axes.text(centre, 0.85, one.name, color="white", fontsize=9, ha="center", transform=axes.transAxes)


def _bar_gauge(axes: Axes, panel: Mapping[str, Any], series: Sequence[Series]) -> None:
    shown = [s for s in series if s.last is not None]
    if not shown:
        _no_data(axes, panel)
        return
    overrides = _fixed_colours(panel)
    names = [s.name for s in shown]
    values = [s.last or 0.0 for s in shown]
    tints = [overrides.get(s.name, threshold_colour(panel, s.last)) for s in shown]
    axes.set_axisbelow(True)
    axes.barh(names, values, color=tints)
    for position, value in enumerate(values):
        axes.text(value, position, " " + formatted(panel, value), color=TEXT, va="center", fontsize=8)
    axes.invert_yaxis()
    axes.set_xlim(0, max(values) * 1.25 or 1)
    axes.grid(axis="x", color=GRID, linewidth=0.5)


def _fixed_colours(panel: Mapping[str, Any]) -> dict[str, str]:
    """The series the panel's overrides give a fixed colour, by name."""
    return {
        o["matcher"]["options"]: colour(p["value"]["fixedColor"])
        for o in panel.get("fieldConfig", {}).get("overrides", [])
        for p in o.get("properties", [])
        if p.get("id") == "color"
    }


def _table(axes: Axes, panel: Mapping[str, Any], series: Sequence[Series]) -> None:
    _blank(axes)
    if not series:
        _no_data(axes, panel)
        return
    columns = sorted({label for s in series for label in s.labels if label != "__name__"})
    rows = [[s.labels.get(c, "") for c in columns] + [formatted(panel, s.last)] for s in series[:14]]
    table = axes.table(cellText=rows, colLabels=[*columns, "value"], loc="upper center", cellLoc="left")
    table.auto_set_font_size(False)
    table.set_fontsize(7)
    for cell in table.get_celld().values():
        cell.set_facecolor(PANEL)
        cell.set_edgecolor(GRID)
        cell.get_text().set_color(TEXT)


def _map(axes: Axes, panel: Mapping[str, Any], series: Sequence[Series]) -> None:
    placed = [s for s in series if "latitude" in s.labels and "longitude" in s.labels]
    if not placed:
        _no_data(axes, panel)
        return
    for one in placed:
        lon, lat = float(one.labels["longitude"]), float(one.labels["latitude"])
        axes.scatter([lon], [lat], s=160, color=threshold_colour(panel, one.last), edgecolors="white", zorder=3)
        label = f"{one.labels.get('village', '')}: {formatted(panel, one.last)}"
        axes.annotate(
            label, (lon, lat), textcoords="offset points", xytext=(0, 10), ha="center", color=TEXT, fontsize=8
        )
    axes.grid(color=GRID, linewidth=0.5)
    axes.set_xlabel("longitude", color=TEXT, fontsize=7)
    axes.set_ylabel("latitude", color=TEXT, fontsize=7)
    axes.margins(0.25)


def _unsupported(axes: Axes, panel: Mapping[str, Any], series: Sequence[Series]) -> None:
    _blank(axes)
    axes.text(0.5, 0.5, f"({panel['type']}: not drawn in previews)", color=TEXT, ha="center", va="center")


_WITH_AXES: Final = frozenset({"timeseries", "bargauge", "geomap"})
_DRAWERS: Final = {
    "timeseries": _time_series,
    "stat": _stat,
    "bargauge": _bar_gauge,
    "table": _table,
    "geomap": _map,
}
