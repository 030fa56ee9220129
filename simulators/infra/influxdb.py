"""A real InfluxDB 1.x server (Debian's ``influxdb`` package, 1.6) on loopback ports, storing into a directory it owns.

InfluxDB 1.6 takes line protocol only on its v1 ``POST /write?db=…&precision=ms`` (the v2 write API,
``/api/v2/write``, came with 1.8 and answers 404 here), so :meth:`InfluxDBServer.write` seeds through
``/write``; it answers InfluxQL on ``/query``, which is what the fleet's InfluxQL reader speaks.
"""

import logging
import shutil
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Final

import httpx

from simulators.infra.errors import ServerRequestError, ServerStateError
from simulators.infra.managed import ManagedServer
from simulators.infra.ports import LOOPBACK, free_port

logger = logging.getLogger(__name__)

INFLUXD_FALLBACK_PATH: Final = Path("/usr/bin/influxd")
_PROBE_TIMEOUT_S: Final = 1.0
_ERROR_BODY_CHARS: Final = 500


def influxd_binary() -> Path | None:
    """The ``influxd`` executable: on ``PATH``, else the Debian package's, else None."""
    found = shutil.which("influxd")
    if found is not None:
        return Path(found)
    if INFLUXD_FALLBACK_PATH.is_file():
        return INFLUXD_FALLBACK_PATH
    return None


class InfluxDBServer(ManagedServer):
    """An ``influxd`` 1.x process on 127.0.0.1, its HTTP API on :attr:`port` (free unless given).

    Its configuration, ``meta/``, ``data/`` and ``wal/`` live under :attr:`directory`; the RPC
    service (backup/restore) listens on a second free loopback port. Authentication, usage reporting
    and the ``_internal`` monitor database are off. :meth:`start` returns once ``GET /ping`` answers
    204 and ``/debug/vars`` shows this server's configuration file. :attr:`url` is the base URL.
    """

    display_name = "influxd"
    url_scheme = "http"

    def __init__(
        self,
        *,
        port: int | None = None,
        binary: Path | None = None,
        start_timeout_s: float = 20.0,
        stop_timeout_s: float = 10.0,
        request_timeout_s: float = 10.0,
    ) -> None:
        super().__init__(port=port, binary=binary, start_timeout_s=start_timeout_s, stop_timeout_s=stop_timeout_s)
        self._rpc_port = free_port()
        self._request_timeout_s = request_timeout_s

    @classmethod
    def find_binary(cls) -> Path | None:
        return influxd_binary()

    @classmethod
    def not_installed_message(cls) -> str:
        return (
            f"influxd is not installed (not on PATH, not at {INFLUXD_FALLBACK_PATH}); "
            "run scripts/test, which installs Debian's influxdb"
        )

    @property
    def config_path(self) -> Path:
        return self._directory / "influxdb.conf"

    @property
    def log_path(self) -> Path:
        return self._directory / "influxd.log"

    async def create_database(self, name: str) -> None:
        await self._request("POST", "/query", params={"q": f'CREATE DATABASE "{name}"'})

    async def write(self, database: str, lines: Sequence[str]) -> None:
        """Write line-protocol ``lines`` with millisecond timestamps through the v1 ``/write``."""
        await self._request(
            "POST", "/write", params={"db": database, "precision": "ms"}, content="\n".join(lines).encode()
        )

    async def _request(
        self, method: str, path: str, *, params: dict[str, str], content: bytes | None = None
    ) -> httpx.Response:
        if not self.running:
            raise ServerStateError(f"influxd on {self.url} is not running")
        async with httpx.AsyncClient(base_url=self.url, timeout=self._request_timeout_s) as client:
            response = await client.request(method, path, params=params, content=content)
        if response.status_code not in {httpx.codes.OK, httpx.codes.NO_CONTENT} or '"error"' in response.text:
            raise ServerRequestError(
                f"{method} {path} on influxd answered {response.status_code}: {response.text[:_ERROR_BODY_CHARS]}"
            )
        return response

    def _config(self) -> str:
        return f"""reporting-disabled = true
bind-address = "{LOOPBACK}:{self._rpc_port}"
[meta]
  dir = "{self._directory / "meta"}"
[data]
  dir = "{self._directory / "data"}"
  wal-dir = "{self._directory / "wal"}"
  query-log-enabled = false
[monitor]
  store-enabled = false
[http]
  bind-address = "{LOOPBACK}:{self._port}"
  log-enabled = false
[logging]
  suppress-logo = true
"""

    async def _start_once(self, binary: Path) -> None:
        self._rpc_port = free_port()  # nobody else needs to know it: a fresh one for each attempt
        self.config_path.write_text(self._config())
        async with httpx.AsyncClient(base_url=self.url, timeout=_PROBE_TIMEOUT_S) as client:
            is_ready = partial(self._answers_as_ours, client)
            argv = [str(binary), "-config", str(self.config_path)]
            process = await self._launch(argv, self.log_path, is_ready)
        logger.info("influxd (pid %d) serving %s, files in %s", process.pid, self.url, self._directory)

    async def _answers_as_ours(self, client: httpx.AsyncClient) -> bool:
        """Whether the port answers ``/ping`` and ``/debug/vars`` names our configuration file (not
        another server that took a port we picked)."""
        try:
            if (await client.get("/ping")).status_code != httpx.codes.NO_CONTENT:
                return False
            debug = await client.get("/debug/vars")
        except httpx.TransportError:
            return False
        return str(self.config_path) in debug.text
