"""``outpost fleet alerts rules …``: the alert rules of the county, its towns and villages, from a terminal.

As ``outpost fleet config``: ``get`` prints a layer's JSON alone on stdout, so ``get > file``, an edit, and
``set … file`` round-trip it; ``show`` prints what a village runs by and which layers it comes from. Writing
needs an admin token.
"""

import json
from typing import Annotated

import typer

from fleet.cli.client import DEFAULT_FLEET_URL, CaFile, FleetUrl, Token, connect
from fleet.cli.formats import AsJson, TimeZone, print_json, print_layer, read_layer, when
from fleet.layers.scope import Scope

rules = typer.Typer(
    help=(
        "Alert rules: which detections become alerts, at what severity, with what hold-off, quiet hours and "
        "rate limits. Set per county and overridden per town and village (village wins); keys a layer leaves "
        "out come from the layers above it, or the defaults."
    ),
    no_args_is_help=True,
)

ScopeArg = Annotated[Scope, typer.Argument(metavar="SCOPE", help="Where the layer applies: county, town or village.")]
ScopeId = Annotated[str, typer.Argument(metavar="ID", help="The county's, town's or village's id.")]

_EXAMPLE = """{
  "kinds": {"camera_offline": {"severity": "minor", "hold_off_s": 300},
            "gateway_offline": {"rate_limit": {"max_alerts": 3, "per_s": 3600}}},
  "watch": {"offline_after_missed_heartbeats": 3},
  "quiet_hours": {"start": "22:00", "end": "06:30", "timezone": "Asia/Shanghai"}
}"""


@rules.command("show")
def show(
    village: Annotated[str, typer.Argument(metavar="VILLAGE", help="The village's id.")],
    fleet: FleetUrl = DEFAULT_FLEET_URL,
    token: Token = "",
    ca_file: CaFile = None,
    tz: TimeZone = None,
    as_json: AsJson = False,
) -> None:
    """The rules a village runs by, and the layers (county, town, village) they come from."""
    api = connect(fleet, token, ca_file)
    view = api.call("GET", f"/villages/{village}/alert-rules")
    if as_json:
        print_json(view)
        return
    typer.echo(f"village {view['village_id']} (town {view['town_id'] or '-'}, county {view['county_id'] or '-'})")
    for layer in view["layers"]:
        typer.echo(
            f"layer {layer['scope']} {layer['scope_id']} (by {layer['updated_by']}, {when(layer['updated_ms'], tz)}): "
            f"{json.dumps(layer['overrides'], sort_keys=True)}"
        )
    if not view["layers"]:
        typer.echo("no layers: the defaults")
    for ignored in view["ignored"]:
        typer.echo(f"IGNORED layer {ignored['scope']} {ignored['scope_id']}: {ignored['reason']}")
    typer.echo(json.dumps(view["rules"], indent=2, sort_keys=True))


@rules.command("get")
def get(
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
    print_layer(api.call("GET", f"/alert-rules/{scope.value}/{scope_id}"), tz, as_json=as_json)


@rules.command("set", epilog=f"A layer, for example:\n\n{_EXAMPLE}")
def set_layer(
    scope: ScopeArg,
    scope_id: ScopeId,
    file: Annotated[
        str, typer.Argument(metavar="FILE", help="The layer: a JSON file, a .toml file, or - to read JSON from stdin.")
    ],
    fleet: FleetUrl = DEFAULT_FLEET_URL,
    token: Token = "",
    ca_file: CaFile = None,
) -> None:
    """Set a layer, replacing it whole; the villages it reaches run by the new rules at once.

    The fleet refuses a layer with unknown keys, kinds or time zones, or values out of range, saying where."""
    api = connect(fleet, token, ca_file)
    layer = api.call("PUT", f"/alert-rules/{scope.value}/{scope_id}", json=read_layer(file, "alert rule"))
    typer.echo(f"set the alert rules of {scope.value} {scope_id} ({len(layer['overrides'])} top-level keys)")


@rules.command("clear", hidden=True, help="The old name of `alerts rules unset`.")
@rules.command("unset")
def unset(
    scope: ScopeArg,
    scope_id: ScopeId,
    fleet: FleetUrl = DEFAULT_FLEET_URL,
    token: Token = "",
    ca_file: CaFile = None,
) -> None:
    """Remove a layer; the villages it reached fall back on their other layers, or the defaults."""
    api = connect(fleet, token, ca_file)
    api.call("DELETE", f"/alert-rules/{scope.value}/{scope_id}")
    typer.echo(f"removed the alert rules layer {scope.value} {scope_id}")
