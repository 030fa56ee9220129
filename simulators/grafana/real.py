"""A real Grafana server on a loopback port, with its own data, logs and provisioning, for the tests that can run one.

Grafana is not packaged for Debian, so it is often missing: :meth:`GrafanaServer.available` says
whether ``grafana`` (Grafana 10+: ``grafana server``) or ``grafana-server`` is on ``PATH``. Its
home (``conf/defaults.ini``, ``public/``) is ``$GRAFANA_HOME``, else the tarball layout next to
the binary (``bin/..``), else the packages' ``/usr/share/grafana``.

It runs with a generated ``grafana.ini`` in its directory: SQLite, anonymous access and sign-up off,
no phoning home, no plugin pre-installation, an admin password of its own (:attr:`admin_password`).
Provisioning files are read from ``provisioning`` (Grafana expands ``$VARIABLES`` in them from its
environment, which it inherits from this process). :meth:`service_account_token` makes the token
the dashboard push needs.
"""

import logging
import os
import secrets
import shutil
from functools import partial
from pathlib import Path
from typing import Final

import httpx

from simulators.infra.errors import ServerRequestError, ServerStartError
from simulators.infra.managed import ManagedServer
from simulators.infra.ports import LOOPBACK

logger = logging.getLogger(__name__)

PACKAGED_HOME: Final = Path("/usr/share/grafana")
ADMIN_USER: Final = "admin"
_PROBE_TIMEOUT_S: Final = 2.0
_ERROR_BODY_CHARS: Final = 500


def grafana_binary() -> Path | None:
    """``grafana`` (one binary, ``grafana server``) or the older ``grafana-server``, from ``PATH``."""
    for name in ("grafana", "grafana-server"):
        found = shutil.which(name)
        if found is not None:
            return Path(found)
    return None


def grafana_home(binary: Path, environment_home: str | None) -> Path | None:
    """The directory holding ``conf/defaults.ini`` for ``binary``, or None."""
    candidates = [Path(environment_home)] if environment_home else []
    candidates += [binary.resolve().parent.parent, PACKAGED_HOME]
    return next((home for home in candidates if (home / "conf" / "defaults.ini").is_file()), None)


class GrafanaServer(ManagedServer):
    """``grafana server`` on 127.0.0.1, ready once ``GET /api/health`` says its database is ok."""

    display_name = "grafana"
    url_scheme = "http"

    def __init__(
        self,
        *,
        provisioning: Path | None = None,
        home: Path | None = None,
        port: int | None = None,
        binary: Path | None = None,
        start_timeout_s: float = 90.0,  # the first start migrates a fresh database: tens of seconds
        stop_timeout_s: float = 15.0,
        request_timeout_s: float = 10.0,
    ) -> None:
        super().__init__(port=port, binary=binary, start_timeout_s=start_timeout_s, stop_timeout_s=stop_timeout_s)
        self._provisioning = provisioning
        self._home = home
        self._request_timeout_s = request_timeout_s
        self.admin_password = secrets.token_urlsafe(18)

    @classmethod
    def find_binary(cls) -> Path | None:
        return grafana_binary()

    @classmethod
    def not_installed_message(cls) -> str:
        return (
            "Grafana is not installed (neither grafana nor grafana-server on PATH; it is not in Debian: "
            "use Grafana's own apt repository or the standalone tarball)"
        )

    @property
    def provisioning_path(self) -> Path:
        return self._provisioning or self._directory / "provisioning"

    @property
    def log_path(self) -> Path:
        return self._directory / "grafana.log"

    async def service_account_token(self, name: str = "outpost-push", role: str = "Admin") -> str:
        """A new service account with ``role`` and a token for it, made through the admin's basic auth."""
        async with self._admin_client() as client:
            account = await client.post("/api/serviceaccounts", json={"name": name, "role": role, "isDisabled": False})
            _expect(account, "creating service account")
            token = await client.post(f"/api/serviceaccounts/{account.json()['id']}/tokens", json={"name": name})
            _expect(token, "creating service-account token")
        key: str = token.json()["key"]
        return key

    async def get(self, path: str) -> httpx.Response:
        """``GET path`` as the admin (to read back what provisioning or a push did)."""
        async with self._admin_client() as client:
            return await client.get(path)

    def _admin_client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self.url, auth=(ADMIN_USER, self.admin_password), timeout=self._request_timeout_s
        )

    def _write_config(self) -> Path:
        for name in ("data", "logs", "plugins"):
            (self._directory / name).mkdir(exist_ok=True)
        for kind in ("datasources", "dashboards", "plugins", "alerting"):
            (self.provisioning_path / kind).mkdir(parents=True, exist_ok=True)
        config = self._directory / "grafana.ini"
        config.write_text(
            "\n".join(
                [
                    "[paths]",
                    f"data = {self._directory / 'data'}",
                    f"logs = {self._directory / 'logs'}",
                    f"plugins = {self._directory / 'plugins'}",
                    f"provisioning = {self.provisioning_path}",
                    "[server]",
                    f"http_addr = {LOOPBACK}",
                    f"http_port = {self._port}",
                    "[database]",
                    "type = sqlite3",
                    "[security]",
                    f"admin_user = {ADMIN_USER}",
                    f"admin_password = {self.admin_password}",
                    "[users]",
                    "allow_sign_up = false",
                    "[auth.anonymous]",
                    "enabled = false",
                    "[analytics]",
                    "reporting_enabled = false",
                    "check_for_updates = false",
                    "check_for_plugin_updates = false",
                    "[plugins]",
                    "preinstall_disabled = true",
                    "[news]",
                    "news_feed_enabled = false",
                    "[log]",
                    "mode = console",
                    "level = warn",
                    "",
                ]
            )
        )
        return config

    async def _start_once(self, binary: Path) -> None:
        home = self._home or grafana_home(binary, os.environ.get("GRAFANA_HOME"))
        if home is None:
            raise ServerStartError(
                f"cannot find Grafana's home (conf/defaults.ini) for {binary}: set GRAFANA_HOME or pass home="
            )
        config = self._write_config()
        command = [str(binary), "server"] if binary.name == "grafana" else [str(binary)]
        argv = [*command, "--homepath", str(home), "--config", str(config)]
        async with httpx.AsyncClient(base_url=self.url, timeout=_PROBE_TIMEOUT_S) as client:
            await self._launch(argv, self.log_path, partial(_healthy, client), ready_state="healthy")
        logger.info("grafana on %s (home %s)", self.url, home)


async def _healthy(client: httpx.AsyncClient) -> bool:
    try:
        answer = await client.get("/api/health")
    except httpx.HTTPError:
        return False
    if answer.status_code != httpx.codes.OK:
        return False
    try:
        return bool(answer.json().get("database") == "ok")
    except ValueError:
        return False


def _expect(answer: httpx.Response, action: str) -> None:
    if answer.status_code not in (httpx.codes.OK, httpx.codes.CREATED):
        raise ServerRequestError(
            f"{action} on grafana answered {answer.status_code}: {answer.text[:_ERROR_BODY_CHARS]}"
        )
