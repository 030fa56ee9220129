"""A committed dashboard's queries as Grafana would send them, sent to the real servers, and checked.

Grafana substitutes a panel target's text before its data source sees it; this does the same, with
one chosen place per level (:class:`Choice`) and a time range, through the substitution the previews
use (:class:`dashboards.preview.interpolation.Interpolation`: Grafana's regex escaping per data
source, its macros). ``$__interval`` is the panel's minimum interval (its ``interval``), else the
data source's default of 15 s: over a span of a minute or two Grafana's own division of the range
by the panel's width is far below it, so the minimum is what Grafana uses. A variable left over after
substitution fails the check.

PromQL range queries are sent with ``step`` = the interval and, as Grafana does, start and end rounded
down to a multiple of it; instant queries at the span's end. InfluxQL goes to ``/query`` as is.

What a target must return: no error, at least one series, and on every series the labels (tags) its
legend or alias names (``{{town}}``, ``$tag_town``); a table names none, so the labels of its outer
``by (…)`` / ``GROUP BY`` instead. For InfluxQL also every column the outer ``SELECT`` names with
``AS``, with at least one value.
"""

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final

import httpx

from dashboards.model import Flavour
from dashboards.preview.interpolation import SCRAPE_INTERVAL_S, Interpolation, TimeRange, seconds

_ANSWER_CHARS: Final = 600
_LEGEND_LABEL: Final = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
_ALIAS_TAG: Final = re.compile(r"\$tag_([A-Za-z_][A-Za-z0-9_]*)|\[\[tag_([A-Za-z_][A-Za-z0-9_]*)\]\]")
_PROM_BY: Final = re.compile(r"\bby\s*\(([^)]*)\)")
_LABEL_VALUES: Final = re.compile(r"^label_values\((?:(?P<selector>.+),\s*)?(?P<label>[A-Za-z_][A-Za-z0-9_]*)\)$")


@dataclass(frozen=True, slots=True)
class Choice:
    """The value picked for each place variable, as a user picks one in the dashboard's drop-downs."""

    county: str
    town: str
    village: str

    def values(self) -> dict[str, str]:
        return {"county": self.county, "town": self.town, "village": self.village}


@dataclass(frozen=True, slots=True)
class Target:
    """One query of one panel, as committed."""

    panel: str
    ref_id: str
    model: Mapping[str, Any]
    interval_s: int
    """``$__interval`` for it: the target's or panel's minimum interval, else the 15 s scrape interval."""

    @property
    def name(self) -> str:
        return f"{self.panel!r} [{self.ref_id}]"


def targets(model: Mapping[str, Any]) -> Iterator[Target]:
    """Every query target of every panel of the dashboard ``model``, rows included."""
    for panel in _panels(model.get("panels", [])):
        for target in panel.get("targets", []):
            interval = target.get("interval") or panel.get("interval")
            yield Target(
                str(panel.get("title")),
                str(target.get("refId")),
                target,
                max(1, round(seconds(interval))) if interval else SCRAPE_INTERVAL_S,
            )


def _panels(panels: list[Mapping[str, Any]]) -> Iterator[Mapping[str, Any]]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))  # a collapsed row holds its panels


