"""``outpost fleet sites|gateways|tokens``: the REST API from a terminal, for admins and technicians.

The connection options and the call come from :mod:`fleet.cli.client`; tables, ``--json``, times in ``--tz``
and durations from :mod:`fleet.cli.formats`.
"""

from datetime import tzinfo
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from fleet.access.roles import Role
from fleet.cli.client import DEFAULT_FLEET_URL, CaFile, FleetUrl, Token, connect
from fleet.cli.formats import (
    DURATION_HELP,
    AsJson,
    TimeZone,
    age_text,
    duration,
    print_json,
    table,
    when,
)
from protocol.clock import utc_now_ms
from protocol.durations import format_duration_ms


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
gateways = typer.Typer(
    help="Gateways recorded in villages: presence, health, enrollment state (devices: `outpost fleet devices`).",
    no_args_is_help=True,
)
tokens = typer.Typer(help="API tokens (admins).", no_args_is_help=True)

GatewayId = Annotated[str, typer.Argument(metavar="GATEWAY", help="The gateway's id.")]


def _path(level: Level, village: str | None) -> str:
    if level is Level.GRID:
        if village is None:
            typer.echo("grids belong to a village: give --village", err=True)
            raise typer.Exit(2)
        return f"/villages/{village}/grids"
    return {Level.COUNTY: "/counties", Level.TOWN: "/towns", Level.VILLAGE: "/villages"}[level]


@sites.command("list")
def list_sites(
    level: Annotated[Level, typer.Argument(metavar="LEVEL", help="Which level to list.")],
    village: Annotated[str | None, typer.Option(help="The village whose grids to list.")] = None,
    fleet: FleetUrl = DEFAULT_FLEET_URL,
    token: Token = "",
    ca_file: CaFile = None,
    as_json: AsJson = False,
) -> None:
    """List the counties, towns, villages or grids (of one village)."""
    api = connect(fleet, token, ca_file)
    rows = api.call("GET", _path(level, village))
    if as_json:
        print_json(rows)
        return
    table(rows, _COLUMNS[level], empty=f"no {level.value} sites")


@sites.command("add")
def add_site(
    level: Annotated[Level, typer.Argument(metavar="LEVEL", help="What to add.")],
    site_id: Annotated[str, typer.Argument(metavar="ID", help="Its id: a-z, 0-9, '-' and '_'.")],
    name: Annotated[str, typer.Option(help="Its name as people say it.")],
    parent: Annotated[str | None, typer.Option(help="The county of a town, the town of a village.")] = None,
    village: Annotated[str | None, typer.Option(help="The village of a grid.")] = None,
    latitude: Annotated[float | None, typer.Option(help="A village's latitude (with --longitude).")] = None,
    longitude: Annotated[float | None, typer.Option(help="A village's longitude.")] = None,
    fleet: FleetUrl = DEFAULT_FLEET_URL,
    token: Token = "",
    ca_file: CaFile = None,
) -> None:
    """Add a county, a town (--parent COUNTY), a village (--parent TOWN) or a grid (--village VILLAGE)."""
    api = connect(fleet, token, ca_file)
    body: dict[str, Any] = {"id": site_id, "name": name}
    if level in _PARENT:
        if parent is None:
            typer.echo(f"a {level.value} needs --parent ({_PARENT[level].removesuffix('_id')})", err=True)
            raise typer.Exit(2)
        body[_PARENT[level]] = parent
    if level is Level.VILLAGE and latitude is not None:
        body |= {"latitude": latitude, "longitude": longitude}
    created = api.call("POST", _path(level, village), json=body)
    typer.echo(f"added {level.value} {created['id']}")


@sites.command("remove")
def remove_site(
    level: Annotated[Level, typer.Argument(metavar="LEVEL", help="What to remove.")],
    site_id: Annotated[str, typer.Argument(metavar="ID", help="Its id.")],
    village: Annotated[str | None, typer.Option(help="The village of a grid.")] = None,
    fleet: FleetUrl = DEFAULT_FLEET_URL,
    token: Token = "",
    ca_file: CaFile = None,
) -> None:
    """Remove a site that nothing refers to any more (the fleet says what is in the way)."""
    api = connect(fleet, token, ca_file)
    api.call("DELETE", f"{_path(level, village)}/{site_id}")
    typer.echo(f"removed {level.value} {site_id}")


