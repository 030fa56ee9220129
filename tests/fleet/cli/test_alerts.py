"""``outpost fleet alerts …`` as a duty officer uses it, against the fleet's API served over real HTTP:
find alerts, read one with its history, act on it by a short id; refusals show the fleet's reason."""

import json
import re
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from typer.testing import Result

from fleet.alerts.store import AlertStore
from fleet.api.context import ApiContext
from fleet.cli.app import app
from fleet.cli.formats import age_text, parse_instant_ms
from protocol.messages import Alert, AlertKind, Severity
from tests.fleet.alert_county import GATEWAY_OF, alert_county
from tests.fleet.api_client import ADMIN_TOKEN
from tests.fleet.helpers import FakeClock, default_escalation, make_alert
from tests.fleet.served_api import invoke, served_api

MINUTE_MS = 60_000


@pytest.fixture
async def context(sessions: async_sessionmaker[AsyncSession], clock: FakeClock) -> ApiContext:
    return await alert_county(sessions, clock)


@pytest.fixture
async def fleet(context: ApiContext) -> AsyncIterator[str]:
    async with served_api(context) as url:
        yield url


@pytest.fixture
async def duty_officer(fleet: str) -> str:
    """A command-staff token, as the duty desk has."""
    created = await invoke(
        app, ["tokens", "create", "duty-officer", "--role", "command_staff"], token=ADMIN_TOKEN, fleet=fleet
    )
    return created.stdout.strip().splitlines()[-1]


async def raised(
    sessions: async_sessionmaker[AsyncSession], clock: FakeClock, village: str = "lakeside", **changes: object
) -> Alert:
    alert = make_alert(gateway_id=GATEWAY_OF[village], **changes)
    assert await AlertStore(sessions, clock, default_escalation()).record(village, alert)
    return alert


async def run(fleet: str, token: str, *args: str) -> Result:
    return await invoke(app, ["alerts", *args], token=token, fleet=fleet)


def rows_of(result: Result) -> list[list[str]]:
    """The table's cells, split on its column gaps (two spaces or more)."""
    assert result.exit_code == 0, result.output
    return rows_of_text(result.stdout)


def rows_of_text(text: str) -> list[list[str]]:
    return [[cell.strip() for cell in line.split("  ") if cell.strip()] for line in text.splitlines()]


def words_of(result: Result) -> str:
    """What the command said, as one line of words (usage errors come in a wrapped box)."""
    return " ".join(result.output.replace("│", " ").split())


async def test_the_duty_officer_scans_open_alerts_and_narrows_them_down(
    fleet: str, duty_officer: str, sessions: async_sessionmaker[AsyncSession], clock: FakeClock
) -> None:
    panic = await raised(sessions, clock, summary="panic button at the east gate pressed and held for a long time")
    tamper = await raised(
        sessions,
        clock,
        "riverside",
        device_id="cam-2",
        kind=AlertKind.CAMERA_TAMPER,
        severity=Severity.MAJOR,
        summary="camera cam-2 covered",
        ts=panic.ts - MINUTE_MS,
    )
    closed = await raised(sessions, clock, device_id="door-1", kind=AlertKind.DOOR_FORCED, ts=panic.ts - 2 * MINUTE_MS)
    assert (await run(fleet, duty_officer, "cancel", str(closed.event_id), "--reason", "installer test")).exit_code == 0

    header, *rows = rows_of(await run(fleet, duty_officer, "list", "--open"))

    assert header == ["AGE", "SEVERITY", "STATE", "LEVEL", "VILLAGE", "SOURCE", "KIND", "SUMMARY", "ID"]
    assert [row[1:7] for row in rows] == [
        ["critical", "raised", "village", "lakeside", "gw-01/panic-1", "panic"],
        ["major", "raised", "village", "riverside", "gw-02/cam-2", "camera_tamper"],
    ], "newest first, the cancelled alert left out"
    assert rows[0][7] == "panic button at the east gate pressed a…", "long summaries are cut to fit a terminal"
    assert [row[8] for row in rows] == [str(panic.event_id)[:8], str(tamper.event_id)[:8]]
    assert all(re.fullmatch(r"\d+[smhd](\d\d[mh])?", row[0]) for row in rows), "ages like 4m or 3d04h"

    majors = rows_of(await run(fleet, duty_officer, "list", "--severity", "major", "--severity", "minor"))
    in_lakeside = rows_of(await run(fleet, duty_officer, "list", "--village", "lakeside", "--state", "cancelled"))
    in_xiping = rows_of(await run(fleet, duty_officer, "list", "--town", "xiping"))
    assert [row[8] for row in majors[1:]] == [str(tamper.event_id)[:8]]
    assert [row[8] for row in in_lakeside[1:]] == [str(closed.event_id)[:8]]
    assert [row[8] for row in in_xiping[1:]] == [str(tamper.event_id)[:8]]

    as_json = await run(fleet, duty_officer, "list", "--json", "--limit", "2")
    assert [row["id"] for row in json.loads(as_json.stdout)] == [str(panic.event_id), str(tamper.event_id)]
    nothing = await run(fleet, duty_officer, "list", "--level", "county")
    assert (nothing.exit_code, nothing.stdout, nothing.stderr) == (0, "", "no alerts match\n")
    both = await run(fleet, duty_officer, "list", "--open", "--state", "raised")
    assert (both.exit_code, both.stderr) == (2, "give --open or --state, not both\n")


