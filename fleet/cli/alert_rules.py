"""``outpost fleet alerts rules …``: the alert rules of the county, its towns and villages, from a terminal.

``get`` prints a layer's JSON alone on stdout, so ``get > file``, an edit, and ``set … file`` round-trip it;
``show`` prints what a village runs by and which layers it comes from. Writing needs an admin token.
"""

import json
import sys
import tomllib
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from fleet.cli.client import DEFAULT_FLEET_URL, FleetUrl, Token, call
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
AsJson = Annotated[bool, typer.Option("--json", help="Print the fleet's JSON instead (for scripts).")]

_EXAMPLE = """{
  "kinds": {"camera_offline": {"severity": "minor", "hold_off_s": 300},
            "gateway_offline": {"rate_limit": {"max_alerts": 3, "per_s": 3600}}},
  "watch": {"offline_after_missed_heartbeats": 3},
  "quiet_hours": {"start": "22:00", "end": "06:30", "timezone": "Asia/Shanghai"}
}"""


def _read_layer(source: str) -> dict[str, Any]:
    """A layer from a file (TOML if it ends in .toml, else JSON) or from stdin (``-``, JSON)."""
    try:
        text = sys.stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
        document = tomllib.loads(text) if source.endswith(".toml") else json.loads(text)
    except (OSError, UnicodeDecodeError, ValueError) as exc:  # TOMLDecodeError and JSONDecodeError are ValueErrors
        typer.echo(f"cannot read {'stdin' if source == '-' else source}: {exc}", err=True)
        raise typer.Exit(2) from exc
    if not isinstance(document, dict):
        typer.echo("the rules must be a JSON object (or a TOML table) of rule keys", err=True)
        raise typer.Exit(2)
    return document


def _when(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000).astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")


@rules.command("show")
def show(
    village: Annotated[str, typer.Argument(metavar="VILLAGE", help="The village's id.")],
    fleet: FleetUrl = DEFAULT_FLEET_URL,
    token: Token = "",
    as_json: AsJson = False,
) -> None:
    """The rules a village runs by, and the layers (county, town, village) they come from."""
    view = call(fleet, token, "GET", f"/villages/{village}/alert-rules")
    if as_json:
        typer.echo(json.dumps(view, indent=2))
        return
    typer.echo(f"village {view['village_id']} (town {view['town_id'] or '-'}, county {view['county_id'] or '-'})")
    for layer in view["layers"]:
        typer.echo(
            f"layer {layer['scope']} {layer['scope_id']} (by {layer['updated_by']}, {_when(layer['updated_ms'])}): "
            f"{json.dumps(layer['overrides'], sort_keys=True)}"
        )
    if not view["layers"]:
        typer.echo("no layers: the defaults")
    for ignored in view["ignored"]:
        typer.echo(f"IGNORED layer {ignored['scope']} {ignored['scope_id']}: {ignored['reason']}")
    typer.echo(json.dumps(view["rules"], indent=2, sort_keys=True))


@rules.command("get")
def get(scope: ScopeArg, scope_id: ScopeId, fleet: FleetUrl = DEFAULT_FLEET_URL, token: Token = "") -> None:
    """A layer as stored (only the keys it sets), as JSON on stdout; who set it and when on stderr."""
    layer = call(fleet, token, "GET", f"/alert-rules/{scope.value}/{scope_id}")
    typer.echo(f"{scope.value} {scope_id}: set by {layer['updated_by']} at {_when(layer['updated_ms'])}", err=True)
    typer.echo(json.dumps(layer["overrides"], indent=2, sort_keys=True))


@rules.command("set", epilog=f"A layer, for example:\n\n{_EXAMPLE}")
def set_layer(
    scope: ScopeArg,
    scope_id: ScopeId,
    file: Annotated[
        str, typer.Argument(metavar="FILE", help="The layer: a JSON file, a .toml file, or - to read JSON from stdin.")
    ],
    fleet: FleetUrl = DEFAULT_FLEET_URL,
    token: Token = "",
) -> None:
    """Set a layer, replacing it whole; the villages it reaches run by the new rules at once.

    The fleet refuses a layer with unknown keys, kinds or time zones, or values out of range, saying where."""
    layer = call(fleet, token, "PUT", f"/alert-rules/{scope.value}/{scope_id}", json=_read_layer(file))
    typer.echo(f"set the alert rules of {scope.value} {scope_id} ({len(layer['overrides'])} top-level keys)")


@rules.command("clear")
def clear(scope: ScopeArg, scope_id: ScopeId, fleet: FleetUrl = DEFAULT_FLEET_URL, token: Token = "") -> None:
    """Remove a layer; the villages it reached fall back on their other layers, or the defaults."""
    call(fleet, token, "DELETE", f"/alert-rules/{scope.value}/{scope_id}")
    typer.echo(f"cleared the alert rules of {scope.value} {scope_id}")
