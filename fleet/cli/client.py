"""The fleet's REST API from a terminal: the connection options every command takes, and the calls.

Every ``outpost fleet`` command that manages the fleet talks to a running fleet (``--fleet``, or
``OUTPOST_FLEET_URL``) with an API token (``--token``, or ``OUTPOST_TOKEN``); what a command may do is
what the token's role may do. A fleet whose certificate a private CA signed is trusted with ``--ca-file``
(or ``OUTPOST_CA_FILE``), a PEM file of that CA. A command makes a :class:`FleetApi` of the three with
:func:`connect` and calls through it: a call waits :data:`TIMEOUT_S` for the fleet; one the fleet may take
long over (a gateway's answer, a city's site list) says so on stderr meanwhile (a spinner on a terminal).
"""

import contextlib
import logging
import ssl
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Final

import httpx
import typer

logger = logging.getLogger(__name__)

DEFAULT_FLEET_URL: Final = "http://127.0.0.1:8080"
TIMEOUT_S = 30.0
"""How long a call waits to connect, and for each part of the fleet's answer."""

FleetUrl = Annotated[
    str, typer.Option("--fleet", envvar="OUTPOST_FLEET_URL", help="The fleet's API base URL.", show_default=True)
]
Token = Annotated[str, typer.Option("--token", envvar="OUTPOST_TOKEN", help="Your API token.", show_default=False)]
CaFile = Annotated[
    Path | None,
    typer.Option(
        "--ca-file",
        envvar="OUTPOST_CA_FILE",
        exists=True,
        dir_okay=False,
        help="Trust the fleet's certificate if this CA (PEM) signed it: a fleet with a private CA.",
        show_default=False,
    ),
]


@dataclass(frozen=True, slots=True)
class FleetApi:
    """A running fleet's API as one token reaches it; made by :func:`connect`."""

    url: str
    token: str
    ca_file: Path | None = None

    def call(
        self,
        method: str,
        path: str,
        *,
        doing: str | None = None,
        timeout: httpx.Timeout | float | None = None,
        **kwargs: Any,
    ) -> Any:
        """One API call: the fleet's JSON (or bytes, or None for no content). ``doing`` is shown on stderr while
        it waits. A refusal or an unreachable fleet ends the command with the fleet's reason."""
        verify = self._verify()
        try:
            with _working(doing) if doing is not None else contextlib.nullcontext():
                response = self._request(method, path, TIMEOUT_S if timeout is None else timeout, verify, kwargs)
        except httpx.TimeoutException as exc:
            typer.echo(
                f"the fleet at {self.url} did not answer in time ({exc}); it may still carry out the call", err=True
            )
            raise typer.Exit(2) from exc
        except httpx.HTTPError as exc:
            typer.echo(f"cannot reach the fleet at {self.url}: {exc}{self._hint(exc)}", err=True)
            raise typer.Exit(2) from exc
        logger.debug("%s %s: %s", method, path, response.status_code)
        if response.is_error:
            try:
                body = response.json()
            except ValueError:
                body = None
            detail = body.get("detail", response.text) if isinstance(body, dict) else response.text
            typer.echo(f"refused ({response.status_code}):{_problems(detail)}", err=True)
            raise typer.Exit(1)
        if not response.content:
            return None
        if response.headers.get("content-type", "").startswith("application/json"):
            return response.json()
        return response.content

    def call_waiting(self, method: str, path: str, *, doing: str, **kwargs: Any) -> Any:
        """:meth:`call` for what may take the fleet minutes: no limit on waiting for its answer (a connection that
        cannot be made still fails after :data:`TIMEOUT_S`), and ``doing`` shown on stderr meanwhile."""
        return self.call(method, path, doing=doing, timeout=httpx.Timeout(TIMEOUT_S, read=None), **kwargs)

    def _request(
        self,
        method: str,
        path: str,
        timeout: httpx.Timeout | float,
        verify: ssl.SSLContext | bool,
        kwargs: dict[str, Any],
    ) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.token}"}
        with httpx.Client(base_url=self.url, headers=headers, timeout=timeout, verify=verify) as client:
            return client.request(method, path, **kwargs)

    def _verify(self) -> ssl.SSLContext | bool:
        """The CA to trust: ``--ca-file``'s alone, or the usual ones (``SSL_CERT_FILE``, else certifi's)."""
        if self.ca_file is None:
            return True
        try:
            return ssl.create_default_context(cafile=str(self.ca_file))
        except (OSError, ssl.SSLError) as exc:
            typer.echo(f"cannot use {self.ca_file} as the fleet's CA (--ca-file, OUTPOST_CA_FILE): {exc}", err=True)
            raise typer.Exit(2) from exc

    def _hint(self, exc: httpx.HTTPError) -> str:
        if "CERTIFICATE_VERIFY_FAILED" not in str(exc):
            return ""
        if self.ca_file is None:
            return "\nif a private CA signed the fleet's certificate, give it with --ca-file (or OUTPOST_CA_FILE)"
        return f"\nthe fleet's certificate is not signed by {self.ca_file}, or does not name {httpx.URL(self.url).host}"


def connect(fleet: str, token: str, ca_file: Path | None = None) -> FleetApi:
    """The fleet at ``fleet`` as ``token`` reaches it; a missing or mangled token ends the command saying so."""
    token = token.strip()
    if not token:
        typer.echo(
            "no API token: set OUTPOST_TOKEN or give --token (an admin creates one with "
            "`outpost fleet tokens create NAME --role ROLE`)",
            err=True,
        )
        raise typer.Exit(2)
    if not (token.isascii() and token.isprintable()):
        typer.echo(
            "the API token (OUTPOST_TOKEN or --token) has characters no token has: check how it was copied", err=True
        )
        raise typer.Exit(2)
    return FleetApi(fleet, token, ca_file)


@contextlib.contextmanager
def _working(doing: str) -> Iterator[None]:
    """A spinner saying ``doing`` on a terminal; once, as a line, on anything else (a log, a pipe)."""
    from rich.console import Console  # noqa: PLC0415 - only the long calls need it

    console = Console(stderr=True)
    if not console.is_terminal:
        typer.echo(f"{doing}…", err=True)
        yield
        return
    with console.status(f"{doing}…"):
        yield


def _problems(detail: Any) -> str:
    """The fleet's reason: its text, or its list of invalid fields one ``where: what`` a line."""
    if not isinstance(detail, list) or not all(isinstance(error, Mapping) for error in detail):
        return f" {detail}"
    lines = [f"{_where(error.get('loc'))}: {error.get('msg', '')}" for error in detail]
    return f" {lines[0]}" if len(lines) == 1 else "".join(f"\n  {line}" for line in lines)


def _where(loc: Any) -> str:
    """``id`` for ``["body", "id"]``, ``gateway_id`` for ``["path", "gateway_id"]``: where it was sent is no help."""
    parts = [str(part) for part in loc] if isinstance(loc, list) else []
    return ".".join(parts[1:] if len(parts) > 1 and parts[0] in ("body", "path", "query") else parts) or "request"
