"""The fleet's REST API from a terminal: the options every admin command takes, one call, one table.

Every ``outpost fleet`` command that manages the fleet talks to a running fleet (``--fleet``, or
``OUTPOST_FLEET_URL``) with an API token (``--token``, or ``OUTPOST_TOKEN``); what a command may do is
what the token's role may do. A call waits :data:`TIMEOUT_S` for the fleet; one that may take minutes
(importing a city's site list) is made with :func:`call_waiting`, which waits as long as the fleet works.
"""

import contextlib
import re
from collections.abc import Iterator, Mapping
from typing import Annotated, Any, Final

import httpx
import typer

DEFAULT_FLEET_URL: Final = "http://127.0.0.1:8080"
TIMEOUT_S = 30.0
"""How long a call waits to connect, and for each part of the fleet's answer."""

FleetUrl = Annotated[
    str, typer.Option("--fleet", envvar="OUTPOST_FLEET_URL", help="The fleet's API base URL.", show_default=True)
]
Token = Annotated[str, typer.Option("--token", envvar="OUTPOST_TOKEN", help="Your API token.", show_default=False)]


def call(fleet: str, token: str, method: str, path: str, **kwargs: Any) -> Any:
    """One API call; a refusal or an unreachable fleet ends the command with the fleet's reason."""
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
    try:
        with httpx.Client(base_url=fleet, headers={"Authorization": f"Bearer {token}"}, timeout=TIMEOUT_S) as client:
            response = client.request(method, path, **kwargs)
    except httpx.TimeoutException as exc:
        typer.echo(f"the fleet at {fleet} did not answer in time ({exc}); it may still carry out the call", err=True)
        raise typer.Exit(2) from exc
    except httpx.HTTPError as exc:
        typer.echo(f"cannot reach the fleet at {fleet}: {exc}", err=True)
        raise typer.Exit(2) from exc
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


def call_waiting(fleet: str, token: str, method: str, path: str, *, doing: str, **kwargs: Any) -> Any:
    """:func:`call` for what may take the fleet minutes: no limit on waiting for its answer (a connection that
    cannot be made still fails after :data:`TIMEOUT_S`), and ``doing`` shown on stderr meanwhile."""
    with _working(doing):
        return call(fleet, token, method, path, timeout=httpx.Timeout(TIMEOUT_S, read=None), **kwargs)


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


def table(rows: list[dict[str, Any]], columns: tuple[str, ...]) -> None:
    """Rows as aligned columns under upper-case headings; None shows as blank."""
    cells = [[("" if row.get(c) is None else str(row[c])) for c in columns] for row in rows]
    widths = [max([len(c), *(len(r[i]) for r in cells)]) for i, c in enumerate(columns)]
    typer.echo("  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip())
    for row in cells:
        typer.echo("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())


_DURATION: Final = re.compile(r"^(\d+)([smhd]?)$")
_UNIT_S: Final = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration_s(text: str) -> int:
    """``90``, ``45s``, ``30m``, ``2h`` or ``1d`` in seconds."""
    match = _DURATION.fullmatch(text.strip().lower())
    if match is None:
        raise typer.BadParameter(f"{text!r} is not a duration like 30m, 2h or 1d")
    return int(match.group(1)) * _UNIT_S[match.group(2)]