@sites.command("import")
def import_sites(
    sheet: Annotated[
        Path, typer.Argument(metavar="FILE", exists=True, dir_okay=False, help="The site list, CSV in UTF-8.")
    ],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Report what would change; change nothing.")] = False,
    fleet: FleetUrl = DEFAULT_FLEET_URL,
    token: Token = "",
    ca_file: CaFile = None,
    as_json: AsJson = False,
) -> None:
    """Import a site list: columns county_id, county_name, town_id, town_name, village_id, village_name,
    latitude, longitude, grid_id, grid_name (one row per grid). All rows are imported, or none.

    A city's list takes the fleet a minute or so: the command waits as long as the fleet works on it."""
    api = connect(fleet, token, ca_file)
    report = api.call_waiting(
        "POST",
        "/sites/import",
        doing=f"waiting for the fleet to {'check' if dry_run else 'import'} {sheet.name}",
        content=sheet.read_bytes(),
        headers={"Content-Type": "text/csv"},
        params={"dry_run": str(dry_run).lower()},
    )
    if as_json:
        print_json(report)
        return
    typer.echo(f"{report['rows']} rows{' (dry run: nothing changed)' if report['dry_run'] else ''}")
    done = ("would create", "would update") if report["dry_run"] else ("created", "updated")
    tallies: list[dict[str, Any]] = []
    for level in ("counties", "towns", "villages", "grids"):
        tally = report[level]
        tallies.append({"level": level, done[0]: tally["created"], done[1]: tally["updated"], **tally})
    table(tallies, ("level", *done, "unchanged"))


@gateways.command("list")
def list_gateways(
    village: Annotated[str | None, typer.Option(help="Only this village's gateways.")] = None,
    fleet: FleetUrl = DEFAULT_FLEET_URL,
    token: Token = "",
    ca_file: CaFile = None,
    tz: TimeZone = None,
    as_json: AsJson = False,
) -> None:
    """Gateways with their presence and when each was last heard from."""
    api = connect(fleet, token, ca_file)
    rows = api.call("GET", "/gateways", params={"village_id": village} if village else None)
    if as_json:
        print_json(rows)
        return
    shown = [row | {"last_seen": when(row["last_seen_ms"], tz)} for row in rows]
    table(
        shown,
        ("id", "village_id", "name", "online", "presence_reason", "agent_version", "last_seen"),
        empty="no gateways",
    )


def _health_text(health: dict[str, Any]) -> str:
    parts = [
        f"cpu {health['cpu_percent']:g}%",
        f"memory {health['memory_percent']:g}%",
        f"disk {health['disk_percent']:g}%",
    ]
    if health.get("temperature_c") is not None:
        parts.append(f"{health['temperature_c']:g} °C")
    if health.get("uplink_rtt_ms") is not None:
        parts.append(f"uplink {health['uplink_rtt_ms']:g} ms")
    parts.append(f"buffer {health['buffer_depth']} ({health['buffer_bytes']} bytes)")
    parts.append(f"up {format_duration_ms(round(health['uptime_s']) * 1000)}")
    return ", ".join(parts)


@gateways.command("show")
def show_gateway(
    gateway_id: GatewayId,
    fleet: FleetUrl = DEFAULT_FLEET_URL,
    token: Token = "",
    ca_file: CaFile = None,
    tz: TimeZone = None,
    as_json: AsJson = False,
) -> None:
    """One gateway: where it stands, whether it is online and why, and its last health report."""
    api = connect(fleet, token, ca_file)
    row = api.call("GET", f"/gateways/{gateway_id}")
    if as_json:
        print_json(row)
        return
    now_ms = utc_now_ms()
    health = row["health"]
    seen = row["last_seen_ms"]
    lines: dict[str, str | None] = {
        "gateway": row["id"] + (f" ({row['name']})" if row["name"] else ""),
        "village": row["village_id"],
        "presence": ("online" if row["online"] else "offline")
        + f" ({row['presence_reason']}) since {when(row['presence_changed_ms'], tz) or '-'}",
        "last seen": "never" if seen is None else f"{when(seen, tz)} ({age_text(now_ms - seen)} ago)",
        "agent": row["agent_version"],
        "heartbeat": None if row["heartbeat_interval_s"] is None else f"every {row['heartbeat_interval_s']:g} s",
        "health": None if health is None else f"{_health_text(health)} (at {when(row['health_ms'], tz)})",
        "dropped": None
        if not health or not health.get("dropped")
        else ", ".join(f"{k} {v}" for k, v in sorted(health["dropped"].items())),
        "adapters": None
        if not health or not health.get("adapters")
        else ", ".join(f"{k} {v}" for k, v in sorted(health["adapters"].items())),
        "update": None if not health or not health.get("update") else _update_text(health["update"], tz),
    }
    width = max(len(label) for label in lines)
    for label, value in lines.items():
        if value is not None:
            typer.echo(f"{label.ljust(width)}  {value}")


