"""``outpost fleet devices list|set|remove``: the devices recorded on each gateway (technicians).

The record says what a device is (its kind), what people call it and which grid of the village it watches;
alerts carry it. What a gateway runs (drivers, pins, streams) is its config: ``outpost fleet config``.
"""

from typing import Annotated

import typer

from fleet.cli.admin import GatewayId
from fleet.cli.client import DEFAULT_FLEET_URL, CaFile, FleetUrl, Token, connect
from fleet.cli.formats import AsJson, TimeZone, print_json, table, when
from protocol.gateway_config import DeviceKind

devices = typer.Typer(
    help="Devices recorded on gateways: kind, name and grid (what a gateway runs is its config).",
    no_args_is_help=True,
)

DeviceId = Annotated[str, typer.Argument(metavar="DEVICE", help="The device's id on its gateway.")]


@devices.command("list")
def list_devices(
    gateway_id: GatewayId,
    fleet: FleetUrl = DEFAULT_FLEET_URL,
    token: Token = "",
    ca_file: CaFile = None,
    tz: TimeZone = None,
    as_json: AsJson = False,
) -> None:
    """The devices recorded on a gateway."""
    api = connect(fleet, token, ca_file)
    rows = api.call("GET", f"/gateways/{gateway_id}/devices")
    if as_json:
        print_json(rows)
        return
    shown = [row | {"created": when(row["created_ms"], tz)} for row in rows]
    table(shown, ("id", "kind", "name", "grid_id", "created"), empty=f"no devices recorded on {gateway_id}")


@devices.command("set")
def set_device(
    gateway_id: GatewayId,
    device_id: DeviceId,
    kind: Annotated[DeviceKind, typer.Option(help="What it is.")],
    name: Annotated[str | None, typer.Option(help="What people call it, e.g. 'panic button at the school'.")] = None,
    grid: Annotated[str | None, typer.Option(help="The grid of the gateway's village it watches.")] = None,
    fleet: FleetUrl = DEFAULT_FLEET_URL,
    token: Token = "",
    ca_file: CaFile = None,
) -> None:
    """Record a device on a gateway, or replace its record (a name or grid left out is cleared)."""
    api = connect(fleet, token, ca_file)
    body = {"kind": kind.value, "name": name, "grid_id": grid}
    row = api.call("PUT", f"/gateways/{gateway_id}/devices/{device_id}", json=body)
    where = f" in grid {row['grid_id']}" if row["grid_id"] else ""
    typer.echo(f"set device {row['id']} on {row['gateway_id']}: {row['kind']}{where}")


@devices.command("remove")
def remove_device(
    gateway_id: GatewayId,
    device_id: DeviceId,
    fleet: FleetUrl = DEFAULT_FLEET_URL,
    token: Token = "",
    ca_file: CaFile = None,
) -> None:
    """Remove a device's record from a gateway."""
    api = connect(fleet, token, ca_file)
    api.call("DELETE", f"/gateways/{gateway_id}/devices/{device_id}")
    typer.echo(f"removed device {device_id} from {gateway_id}")
