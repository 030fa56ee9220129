"""``outpost fleet alerts …``: the duty officer's view of alerts from a terminal (command staff, admins).

``list`` finds alerts and shows them as a table to scan (age, severity, state, level, where, what);
``show`` prints one alert with its history (who did what, when and why); ``ack``, ``note``, ``cancel``
and ``resolve`` act on one. Every command takes an alert's full id or its first 8 characters or more,
looked up among the newest alerts; a prefix that matches several is refused with the matches.

Same connection options and API token as the other ``outpost fleet`` commands (:mod:`fleet.cli.client`);
what the fleet refuses (an illegal step, an unknown alert, a token that may not) is printed with the
fleet's reason and the command exits 1.
"""

from datetime import tzinfo
from typing import Annotated, Any, Final

import typer

from fleet.alerts.lifecycle import OPEN_STATES, next_level
from fleet.cli.alert_rules import rules
from fleet.cli.client import DEFAULT_FLEET_URL, CaFile, FleetApi, FleetUrl, Token, connect
from fleet.cli.formats import (
    DURATION_HELP,
    INSTANT_HELP,
    AsJson,
    TimeZone,
    age_text,
    duration,
    parse_instant_ms,
    print_json,
    short,
    table,
    when,
)
from fleet.db.schema import DeliveryState
from protocol.clock import utc_now_ms
from protocol.messages import Severity
from protocol.notifications import AlertLevel, AlertState

alerts = typer.Typer(
    help="Alerts: find them, read their history, acknowledge, note, cancel or resolve them.",
    no_args_is_help=True,
)
alerts.add_typer(rules, name="rules")

FULL_ID_LENGTH: Final = 36
MIN_PREFIX: Final = 8
LOOKUP_WINDOW: Final = 1000
"""How many of the newest alerts a prefix is looked up in (the most the list endpoint returns)."""
_SUMMARY_WIDTH: Final = 40
_LIST_COLUMNS: Final = ("age", "severity", "state", "level", "village", "source", "kind", "summary", "id")

AlertId = Annotated[
    str, typer.Argument(metavar="ID", help="The alert's id, or its first 8 characters or more (as `list` shows).")
]


def resolve_alert_id(api: FleetApi, given: str) -> str:
    """The full id of the alert ``given`` names: itself, or the one alert among the newest whose id starts so."""
    prefix = given.strip().lower()
    if len(prefix) == FULL_ID_LENGTH:
        return prefix
    if len(prefix) < MIN_PREFIX:
        typer.echo(
            f"{given!r} is too short: give the alert's id or at least its first {MIN_PREFIX} characters", err=True
        )
        raise typer.Exit(2)
    newest = api.call("GET", "/alerts", params={"limit": LOOKUP_WINDOW})
    matches = [row for row in newest if row["id"].startswith(prefix)]
    if not matches:
        typer.echo(
            f"no alert id starts with {given!r} among the newest {LOOKUP_WINDOW} alerts; give the full id", err=True
        )
        raise typer.Exit(1)
    if len(matches) > 1:
        typer.echo(f"{given!r} is ambiguous, it starts {len(matches)} alert ids; give more characters:", err=True)
        for row in matches:
            typer.echo(f"  {row['id']}  {row['state']}  {row['village_id']}  {row['summary']}", err=True)
        raise typer.Exit(2)
    return str(matches[0]["id"])


def distinct_prefix_length(ids: list[str]) -> int:
    """How many leading characters tell these ids apart: 8, or more when two of them share their first 8."""
    for length in range(MIN_PREFIX, FULL_ID_LENGTH):
        if len({alert_id[:length] for alert_id in ids}) == len(set(ids)):
            return length
    return FULL_ID_LENGTH


def _scan_row(row: dict[str, Any], now_ms: int, id_length: int) -> dict[str, Any]:
    return {
        "age": age_text(now_ms - row["raised_at_ms"]),
        "severity": row["severity"],
        "state": row["state"],
        "level": row["level"],
        "village": row["village_id"],
        "source": f"{row['gateway_id']}/{row['device_id']}",
        "kind": row["kind"],
        "summary": short(row["summary"], _SUMMARY_WIDTH),
        "id": row["id"][:id_length],
    }