def _update_text(update: dict[str, Any], tz: tzinfo | None) -> str:
    """The gateway's latest update in a line: ``agent 1.0.1 rolled_back at … (job j1): why``."""
    job = f" (job {update['job_id']})" if update.get("job_id") else ""
    reason = f": {update['reason']}" if update.get("reason") else ""
    return f"{update['kind']} {update['version']} {update['state']} at {when(update['changed_ms'], tz)}{job}{reason}"


@gateways.command("add")
def add_gateway(
    gateway_id: GatewayId,
    village: Annotated[str, typer.Option(help="The village it stands in.")],
    name: Annotated[str | None, typer.Option(help="Where it is, as a technician would say it.")] = None,
    fleet: FleetUrl = DEFAULT_FLEET_URL,
    token: Token = "",
    ca_file: CaFile = None,
) -> None:
    """Record a gateway in a village before it is installed."""
    api = connect(fleet, token, ca_file)
    api.call("POST", "/gateways", json={"id": gateway_id, "village_id": village, "name": name})
    typer.echo(f"added gateway {gateway_id} in {village}")


_MINUTE_MS = 60_000


@tokens.command("create")
def create_token(
    name: Annotated[str, typer.Argument(metavar="NAME", help="Who uses it, as the audit log will show it.")],
    role: Annotated[Role, typer.Option(help="What it may do.")],
    ttl: Annotated[
        int | None,
        typer.Option(
            parser=duration(at_least_ms=_MINUTE_MS, whole_seconds=True),
            metavar="DURATION",
            help=f"Expire after this long (at least 1m; default: never). {DURATION_HELP}",
        ),
    ] = None,
    ttl_s: Annotated[int | None, typer.Option("--ttl-s", hidden=True, min=1, help="The old --ttl, in seconds.")] = None,
    scope: Annotated[
        str | None,
        typer.Option(
            help="Reach only this place and what stands in it: county:ID, town:ID or village:ID (unset: the whole "
            "fleet).",
            metavar="KIND:ID",
        ),
    ] = None,
    fleet: FleetUrl = DEFAULT_FLEET_URL,
    token: Token = "",
    ca_file: CaFile = None,
) -> None:
    """Create a token; its secret is printed once, on stdout alone (pipe it where it belongs)."""
    if ttl is not None and ttl_s is not None:
        raise typer.BadParameter("give --ttl only", param_hint="--ttl-s")
    api = connect(fleet, token, ca_file)
    body: dict[str, object] = {"name": name, "role": role.value, "ttl_s": ttl // 1000 if ttl is not None else ttl_s}
    if scope is not None:
        kind, _, place = scope.partition(":")
        if kind not in ("county", "town", "village") or not place:
            raise typer.BadParameter(f"{scope!r}: give county:ID, town:ID or village:ID", param_hint="--scope")
        body["scope"] = {"kind": kind, "id": place}
    issued = api.call("POST", "/tokens", json=body)
    where = f" for {scope}" if scope else ""
    typer.echo(f"created {issued['role']} token {issued['name']}{where}; it is shown only now:", err=True)
    typer.echo(issued["secret"])


@tokens.command("list")
def list_tokens(
    fleet: FleetUrl = DEFAULT_FLEET_URL,
    token: Token = "",
    ca_file: CaFile = None,
    tz: TimeZone = None,
    as_json: AsJson = False,
) -> None:
    """Every token with its role, reach and state (never its secret)."""
    api = connect(fleet, token, ca_file)
    rows = api.call("GET", "/tokens")
    if as_json:
        print_json(rows)
        return
    shown = [
        row
        | {
            "scope": f"{row['scope']['kind']}:{row['scope']['id']}" if row.get("scope") else "fleet",
            "created": when(row["created_ms"], tz),
            "expires": when(row["expires_ms"], tz),
            "revoked": when(row["revoked_ms"], tz),
        }
        for row in rows
    ]
    table(
        shown,
        ("name", "role", "scope", "created", "expires", "revoked"),
        empty="no tokens (the bootstrap admin token is never listed)",
    )


@tokens.command("revoke")
def revoke_token(
    name: Annotated[str, typer.Argument(metavar="NAME", help="The token's name (as `tokens list` shows it).")],
    fleet: FleetUrl = DEFAULT_FLEET_URL,
    token: Token = "",
    ca_file: CaFile = None,
) -> None:
    """Revoke a token at once; it stays listed, as revoked."""
    api = connect(fleet, token, ca_file)
    api.call("DELETE", f"/tokens/{name}")
    typer.echo(f"revoked token {name}")
