"""Writes points through InfluxDB's v1 write API, ``POST /write?db=…&precision=ms``, for InfluxDB 1.x.

InfluxDB 1.x before 1.8 has no ``/api/v2/write`` (it answers 404), so ``influxdb-client``'s v2 write
cannot reach it; the v1 endpoint takes the same line protocol. Its database is ``influxql_database``,
else the bucket's name, as the InfluxQL reader (:mod:`fleet.timeseries.history_influxql`) reads it, and
it authenticates the same way: Basic auth with ``influxql_username`` and the token as password, else
``Authorization: Token <token>`` (which a 1.x without auth ignores).

Failures follow :class:`~fleet.timeseries.influx.InfluxSink`: the points refused (400/413/422) is
:class:`~fleet.errors.TimeSeriesRejectedError`; anything that could change without the points changing
(404 ``database not found``, 401/403, 429, 5xx, timeouts, no connection) is
:class:`~fleet.errors.TimeSeriesUnavailableError`, and the writer keeps the points. A 1.x answers a
batch it took only in part (a field type conflict, points outside the retention policy) with 400
``partial write``: the points it could store are stored, and the batch as a whole counts as refused.
"""

from collections.abc import Sequence
from itertools import chain
from typing import Final

import httpx

from fleet.errors import TimeSeriesRejectedError, TimeSeriesUnavailableError
from fleet.settings import InfluxSettings
from fleet.timeseries.points import Points

_BODY_CHARS: Final = 200
_POINTS_REFUSED: Final = frozenset({400, 413, 422})


class InfluxV1Sink:
    name = "influxdb-v1"

    def __init__(self, settings: InfluxSettings) -> None:
        self._url = str(settings.url).rstrip("/") + "/write"
        self._params = {"db": settings.influxql_database or settings.bucket, "precision": "ms"}
        token = settings.token.get_secret_value()
        auth = httpx.BasicAuth(settings.influxql_username, token) if settings.influxql_username else None
        headers = {"Content-Type": "text/plain; charset=utf-8"}
        if auth is None:
            headers["Authorization"] = f"Token {token}"
        # One client for the sink's life: its connection is kept alive from batch to batch.
        self._client = httpx.AsyncClient(timeout=settings.timeout_s, headers=headers, auth=auth)

    async def write(self, batch: Sequence[Points]) -> None:
        if not batch:
            return
        body = "\n".join(chain.from_iterable(chunk.lines() for chunk in batch)).encode()
        try:
            response = await self._client.post(self._url, params=self._params, content=body)
        except httpx.HTTPError as exc:
            raise TimeSeriesUnavailableError(f"{self._url} unreachable: {exc!r}"[:300]) from exc
        if response.is_success:
            return
        status = response.status_code
        detail = response.text.strip()[:_BODY_CHARS]  # 1.x: {"error":"partial write: field type conflict: ..."}
        message = f"{self._url} (database {self._params['db']!r}) answered {status}: {detail}"
        if status in _POINTS_REFUSED:
            raise TimeSeriesRejectedError(message)
        # 404 (no such database), 401/403 (wrong user or token), 429, 5xx: keep the points until fixed.
        raise TimeSeriesUnavailableError(message)

    async def close(self) -> None:
        await self._client.aclose()