@alerts.command("list")
def list_alerts(
    village: Annotated[str | None, typer.Option(help="Only this village's alerts.")] = None,
    town: Annotated[str | None, typer.Option(help="Only alerts from this town's villages.")] = None,
    state: Annotated[
        list[AlertState] | None, typer.Option(help="Only alerts in this state; repeat for several.")
    ] = None,
    open_only: Annotated[
        bool,
        typer.Option("--open", help="Only alerts still being handled: raised, acknowledged, dispatched, resolved."),
    ] = False,
    severity: Annotated[list[Severity] | None, typer.Option(help="Only this severity; repeat for several.")] = None,
    kind: Annotated[
        list[str] | None,
        typer.Option(help="Only this kind (panic, door_forced, gateway_offline, …); repeat for several."),
    ] = None,
    level: Annotated[AlertLevel | None, typer.Option(help="Only alerts that are now this level's to act on.")] = None,
    delivery: Annotated[
        DeliveryState | None, typer.Option(help="Only alerts whose case is in this state upstream (dead: never made).")
    ] = None,
    older_than: Annotated[
        int | None,
        typer.Option(parser=duration(), metavar="DURATION", help=f"Raised at least this long ago. {DURATION_HELP}"),
    ] = None,
    since: Annotated[str | None, typer.Option(metavar="WHEN", help=f"Raised since: {INSTANT_HELP}.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="At most this many, newest first.")] = 100,
    fleet: FleetUrl = DEFAULT_FLEET_URL,
    token: Token = "",
    ca_file: CaFile = None,
    tz: TimeZone = None,
    as_json: AsJson = False,
) -> None:
    """Alerts, newest first: how long ago, how bad, where they stand, who must act, where from, what.

    The ID column shows the first 8 characters of each id (more when two share them); the other commands
    take that or the full id.

    What nobody has taken on for 5 minutes: outpost fleet alerts list --state raised --older-than 5m"""
    if open_only and state:
        typer.echo("give --open or --state, not both", err=True)
        raise typer.Exit(2)
    now_ms = utc_now_ms()
    since_ms = None if since is None else parse_instant_ms(since, tz, now_ms)
    api = connect(fleet, token, ca_file)
    states = sorted(OPEN_STATES, key=list(AlertState).index) if open_only else state
    params: dict[str, Any] = {
        "village_id": village,
        "town_id": town,
        "state": [s.value for s in states or ()],
        "severity": [s.value for s in severity or ()],
        "kind": kind or [],
        "level": level.value if level else None,
        "delivery_state": delivery.value if delivery else None,
        "older_than_s": None if older_than is None else older_than / 1000,
        "since_ms": since_ms,
        "limit": limit,
    }
    rows = api.call("GET", "/alerts", params={k: v for k, v in params.items() if v not in (None, [])})
    if as_json:
        print_json(rows)
        return
    id_length = distinct_prefix_length([row["id"] for row in rows])
    table([_scan_row(row, now_ms, id_length) for row in rows], _LIST_COLUMNS, empty="no alerts match")


def _case_text(alert: dict[str, Any], tz: tzinfo | None) -> str:
    if alert["delivery_state"] == "delivered":
        return f"case {alert['case_id']} on the platform since {when(alert['delivered_at_ms'], tz)}"
    attempts = f"{alert['delivery_attempts']} attempts"
    error = f", last error: {alert['last_error']}" if alert["last_error"] else ""
    if alert["delivery_state"] == "dead":
        return f"NOT DELIVERED: the platform refused it ({attempts}{error})"
    return f"pending, not yet on the platform ({attempts}{error})"


def _escalation_text(level: str, escalate_at_ms: int | None, now_ms: int, tz: tzinfo | None) -> str:
    above = next_level(AlertLevel(level))
    if escalate_at_ms is None or above is None:
        return ""
    due = "overdue" if escalate_at_ms <= now_ms else f"in {age_text(escalate_at_ms - now_ms)}"
    return f"; goes to the {above} at {when(escalate_at_ms, tz)} ({due}) unless acknowledged"


def _print_alert(alert: dict[str, Any], now_ms: int, tz: tzinfo | None) -> None:
    by = f" by {alert['acknowledged_by']}" if alert["acknowledged_by"] else ""
    escalates = alert["escalate_at_ms"]
    lines = {
        "alert": alert["id"],
        "what": f"{alert['severity']} {alert['kind']}: {alert['summary']}",
        "where": f"village {alert['village_id']}, gateway {alert['gateway_id']}, device {alert['device_id']}"
        + (f", grid {alert['grid_id']}" if alert["grid_id"] else ""),
        "raised": f"{when(alert['raised_at_ms'], tz)} ({age_text(now_ms - alert['raised_at_ms'])} ago)",
        "state": f"{alert['state']}{by} since {when(alert['state_changed_ms'], tz)}",
        "level": alert["level"] + _escalation_text(alert["level"], escalates, now_ms, tz),
        "case": _case_text(alert, tz),
        "assignee": alert["assignee"],
        "feedback": None
        if alert["feedback_rating"] is None
        else f"{alert['feedback_rating']}/5 {alert['feedback_comment'] or ''}".rstrip(),
        "evidence": ", ".join(f"{k}={v}" for k, v in alert["evidence"].items()) or None,
    }
    width = max(len(label) for label in lines)
    for label, value in lines.items():
        if value is not None:
            typer.echo(f"{label.ljust(width)}  {value}")


def _history_row(step: dict[str, Any], tz: tzinfo | None) -> dict[str, Any]:
    moved = step["from_state"] is not None and step["from_state"] != step["to_state"]
    return {
        "when": when(step["at_ms"], tz),
        "step": step["step"],
        "state": f"{step['from_state']} → {step['to_state']}" if moved else step["to_state"],
        "level": step["level"],
        "by": step["actor"],
        "why": step["reason"],
    }


@alerts.command("show")
def show(
    alert_id: AlertId,
    fleet: FleetUrl = DEFAULT_FLEET_URL,
    token: Token = "",
    ca_file: CaFile = None,
    tz: TimeZone = None,
    as_json: AsJson = False,
) -> None:
    """One alert and its history, oldest first: every step and note, who took it, when and why.

    With --json: {"alert": GET /alerts/ID, "history": GET /alerts/ID/history}."""
    api = connect(fleet, token, ca_file)
    full_id = resolve_alert_id(api, alert_id)
    alert = api.call("GET", f"/alerts/{full_id}")
    history = api.call("GET", f"/alerts/{full_id}/history")
    if as_json:
        print_json({"alert": alert, "history": history})
        return
    _print_alert(alert, utc_now_ms(), tz)
    typer.echo("")
    table([_history_row(step, tz) for step in history], ("when", "step", "state", "level", "by", "why"))


def _needs_text(value: str, option: str) -> str:
    if not value.strip():
        typer.echo(f"{option} must say something", err=True)
        raise typer.Exit(2)
    return value


def _act(api: FleetApi, alert_id: str, step: str, reason: str | None) -> None:
    body = {"reason": None if reason is None else _needs_text(reason, "--reason")}
    full_id = resolve_alert_id(api, alert_id)
    alert = api.call("POST", f"/alerts/{full_id}/{step}", json=body)
    typer.echo(
        f"alert {alert['id']} is now {alert['state']} ({alert['severity']} {alert['kind']}, {alert['village_id']})"
    )


Reason = Annotated[str | None, typer.Option(help="Why, for the history (optional).")]


@alerts.command("acknowledge", hidden=True, help="Another name of `alerts ack`.")
@alerts.command("ack")
def acknowledge(
    alert_id: AlertId,
    reason: Reason = None,
    fleet: FleetUrl = DEFAULT_FLEET_URL,
    token: Token = "",
    ca_file: CaFile = None,
) -> None:
    """Take the alert on: it stops escalating, and the history shows you took it. Only a raised alert."""
    _act(connect(fleet, token, ca_file), alert_id, "acknowledge", reason)


@alerts.command("note")
def note(
    alert_id: AlertId,
    text: Annotated[
        str, typer.Argument(metavar="TEXT", help="The note, e.g. who you called and what they said (quote it).")
    ],
    fleet: FleetUrl = DEFAULT_FLEET_URL,
    token: Token = "",
    ca_file: CaFile = None,
) -> None:
    """Add a note to the alert's history; its state does not change."""
    body = {"text": _needs_text(text, "the note")}
    api = connect(fleet, token, ca_file)
    full_id = resolve_alert_id(api, alert_id)
    noted = api.call("POST", f"/alerts/{full_id}/notes", json=body)
    typer.echo(f"noted on alert {full_id} ({noted['to_state']})")


@alerts.command("cancel")
def cancel(
    alert_id: AlertId,
    reason: Annotated[str, typer.Option(help="Why it is no real alert, e.g. 'test press by the installer'.")],
    fleet: FleetUrl = DEFAULT_FLEET_URL,
    token: Token = "",
    ca_file: CaFile = None,
) -> None:
    """Close a false alarm (a test press, a misread) with the reason. Not once it is resolved."""
    _act(connect(fleet, token, ca_file), alert_id, "cancel", reason)


@alerts.command("resolve")
def resolve(
    alert_id: AlertId,
    reason: Reason = None,
    fleet: FleetUrl = DEFAULT_FLEET_URL,
    token: Token = "",
    ca_file: CaFile = None,
) -> None:
    """The situation is dealt with. Only an alert someone acknowledged or was dispatched to."""
    _act(connect(fleet, token, ca_file), alert_id, "resolve", reason)
