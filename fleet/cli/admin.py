"""``outpost fleet sites|gateways|tokens``: the REST API from a terminal, for admins and technicians.

The HTTP call, the ``--fleet``/``--token`` options and the table come from :mod:`fleet.cli.client`.
"""

from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from fleet.access.roles import Role
from fleet.cli.client import DEFAULT_FLEET_URL, FleetUrl, Token, call, call_waiting, table


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
    fleet: FleetUrl = DEFAULT_FLEET_URL,
    token: Token = "",
    village: Annotated[str | None, typer.Option(help="The village whose grids to list.")] = None,
) -> None:
    """List the counties, towns, villages or grids (of one village)."""
    table(call(fleet, token, "GET", _path(level, village)), _COLUMNS[level])


@sites.command("add")
def add_site(
    level: Annotated[Level, typer.Argument(help="What to add.")],
    site_id: Annotated[str, typer.Argument(metavar="ID", help="Its id: a-z, 0-9, '-' and '_'.")],
    name: Annotated[str, typer.Option(help="Its name as people say it.")],
    fleet: FleetUrl = DEFAULT_FLEET_URL,
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
    created = call(fleet, token, "POST", _path(level, village), json=body)
    typer.echo(f"added {level.value} {created['id']}")


@sites.command("remove")
def remove_site(
    level: Annotated[Level, typer.Argument(help="What to remove.")],
    site_id: Annotated[str, typer.Argument(metavar="ID")],
    fleet: FleetUrl = DEFAULT_FLEET_URL,
    token: Token = "",
    village: Annotated[str | None, typer.Option(help="The village of a grid.")] = None,
) -> None:
    """Remove a site that nothing refers to any more (the fleet says what is in the way)."""
    call(fleet, token, "DELETE", f"{_path(level, village)}/{site_id}")
    typer.echo(f"removed {level.value} {site_id}")


@sites.command("import")
def import_sites(
    sheet: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="The site list, CSV in UTF-8.")],
    fleet: FleetUrl = DEFAULT_FLEET_URL,
    token: Token = "",
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Report what would change; change nothing.")] = False,
) -> None:
    """Import a site list: columns county_id, county_name, town_id, town_name, village_id, village_name,
    latitude, longitude, grid_id, grid_name (one row per grid). All rows are imported, or none.

    A city's list takes the fleet a minute or so: the command waits as long as the fleet works on it."""
    report = call_waiting(
        fleet,
        token,
        "POST",
        "/sites/import",
        doing=f"waiting for the fleet to {'check' if dry_run else 'import'} {sheet.name}",
        content=sheet.read_bytes(),
        headers={"Content-Type": "text/csv"},
        params={"dry_run": str(dry_run).lower()},
    )
    typer.echo(f"{report['rows']} rows{' (dry run: nothing changed)' if report['dry_run'] else ''}")
    done = ("would create", "would update") if report["dry_run"] else ("created", "updated")
    tallies: list[dict[str, Any]] = []
    for level in ("counties", "towns", "villages", "grids"):
        tally = report[level]
        tallies.append({"level": level, done[0]: tally["created"], done[1]: tally["updated"], **tally})
    table(tallies, ("level", *done, "unchanged"))


@gateways.command("list")
def list_gateways(
    fleet: FleetUrl = DEFAULT_FLEET_URL,
    token: Token = "",
    village: Annotated[str | None, typer.Option(help="Only this village's gateways.")] = None,
) -> None:
    """Gateways with their presence."""
    rows = call(fleet, token, "GET", "/gateways", params={"village_id": village} if village else None)
    table(rows, ("id", "village_id", "name", "online", "presence_reason", "agent_version"))


@gateways.command("add")
def add_gateway(
    gateway_id: Annotated[str, typer.Argument(metavar="ID")],
    village: Annotated[str, typer.Option(help="The village it stands in.")],
    fleet: FleetUrl = DEFAULT_FLEET_URL,
    token: Token = "",
    name: Annotated[str | None, typer.Option(help="Where it is, as a technician would say it.")] = None,
) -> None:
    """Record a gateway in a village before it is installed."""
    call(fleet, token, "POST", "/gateways", json={"id": gateway_id, "village_id": village, "name": name})
    typer.echo(f"added gateway {gateway_id} in {village}")


@tokens.command("create")
def create_token(
    name: Annotated[str, typer.Argument(help="Who uses it, as the audit log will show it.")],
    role: Annotated[Role, typer.Option(help="What it may do.")],
    fleet: FleetUrl = DEFAULT_FLEET_URL,
    token: Token = "",
    ttl_s: Annotated[int | None, typer.Option("--ttl-s", help="Expire after this many seconds.")] = None,
    scope: Annotated[
        str | None,
        typer.Option(
            help="Reach only this place and what stands in it: county:ID, town:ID or village:ID (unset: the whole "
            "fleet).",
            metavar="KIND:ID",
        ),
    ] = None,
) -> None:
    """Create a token; its secret is printed once, on stdout alone (pipe it where it belongs)."""
    body: dict[str, object] = {"name": name, "role": role.value, "ttl_s": ttl_s}
    if scope is not None:
        kind, _, place = scope.partition(":")
        if kind not in ("county", "town", "village") or not place:
            raise typer.BadParameter(f"{scope!r}: give county:ID, town:ID or village:ID", param_hint="--scope")
        body["scope"] = {"kind": kind, "id": place}
    issued = call(fleet, token, "POST", "/tokens", json=body)
    where = f" for {scope}" if scope else ""
    typer.echo(f"created {issued['role']} token {issued['name']}{where}; it is shown only now:", err=True)
    typer.echo(issued["secret"])


@tokens.command("list")
def list_tokens(fleet: FleetUrl = DEFAULT_FLEET_URL, token: Token = "") -> None:
    """Every token with its role and state (never its secret)."""
    rows = [
        row | {"scope": f"{row['scope']['kind']}:{row['scope']['id']}" if row.get("scope") else "fleet"}
        for row in call(fleet, token, "GET", "/tokens")
    ]
    table(rows, ("name", "role", "scope", "created_ms", "expires_ms", "revoked_ms"))


@tokens.command("revoke")
def revoke_token(
    name: Annotated[str, typer.Argument()], fleet: FleetUrl = DEFAULT_FLEET_URL, token: Token = ""
) -> None:
    """Revoke a token at once."""
    call(fleet, token, "DELETE", f"/tokens/{name}")
    typer.echo(f"revoked token {name}")
