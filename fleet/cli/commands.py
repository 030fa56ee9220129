"""``outpost fleet command send|list|show``: commands to gateways from a terminal (technicians).

``send`` waits for the gateway's answer by default and exits 0 only when the command succeeded (with
``--no-wait``: when the broker took it), 1 otherwise, so scripts can rely on it. ``--save-attachment``
writes a fetched snapshot to a file; fetching and viewing one is audited under your token's name.
"""

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from fleet.cli.client import DEFAULT_FLEET_URL, FleetUrl, Token, call, table

command = typer.Typer(help="Commands to gateways: diagnostics, snapshots, restarts.", no_args_is_help=True)

_HTTP_MARGIN_S = 30.0


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


def _show(row: dict[str, Any]) -> None:
    for field in ("request_id", "gateway_id", "name", "state", "requested_by", "reason", "error"):
        if row.get(field) is not None:
            typer.echo(f"{field}: {row[field]}")
    if row.get("answered_late"):
        typer.echo("answered_late: true (the answer came after the deadline)")
    for key, value in (row.get("result") or {}).items():
        typer.echo(f"  {key}: {value}")
    attachment = row.get("attachment")
    if attachment:
        typer.echo(f"attachment: {attachment['bytes']} bytes, {attachment['content_type']}")


def _save_attachment(fleet: str, token: str, row: dict[str, Any], target: Path) -> None:
    """Download the attachment (an audited view) to ``target``."""
    if not row.get("attachment"):
        typer.echo(f"command {row['request_id']} has no attachment ({row['state']})", err=True)
        raise typer.Exit(1)
    content = call(fleet, token, "GET", row["attachment"]["url"])
    if not isinstance(content, bytes):
        typer.echo(f"the fleet answered no attachment for {row['request_id']}", err=True)
        raise typer.Exit(1)
    target.write_bytes(content)
    typer.echo(f"saved {len(content)} bytes to {target}")


@command.command("send")
def send(
    gateway: Annotated[str, typer.Argument(help="The gateway's id.")],
    name: Annotated[str, typer.Argument(help="restart_agent, diagnostics, list_snapshots or fetch_snapshot.")],
    fleet: FleetUrl = DEFAULT_FLEET_URL,
    token: Token = "",
    arg: Annotated[
        list[str] | None, typer.Option("--arg", help="key=value (string) or key:=value (number, true/false); repeat.")
    ] = None,
    reason: Annotated[str | None, typer.Option(help="Why (required by fetch_snapshot; audited).")] = None,
    timeout: Annotated[float, typer.Option(min=1, max=3600, help="Seconds the gateway has to answer.")] = 30.0,
    wait: Annotated[bool, typer.Option("--wait/--no-wait", help="Wait for the answer.")] = True,
    save_attachment: Annotated[
        Path | None, typer.Option(dir_okay=False, help="Write a fetched snapshot here (needs --wait).")
    ] = None,
) -> None:
    """Send a command to a gateway; with --wait (default) print its answer."""
    if save_attachment is not None and not wait:
        typer.echo("--save-attachment needs --wait", err=True)
        raise typer.Exit(2)
    body = {"name": name, "args": _args(arg or []), "reason": reason, "timeout_s": timeout, "wait": wait}
    row = call(fleet, token, "POST", f"/gateways/{gateway}/commands", json=body, timeout=timeout + _HTTP_MARGIN_S)
    _show(row)
    if save_attachment is not None and row["state"] == "succeeded":
        _save_attachment(fleet, token, row, save_attachment)
    if (row["state"] != "succeeded") if wait else (row["state"] == "undeliverable"):
        raise typer.Exit(1)


@command.command("list")
def list_commands(
    gateway: Annotated[str, typer.Argument(help="The gateway's id.")],
    fleet: FleetUrl = DEFAULT_FLEET_URL,
    token: Token = "",
    state: Annotated[str | None, typer.Option(help="Only commands in this state (e.g. timed_out).")] = None,
    limit: Annotated[int, typer.Option(min=1, max=500)] = 50,
) -> None:
    """A gateway's recent commands, newest first."""
    params: dict[str, Any] = {"limit": limit} | ({"state": state} if state else {})
    rows = call(fleet, token, "GET", f"/gateways/{gateway}/commands", params=params)
    table(rows, ("request_id", "name", "state", "created_ms", "requested_by", "error"))


@command.command("show")
def show(
    request_id: Annotated[str, typer.Argument(help="The command's request id.")],
    fleet: FleetUrl = DEFAULT_FLEET_URL,
    token: Token = "",
    save_attachment: Annotated[Path | None, typer.Option(dir_okay=False, help="Write its attachment here.")] = None,
) -> None:
    """One command: its state, the gateway's answer, its attachment."""
    row = call(fleet, token, "GET", f"/commands/{request_id}")
    _show(row)
    if save_attachment is not None:
        _save_attachment(fleet, token, row, save_attachment)
