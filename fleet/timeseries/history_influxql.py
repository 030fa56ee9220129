"""Health history from InfluxDB through InfluxQL on the v1 ``/query`` endpoint.

One endpoint for every InfluxDB generation: 1.x natively, 2.x through its v1 compatibility API (the
database name is mapped to the bucket by a DBRP mapping), 3.x natively. The measurement is
``gateway_health`` with the tags ``gateway`` and ``village`` and one field per health value, as
:func:`~fleet.timeseries.points.health_point` writes it.

- Raw samples: ``SELECT "cpu_percent", … WHERE "gateway" = '…' AND time >= since AND time < until
  ORDER BY time LIMIT limit + 1``.
- With a step: ``SELECT mean("cpu_percent") AS "cpu_percent", … GROUP BY time(step, since mod step)
  fill(none)``: the offset makes InfluxDB's windows start at ``since``, each labelled with its start.

``epoch=ms`` makes InfluxDB answer with epoch milliseconds. A field the measurement has never held
(``temperature_c`` when no board reports it) comes back null. Authentication: ``Authorization: Token``
with the token (2.x, 3.x; ignored by 1.x without auth), or, when ``influxql_username`` is set, Basic
auth with the token as password (1.x with auth, 2.x v1 authorizations).
"""

from collections import defaultdict
from typing import Any, Final

import httpx

from fleet.errors import TimeSeriesRejectedError, TimeSeriesUnavailableError
from fleet.settings import InfluxSettings
from fleet.timeseries.history import HEALTH_FIELDS, HealthPage, HealthQuery, page_of
from fleet.timeseries.history_http import get_json
from fleet.timeseries.points import GATEWAY_HEALTH

_RAW_FIELDS: Final = ", ".join(f'"{field}"' for field in HEALTH_FIELDS)
_MEAN_FIELDS: Final = ", ".join(f'mean("{field}") AS "{field}"' for field in HEALTH_FIELDS)


def health_statement(query: HealthQuery) -> str:
    """The InfluxQL statement answering ``query``. The v1 API binds no parameters: the gateway id (an
    identifier, quoted anyway) and integers are the only values put in."""
    where = (
        f"WHERE \"gateway\" = '{_quoted(query.gateway_id)}' "
        f"AND time >= {query.since_ms}ms AND time < {query.until_ms}ms"
    )
    if query.step_ms is None:
        return f'SELECT {_RAW_FIELDS} FROM "{GATEWAY_HEALTH}" {where} ORDER BY time ASC LIMIT {query.limit + 1}'  # noqa: S608
    offset = query.since_ms % query.step_ms
    grouping = f"GROUP BY time({query.step_ms}ms, {offset}ms) fill(none)"
    return f'SELECT {_MEAN_FIELDS} FROM "{GATEWAY_HEALTH}" {where} {grouping}'  # noqa: S608


class InfluxqlHealthHistory:
    name = "influxdb"

    def __init__(self, settings: InfluxSettings) -> None:
        self._url = str(settings.url)
        self._database = settings.influxql_database or settings.bucket
        token = settings.token.get_secret_value()
        self._auth = httpx.BasicAuth(settings.influxql_username, token) if settings.influxql_username else None
        self._headers = {} if self._auth else {"Authorization": f"Token {token}"}
        self._timeout_s = settings.timeout_s

    async def health(self, query: HealthQuery) -> HealthPage:
        params = {"db": self._database, "q": health_statement(query), "epoch": "ms"}
        body = await get_json(
            self._url, "/query", params, headers=self._headers, auth=self._auth, timeout_s=self._timeout_s
        )
        return page_of(self._values(body), query)

    def _values(self, body: Any) -> dict[int, dict[str, float]]:
        try:
            [result] = body["results"]
            if "error" in result:
                # A statement InfluxDB could not run, e.g. "database not found": the settings, not the query.
                raise TimeSeriesUnavailableError(f"{self._url} (database {self._database!r}): {result['error']:.300}")
            values: dict[int, dict[str, float]] = defaultdict(dict)
            for series in result.get("series", []):
                columns = series["columns"]
                for row in series["values"]:
                    ts_ms, *fields = row
                    values[int(ts_ms)].update(
                        (name, float(value))
                        for name, value in zip(columns[1:], fields, strict=True)
                        if value is not None
                    )
        except (KeyError, TypeError, ValueError) as exc:
            raise TimeSeriesRejectedError(f"{self._url} answered an unexpected shape: {exc!r}"[:300]) from exc
        return values


def _quoted(value: str) -> str:
    return value.replace("\\", "\\\\").replace("'", "\\'")