async def test_alerts_are_found_by_how_long_ago_they_were_raised(
    fleet: str, duty_officer: str, sessions: async_sessionmaker[AsyncSession], clock: FakeClock
) -> None:
    old = await raised(sessions, clock, ts=clock.now_ms - 2 * 60 * MINUTE_MS)
    recent = await raised(sessions, clock, device_id="panic-2", ts=clock.now_ms - 10 * MINUTE_MS)
    half_an_hour_ago = datetime.fromtimestamp((clock.now_ms - 30 * MINUTE_MS) / 1000, UTC).isoformat()

    older = await run(fleet, duty_officer, "list", "--older-than", "1h", "--json")
    since = await run(fleet, duty_officer, "list", "--since", half_an_hour_ago, "--json")
    unreadable = await run(fleet, duty_officer, "list", "--older-than", "soon")

    assert [row["id"] for row in json.loads(older.stdout)] == [str(old.event_id)]
    assert [row["id"] for row in json.loads(since.stdout)] == [str(recent.event_id)]
    assert unreadable.exit_code == 2
    assert "'soon' is not a duration: write one like 90s, 30m, 2h, 7d or 1h30m" in words_of(unreadable)


async def test_an_alert_is_taken_on_noted_and_resolved_by_its_short_id_and_its_history_tells_who_when_why(
    fleet: str, duty_officer: str, sessions: async_sessionmaker[AsyncSession], clock: FakeClock
) -> None:
    alert = await raised(sessions, clock)
    short = str(alert.event_id)[:8]

    acked = await run(fleet, duty_officer, "ack", short)
    clock.now_ms += MINUTE_MS
    noted = await run(fleet, duty_officer, "note", short, "grid officer Wang is on his way")
    resolved = await run(fleet, duty_officer, "resolve", str(alert.event_id), "--reason", "an elderly resident fell")

    assert acked.stdout == f"alert {alert.event_id} is now acknowledged (critical panic, lakeside)\n"
    assert noted.stdout == f"noted on alert {alert.event_id} (acknowledged)\n"
    assert resolved.stdout == f"alert {alert.event_id} is now resolved (critical panic, lakeside)\n"
    shown = await run(fleet, duty_officer, "show", short.upper())
    assert shown.exit_code == 0, shown.output
    details, history = shown.stdout.split("\n\n")
    assert f"alert     {alert.event_id}" in details
    assert "state     resolved by duty-officer since" in details
    assert "where     village lakeside, gateway gw-01, device panic-1, grid grid-7" in details
    assert [row[1:] for row in rows_of_text(history)] == [
        ["STEP", "STATE", "LEVEL", "BY", "WHY"],
        ["raise", "raised", "village", "gateway gw-01", "panic button panic-1 pressed"],
        ["acknowledge", "raised → acknowledged", "village", "duty-officer"],
        ["note", "acknowledged", "village", "duty-officer", "grid officer Wang is on his way"],
        ["resolve", "acknowledged → resolved", "village", "duty-officer", "an elderly resident fell"],
    ]
    as_json = json.loads((await run(fleet, duty_officer, "show", short, "--json")).stdout)
    assert as_json["alert"]["state"] == "resolved"
    assert [step["step"] for step in as_json["history"]] == ["raise", "acknowledge", "note", "resolve"]


