"""Health history from VictoriaMetrics through its Prometheus query API.

Naming: VictoriaMetrics stores each field of an InfluxDB line-protocol point as its own series named
``{measurement}_{field}`` with the point's tags as labels, so a heartbeat's CPU is
``gateway_health_cpu_percent{gateway="gw-1", village="taoyuan"}``. One selector takes every health
field of a gateway: ``{__name__=~"gateway_health_(cpu_percent|…)", gateway="gw-1"}``.

- Raw samples: ``/api/v1/query`` of the range selector ``selector[{until - since}ms]`` at
  ``until - 1 ms``, whose window ``(until - 1 - span, until - 1]`` is exactly ``[since, until)``.
- With a step: ``/api/v1/query_range`` of ``avg_over_time(selector[{step}ms]) keep_metric_names``
  evaluated from ``since + step - 1 ms`` every ``step``: each evaluation at ``t`` averages ``(t - step, t]``,
  i.e. the window ``[t - step + 1, t]`` in whole milliseconds. ``keep_metric_names`` (MetricsQL)
  keeps the series apart; Prometheus itself would drop the names and refuse the query.
  ``nocache=1`` stops VictoriaMetrics from moving the evaluation times to suit its cache.

Times go to the API in seconds with millisecond decimals, as it expects.
"""

from collections import defaultdict
from typing import Any, Final

from fleet.errors import TimeSeriesRejectedError
from fleet.settings import InfluxSettings
from fleet.timeseries.history import HEALTH_FIELDS, HealthPage, HealthQuery, page_of
from fleet.timeseries.history_http import get_json
from fleet.timeseries.points import GATEWAY_HEALTH

_PREFIX: Final = f"{GATEWAY_HEALTH}_"
_NAMES: Final = f"{_PREFIX}({'|'.join(HEALTH_FIELDS)})"


def health_selector(gateway_id: str) -> str:
    """The series selector of every health field of ``gateway_id``."""
    return f'{{__name__=~"{_NAMES}",gateway="{_quoted(gateway_id)}"}}'


class PromqlHealthHistory:
    name = "victoriametrics"

    def __init__(self, settings: InfluxSettings) -> None:
        self._url = str(settings.url)
        self._headers = {"Authorization": f"Bearer {settings.token.get_secret_value()}"}
        self._timeout_s = settings.timeout_s

    async def health(self, query: HealthQuery) -> HealthPage:
        selector = health_selector(query.gateway_id)
        if query.step_ms is None:
            span = query.until_ms - query.since_ms
            params = {"query": f"{selector}[{span}ms]", "time": _seconds(query.until_ms - 1), "nocache": "1"}
            values = self._values(await self._get("/api/v1/query", params), shift_ms=0)
        else:
            step = query.step_ms
            params = {
                "query": f"avg_over_time({selector}[{step}ms]) keep_metric_names",
                "start": _seconds(query.since_ms + step - 1),
                "end": _seconds(query.until_ms - 1),
                "step": _seconds(step),
                "nocache": "1",
            }
            values = self._values(await self._get("/api/v1/query_range", params), shift_ms=step - 1)
        return page_of(values, query)

    async def _get(self, path: str, params: dict[str, str]) -> Any:
        return await get_json(self._url, path, params, headers=self._headers, timeout_s=self._timeout_s)

    def _values(self, body: Any, shift_ms: int) -> dict[int, dict[str, float]]:
        """``{ts_ms - shift_ms: {field: value}}`` from a matrix answer (several series of a field, as
        after a gateway moved village, merge by time)."""
        try:
            if body["status"] != "success":
                raise TimeSeriesRejectedError(f"{self._url} refused the query: {body.get('error')!r:.300}")
            values: dict[int, dict[str, float]] = defaultdict(dict)
            for series in body["data"]["result"]:
                field = series["metric"]["__name__"].removeprefix(_PREFIX)
                for ts_s, value in series["values"]:
                    values[round(float(ts_s) * 1000) - shift_ms][field] = float(value)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise TimeSeriesRejectedError(f"{self._url} answered an unexpected shape: {exc!r}"[:300]) from exc
        return values


def _seconds(ms: int) -> str:
    return f"{ms // 1000}.{ms % 1000:03d}"


def _quoted(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')
