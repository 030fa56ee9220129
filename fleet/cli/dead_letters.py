"""``outpost fleet dead-letters list|summary``: inbound messages the fleet could not process (read permission).

Dead letters of the other direction, alert messages a channel never took, are ``outpost fleet deliveries``.
"""

from typing import Annotated

import typer

from fleet.cli.client import DEFAULT_FLEET_URL, CaFile, FleetUrl, Token, connect
from fleet.cli.formats import AsJson, TimeZone, print_json, short, table, when

dead_letters = typer.Typer(
    help="Inbound messages ingest could not process: kept with their reason, counted, then acknowledged.",
    no_args_is_help=True,
)


@dead_letters.command("list")
def list_dead_letters(
    gateway: Annotated[str | None, typer.Option(help="Only this gateway's.")] = None,
    reason: Annotated[
        str | None, typer.Option(help="Only this reason: failed, kept_failing, not_stored_in_time, invalid_payload, …")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="At most this many, newest first.")] = 50,
    payload: Annotated[bool, typer.Option("--payload", help="Show each one's payload (its first bytes).")] = False,
    fleet: FleetUrl = DEFAULT_FLEET_URL,
    token: Token = "",
    ca_file: CaFile = None,
    tz: TimeZone = None,
    as_json: AsJson = False,
) -> None:
    """Dead letters, the most recently seen first."""
    api = connect(fleet, token, ca_file)
    params: dict[str, str | int] = {"limit": limit}
    if gateway is not None:
        params["gateway_id"] = gateway
    if reason is not None:
        params["reason"] = reason
    rows = api.call("GET", "/ingest/dead-letters", params=params)
    if as_json:
        print_json(rows)
        return
    shown = [row | {"last_seen": when(row["last_ms"], tz), "error": short(row["error"], 80)} for row in rows]
    table(
        shown, ("id", "last_seen", "gateway_id", "channel", "reason", "count", "error"), empty="no dead letters match"
    )
    if payload:
        for row in rows:
            typer.echo(f"\n#{row['id']} {row['topic']} ({row['payload_bytes']} bytes):\n{row['payload']}")


@dead_letters.command("summary")
def summary(
    fleet: FleetUrl = DEFAULT_FLEET_URL,
    token: Token = "",
    ca_file: CaFile = None,
    tz: TimeZone = None,
    as_json: AsJson = False,
) -> None:
    """Dead letters per reason: rows, messages counted, the newest."""
    api = connect(fleet, token, ca_file)
    rows = api.call("GET", "/ingest/dead-letters/summary")
    if as_json:
        print_json(rows)
        return
    table(
        [row | {"newest": when(row["last_ms"], tz)} for row in rows],
        ("reason", "rows", "messages", "newest"),
        empty="no dead letters",
    )
