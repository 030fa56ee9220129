"""``outpost fleet command send|list|show``: commands to gateways from a terminal (technicians).

``send`` waits for the gateway's answer by default, saying so on stderr meanwhile (a gateway that is offline
gets it when it is back, within ``--timeout``), and exits 0 only when the command succeeded (with
``--no-wait``: when the broker took it), 1 otherwise, so scripts can rely on it. ``--save-attachment``
writes a fetched snapshot to a file; fetching and viewing one is audited under your token's name.
"""

import json
from datetime import tzinfo
from pathlib import Path
from typing import Annotated, Any

import typer

from fleet.cli.admin import GatewayId
from fleet.cli.client import DEFAULT_FLEET_URL, CaFile, FleetApi, FleetUrl, Token, connect
from fleet.cli.formats import DURATION_HELP, AsJson, TimeZone, duration, print_json, short, table, when
from fleet.db.schema import CommandState
from protocol.durations import format_duration_ms

command = typer.Typer(help="Commands to gateways: diagnostics, snapshots, restarts.", no_args_is_help=True)

_HTTP_MARGIN_S = 30.0
_DEFAULT_TIMEOUT_MS = 30_000


def _args(pairs: list[str]) -> dict[str, Any]:
    """``key=value`` gives a string, ``key:=value`` a JSON value (a number, true/false): as httpie reads them."""
    args: dict[str, Any] = {}
    for pair in pairs:
        key, typed, value = pair.partition(":=")
        if not typed:
            key, equals, value = pair.partition("=")
            if not equals:
                typer.echo(
                    f"--arg {pair!r}: write key=value (a string) or key:=value (a number, true, false)", err=True
                )
                raise typer.Exit(2)
            args[key] = value
            continue
        try:
            args[key] = json.loads(value)
        except ValueError as exc:
            typer.echo(f"--arg {pair!r}: {value!r} is not a JSON value", err=True)
            raise typer.Exit(2) from exc
    return args


def _show(row: dict[str, Any], tz: tzinfo | None) -> None:
    for field in ("request_id", "gateway_id", "name", "state", "requested_by", "reason", "error"):
        if row.get(field) is not None:
            typer.echo(f"{field}: {row[field]}")
    for field in ("created_ms", "sent_ms", "deadline_ms", "responded_ms"):
        if row.get(field) is not None:
            typer.echo(f"{field.removesuffix('_ms')}: {when(row[field], tz)}")
    if row.get("answered_late"):
        typer.echo("answered_late: true (the answer came after the deadline)")
    elif row.get("state") == "timed_out":
        typer.echo(f"no answer by the deadline: is {row['gateway_id']} online? (outpost fleet gateways show)")
    for key, value in (row.get("result") or {}).items():
        typer.echo(f"  {key}: {value}")
    attachment = row.get("attachment")
    if attachment:
        typer.echo(f"attachment: {attachment['bytes']} bytes, {attachment['content_type']}")


def _save_attachment(api: FleetApi, row: dict[str, Any], target: Path) -> None:
    """Download the attachment (an audited view) to ``target``."""
    if not row.get("attachment"):
        typer.echo(f"command {row['request_id']} has no attachment ({row['state']})", err=True)
        raise typer.Exit(1)
    content = api.call("GET", row["attachment"]["url"])
    if not isinstance(content, bytes):
        typer.echo(f"the fleet answered no attachment for {row['request_id']}", err=True)
        raise typer.Exit(1)
    target.write_bytes(content)
    typer.echo(f"saved {len(content)} bytes to {target}", err=True)


