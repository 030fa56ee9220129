"""Runs a panel's targets on a real data source and names the answers' series as Grafana would.

:class:`PromSource` asks VictoriaMetrics (or Prometheus) over its HTTP API: ``/api/v1/query`` for an
instant target, ``/api/v1/query_range`` otherwise, the step being the target's own interval or the
panel's ``$__interval`` (start and end rounded down to it, as Grafana sends them); a series is named
by the target's ``legendFormat`` (``{{town}}``).
:class:`InfluxSource` asks InfluxDB's ``/query`` (1.x, or 2.x through its v1 API) with
``epoch=ms``; a series is named by the target's ``alias`` (``$tag_town``). Errors the server
reports, and a query it does not answer in time, are :class:`~dashboards.errors.QueryError` naming the
query; no answer at all (connection refused, DNS or TLS failure, not an HTTP URL) is
:class:`~dashboards.errors.SourceUnreachableError`.
"""

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Protocol

import httpx

from dashboards.errors import QueryError, SourceUnreachableError
from dashboards.model import Flavour
from dashboards.preview.interpolation import Interpolation, seconds

_LEGEND: Final = re.compile(r"\{\{\s*(\w+)\s*\}\}")
_ALIAS: Final = re.compile(r"\$tag_(\w+)")
_ERROR_CHARS: Final = 300


@dataclass(frozen=True, slots=True)
class Series:
    """One answer series: its display name, labels (tags), and points (epoch ms, value)."""

    name: str
    labels: Mapping[str, str]
    points: tuple[tuple[int, float], ...]

    @property
    def last(self) -> float | None:
        return self.points[-1][1] if self.points else None


class Source(Protocol):
    async def run(self, panel: Mapping[str, Any], target: Mapping[str, Any]) -> list[Series]: ...


def _interval_s(interpolation: Interpolation, panel: Mapping[str, Any], target: Mapping[str, Any]) -> int:
    own = target.get("interval")
    if isinstance(own, str) and own:
        return max(1, round(seconds(own)))
    minimum = panel.get("interval")
    return interpolation.time_range.interval_s(minimum if isinstance(minimum, str) else None)


def _named(pattern: re.Pattern[str], template: str, labels: Mapping[str, str]) -> str:
    """``template`` with each label reference (``{{town}}``, ``$tag_town``) replaced by its value."""
    return pattern.sub(lambda found: labels.get(found.group(1), ""), template)


def _unanswered(url: str, query: str, exc: Exception) -> QueryError:
    """The error of a query without an answer: a timed-out one fails its panel, any other means that no query
    can be answered."""
    if isinstance(exc, httpx.TimeoutException) and not isinstance(exc, httpx.ConnectTimeout):
        return QueryError(f"{url} did not answer {query!r} in time: {exc!r}")
    return SourceUnreachableError(f"cannot reach the data source at {url}: {exc!r}")


def _number(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


class PromSource:
    def __init__(self, client: httpx.AsyncClient, url: str, interpolation: Interpolation) -> None:
        self._client = client
        self._url = url.rstrip("/")
        self._interpolation = interpolation

    async def run(self, panel: Mapping[str, Any], target: Mapping[str, Any]) -> list[Series]:
        interval_s = _interval_s(self._interpolation, panel, target)
        query = self._interpolation.apply(str(target["expr"]), flavour=Flavour.PROMETHEUS, interval_s=interval_s)
        time_range = self._interpolation.time_range
        if target.get("instant"):
            params = {"query": query, "time": str(time_range.end_ms / 1000)}
            data = await self._get("/api/v1/query", params, query)
        else:
            time_range = time_range.aligned(interval_s)
            params = {
                "query": query,
                "start": str(time_range.start_ms / 1000),
                "end": str(time_range.end_ms / 1000),
                "step": f"{interval_s}s",
            }
            data = await self._get("/api/v1/query_range", params, query)
        legend = str(target.get("legendFormat") or "")
        found: list[Series] = []
        for result in data.get("result", []):
            labels = {k: str(v) for k, v in result.get("metric", {}).items()}
            samples = result.get("values") or ([result["value"]] if "value" in result else [])
            points = tuple(
                (round(float(ts) * 1000), number) for ts, raw in samples if (number := _number(raw)) is not None
            )
            name = _named(_LEGEND, legend, labels) if legend else _prom_name(labels)
            found.append(Series(name or "value", labels, points))
        return found

    async def _get(self, path: str, params: dict[str, str], query: str) -> dict[str, Any]:
        try:
            response = await self._client.get(self._url + path, params=params)
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            raise _unanswered(self._url, query, exc) from exc
        body = response.json() if response.headers.get("content-type", "").startswith("application/json") else {}
        if response.status_code != httpx.codes.OK or body.get("status") != "success":
            detail = body.get("error") or response.text[:_ERROR_CHARS]
            raise QueryError(f"{self._url} refused {query!r}: {response.status_code} {detail}")
        data: dict[str, Any] = body["data"]
        return data


def _prom_name(labels: Mapping[str, str]) -> str:
    return "{" + ", ".join(f"{k}={v}" for k, v in sorted(labels.items())) + "}" if labels else ""


class InfluxSource:
    def __init__(
        self,
        client: httpx.AsyncClient,
        url: str,
        interpolation: Interpolation,
        database: str,
        auth: tuple[str, str] | None = None,
    ) -> None:
        self._client = client
        self._url = url.rstrip("/")
        self._interpolation = interpolation
        self._database = database
        self._auth = auth

    async def run(self, panel: Mapping[str, Any], target: Mapping[str, Any]) -> list[Series]:
        interval_s = _interval_s(self._interpolation, panel, target)
        query = self._interpolation.apply(str(target["query"]), flavour=Flavour.INFLUXDB, interval_s=interval_s)
        params = {"db": self._database, "q": query, "epoch": "ms"}
        try:
            response = await self._client.get(f"{self._url}/query", params=params, auth=self._auth)
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            raise _unanswered(self._url, query, exc) from exc
        if response.status_code != httpx.codes.OK:
            raise QueryError(f"{self._url} refused {query!r}: {response.status_code} {response.text[:_ERROR_CHARS]}")
        try:
            [result] = response.json().get("results", [{}])
        except ValueError as exc:  # not JSON, or not one result: not an InfluxDB answering
            raise QueryError(f"{self._url} answered {query!r} with {response.text[:_ERROR_CHARS]!r}") from exc
        if "error" in result:
            raise QueryError(f"{self._url} refused {query!r}: {result['error']}")
        alias = str(target.get("alias") or "")
        found: list[Series] = []
        for answer in result.get("series", []):
            tags = {k: str(v) for k, v in (answer.get("tags") or {}).items()}
            columns: list[str] = answer["columns"]
            for column in columns[1:]:  # the first is time
                index = columns.index(column)
                points = tuple(
                    (int(row[0]), number) for row in answer["values"] if (number := _number(row[index])) is not None
                )
                name = _named(_ALIAS, alias, tags) if alias else column
                found.append(Series(name or column, tags, points))
        return found
