"""The few Grafana HTTP API calls the push makes, through grafana-client, typed and with errors translated.

grafana-client is untyped and lets its HTTP library's exceptions escape (a refused connection is a
``requests.ConnectionError``, not a ``GrafanaException``). This module is the one place that calls
it: each method names what it was doing, so a failure reads "Grafana at URL refused the token while
listing folders" rather than "Unauthorized", and every exception becomes one of
:mod:`dashboards.errors`. It is synchronous, like grafana-client; async callers run the push in a
thread (``asyncio.to_thread``).
"""

import logging
from collections.abc import Callable
from typing import Any, Final, TypeVar
from urllib.parse import urlsplit

import requests.exceptions
from grafana_client.api import GrafanaApi
from grafana_client.client import GrafanaClientError, GrafanaException, GrafanaServerError, GrafanaUnauthorizedError

from dashboards.errors import GrafanaAuthError, GrafanaPushError, GrafanaUnreachableError

logger = logging.getLogger(__name__)

_T = TypeVar("_T")
_SEARCH_LIMIT: Final = 5000  # Grafana's maximum page
_MESSAGE_CHARS: Final = 300
_NOT_FOUND: Final = 404
_FORBIDDEN: Final = 403
_NOT_GRAFANA: Final = "is that Grafana's address?"


class GrafanaHttp:
    """A Grafana at ``url`` (``http(s)://host[:port][/sub/path]``), authenticated with a service-account token."""

    def __init__(self, url: str, token: str, *, verify_tls: bool = True, timeout_s: float = 10.0) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise GrafanaPushError(f"not a Grafana URL: {url!r} (expected http(s)://host[:port][/path])")
        if not token.strip():
            raise GrafanaAuthError("no Grafana token given: create a service-account token (role Editor) in Grafana")
        self.url = url.rstrip("/")
        self._origin = f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"
        self._timeout_s = timeout_s
        host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
        path = parts.path.strip("/")
        # grafana-client appends "api" to the prefix as is: "grafana" would give /grafanaapi.
        prefix = f"{path}/" if path else ""
        self._api = GrafanaApi(
            auth=token.strip(),
            host=host,
            port=parts.port,
            url_path_prefix=prefix,
            protocol=parts.scheme,
            verify=verify_tls,
            timeout=timeout_s,
        )

    @property
    def api_url(self) -> str:
        """The base URL requests go to (``…/api``)."""
        url: str = self._api.client.url
        return url

    def absolute(self, path: str) -> str:
        """An address Grafana gave as a path (``/d/uid/slug``, which includes any sub-path it is served under)."""
        return f"{self._origin}{path}" if path.startswith("/") else path

    def folders(self) -> list[dict[str, Any]]:
        """Every folder the token can see: ``GET /api/search?type=dash-folder`` hits (uid, title, …)."""
        search = self._api.search
        hits = self._call(
            "listing folders",
            lambda: search.search_dashboards(type_="dash-folder", limit=_SEARCH_LIMIT),
        )
        if not isinstance(hits, list) or not all(isinstance(hit, dict) for hit in hits):
            raise GrafanaPushError(f"{self.url} answered the folder search with a non-list: {_NOT_GRAFANA}")
        return hits

    def create_folder(self, uid: str, title: str) -> dict[str, Any]:
        """``POST /api/folders``."""
        folders = self._api.folder
        return self._object(
            f"creating folder {uid!r}",
            lambda: folders.create_folder(title, uid=uid),
        )

    def rename_folder(self, uid: str, title: str) -> dict[str, Any]:
        """``PUT /api/folders/:uid`` with ``overwrite``, so a concurrent edit's version does not matter."""
        folders = self._api.folder
        return self._object(
            f"renaming folder {uid!r}",
            lambda: folders.update_folder(uid, title=title, overwrite=True),
        )

    def dashboard(self, uid: str) -> dict[str, Any] | None:
        """``GET /api/dashboards/uid/:uid``: ``{"dashboard": ..., "meta": ...}``, or None if there is none."""
        try:
            dashboards = self._api.dashboard
            return self._object(
                f"reading dashboard {uid!r}",
                lambda: dashboards.get_dashboard(uid),
            )
        except _Missing:
            return None

    def save_dashboard(self, body: dict[str, Any]) -> dict[str, Any]:
        """``POST /api/dashboards/db`` with ``body`` (``dashboard``, ``folderUid``, ``overwrite``, ``message``)."""
        uid = body.get("dashboard", {}).get("uid")
        dashboards = self._api.dashboard
        return self._object(
            f"saving dashboard {uid!r}",
            lambda: dashboards.update_dashboard(body),
        )

    def _object(self, action: str, request: Callable[[], Any]) -> dict[str, Any]:
        answer = self._call(action, request)
        if not isinstance(answer, dict):
            raise GrafanaPushError(f"{self.url} answered {action} with a non-object: {_NOT_GRAFANA}")
        return answer

    def _call(self, action: str, request: Callable[[], _T]) -> _T:
        """Run one grafana-client request, translating every failure into :mod:`dashboards.errors`."""
        try:
            return request()
        except GrafanaUnauthorizedError as exc:
            raise GrafanaAuthError(
                f"Grafana at {self.url} refused the token while {action} (401 {_message(exc)}): "
                "pass a valid service-account token (Administration > Users and access > Service accounts)"
            ) from exc
        except GrafanaClientError as exc:
            if exc.status_code == _NOT_FOUND:
                raise _Missing(f"Grafana at {self.url} answered 404 while {action}: {_message(exc)}") from exc
            if exc.status_code == _FORBIDDEN:
                raise GrafanaAuthError(
                    f"Grafana at {self.url} does not let this token do {action} (403 {_message(exc)}): "
                    "give its service account the Editor role, or Admin"
                ) from exc
            raise GrafanaPushError(
                f"Grafana at {self.url} refused {action}: {exc.status_code} {_message(exc)}"
            ) from exc
        except GrafanaServerError as exc:
            raise GrafanaPushError(f"Grafana at {self.url} failed {action}: {exc.status_code} {_message(exc)}") from exc
        except GrafanaException as exc:  # grafana-client's wrapper of its HTTP library's other errors
            raise GrafanaUnreachableError(f"cannot reach Grafana at {self.url} while {action}: {exc.message}") from exc
        except requests.exceptions.JSONDecodeError as exc:
            raise GrafanaPushError(f"{self.url} answered {action} with non-JSON: {_NOT_GRAFANA}") from exc
        except requests.exceptions.Timeout as exc:
            raise GrafanaUnreachableError(
                f"Grafana at {self.url} did not answer within {self._timeout_s:g} s while {action}: {exc}"
            ) from exc
        except requests.exceptions.RequestException as exc:  # refused, DNS, TLS: grafana-client lets these out
            raise GrafanaUnreachableError(f"cannot reach Grafana at {self.url} while {action}: {exc}") from exc


class _Missing(GrafanaPushError):
    """404: what was asked for does not exist (a dashboard not pushed yet, or a wrong URL path)."""


def _message(exc: GrafanaException) -> str:
    """Grafana's own ``message`` from the error body, else the body as text, cut short."""
    response = exc.response
    if isinstance(response, dict) and isinstance(response.get("message"), str):
        text: str = response["message"]
    elif response:
        text = str(response)
    else:
        text = str(exc.message)
    return text[:_MESSAGE_CHARS]
