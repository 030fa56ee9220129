"""``outpost fleet sites|gateways|tokens``: the REST API from a terminal, for admins and technicians.

Every command talks to a running fleet (``--fleet``, or ``OUTPOST_FLEET_URL``) with an API token
(``--token``, or ``OUTPOST_TOKEN``); what a command may do is what the token's role may do.
"""

from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer

from fleet.access.roles import Role

FleetUrl = Annotated[
    str, typer.Option("--fleet", envvar="OUTPOST_FLEET_URL", help="The fleet's API base URL.", show_default=True)
]
Token = Annotated[str, typer.Option("--token", envvar="OUTPOST_TOKEN", help="Your API token.", show_default=False)]


class Level(StrEnum):
    COUNTY = "county"
    TOWN = "town"
    VILLAGE = "village"
    GRID = "grid"


_PARENT = {Level.TOWN: "county_id", Level.VILLAGE: "town_id"}
_COLUMNS = {
    Level.COUNTY: ("id", "name"),
    Level.TOWN: ("id", "county_id", "name"),
    Level.VILLAGE: ("id", "town_id", "name", "latitude", "longitude"),
    Level.GRID: ("village_id", "id", "name"),
}

sites = typer.Typer(help="The site hierarchy: county → town → village → grid.", no_args_is_help=True)
gateways = typer.Typer(help="Gateways recorded in villages.", no_args_is_help=True)
tokens = typer.Typer(help="API tokens (admins).", no_args_is_help=True)


def _call(fleet: str, token: str, method: str, path: str, **kwargs: Any) -> Any:
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
    return response.json() if response.content else None


def _table(rows: list[dict[str, Any]], columns: tuple[str, ...]) -> None:
    cells = [[("" if row.get(c) is None else str(row[c])) for c in columns] for row in rows]
    widths = [max([len(c), *(len(r[i]) for r in cells)]) for i, c in enumerate(columns)]
    typer.echo("  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip())
    for row in cells:
        typer.echo("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())


def _path(level: Level, village: str | None) -> str:
    if level is Level.GRID:
        if village is None:
            typer.echo("grids belong to a village: give --village", err=True)
            raise typer.Exit(2)
        return f"/villages/{village}/grids"
    return {Level.COUNTY: "/counties", Level.TOWN: "/towns", Level.VILLAGE: "/villages"}[level]


@sites.command("list")
def list_sites(
    level: Annotated[Level, typer.Argument(help="Which level to list.")],
    fleet: FleetUrl = "http://127.0.0.1:8080",
    token: Token = "",
    village: Annotated[str | None, typer.Option(help="The village whose grids to list.")] = None,
) -> None:
    """List the counties, towns, villages or grids (of one village)."""
    _table(_call(fleet, token, "GET", _path(level, village)), _COLUMNS[level])


@sites.command("add")
def add_site(
    level: Annotated[Level, typer.Argument(help="What to add.")],
    site_id: Annotated[str, typer.Argument(metavar="ID", help="Its id: a-z, 0-9, '-' and '_'.")],
    name: Annotated[str, typer.Option(help="Its name as people say it.")],
    fleet: FleetUrl = "http://127.0.0.1:8080",
    token: Token = "",
    parent: Annotated[str | None, typer.Option(help="The county of a town, the town of a village.")] = None,
    village: Annotated[str | None, typer.Option(help="The village of a grid.")] = None,
    latitude: Annotated[float | None, typer.Option(help="A village's latitude (with --longitude).")] = None,
    longitude: Annotated[float | None, typer.Option(help="A village's longitude.")] = None,
) -> None:
    """Add a county, a town (--parent COUNTY), a village (--parent TOWN) or a grid (--village VILLAGE)."""
    body: dict[str, Any] = {"id": site_id, "name": name}
    if level in _PARENT:
        if parent is None:
            typer.echo(f"a {level.value} needs --parent ({_PARENT[level].removesuffix('_id')})", err=True)
            raise typer.Exit(2)
        body[_PARENT[level]] = parent
    if level is Level.VILLAGE and latitude is not None:
        body |= {"latitude": latitude, "longitude": longitude}
    created = _call(fleet, token, "POST", _path(level, village), json=body)
    typer.echo(f"added {level.value} {created['id']}")


@sites.command("remove")
def remove_site(
    level: Annotated[Level, typer.Argument(help="What to remove.")],
    site_id: Annotated[str, typer.Argument(metavar="ID")],
    fleet: FleetUrl = "http://127.0.0.1:8080",
    token: Token = "",
    village: Annotated[str | None, typer.Option(help="The village of a grid.")] = None,
) -> None:
    """Remove a site that nothing refers to any more (the fleet says what is in the way)."""
    _call(fleet, token, "DELETE", f"{_path(level, village)}/{site_id}")
    typer.echo(f"removed {level.value} {site_id}")


@sites.command("import")
def import_sites(
    sheet: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="The site list, CSV in UTF-8.")],
    fleet: FleetUrl = "http://127.0.0.1:8080",
    token: Token = "",
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Report what would change; change nothing.")] = False,
) -> None:
    """Import a site list: columns county_id, county_name, town_id, town_name, village_id, village_name,
    latitude, longitude, grid_id, grid_name (one row per grid). All rows are imported, or none."""
    report = _call(
        fleet,
        token,
        "POST",
        "/sites/import",
        content=sheet.read_bytes(),
        headers={"Content-Type": "text/csv"},
        params={"dry_run": str(dry_run).lower()},
    )
    typer.echo(f"{report['rows']} rows{' (dry run: nothing changed)' if report['dry_run'] else ''}")
    tallies = [{"level": level, **report[level]} for level in ("counties", "towns", "villages", "grids")]
    _table(tallies, ("level", "created", "updated", "unchanged"))


