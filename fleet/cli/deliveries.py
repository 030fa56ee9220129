"""``outpost fleet deliveries list|retry|summary``: what each alert channel was told or still has to be told.

Every alert step a channel hears of (a case to open on the governance platform, a webhook, a village notice)
is a message in the fleet's outbox, delivered with retries; one the channel refused for good, or that failed
too often, is *dead*. ``list --state dead`` finds them; once the channel is fixed, ``retry`` puts them back in
line (command staff, admins; audited).
"""

from datetime import tzinfo
from typing import Annotated, Any

import typer

from fleet.cli.alerts import resolve_alert_id
from fleet.cli.client import DEFAULT_FLEET_URL, CaFile, FleetUrl, Token, connect
from fleet.cli.formats import AsJson, TimeZone, print_json, short, table, when
from fleet.db.schema import DeliveryState

deliveries = typer.Typer(
    help="Alert messages to each channel (governance cases, webhooks, village notices): find dead ones, retry them.",
    no_args_is_help=True,
)

_MOST = 1000
"""The most messages one call lists or retries."""
_COLUMNS = ("id", "created", "channel", "action", "step", "state", "attempts", "alert", "last_error")


def _rows(rows: list[dict[str, Any]], tz: tzinfo | None) -> list[dict[str, Any]]:
    return [
        row
        | {
            "created": when(row["created_ms"], tz),
            "alert": row["alert_id"][:8],
            "last_error": short(row["last_error"], 60),
        }
        for row in rows
    ]


@deliveries.command("list")
def list_deliveries(
    state: Annotated[
        DeliveryState | None, typer.Option(help="Only messages in this state (dead: given up on).")
    ] = None,
    channel: Annotated[str | None, typer.Option(help="Only this channel's: governance, webhook, …")] = None,
    alert: Annotated[
        str | None, typer.Option(metavar="ID", help="Only this alert's: its id or its first 8 characters or more.")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=_MOST, help="At most this many, newest first.")] = 100,
    fleet: FleetUrl = DEFAULT_FLEET_URL,
    token: Token = "",
    ca_file: CaFile = None,
    tz: TimeZone = None,
    as_json: AsJson = False,
) -> None:
    """Outbox messages, newest first: which channel, what for, how it stands, the last error.

    The dead ones, to retry once the channel is fixed: outpost fleet deliveries list --state dead"""
    api = connect(fleet, token, ca_file)
    params: dict[str, Any] = {"limit": limit}
    if state is not None:
        params["state"] = state.value
    if channel is not None:
        params["channel"] = channel
    if alert is not None:
        params["alert_id"] = resolve_alert_id(api, alert)
    rows = api.call("GET", "/deliveries", params=params)
    if as_json:
        print_json(rows)
        return
    table(_rows(rows, tz), _COLUMNS, empty="no deliveries match")


@deliveries.command("retry")
def retry(
    ids: Annotated[
        list[int] | None, typer.Argument(metavar="ID", help="The dead messages to retry (the ID column of list).")
    ] = None,
    every: Annotated[
        bool, typer.Option("--all", help="Retry every dead message (of --channel, if given), up to 1000.")
    ] = False,
    channel: Annotated[str | None, typer.Option(help="With --all: only this channel's.")] = None,
    fleet: FleetUrl = DEFAULT_FLEET_URL,
    token: Token = "",
    ca_file: CaFile = None,
    tz: TimeZone = None,
    as_json: AsJson = False,
) -> None:
    """Put dead messages back in line, due now, their attempts counted afresh (after the channel was fixed).

    The fleet refuses the whole call, changing nothing, if one of them is not dead."""
    if bool(ids) == every:
        typer.echo("give the IDs of the dead messages to retry, or --all", err=True)
        raise typer.Exit(2)
    if channel is not None and not every:
        typer.echo("--channel goes with --all", err=True)
        raise typer.Exit(2)
    api = connect(fleet, token, ca_file)
    if every:
        params: dict[str, Any] = {"state": DeliveryState.DEAD.value, "limit": _MOST}
        if channel is not None:
            params["channel"] = channel
        ids = [row["id"] for row in api.call("GET", "/deliveries", params=params)]
        if not ids:
            typer.echo("no dead messages to retry", err=True)
            if as_json:
                print_json([])
            return
    rows = api.call("POST", "/deliveries/retry", json={"ids": ids})
    if as_json:
        print_json(rows)
        return
    typer.echo(f"put {len(rows)} back in line:", err=True)
    table(_rows(rows, tz), _COLUMNS)


@deliveries.command("summary")
def summary(
    fleet: FleetUrl = DEFAULT_FLEET_URL,
    token: Token = "",
    ca_file: CaFile = None,
    as_json: AsJson = False,
) -> None:
    """Messages per channel: pending, delivered and dead."""
    api = connect(fleet, token, ca_file)
    rows = api.call("GET", "/deliveries/summary")
    if as_json:
        print_json(rows)
        return
    table(rows, ("channel", "pending", "delivered", "dead"), empty="no deliveries")
