"""``outpost fleet audit list``: the audit log from a terminal (admins): every change made through the API, who
made it, when, and what it changed."""

from typing import Annotated, Any

import typer

from fleet.cli.client import DEFAULT_FLEET_URL, CaFile, FleetUrl, Token, connect
from fleet.cli.formats import INSTANT_HELP, AsJson, TimeZone, parse_instant_ms, print_json, short, table, when
from protocol.clock import utc_now_ms

audit = typer.Typer(
    help="The audit log: every change made through the API, by whom, when, before and after (admins).",
    no_args_is_help=True,
)

_CHANGED_WIDTH = 60


def changed(before: dict[str, Any] | None, after: dict[str, Any] | None) -> str:
    """What an entry changed, at a glance: ``created``, ``removed``, or the fields whose values differ."""
    if before is None:
        return "created" if after is not None else ""
    if after is None:
        return "removed"
    fields = sorted(key for key in before.keys() | after.keys() if before.get(key) != after.get(key))
    return ", ".join(fields) or "nothing"


@audit.command("list")
def list_entries(
    actor: Annotated[str | None, typer.Option(help="Only changes made with this token (its name).")] = None,
    target_type: Annotated[
        str | None, typer.Option(help="Only changes to this kind of thing: gateway, village, token, …")
    ] = None,
    target_id: Annotated[str | None, typer.Option(help="Only changes to the thing with this id.")] = None,
    since: Annotated[str | None, typer.Option(metavar="WHEN", help=f"Only changes since: {INSTANT_HELP}.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="At most this many, newest first.")] = 100,
    fleet: FleetUrl = DEFAULT_FLEET_URL,
    token: Token = "",
    ca_file: CaFile = None,
    tz: TimeZone = None,
    as_json: AsJson = False,
) -> None:
    """Changes, newest first: when, who (token and role), what action on which thing, and which fields it
    changed (--json for the records before and after)."""
    since_ms = None if since is None else parse_instant_ms(since, tz, utc_now_ms())
    api = connect(fleet, token, ca_file)
    params = {"actor": actor, "target_type": target_type, "target_id": target_id, "since_ms": since_ms, "limit": limit}
    rows = api.call("GET", "/audit", params={k: v for k, v in params.items() if v is not None})
    if as_json:
        print_json(rows)
        return
    shown = [
        {
            "when": when(row["at_ms"], tz),
            "actor": row["actor"],
            "role": row["role"],
            "action": row["action"],
            "target": f"{row['target_type']} {row['target_id']}",
            "changed": short(changed(row["before"], row["after"]), _CHANGED_WIDTH),
        }
        for row in rows
    ]
    table(shown, ("when", "actor", "role", "action", "target", "changed"), empty="no changes match")
