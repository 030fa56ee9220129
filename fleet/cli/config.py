"""``outpost fleet config``: set, read and unset config layers, and see what each gateway runs, from a terminal.

As ``outpost fleet alerts rules``: ``get`` prints a layer's JSON alone on stdout, so ``get > file``, an edit and
``set … file`` round-trip it; ``show`` prints what a gateway is given and which layers it comes from.
"""

import json
from typing import Annotated, Any

import typer

from fleet.cli.client import DEFAULT_FLEET_URL, CaFile, FleetUrl, Token, connect
from fleet.cli.formats import AsJson, TimeZone, print_json, print_layer, read_layer, table, when
from fleet.configs.state import SyncStatus
from fleet.layers.scope import Scope

config = typer.Typer(
    help="Gateway configs pushed by the fleet: layers county ← town ← village ← gateway, and each gateway's status.",
    no_args_is_help=True,
)

ScopeArg = Annotated[Scope, typer.Argument(metavar="SCOPE", help="Where the layer applies.")]
ScopeId = Annotated[str, typer.Argument(metavar="ID", help="The county, town, village or gateway id.")]


def _changed(change: dict[str, Any]) -> str:
    return f"{change['changed']} of {change['gateways']} gateways changed"


@config.command("show")
def show(
    gateway: Annotated[str | None, typer.Argument(metavar="GATEWAY", help="The gateway whose config to show.")] = None,
    gateway_option: Annotated[
        str | None, typer.Option("--gateway", hidden=True, help="The old way to give GATEWAY.", show_default=False)
    ] = None,
    fleet: FleetUrl = DEFAULT_FLEET_URL,
    token: Token = "",
    ca_file: CaFile = None,
    tz: TimeZone = None,
    as_json: AsJson = False,
) -> None:
    """The layers that reach a gateway, the config they make, and whether the gateway runs it."""
    if (gateway is None) == (gateway_option is None):
        raise typer.BadParameter("give the GATEWAY, once", param_hint="GATEWAY")
    api = connect(fleet, token, ca_file)
    view = api.call("GET", f"/gateways/{gateway or gateway_option}/config")
    if as_json:
        print_json(view)
        return
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
            f"layer {layer['scope']} {layer['scope_id']} (by {layer['updated_by']}, {when(layer['updated_ms'], tz)}): "
            f"{json.dumps(layer['overrides'], sort_keys=True)}"
        )
    if view["resolve_error"]:
        typer.echo(f"the layers do not make a valid config: {view['resolve_error']}")
    elif view["resolved"] is not None:
        typer.echo(json.dumps(view["resolved"], indent=2, sort_keys=True))


@config.command("status")
def status(
    village: Annotated[str | None, typer.Option(help="Only this village's gateways.")] = None,
    town: Annotated[str | None, typer.Option(help="Only this town's gateways.")] = None,
    county: Annotated[str | None, typer.Option(help="Only this county's gateways.")] = None,
    only: Annotated[SyncStatus | None, typer.Option("--status", help="Only gateways with this status.")] = None,
    fleet: FleetUrl = DEFAULT_FLEET_URL,
    token: Token = "",
    ca_file: CaFile = None,
    tz: TimeZone = None,
    as_json: AsJson = False,
) -> None:
    """Every gateway's config status: in_sync, pending, rejected (with the gateway's error), …"""
    api = connect(fleet, token, ca_file)
    filters = {"village": village, "town": town, "county": county, "status": only.value if only else None}
    report = api.call("GET", "/config/status", params={k: v for k, v in filters.items() if v})
    if as_json:
        print_json(report)
        return
    shown = [row | {"reported": when(row["reported_ms"], tz)} for row in report["gateways"]]
    table(
        shown,
        ("gateway_id", "village_id", "status", "desired_version", "reported_version", "reported", "error"),
        empty="no gateways match",
    )
    if shown:
        typer.echo(", ".join(f"{name} {count}" for name, count in report["counts"].items() if count))


@config.command("list")
def list_layers(
    scope: Annotated[Scope | None, typer.Option(help="Only the layers of this scope.")] = None,
    fleet: FleetUrl = DEFAULT_FLEET_URL,
    token: Token = "",
    ca_file: CaFile = None,
    tz: TimeZone = None,
    as_json: AsJson = False,
) -> None:
    """Every config layer (of your token's reach): where it applies, the keys it sets, who set it and when."""
    api = connect(fleet, token, ca_file)
    rows = api.call("GET", "/config/layers", params={"scope": scope.value} if scope else None)
    if as_json:
        print_json(rows)
        return
    shown = [
        row | {"keys": ", ".join(sorted(row["overrides"])), "updated": when(row["updated_ms"], tz)} for row in rows
    ]
    table(shown, ("scope", "scope_id", "keys", "updated_by", "updated"), empty="no config layers")


@config.command("get")
def get_layer(
    scope: ScopeArg,
    scope_id: ScopeId,
    fleet: FleetUrl = DEFAULT_FLEET_URL,
    token: Token = "",
    ca_file: CaFile = None,
    tz: TimeZone = None,
    as_json: AsJson = False,
) -> None:
    """A layer as stored (only the keys it sets) as JSON on stdout, who set it and when on stderr; with --json
    all the fleet answered."""
    api = connect(fleet, token, ca_file)
    print_layer(api.call("GET", f"/config/layers/{scope.value}/{scope_id}"), tz, as_json=as_json)


@config.command("set")
def set_layer(
    scope: ScopeArg,
    scope_id: ScopeId,
    file: Annotated[
        str | None,
        typer.Argument(
            metavar="FILE", help="The layer's keys: a JSON file, a .toml file, or - to read JSON from stdin."
        ),
    ] = None,
    file_option: Annotated[
        str | None, typer.Option("--file", hidden=True, help="The old way to give FILE.", show_default=False)
    ] = None,
    fleet: FleetUrl = DEFAULT_FLEET_URL,
    token: Token = "",
    ca_file: CaFile = None,
) -> None:
    """Set a layer (replacing it whole); every gateway it reaches gets a new config version if its config changes.

    The fleet refuses a layer with unknown keys or values out of range, saying where."""
    if (file is None) == (file_option is None):
        raise typer.BadParameter("give the layer's FILE (or - for stdin), once", param_hint="FILE")
    source = file if file is not None else str(file_option)
    api = connect(fleet, token, ca_file)
    change = api.call("PUT", f"/config/layers/{scope.value}/{scope_id}", json=read_layer(source, "config"))
    typer.echo(f"set {scope.value} layer {scope_id}: {_changed(change)}")


@config.command("clear", hidden=True, help="Another name of `config unset`.")
@config.command("unset")
def unset_layer(
    scope: ScopeArg,
    scope_id: ScopeId,
    fleet: FleetUrl = DEFAULT_FLEET_URL,
    token: Token = "",
    ca_file: CaFile = None,
) -> None:
    """Remove a layer; the gateways it reached fall back on their other layers."""
    api = connect(fleet, token, ca_file)
    change = api.call("DELETE", f"/config/layers/{scope.value}/{scope_id}")
    typer.echo(f"removed {scope.value} layer {scope_id}: {_changed(change)}")