@command.command("send")
def send(
    gateway: GatewayId,
    name: Annotated[
        str,
        typer.Argument(
            metavar="COMMAND",
            help="restart_agent, diagnostics, list_snapshots, fetch_snapshot, or update_agent (--arg version=1.2.0; "
            "its progress: outpost fleet gateways show).",
        ),
    ],
    arg: Annotated[
        list[str] | None, typer.Option("--arg", help="key=value (string) or key:=value (number, true/false); repeat.")
    ] = None,
    reason: Annotated[str | None, typer.Option(help="Why (required by fetch_snapshot; audited).")] = None,
    timeout: Annotated[
        int,
        typer.Option(
            parser=duration(at_least_ms=1000, at_most_ms=3_600_000),
            metavar="DURATION",
            show_default=format_duration_ms(_DEFAULT_TIMEOUT_MS),
            help=f"How long the gateway has to answer, 1s to 1h. {DURATION_HELP}",
        ),
    ] = _DEFAULT_TIMEOUT_MS,
    wait: Annotated[bool, typer.Option("--wait/--no-wait", help="Wait for the answer.")] = True,
    save_attachment: Annotated[
        Path | None, typer.Option(dir_okay=False, help="Write a fetched snapshot here (needs --wait).")
    ] = None,
    fleet: FleetUrl = DEFAULT_FLEET_URL,
    token: Token = "",
    ca_file: CaFile = None,
    tz: TimeZone = None,
    as_json: AsJson = False,
) -> None:
    """Send a command to a gateway; with --wait (default) print its answer, showing on stderr that it waits."""
    if save_attachment is not None and not wait:
        typer.echo("--save-attachment needs --wait", err=True)
        raise typer.Exit(2)
    api = connect(fleet, token, ca_file)
    timeout_s = timeout / 1000
    body = {"name": name, "args": _args(arg or []), "reason": reason, "timeout_s": timeout_s, "wait": wait}
    doing = f"waiting for {gateway} to answer {name} (it has {format_duration_ms(timeout)})" if wait else None
    path = f"/gateways/{gateway}/commands"
    row = api.call("POST", path, json=body, timeout=timeout_s + _HTTP_MARGIN_S, doing=doing)
    if as_json:
        print_json(row)
    else:
        _show(row, tz)
    if save_attachment is not None and row["state"] == "succeeded":
        _save_attachment(api, row, save_attachment)
    if (row["state"] != "succeeded") if wait else (row["state"] == "undeliverable"):
        raise typer.Exit(1)


@command.command("list")
def list_commands(
    gateway: GatewayId,
    state: Annotated[CommandState | None, typer.Option(help="Only commands in this state.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=500, help="At most this many, newest first.")] = 50,
    fleet: FleetUrl = DEFAULT_FLEET_URL,
    token: Token = "",
    ca_file: CaFile = None,
    tz: TimeZone = None,
    as_json: AsJson = False,
) -> None:
    """A gateway's recent commands, newest first."""
    api = connect(fleet, token, ca_file)
    params: dict[str, Any] = {"limit": limit} | ({"state": state.value} if state else {})
    rows = api.call("GET", f"/gateways/{gateway}/commands", params=params)
    if as_json:
        print_json(rows)
        return
    shown = [row | {"created": when(row["created_ms"], tz), "error": short(row["error"], 60)} for row in rows]
    table(shown, ("request_id", "name", "state", "created", "requested_by", "error"), empty="no commands match")


@command.command("show")
def show(
    request_id: Annotated[
        str, typer.Argument(metavar="REQUEST_ID", help="The command's request id (as `list` and `send` show it).")
    ],
    save_attachment: Annotated[Path | None, typer.Option(dir_okay=False, help="Write its attachment here.")] = None,
    fleet: FleetUrl = DEFAULT_FLEET_URL,
    token: Token = "",
    ca_file: CaFile = None,
    tz: TimeZone = None,
    as_json: AsJson = False,
) -> None:
    """One command: its state, the gateway's answer, its attachment."""
    api = connect(fleet, token, ca_file)
    row = api.call("GET", f"/commands/{request_id}")
    if as_json:
        print_json(row)
    else:
        _show(row, tz)
    if save_attachment is not None:
        _save_attachment(api, row, save_attachment)
