"""``outpost fleet dead-letters list|summary``: inbound messages the fleet could not process (read permission)."""

import datetime
from typing import Annotated

import typer

from fleet.cli.client import DEFAULT_FLEET_URL, FleetUrl, Token, call, table

dead_letters = typer.Typer(
    help="Inbound messages ingest could not process: kept with their reason, counted, then acknowledged.",
    no_args_is_help=True,
)


def _when(ms: int) -> str:
    return datetime.datetime.fromtimestamp(ms / 1000, datetime.UTC).strftime("%Y-%m-%d %H:%M:%SZ")


@dead_letters.command("list")
def list_dead_letters(
    token: Token,
    fleet: FleetUrl = DEFAULT_FLEET_URL,
    gateway: Annotated[str | None, typer.Option(help="Only this gateway's.")] = None,
    reason: Annotated[
        str | None, typer.Option(help="Only this reason: failed, kept_failing, not_stored_in_time, invalid_payload, …")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="At most this many, newest first.")] = 50,
    payload: Annotated[bool, typer.Option("--payload", help="Show each one's payload (its first bytes).")] = False,
) -> None:
    """Dead letters, the most recently seen first."""
    params: dict[str, str | int] = {"limit": limit}
    if gateway is not None:
        params["gateway_id"] = gateway
    if reason is not None:
        params["reason"] = reason
    rows = call(fleet, token, "GET", "/ingest/dead-letters", params=params)
    for row in rows:
        row["last_seen"] = _when(row["last_ms"])
        row["error"] = row["error"][:80]
    table(rows, ("id", "last_seen", "gateway_id", "channel", "reason", "count", "error"))
    if payload:
        for row in rows:
            typer.echo(f"\n#{row['id']} {row['topic']} ({row['payload_bytes']} bytes):\n{row['payload']}")


@dead_letters.command("summary")
def summary(token: Token, fleet: FleetUrl = DEFAULT_FLEET_URL) -> None:
    """Dead letters per reason: rows, messages counted, the newest."""
    rows = call(fleet, token, "GET", "/ingest/dead-letters/summary")
    for row in rows:
        row["newest"] = _when(row["last_ms"])
    table(rows, ("reason", "rows", "messages", "newest"))
