"""A real nginx on a loopback port, serving the server blocks it is given, with its files in a directory it owns.

The tests run the fleet's shipped proxy configuration (``deploy/nginx/outpost-fleet.conf``) through one. The
executable is found by :func:`nginx_binary`: ``nginx`` on ``PATH``, else Debian's ``/usr/sbin/nginx``.
"""

import logging
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Final

from simulators.infra.managed import ManagedServer
from simulators.infra.ports import LOOPBACK, port_accepts

logger = logging.getLogger(__name__)

NGINX_FALLBACK_PATH: Final = Path("/usr/sbin/nginx")
_TEMP_PATHS: Final = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")


def nginx_binary() -> Path | None:
    """The nginx executable: ``nginx`` on ``PATH``, else ``/usr/sbin/nginx``, else None."""
    found = shutil.which("nginx")
    if found is not None:
        return Path(found)
    if os.access(NGINX_FALLBACK_PATH, os.X_OK):
        return NGINX_FALLBACK_PATH
    return None


class NginxServer(ManagedServer):
    """An ``nginx`` process on a free port of 127.0.0.1 unless ``port`` is given, serving ``servers(port)``.

    ``servers`` makes the text of the ``server {}`` blocks nginx's ``http {}`` context includes, given the
    port to listen on (a port it picked may move before the first start); they should listen on
    ``127.0.0.1:port``. :attr:`url` is ``https://127.0.0.1:port``, or ``http://…`` with ``tls=False``.

    nginx runs in the foreground as one process (``daemon off``, ``master_process off``), so stopping or
    killing it leaves no worker behind. Everything it writes lives in :attr:`directory`: ``nginx.conf``,
    ``servers.conf``, ``error.log``, ``access.log``, ``nginx.pid``, ``nginx.out`` (what it prints before its
    log is open) and its temporary files (request bodies it buffers). :meth:`start` returns once it has
    written its pid file and its port accepts connections.
    """

    display_name = "nginx"
    url_scheme = "https"

    def __init__(
        self,
        servers: Callable[[int], str],
        *,
        tls: bool = True,
        port: int | None = None,
        binary: Path | None = None,
        start_timeout_s: float = 10.0,
        stop_timeout_s: float = 5.0,
    ) -> None:
        super().__init__(port=port, binary=binary, start_timeout_s=start_timeout_s, stop_timeout_s=stop_timeout_s)
        self._servers = servers
        self._tls = tls

    @classmethod
    def find_binary(cls) -> Path | None:
        return nginx_binary()

    @classmethod
    def not_installed_message(cls) -> str:
        return (
            f"nginx is not installed (not on PATH, not at {NGINX_FALLBACK_PATH}); run scripts/test, which installs it"
        )

    @property
    def url(self) -> str:
        return f"{'https' if self._tls else 'http'}://{LOOPBACK}:{self._port}"

    @property
    def config_path(self) -> Path:
        return self._directory / "nginx.conf"

    @property
    def servers_path(self) -> Path:
        return self._directory / "servers.conf"

    @property
    def error_log_path(self) -> Path:
        return self._directory / "error.log"

    @property
    def access_log_path(self) -> Path:
        return self._directory / "access.log"

    @property
    def _pid_path(self) -> Path:
        return self._directory / "nginx.pid"

    def _config_lines(self) -> list[str]:
        directory = self._directory
        return [
            "# Written by simulators.infra.nginx for one test or demo proxy.",
            "daemon off;",
            "master_process off;",
            f"pid {self._pid_path};",
            f"error_log {self.error_log_path} notice;",
            "events {",
            "    worker_connections 256;",
            "}",
            "http {",
            f"    access_log {self.access_log_path};",
            *(f"    {kind}_temp_path {directory / kind};" for kind in _TEMP_PATHS),
            f"    include {self.servers_path};",
            "}",
        ]

    async def _start_once(self, binary: Path) -> None:
        self.servers_path.write_text(self._servers(self._port), encoding="utf-8")
        self.config_path.write_text("\n".join(self._config_lines()) + "\n", encoding="utf-8")
        self._pid_path.unlink(missing_ok=True)

        async def is_ready() -> bool:
            # nginx writes its pid file after binding its ports: our pid there rules out another server on a port
            # we picked.
            try:
                written = self._pid_path.read_text(encoding="ascii").strip()
            except FileNotFoundError:
                return False
            return written == str(self.pid) and await port_accepts(LOOPBACK, self._port)

        argv = [str(binary), "-p", str(self._directory), "-c", str(self.config_path)]
        process = await self._launch(argv, self._directory / "nginx.out", is_ready, logs=[self.error_log_path])
        logger.info("nginx (pid %d) serving %s, files in %s", process.pid, self.url, self._directory)
