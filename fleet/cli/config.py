"""``outpost fleet config``: set and remove config layers, and see what each gateway runs, from a terminal."""

import json
import tomllib
from pathlib import Path
from typing import Annotated, Any

import typer

from fleet.cli.client import DEFAULT_FLEET_URL, FleetUrl, Token, call, table
from fleet.configs.state import SyncStatus
from fleet.layers.scope import Scope

config = typer.Typer(
    help="Gateway configs pushed by the fleet: layers county ← town ← village ← gateway, and each gateway's status.",
    no_args_is_help=True,
)


def _overrides(path: Path) -> dict[str, Any]:
    """A layer from a TOML or JSON file (by its suffix; JSON unless it ends in .toml)."""
    try:
        text = path.read_text(encoding="utf-8")
        document = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    except (OSError, UnicodeDecodeError, ValueError) as exc:  # TOMLDecodeError and JSONDecodeError are ValueErrors
        typer.echo(f"cannot read {path}: {exc}", err=True)
        raise typer.Exit(2) from exc
    if not isinstance(document, dict):
        typer.echo(f"{path} must hold a table (TOML) or an object (JSON) of config keys", err=True)
        raise typer.Exit(2)
    return document


@config.command("set")
def set_layer(
    scope: Annotated[Scope, typer.Argument(help="Where the layer applies.")],
    scope_id: Annotated[str, typer.Argument(metavar="ID", help="The county, town, village or gateway id.")],
    file: Annotated[Path, typer.Option("--file", exists=True, dir_okay=False, help="The overrides, TOML or JSON.")],
    fleet: FleetUrl = DEFAULT_FLEET_URL,
    token: Token = "",
) -> None:
    """Set a layer (replacing it whole); every gateway it reaches gets a new config version if its config changes."""
    change = call(fleet, token, "PUT", f"/config/layers/{scope.value}/{scope_id}", json=_overrides(file))
    typer.echo(f"set {scope.value} layer {scope_id}: {change['changed']} of {change['gateways']} gateways changed")


@config.command("unset")
def unset_layer(
    scope: Annotated[Scope, typer.Argument(help="Where the layer applies.")],
    scope_id: Annotated[str, typer.Argument(metavar="ID")],
    fleet: FleetUrl = DEFAULT_FLEET_URL,
    token: Token = "",
) -> None:
    """Remove a layer; the gateways it reached fall back on their other layers."""
    change = call(fleet, token, "DELETE", f"/config/layers/{scope.value}/{scope_id}")
    typer.echo(f"removed {scope.value} layer {scope_id}: {change['changed']} of {change['gateways']} gateways changed")


@config.command("show")
def show(
    gateway: Annotated[str, typer.Option("--gateway", help="The gateway whose config to show.")],
    fleet: FleetUrl = DEFAULT_FLEET_URL,
    token: Token = "",
) -> None:
    """The layers that reach a gateway, the config they make, and whether the gateway runs it."""
    view = call(fleet, token, "GET", f"/gateways/{gateway}/config")
    sync = view["sync"]
    typer.echo(
        f"gateway {sync['gateway_id']} (village {sync['village_id']}, town {view['town_id'] or '-'}, "
        f"county {view['county_id'] or '-'}): {sync['status']}, desired v{sync['desired_version'] or '-'}, "
        f"reported v{sync['reported_version'] if sync['reported_version'] is not None else '-'}"
    )
    if sync["error"]:
        typer.echo(f"error: {sync['error']}")
    for layer in view["layers"]:
        typer.echo(
            f"layer {layer['scope']} {layer['scope_id']} (by {layer['updated_by']}): "
            f"{json.dumps(layer['overrides'], sort_keys=True)}"
        )
    if view["resolve_error"]:
        typer.echo(f"the layers do not make a valid config: {view['resolve_error']}")
    elif view["resolved"] is not None:
        typer.echo(json.dumps(view["resolved"], indent=2, sort_keys=True))


@config.command("status")
def status(
    fleet: FleetUrl = DEFAULT_FLEET_URL,
    token: Token = "",
    village: Annotated[str | None, typer.Option(help="Only this village's gateways.")] = None,
    town: Annotated[str | None, typer.Option(help="Only this town's gateways.")] = None,
    county: Annotated[str | None, typer.Option(help="Only this county's gateways.")] = None,
    only: Annotated[SyncStatus | None, typer.Option("--status", help="Only gateways with this status.")] = None,
) -> None:
    """Every gateway's config status: in_sync, pending, rejected (with the gateway's error), …"""
    filters = {"village": village, "town": town, "county": county, "status": only.value if only else None}
    report = call(fleet, token, "GET", "/config/status", params={k: v for k, v in filters.items() if v})
    table(report["gateways"], ("gateway_id", "village_id", "status", "desired_version", "reported_version", "error"))
    typer.echo(", ".join(f"{name} {count}" for name, count in report["counts"].items() if count) or "no gateways")
