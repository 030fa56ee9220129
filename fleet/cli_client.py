"""The fleet's REST API from a terminal: the options every admin command takes, one call, one table.

Every ``outpost fleet`` command that manages the fleet talks to a running fleet (``--fleet``, or
``OUTPOST_FLEET_URL``) with an API token (``--token``, or ``OUTPOST_TOKEN``); what a command may do is
what the token's role may do.
"""

import re
from typing import Annotated, Any, Final

import httpx
import typer

DEFAULT_FLEET_URL: Final = "http://127.0.0.1:8080"

FleetUrl = Annotated[
    str, typer.Option("--fleet", envvar="OUTPOST_FLEET_URL", help="The fleet's API base URL.", show_default=True)
]
Token = Annotated[str, typer.Option("--token", envvar="OUTPOST_TOKEN", help="Your API token.", show_default=False)]


def call(fleet: str, token: str, method: str, path: str, **kwargs: Any) -> Any:
    """One API call; a refusal or an unreachable fleet ends the command with the fleet's reason."""
    try:
        with httpx.Client(base_url=fleet, headers={"Authorization": f"Bearer {token}"}, timeout=30) as client:
            response = client.request(method, path, **kwargs)
    except httpx.HTTPError as exc:
        typer.echo(f"cannot reach the fleet at {fleet}: {exc}", err=True)
        raise typer.Exit(2) from exc
    if response.is_error:
        try:
            detail = response.json().get("detail", response.text)
        except ValueError:
            detail = response.text
        typer.echo(f"refused ({response.status_code}): {detail}", err=True)
        raise typer.Exit(1)
    if not response.content:
        return None
    if response.headers.get("content-type", "").startswith("application/json"):
        return response.json()
    return response.content


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