def query_variables(model: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The dashboard's template variables that query the data source, in order."""
    templating = model.get("templating", {})
    return [variable for variable in templating.get("list", []) if variable.get("type") == "query"]


# --- substitution ----------------------------------------------------------------------------------------


def substitute(text: str, flavour: Flavour, choice: Choice, span: TimeRange, interval_s: int) -> str:
    """``text`` with Grafana's variables replaced; ValueError if one is left over."""
    places = {name: [value] for name, value in choice.values().items()}
    text = Interpolation(span, places).apply(text, flavour=flavour, interval_s=interval_s)
    unreplaced = re.findall(r"\$\w+", text)
    if unreplaced:
        raise ValueError(f"variables this test does not substitute: {unreplaced} in {text}")
    return text


# --- what a target must return ------------------------------------------------------------------------------


def prom_required_labels(target: Mapping[str, Any]) -> list[str]:
    legend = str(target.get("legendFormat") or "")
    if legend:
        return _LEGEND_LABEL.findall(legend)
    found = _PROM_BY.search(str(target["expr"]))
    return [label.strip() for label in found.group(1).split(",") if label.strip()] if found else []


def _outer(query: str) -> str:
    """The query with every parenthesised part removed: what the outermost SELECT says."""
    depth, kept = 0, []
    for char in query:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif depth == 0:
            kept.append(char)
    return "".join(kept)


def influx_required_tags(target: Mapping[str, Any]) -> list[str]:
    alias = str(target.get("alias") or "")
    if alias:
        return [a or b for a, b in _ALIAS_TAG.findall(alias)]
    outer = _outer(str(target["query"]))
    _, _, grouping = outer.partition("GROUP BY")
    return re.findall(r'"([^"]+)"', grouping)


def influx_columns(query: str) -> list[str]:
    """The column names the outer SELECT gives with ``AS``."""
    selected, _, _ = _outer(query).partition(" FROM ")
    return re.findall(r'AS "([^"]+)"', selected)


# --- running them ----------------------------------------------------------------------------------------------


async def check_prom_target(client: httpx.AsyncClient, target: Target, query: str, span: TimeRange) -> list[str]:
    """Problems with the PromQL ``target`` (already substituted as ``query``); none when it is right."""
    if target.model.get("instant"):
        params = {"query": query, "time": f"{span.end_ms / 1000:.3f}"}
        path = "/api/v1/query"
    else:
        aligned = span.aligned(target.interval_s)  # as Grafana sends it
        params = {
            "query": query,
            "start": f"{aligned.start_ms / 1000:.3f}",
            "end": f"{aligned.end_ms / 1000:.3f}",
            "step": str(target.interval_s),
        }
        path = "/api/v1/query_range"
    answer = await client.get(path, params=params)
    shown = f"{path}?{_shown_params(params)}"
    try:
        body = answer.json()
    except ValueError:
        return [f"{answer.status_code} {answer.text[:_ANSWER_CHARS]} for {shown}"]
    if answer.status_code != httpx.codes.OK or body.get("status") != "success":
        return [f"error {answer.status_code}: {_brief(body)} for {shown}"]
    series = body["data"]["result"]
    if not series:
        return [f"no series (answer {_brief(body)}) for {shown}"]
    problems = []
    for label in prom_required_labels(target.model):
        missing = [item["metric"] for item in series if not item["metric"].get(label)]
        if missing:
            problems.append(f"label {label!r} missing on {len(missing)} of {len(series)} series {missing[:3]}")
    if not target.model.get("instant") and not any(item.get("values") for item in series):
        problems.append("series without values")
    return [f"{problem} for {shown}" for problem in problems]


async def check_influx_target(client: httpx.AsyncClient, database: str, target: Target, query: str) -> list[str]:
    """Problems with the InfluxQL ``target`` (already substituted as ``query``); none when it is right."""
    shown = f"/query?db={database}&epoch=ms&q={query}"
    answer = await client.get("/query", params={"db": database, "epoch": "ms", "q": query})
    try:
        body = answer.json()
        [result] = body["results"]
    except (ValueError, KeyError, TypeError):
        return [f"{answer.status_code} {answer.text[:_ANSWER_CHARS]} for {shown}"]
    if answer.status_code != httpx.codes.OK or "error" in result:
        return [f"error {answer.status_code}: {_brief(body)} for {shown}"]
    series = result.get("series") or []
    if not series:
        return [f"no series (answer {_brief(body)}) for {shown}"]
    problems = []
    for tag in influx_required_tags(target.model):
        missing = [item.get("tags") for item in series if not (item.get("tags") or {}).get(tag)]
        if missing:
            problems.append(f"tag {tag!r} missing on {len(missing)} of {len(series)} series {missing[:3]}")
    for column in influx_columns(str(target.model["query"])):
        if not all(column in item["columns"] for item in series):
            problems.append(f"column {column!r} missing (columns {series[0]['columns']})")
        elif not any(row[item["columns"].index(column)] is not None for item in series for row in item["values"]):
            problems.append(f"column {column!r} has no value")
    return [f"{problem} for {shown}" for problem in problems]


async def prom_variable_values(client: httpx.AsyncClient, query: str, span: TimeRange) -> tuple[list[str], str]:
    """What ``label_values(…)`` lists, as Grafana asks VictoriaMetrics (``/api/v1/label/…/values``)."""
    match = _LABEL_VALUES.fullmatch(query.strip())
    if match is None:
        raise ValueError(f"not a label_values() query: {query}")
    params = {"start": str(span.start_ms // 1000), "end": str(span.end_ms // 1000 + 1)}
    if match.group("selector"):
        params["match[]"] = match.group("selector")
    path = f"/api/v1/label/{match.group('label')}/values"
    answer = await client.get(path, params=params)
    shown = f"{path}?{_shown_params(params)} answered {answer.status_code} {answer.text[:_ANSWER_CHARS]}"
    if answer.status_code != httpx.codes.OK:
        return [], shown
    return list(answer.json().get("data") or []), shown


async def influx_variable_values(client: httpx.AsyncClient, database: str, query: str) -> tuple[list[str], str]:
    """What ``SHOW TAG VALUES …`` lists (each row is ``[key, value]``)."""
    answer = await client.get("/query", params={"db": database, "q": query})
    shown = f"/query?db={database}&q={query} answered {answer.status_code} {answer.text[:_ANSWER_CHARS]}"
    if answer.status_code != httpx.codes.OK:
        return [], shown
    [result] = answer.json()["results"]
    return [row[1] for series in result.get("series") or [] for row in series["values"]], shown


def _shown_params(params: Mapping[str, str]) -> str:
    return "&".join(f"{key}={value}" for key, value in params.items())


def _brief(body: Any) -> str:
    return json.dumps(body)[:_ANSWER_CHARS]
