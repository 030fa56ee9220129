"""A committed dashboard's queries as Grafana would send them, sent to the real servers, and checked.

Grafana substitutes a panel target's text before its data source sees it; this does the same for the
variables the Outpost dashboards use, with one chosen place per level (:class:`Choice`) and a time
range (:class:`Span`):

- ``$county``, ``$town``, ``$village``: the chosen value, regex-escaped as Grafana escapes a variable
  used in a regex (PromQL ``=~"…"``: Prometheus' escaping inside a string literal; InfluxQL ``/…/``);
- ``$__interval``: the panel's minimum interval (its ``interval``), else the data source's default
  of 15 s: over a span of a minute or two Grafana's own division of the range by the panel's width
  is far below it, so the minimum is what Grafana uses;
- ``$__rate_interval``: ``max($__interval + scrape, 4 * scrape)`` with the default 15 s scrape interval;
- ``$__range``: the span in whole seconds; ``$timeFilter``: ``time >= …ms and time <= …ms``.

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

DEFAULT_INTERVAL_S: Final = 15
"""Grafana's Prometheus data source assumes a 15 s scrape interval; the dashboards are built for the
fleet's 15 s state export too."""
_ANSWER_CHARS: Final = 600
_DURATION: Final = re.compile(r"(\d+)(ms|s|m|h|d|w)")
_SECONDS: Final = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}
_PROM_REGEX_SPECIALS: Final = re.compile(r"[$^*{}\[\]'+?.()|]")
_INFLUX_REGEX_SPECIALS: Final = re.compile(r"[\\^$*+?.()|\[\]{}/]")
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
class Span:
    """The dashboard's time range, epoch ms."""

    start_ms: int
    end_ms: int

    @property
    def seconds(self) -> int:
        return max(1, round((self.end_ms - self.start_ms) / 1000))


@dataclass(frozen=True, slots=True)
class Target:
    """One query of one panel, as committed."""

    panel: str
    ref_id: str
    model: Mapping[str, Any]
    interval_s: int
    """``$__interval`` for it: the target's or panel's minimum interval, else :data:`DEFAULT_INTERVAL_S`."""

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
                seconds(interval) if interval else DEFAULT_INTERVAL_S,
            )


def _panels(panels: list[Mapping[str, Any]]) -> Iterator[Mapping[str, Any]]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))  # a collapsed row holds its panels


def query_variables(model: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The dashboard's template variables that query the data source, in order."""
    templating = model.get("templating", {})
    return [variable for variable in templating.get("list", []) if variable.get("type") == "query"]


def seconds(duration: str) -> int:
    match = _DURATION.fullmatch(duration)
    if match is None:
        raise ValueError(f"not a Grafana interval: {duration!r}")
    return max(1, round(int(match.group(1)) * _SECONDS[match.group(2)]))


def duration(total_s: int) -> str:
    """Seconds as Grafana writes an interval: ``15s``, ``1m``, ``2h``."""
    for unit, size in (("d", 86_400), ("h", 3600), ("m", 60)):
        if total_s % size == 0:
            return f"{total_s // size}{unit}"
    return f"{total_s}s"


# --- substitution ----------------------------------------------------------------------------------------


def prom_escape(value: str) -> str:
    """A variable's value as Grafana writes it into a PromQL regex matcher's string literal."""
    return _PROM_REGEX_SPECIALS.sub(lambda m: "\\\\" + m.group(0), value.replace("\\", "\\\\\\\\"))


def influx_escape(value: str) -> str:
    """A variable's value as Grafana writes it into an InfluxQL ``/…/`` regex."""
    return _INFLUX_REGEX_SPECIALS.sub(lambda m: "\\" + m.group(0), value)


def substitute(text: str, flavour: Flavour, choice: Choice, span: Span, interval_s: int) -> str:
    """``text`` with Grafana's variables replaced (longest names first, as Grafana matches them)."""
    escape = prom_escape if flavour is Flavour.PROMETHEUS else influx_escape
    rate_s = max(interval_s + DEFAULT_INTERVAL_S, 4 * DEFAULT_INTERVAL_S)
    replacements = {
        "$__rate_interval": duration(rate_s),
        "$__interval": duration(interval_s),
        "$__range": f"{span.seconds}s",
        "$timeFilter": f"time >= {span.start_ms}ms and time <= {span.end_ms}ms",
        **{f"${name}": escape(value) for name, value in choice.values().items()},
    }
    for name in sorted(replacements, key=len, reverse=True):
        text = text.replace(name, replacements[name])
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


async def check_prom_target(client: httpx.AsyncClient, target: Target, query: str, span: Span) -> list[str]:
    """Problems with the PromQL ``target`` (already substituted as ``query``); none when it is right."""
    if target.model.get("instant"):
        params = {"query": query, "time": f"{span.end_ms / 1000:.3f}"}
        path = "/api/v1/query"
    else:
        step_ms = target.interval_s * 1000
        start_ms = span.start_ms // step_ms * step_ms  # Grafana aligns the range to the step, rounding down
        end_ms = span.end_ms // step_ms * step_ms
        params = {
            "query": query,
            "start": f"{start_ms / 1000:.3f}",
            "end": f"{end_ms / 1000:.3f}",
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


async def prom_variable_values(client: httpx.AsyncClient, query: str, span: Span) -> tuple[list[str], str]:
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