@gateways.command("list")
def list_gateways(
    fleet: FleetUrl = "http://127.0.0.1:8080",
    token: Token = "",
    village: Annotated[str | None, typer.Option(help="Only this village's gateways.")] = None,
) -> None:
    """Gateways with their presence."""
    rows = _call(fleet, token, "GET", "/gateways", params={"village_id": village} if village else None)
    _table(rows, ("id", "village_id", "name", "online", "presence_reason", "agent_version"))


@gateways.command("add")
def add_gateway(
    gateway_id: Annotated[str, typer.Argument(metavar="ID")],
    village: Annotated[str, typer.Option(help="The village it stands in.")],
    fleet: FleetUrl = "http://127.0.0.1:8080",
    token: Token = "",
    name: Annotated[str | None, typer.Option(help="Where it is, as a technician would say it.")] = None,
) -> None:
    """Record a gateway in a village before it is installed."""
    _call(fleet, token, "POST", "/gateways", json={"id": gateway_id, "village_id": village, "name": name})
    typer.echo(f"added gateway {gateway_id} in {village}")


@tokens.command("create")
def create_token(
    name: Annotated[str, typer.Argument(help="Who uses it, as the audit log will show it.")],
    role: Annotated[Role, typer.Option(help="What it may do.")],
    fleet: FleetUrl = "http://127.0.0.1:8080",
    token: Token = "",
    ttl_s: Annotated[int | None, typer.Option("--ttl-s", help="Expire after this many seconds.")] = None,
) -> None:
    """Create a token; its secret is printed once, on stdout alone (pipe it where it belongs)."""
    issued = _call(fleet, token, "POST", "/tokens", json={"name": name, "role": role.value, "ttl_s": ttl_s})
    typer.echo(f"created {issued['role']} token {issued['name']}; it is shown only now:", err=True)
    typer.echo(issued["secret"])


@tokens.command("list")
def list_tokens(fleet: FleetUrl = "http://127.0.0.1:8080", token: Token = "") -> None:
    """Every token with its role and state (never its secret)."""
    _table(_call(fleet, token, "GET", "/tokens"), ("name", "role", "created_ms", "expires_ms", "revoked_ms"))


@tokens.command("revoke")
def revoke_token(
    name: Annotated[str, typer.Argument()], fleet: FleetUrl = "http://127.0.0.1:8080", token: Token = ""
) -> None:
    """Revoke a token at once."""
    _call(fleet, token, "DELETE", f"/tokens/{name}")
    typer.echo(f"revoked token {name}")