async def test_an_ambiguous_short_or_unknown_id_is_refused_with_what_it_matches(
    fleet: str, duty_officer: str, sessions: async_sessionmaker[AsyncSession], clock: FakeClock
) -> None:
    first = await raised(sessions, clock, event_id=uuid.UUID("0a1b2c3d-1111-4000-8000-000000000001"))
    second = await raised(
        sessions, clock, device_id="panic-2", event_id=uuid.UUID("0a1b2c3d-2222-4000-8000-000000000002")
    )

    listed = rows_of(await run(fleet, duty_officer, "list"))
    ambiguous = await run(fleet, duty_officer, "ack", "0a1b2c3d")
    too_short = await run(fleet, duty_officer, "show", "0a1b2c")
    unknown_prefix = await run(fleet, duty_officer, "show", "ffffffff")
    unknown_id = await run(fleet, duty_officer, "ack", str(uuid.uuid4()))
    precise = await run(fleet, duty_officer, "ack", "0a1b2c3d-2")

    assert [row[8] for row in listed[1:]] == ["0a1b2c3d-1", "0a1b2c3d-2"], "ids long enough to tell apart"
    assert ambiguous.exit_code == 2
    assert "'0a1b2c3d' is ambiguous, it starts 2 alert ids; give more characters" in ambiguous.stderr
    assert str(first.event_id) in ambiguous.stderr
    assert str(second.event_id) in ambiguous.stderr
    assert too_short.exit_code == 2
    assert "at least its first 8 characters" in too_short.stderr
    assert unknown_prefix.exit_code == 1
    assert "no alert id starts with 'ffffffff'" in unknown_prefix.stderr
    assert unknown_id.exit_code == 1
    assert "refused (404): no alert" in unknown_id.stderr
    assert precise.stdout == f"alert {second.event_id} is now acknowledged (critical panic, lakeside)\n"
    acknowledged = rows_of(await run(fleet, duty_officer, "list", "--state", "acknowledged"))
    assert [row[8] for row in acknowledged[1:]] == ["0a1b2c3d"], "only the one the longer prefix named"


async def test_an_illegal_step_or_a_missing_reason_is_refused_with_the_reason(
    fleet: str, duty_officer: str, sessions: async_sessionmaker[AsyncSession], clock: FakeClock
) -> None:
    alert = await raised(sessions, clock)
    short = str(alert.event_id)[:8]

    early = await run(fleet, duty_officer, "resolve", short)
    no_reason = await run(fleet, duty_officer, "cancel", short)
    blank_reason = await run(fleet, duty_officer, "cancel", short, "--reason", "  ")
    cancelled = await run(fleet, duty_officer, "cancel", short, "--reason", "test press by the installer")
    late = await run(fleet, duty_officer, "ack", short)

    assert early.exit_code == 1
    assert (
        early.stderr
        == "refused (409): cannot resolve an alert that is raised (only one that is acknowledged, dispatched)\n"
    )
    assert no_reason.exit_code == 2
    assert "Missing option '--reason'" in no_reason.output
    assert (blank_reason.exit_code, blank_reason.stderr) == (2, "--reason must say something\n")
    assert cancelled.stdout == f"alert {alert.event_id} is now cancelled (critical panic, lakeside)\n"
    assert late.exit_code == 1
    assert "refused (409): cannot acknowledge an alert that is cancelled (only one that is raised)" in late.stderr


async def test_a_technician_reads_alerts_but_may_not_handle_them_and_a_bad_token_is_refused(
    fleet: str, sessions: async_sessionmaker[AsyncSession], clock: FakeClock
) -> None:
    alert = await raised(sessions, clock)
    created = await invoke(app, ["tokens", "create", "li-tech", "--role", "technician"], token=ADMIN_TOKEN, fleet=fleet)
    technician = created.stdout.strip().splitlines()[-1]

    listed = await run(fleet, technician, "list")
    refused = await run(fleet, technician, "ack", str(alert.event_id))
    unknown = await run(fleet, "opt_not-a-token", "list")

    assert listed.exit_code == 0, listed.output
    assert refused.exit_code == 1
    assert refused.stderr == "refused (403): role technician may not handle alerts\n"
    assert unknown.exit_code == 1
    assert unknown.stderr.startswith("refused (401): ")


@pytest.mark.parametrize(
    ("elapsed_ms", "shown"),
    [
        (-5, "0s"),
        (45_999, "45s"),
        (4 * MINUTE_MS + 59_000, "4m"),
        (125 * MINUTE_MS, "2h05m"),
        (76 * 60 * MINUTE_MS, "3d04h"),
    ],
)
def test_ages_read_at_a_glance(elapsed_ms: int, shown: str) -> None:
    assert age_text(elapsed_ms) == shown


def test_since_takes_a_duration_back_from_now_or_an_instant_read_in_the_zone_shown() -> None:
    now_ms = 1_700_000_000_000
    shanghai = ZoneInfo("Asia/Shanghai")
    assert parse_instant_ms("2h", shanghai, now_ms) == now_ms - 2 * 60 * MINUTE_MS
    assert parse_instant_ms("1h30m", None, now_ms) == now_ms - 90 * MINUTE_MS
    assert parse_instant_ms("2023-11-14T22:13:20+00:00", shanghai, now_ms) == now_ms, "an offset given wins"
    assert parse_instant_ms("2023-11-15T06:13:20", shanghai, now_ms) == now_ms, "no offset: in the zone given"
    assert parse_instant_ms("2023-11-14 22:13:20", UTC, now_ms) == now_ms
