"""Writes points through ``influxdb-client``'s async write API (InfluxDB 2.x/3.x, VictoriaMetrics)."""

import logging
from collections.abc import Sequence
from itertools import chain

import aiohttp
from influxdb_client.client.influxdb_client_async import InfluxDBClientAsync
from influxdb_client.domain.write_precision import WritePrecision
from influxdb_client.rest import ApiException

from fleet.errors import TimeSeriesRejectedError, TimeSeriesUnavailableError
from fleet.settings import InfluxSettings
from fleet.timeseries.points import Points

logger = logging.getLogger(__name__)


class InfluxSink:
    name = "influxdb"

    def __init__(self, settings: InfluxSettings) -> None:
        self._settings = settings
        self._client = InfluxDBClientAsync(
            url=str(settings.url),
            token=settings.token.get_secret_value(),
            org=settings.org,
            timeout=int(settings.timeout_s * 1000),
        )
        self._write_api = self._client.write_api()

    async def write(self, batch: Sequence[Points]) -> None:
        if not batch:
            return
        # One string for the whole request: the client would otherwise encode and join line by line.
        body = "\n".join(chain.from_iterable(chunk.lines() for chunk in batch))
        try:
            await self._write_api.write(
                bucket=self._settings.bucket,
                org=self._settings.org,
                record=body,
                write_precision=WritePrecision.MS,  # type: ignore[arg-type]  # a str constant in its stubs
            )
        except ApiException as exc:
            status = exc.status or 0
            message = f"{self._settings.url} answered {status} {str(exc.reason)[:200]}"
            if status in {400, 413, 422}:  # the points themselves are refused
                raise TimeSeriesRejectedError(message) from exc
            # 5xx and 429, but also 401/403/404 (wrong token, org or bucket): keep the points until fixed.
            raise TimeSeriesUnavailableError(message) from exc
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise TimeSeriesUnavailableError(f"{self._settings.url} unreachable: {exc!r}"[:300]) from exc

    async def close(self) -> None:
        await self._client.close()  # type: ignore[no-untyped-call]
