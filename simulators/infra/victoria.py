"""A real VictoriaMetrics server on a loopback port, storing into a directory it owns, with read-back helpers.

The fleet writes to it with influxdb-client as if it were InfluxDB 2 (``POST /api/v2/write``); tests
read the points back with :meth:`VictoriaMetricsServer.export` or :meth:`VictoriaMetricsServer.query`.
"""

import json
import logging
import shutil
from collections.abc import Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any, Final

import httpx

from simulators.infra.errors import ServerRequestError, ServerStateError
from simulators.infra.managed import ManagedServer
from simulators.infra.ports import LOOPBACK

logger = logging.getLogger(__name__)

VICTORIA_METRICS_FALLBACK_PATH: Final = Path("/usr/bin/victoria-metrics")
_PROBE_TIMEOUT_S: Final = 1.0
_ERROR_BODY_CHARS: Final = 500


def victoria_metrics_binary() -> Path | None:
    """The VictoriaMetrics executable: on ``PATH``, else the Debian package's, else None."""
    found = shutil.which("victoria-metrics")
    if found is not None:
        return Path(found)
    if VICTORIA_METRICS_FALLBACK_PATH.is_file():
        return VICTORIA_METRICS_FALLBACK_PATH
    return None


class VictoriaMetricsServer(ManagedServer):
    """A single-node ``victoria-metrics`` process on 127.0.0.1, on a free port unless ``port`` is given.

    :meth:`start` returns once ``GET /health`` answers 200 (and ``/flags`` shows it is this server).

    It stores into ``data/`` under :attr:`directory` and logs to ``victoria-metrics.log`` there. It
    runs with ``-retentionPeriod=100y`` (so points with any past timestamp are kept),
    ``-search.disableCache`` and ``-search.latencyOffset=0s`` (so fresh points are visible to queries).

    Writing with influxdb-client: ``InfluxDBClientAsync(url=server.url, token="", org="outpost")``
    and ``write_api().write(bucket=..., record=lines, write_precision=WritePrecision.MS)``. VictoriaMetrics
    ignores the token, org and bucket (it adds no label for them) and names each field
    ``{measurement}_{field}`` with the tags as labels. The write returns once the server accepted the
    request, but points become visible to reads only after :meth:`flush` (or a few seconds), and lines
    it cannot parse are logged and skipped while the request still succeeds.

    :meth:`stop` (SIGTERM: it flushes its data) and :meth:`kill` (points not yet flushed to disk are
    lost) keep the data for a later :meth:`start` on the same port; :meth:`close` (and leaving
    ``async with``) also deletes the directory. :attr:`url` (``http://127.0.0.1:port``) is the base
    URL for HTTP APIs and for influxdb-client.
    """

    display_name = "victoria-metrics"
    url_scheme = "http"

    def __init__(
        self,
        *,
        port: int | None = None,
        retention_period: str = "100y",
        extra_args: Sequence[str] = (),
        binary: Path | None = None,
        start_timeout_s: float = 15.0,
        stop_timeout_s: float = 10.0,
        request_timeout_s: float = 10.0,
    ) -> None:
        super().__init__(port=port, binary=binary, start_timeout_s=start_timeout_s, stop_timeout_s=stop_timeout_s)
        self._retention_period = retention_period
        self._extra_args = tuple(extra_args)
        self._request_timeout_s = request_timeout_s

    @classmethod
    def find_binary(cls) -> Path | None:
        return victoria_metrics_binary()

    @classmethod
    def not_installed_message(cls) -> str:
        return (
            f"victoria-metrics is not installed (not on PATH, not at {VICTORIA_METRICS_FALLBACK_PATH}); "
            "run scripts/test, which installs it"
        )

    @property
    def data_path(self) -> Path:
        return self._directory / "data"

    @property
    def log_path(self) -> Path:
        return self._directory / "victoria-metrics.log"

    async def flush(self) -> None:
        """Make every accepted point visible to :meth:`export` and :meth:`query` (``/internal/force_flush``)."""
        await self._get("/internal/force_flush")

    async def export(self, match: str) -> list[dict[str, Any]]:
        """Every series matching the selector ``match``, over all time (``/api/v1/export``).

        Each item is ``{"metric": {"__name__": ..., label: value, ...}, "values": [...],
        "timestamps": [epoch ms, ...]}``. Call :meth:`flush` first to see points just written.
        """
        response = await self._get("/api/v1/export", {"match[]": match})
        series: list[dict[str, Any]] = []
        for line in response.text.splitlines():
            if not line.strip():
                continue
            item = json.loads(line)
            if not isinstance(item, dict):
                raise ServerRequestError(f"/api/v1/export returned a line that is not an object: {line[:200]}")
            series.append(item)
        return series

    async def query(self, promql: str, time_ms: int | None = None) -> dict[str, Any]:
        """The ``/api/v1/query`` answer (``{"status": ..., "data": ...}``) at ``time_ms``, or now."""
        params = {"query": promql}
        if time_ms is not None:
            params["time"] = f"{time_ms / 1000:.3f}"  # the API takes seconds; ms would read as far future
        body = (await self._get("/api/v1/query", params)).json()
        if not isinstance(body, dict):
            raise ServerRequestError(f"/api/v1/query returned something other than an object: {body!r:.200}")
        return body

    async def _get(self, path: str, params: Mapping[str, str] | None = None) -> httpx.Response:
        if not self.running:
            raise ServerStateError(f"victoria-metrics on {self.url} is not running")
        async with httpx.AsyncClient(base_url=self.url, timeout=self._request_timeout_s) as client:
            response = await client.get(path, params=params)
        if response.status_code != httpx.codes.OK:
            raise ServerRequestError(
                f"GET {path} on victoria-metrics answered {response.status_code}: {response.text[:_ERROR_BODY_CHARS]}"
            )
        return response

    def _argv(self, binary: Path) -> list[str]:
        return [
            str(binary),
            f"-storageDataPath={self.data_path}",
            f"-httpListenAddr={LOOPBACK}:{self._port}",
            f"-retentionPeriod={self._retention_period}",
            "-search.disableCache",
            "-search.latencyOffset=0s",
            *self._extra_args,
        ]

    async def _start_once(self, binary: Path) -> None:
        async with httpx.AsyncClient(base_url=self.url, timeout=_PROBE_TIMEOUT_S) as client:
            is_ready = partial(self._answers_as_ours, client)
            process = await self._launch(self._argv(binary), self.log_path, is_ready, ready_state="healthy")
        logger.info("victoria-metrics (pid %d) serving %s, files in %s", process.pid, self.url, self._directory)

    async def _answers_as_ours(self, client: httpx.AsyncClient) -> bool:
        """Whether the port answers ``/health`` with 200 and ``/flags`` shows this server's data path.

        The data path rules out another server that took a port we picked.
        """
        try:
            if (await client.get("/health")).status_code != httpx.codes.OK:
                return False
            flags = await client.get("/flags")
        except httpx.TransportError:
            return False
        return f'-storageDataPath="{self.data_path}"' in flags.text
