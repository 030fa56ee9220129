"""A real VictoriaMetrics server on a loopback port, storing into a directory it owns, with read-back helpers.

The fleet writes to it with influxdb-client as if it were InfluxDB 2 (``POST /api/v2/write``); tests
read the points back with :meth:`VictoriaMetricsServer.export` or :meth:`VictoriaMetricsServer.query`.
"""

import asyncio
import json
import logging
import shutil
import tempfile
import weakref
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Self

import httpx

from simulators.infra.errors import BinaryNotFoundError, ServerRequestError, ServerStartError, ServerStateError
from simulators.infra.ports import LOOPBACK, free_port
from simulators.infra.process import file_size, kill, spawn, tail, terminate

logger = logging.getLogger(__name__)

VICTORIA_METRICS_FALLBACK_PATH: Final = Path("/usr/bin/victoria-metrics")
_ADDRESS_IN_USE: Final = "address already in use"
_START_ATTEMPTS: Final = 3
_POLL_INTERVAL_S: Final = 0.05
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


class _PortTakenError(ServerStartError):
    """The server could not bind its port because something else had taken it."""


class VictoriaMetricsServer:
    """A single-node ``victoria-metrics`` process on 127.0.0.1, on a free port unless ``port`` is given.

    It stores into ``data/`` under :attr:`directory` and logs to ``victoria-metrics.log`` there. It
    runs with ``-retentionPeriod=100y`` (so points with any past timestamp are kept),
    ``-search.disableCache`` and ``-search.latencyOffset=0s`` (so fresh points are visible to queries).

    Writing with influxdb-client: ``InfluxDBClientAsync(url=server.url, token="", org="outpost")``
    and ``write_api().write(bucket=..., record=lines, write_precision=WritePrecision.MS)``. VictoriaMetrics
    ignores the token, org and bucket (it adds no label for them) and names each field
    ``{measurement}_{field}`` with the tags as labels. The write returns once the server accepted the
    request, but points become visible to reads only after :meth:`flush` (or a few seconds), and lines
    it cannot parse are logged and skipped while the request still succeeds.

    :meth:`stop` and :meth:`kill` keep the data for a later :meth:`start` on the same port;
    :meth:`close` (and leaving ``async with``) also deletes the directory.
    """

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
        self._port_given = port is not None
        self._port = port if port is not None else free_port()
        self._retention_period = retention_period
        self._extra_args = tuple(extra_args)
        self._binary = binary
        self._start_timeout_s = start_timeout_s
        self._stop_timeout_s = stop_timeout_s
        self._request_timeout_s = request_timeout_s
        self._directory = Path(tempfile.mkdtemp(prefix="outpost-victoria-"))
        self._remove_directory = weakref.finalize(self, shutil.rmtree, self._directory, ignore_errors=True)
        self._process: asyncio.subprocess.Process | None = None
        self._has_started = False
        self._closed = False

    @staticmethod
    def available() -> bool:
        """Whether a VictoriaMetrics executable is installed."""
        return victoria_metrics_binary() is not None

    @property
    def host(self) -> str:
        return LOOPBACK

    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        """``http://127.0.0.1:port``: the base URL for HTTP APIs and for influxdb-client."""
        return f"http://{LOOPBACK}:{self._port}"

    @property
    def directory(self) -> Path:
        return self._directory

    @property
    def data_path(self) -> Path:
        return self._directory / "data"

    @property
    def log_path(self) -> Path:
        return self._directory / "victoria-metrics.log"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.returncode is None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self.running and self._process is not None else None

    async def start(self) -> None:
        """Start the server and return once ``GET /health`` answers 200.

        Raises :class:`ServerStartError`, with the tail of its log, if it exits or is not healthy
        within ``start_timeout_s``; :class:`BinaryNotFoundError` if it is not installed.
        """
        if self._closed:
            raise ServerStateError("this VictoriaMetricsServer is closed; make a new one")
        if self.running:
            raise ServerStateError(f"victoria-metrics is already running on {self.url}")
        if self._process is not None:  # it died on its own: reap it before starting another
            await kill(self._process)
            self._process = None
        binary = self._binary or victoria_metrics_binary()
        if binary is None:
            raise BinaryNotFoundError(
                f"victoria-metrics is not installed (not on PATH, not at {VICTORIA_METRICS_FALLBACK_PATH}); "
                "run scripts/test, which installs it"
            )
        for attempt in range(1, _START_ATTEMPTS + 1):
            try:
                await self._start_once(binary)
            except _PortTakenError:
                # A port we picked ourselves was taken before the server bound it: pick another, but
                # only before the first start (afterwards clients already know the port).
                if self._port_given or self._has_started or attempt == _START_ATTEMPTS:
                    raise
                logger.info("port %d was taken before victoria-metrics bound it; trying another", self._port)
                self._port = free_port()
            else:
                break
        self._has_started = True

    async def stop(self) -> None:
        """SIGTERM the server (it flushes its data), SIGKILL it after ``stop_timeout_s``."""
        process, self._process = self._process, None
        if process is None:
            return
        await terminate(process, name=f"victoria-metrics on {self.url}", timeout_s=self._stop_timeout_s)
        logger.info("victoria-metrics on %s stopped (exit code %s)", self.url, process.returncode)

    async def kill(self) -> None:
        """SIGKILL the server, as a crash would; points not yet flushed to disk are lost."""
        process, self._process = self._process, None
        if process is None:
            return
        await kill(process)
        logger.info("victoria-metrics on %s killed", self.url)

    async def restart(self) -> None:
        """Stop the server and start it again on the same port, with the same data."""
        await self.stop()
        await self.start()

    async def close(self) -> None:
        """Stop the server and delete its directory; it cannot be started again."""
        try:
            await self.stop()
        finally:
            self._closed = True
            self._remove_directory()

    async def __aenter__(self) -> Self:
        try:
            await self.start()
        except BaseException:
            await self.close()
            raise
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

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
        log_offset = file_size(self.log_path)
        process = await spawn(self._argv(binary), self.log_path)
        self._process = process
        try:
            await self._wait_healthy(process, log_offset)
        except BaseException:
            self._process = None
            await kill(process)
            raise
        logger.info("victoria-metrics (pid %d) serving %s, files in %s", process.pid, self.url, self._directory)

    async def _wait_healthy(self, process: asyncio.subprocess.Process, log_offset: int) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._start_timeout_s
        async with httpx.AsyncClient(base_url=self.url, timeout=_PROBE_TIMEOUT_S) as client:
            while True:
                if process.returncode is not None:
                    raise self._start_failure(
                        f"victoria-metrics exited with code {process.returncode} while starting", log_offset
                    )
                if await self._answers_as_ours(client):
                    return
                if loop.time() >= deadline:
                    raise self._start_failure(
                        f"victoria-metrics was not healthy on {self.url} within {self._start_timeout_s:g} s",
                        log_offset,
                    )
                await asyncio.sleep(_POLL_INTERVAL_S)

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

    def _start_failure(self, reason: str, log_offset: int) -> ServerStartError:
        log_tail = tail(self.log_path, log_offset)
        message = f"{reason}.\n--- {self.log_path} (tail) ---\n{log_tail}"
        return _PortTakenError(message) if _ADDRESS_IN_USE in log_tail.lower() else ServerStartError(message)
