"""What only the REST API offered before, from a terminal, against the fleet's API served over real HTTP: the audit
log, dead deliveries and retrying them, a gateway's health history, a gateway's devices and its presence."""

import json
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from typer.testing import Result

from fleet.alerts.channels.governance import GOVERNANCE_CHANNEL
from fleet.commands.store import NewCommand
from protocol.messages import CommandName
from protocol.updates import ReleaseKind, UpdateReport, UpdateState
from tests.fleet.cli.busy_county import (
    DEAD_ERROR,
    HEALTHY_GATEWAY,
    HEALTHY_VILLAGE,
    County,
    busy_county,
    iso,
    outpost_fleet,
    words_of,
)
from tests.fleet.configs.sites import ADMIN
from tests.fleet.health_history_data import BASE_MS, COUNT, PERIOD_MS, UNTIL_MS, heartbeat
from tests.fleet.helpers import FakeClock
from tests.fleet.served_api import served_api


@pytest.fixture
async def county(sessions: async_sessionmaker[AsyncSession], clock: FakeClock, tmp_path: Path) -> County:
    return await busy_county(sessions, clock, tmp_path)


@pytest.fixture
async def fleet(county: County) -> AsyncIterator[str]:
    async with served_api(county.context) as url:
        yield url


def rows_of(result: Result) -> list[list[str]]:
    """The table's cells, split on its column gaps (two spaces or more)."""
    assert result.exit_code == 0, result.output
    return [[cell.strip() for cell in line.split("  ") if cell.strip()] for line in result.stdout.splitlines()]


async def test_the_audit_log_says_who_changed_what_and_which_fields(fleet: str) -> None:
    await outpost_fleet(fleet, "tokens", "create", "li-tech", "--role", "technician")
    await outpost_fleet(fleet, "gateways", "add", "gw-03", "--village", "lakeside", "--name", "east gate")
    await outpost_fleet(fleet, "devices", "set", "gw-01", "panic-1", "--kind", "panic_button", "--name", "well")

    header, *rows = rows_of(await outpost_fleet(fleet, "audit", "list", "--tz", "UTC"))
    by_gateways = json.loads((await outpost_fleet(fleet, "audit", "list", "--target-type", "gateway", "--json")).stdout)
    mine = rows_of(await outpost_fleet(fleet, "audit", "list", "--actor", "bootstrap-admin", "--limit", "2"))
    none = await outpost_fleet(fleet, "audit", "list", "--actor", "nobody")
    technician = (await outpost_fleet(fleet, "tokens", "create", "wang", "--role", "technician")).stdout.strip()
    refused = await outpost_fleet(fleet, "audit", "list", token=technician)

    assert header == ["WHEN", "ACTOR", "ROLE", "ACTION", "TARGET", "CHANGED"]
    assert rows[0][1:] == ["bootstrap-admin", "admin", "device.update", "device gw-01/panic-1", "name"]
    assert rows[1][1:] == ["bootstrap-admin", "admin", "gateway.create", "gateway gw-03", "created"]
    assert rows[2][1:4] == ["bootstrap-admin", "admin", "token.create"]
    assert all(row[0] == "2023-11-14 22:13:20 UTC" for row in rows)
    assert [entry["target_id"] for entry in by_gateways] == ["gw-03"]
    assert by_gateways[0]["after"]["name"] == "east gate"
    assert len(mine) == 3, "a header and two entries"
    assert (none.exit_code, none.stdout, none.stderr) == (0, "", "no changes match\n")
    assert (refused.exit_code, refused.stderr) == (1, "refused (403): role technician may not administer\n")


async def test_dead_deliveries_are_found_and_retried_by_id_or_all_at_once(fleet: str, county: County) -> None:
    dead = await outpost_fleet(fleet, "deliveries", "list", "--state", "dead")
    of_the_alert = rows_of(await outpost_fleet(fleet, "deliveries", "list", "--alert", county.dead.alert_id[:8]))
    summary = rows_of(await outpost_fleet(fleet, "deliveries", "summary"))

    header, row = rows_of(dead)
    assert header == ["ID", "CREATED", "CHANNEL", "ACTION", "STEP", "STATE", "ATTEMPTS", "ALERT", "LAST_ERROR"]
    assert [row[0], *row[2:]] == [
        str(county.dead.id),
        GOVERNANCE_CHANNEL,
        "open_case",
        "raise",
        "dead",
        "1",
        county.dead.alert_id[:8],
        DEAD_ERROR,
    ]
    assert [r[0] for r in of_the_alert[1:]] == [str(county.dead.id)]
    assert summary == [["CHANNEL", "PENDING", "DELIVERED", "DEAD"], [GOVERNANCE_CHANNEL, "0", "1", "1"]]

    not_dead = await outpost_fleet(fleet, "deliveries", "retry", str(county.delivered.id))
    neither = await outpost_fleet(fleet, "deliveries", "retry")
    retried = await outpost_fleet(fleet, "deliveries", "retry", str(county.dead.id), "--json")
    nothing_left = await outpost_fleet(fleet, "deliveries", "retry", "--all")

    assert not_dead.exit_code == 1
    assert not_dead.stderr.startswith("refused (404): ")
    assert (neither.exit_code, neither.stderr) == (2, "give the IDs of the dead messages to retry, or --all\n")
    assert retried.exit_code == 0, retried.output
    [back] = json.loads(retried.stdout)
    assert (back["id"], back["state"], back["attempts"]) == (county.dead.id, "pending", 0)
    assert (nothing_left.exit_code, nothing_left.stderr) == (0, "no dead messages to retry\n")


async def test_retry_all_puts_every_dead_delivery_of_a_channel_back(fleet: str, county: County) -> None:
    other_channel = await outpost_fleet(fleet, "deliveries", "retry", "--all", "--channel", "webhook")
    everything = await outpost_fleet(fleet, "deliveries", "retry", "--all", "--channel", GOVERNANCE_CHANNEL)
    after = json.loads((await outpost_fleet(fleet, "deliveries", "list", "--state", "dead", "--json")).stdout)

    assert (other_channel.exit_code, other_channel.stderr) == (0, "no dead messages to retry\n")
    assert everything.exit_code == 0, everything.output
    assert everything.stderr == "put 1 back in line:\n"
    assert rows_of(everything)[1][0] == str(county.dead.id)
    assert after == []


async def test_a_gateways_health_history_in_rows_in_means_and_in_pages(fleet: str) -> None:
    window = ["--since", iso(BASE_MS), "--until", iso(UNTIL_MS), "--tz", "UTC"]

    every = await outpost_fleet(fleet, "gateways", "health", HEALTHY_GATEWAY, *window)
    means = await outpost_fleet(fleet, "gateways", "health", HEALTHY_GATEWAY, *window, "--step", "30s")
    first = await outpost_fleet(fleet, "gateways", "health", HEALTHY_GATEWAY, *window, "--limit", "5")

    header, *rows = rows_of(every)
    assert header == ["TIME", "CPU_%", "MEMORY_%", "DISK_%", "TEMP_C", "RTT_MS", "BUFFER", "DROPPED", "ADAPTERS_DOWN"]
    assert len(rows) == COUNT
    assert rows[2][1:4] == ["2", "52", "20"], "CPU i %, memory 50 + i %, disk 20 %"
    assert every.stderr.startswith(f"{HEALTHY_GATEWAY}: ")
    assert "(embedded store)" in every.stderr
    assert len(rows_of(means)) == 1 + COUNT // 3
    assert "means over 30s" in means.stderr
    assert len(rows_of(first)) == 1 + 5
    [more] = [line for line in first.stderr.splitlines() if line.startswith("more samples follow")]
    since = more.split("--since ")[1]
    assert since == datetime.fromtimestamp((BASE_MS + 4 * PERIOD_MS + 1) / 1000, UTC).isoformat(timespec="milliseconds")
    rest = await outpost_fleet(fleet, "gateways", "health", HEALTHY_GATEWAY, "--since", since, "--until", iso(UNTIL_MS))
    assert len(rows_of(rest)) == 1 + COUNT - 5, "the next page starts where the first ended"


async def test_a_health_query_the_fleet_refuses_and_a_gateway_without_samples(fleet: str) -> None:
    too_fine = await outpost_fleet(fleet, "gateways", "health", HEALTHY_GATEWAY, "--step", "500ms")
    quiet = await outpost_fleet(fleet, "gateways", "health", "gw-01", "--since", "1h")
    unknown = await outpost_fleet(fleet, "gateways", "health", "gw-99")
    too_long = await outpost_fleet(fleet, "gateways", "health", HEALTHY_GATEWAY, "--since", "30d")

    assert too_fine.exit_code == 2
    assert "'500ms' is shorter than 1s" in words_of(too_fine)
    assert (quiet.exit_code, quiet.stdout) == (0, "")
    assert quiet.stderr.endswith("no health samples in that time\n")
    assert (unknown.exit_code, unknown.stderr) == (1, "refused (404): no gateway 'gw-99'\n")
    assert too_long.exit_code == 1
    assert "needs a step" in too_long.stderr


async def test_devices_are_recorded_listed_changed_and_removed(fleet: str) -> None:
    await outpost_fleet(fleet, "sites", "add", "grid", "grid-7", "--village", "lakeside", "--name", "Grid 7")

    added = await outpost_fleet(
        fleet, "devices", "set", "gw-01", "door-1", "--kind", "door_contact", "--grid", "grid-7"
    )
    renamed = await outpost_fleet(fleet, "devices", "set", "gw-01", "panic-1", "--kind", "panic_button")
    listed = await outpost_fleet(fleet, "devices", "list", "gw-01", "--tz", "UTC")
    bad_grid = await outpost_fleet(
        fleet, "devices", "set", "gw-01", "pir-1", "--kind", "pir_sensor", "--grid", "nowhere"
    )
    bad_kind = await outpost_fleet(fleet, "devices", "set", "gw-01", "pir-1", "--kind", "toaster")
    removed = await outpost_fleet(fleet, "devices", "remove", "gw-01", "door-1")
    after = json.loads((await outpost_fleet(fleet, "devices", "list", "gw-01", "--json")).stdout)
    nothing = await outpost_fleet(fleet, "devices", "list", "gw-02")

    assert added.stdout == "set device door-1 on gw-01: door_contact in grid grid-7\n"
    assert renamed.stdout == "set device panic-1 on gw-01: panic_button\n"
    assert listed.stdout.splitlines() == [
        "ID       KIND          NAME  GRID_ID  CREATED",
        "door-1   door_contact        grid-7   2023-11-14 22:13:20 UTC",
        "panic-1  panic_button                 2023-11-14 22:13:20 UTC",  # a set replaces the record: no name now
    ]
    assert bad_grid.exit_code == 1
    assert bad_grid.stderr.startswith("refused (")
    assert bad_kind.exit_code == 2
    assert removed.stdout == "removed device door-1 from gw-01\n"
    assert [device["id"] for device in after] == ["panic-1"]
    assert after[0]["name"] is None
    assert (nothing.exit_code, nothing.stderr) == (0, "no devices recorded on gw-02\n")


async def test_a_gateway_is_shown_with_its_presence_and_last_health(fleet: str, clock: FakeClock) -> None:
    clock.now_ms += 90_000
    never = await outpost_fleet(fleet, "gateways", "show", "gw-01", "--tz", "UTC")
    heard = await outpost_fleet(fleet, "gateways", "show", HEALTHY_GATEWAY, "--tz", "UTC")
    unknown = await outpost_fleet(fleet, "gateways", "show", "gw-99")

    assert never.stdout.splitlines() == [
        "gateway    gw-01",
        "village    lakeside",
        "presence   offline (never_connected) since -",
        "last seen  never",
    ]
    shown = dict(re.split(r"\s{2,}", line, maxsplit=1) for line in heard.stdout.splitlines())
    assert shown["last seen"].startswith("2023-11-14 22:13:20 UTC (")
    assert shown["health"] == (
        "cpu 5%, memory 55%, disk 20%, uplink 25 ms, buffer 5 (500 bytes), up 2m30s (at 2023-11-14 22:13:20 UTC)"
    )
    assert shown["dropped"] == "telemetry 1"
    assert shown["heartbeat"] == "every 10 s"
    assert (unknown.exit_code, unknown.stderr) == (1, "refused (404): no gateway 'gw-99'\n")


async def test_a_command_nobody_answered_says_what_to_check(fleet: str, county: County, clock: FakeClock) -> None:
    store = county.context.commands.store
    command = NewCommand("gw-01", "lakeside", CommandName.DIAGNOSTICS, {}, None, 30.0)
    row = await store.record(ADMIN, command)
    await store.mark_sent(row.request_id, clock.now_ms)
    await store.expire(clock.now_ms + 31_000)

    shown = await outpost_fleet(fleet, "command", "show", row.request_id, "--tz", "UTC")

    assert "state: timed_out" in shown.stdout
    assert "deadline: 2023-11-14 22:13:50 UTC" in shown.stdout
    assert "no answer by the deadline: is gw-01 online? (outpost fleet gateways show)" in shown.stdout


async def test_a_gateway_shows_how_its_last_update_ended(fleet: str, county: County, clock: FakeClock) -> None:
    beat = heartbeat(HEALTHY_GATEWAY, 5, clock.now_ms)
    rolled_back = UpdateReport(
        job_id="wave-1", kind=ReleaseKind.AGENT, version="1.0.2", state=UpdateState.ROLLED_BACK,
        reason="the new agent 1.0.2 failed its health gate: no heartbeat reached the broker", changed_ms=clock.now_ms,
    )  # fmt: skip
    beat = beat.model_copy(update={"health": beat.health.model_copy(update={"update": rolled_back})})
    county.context.registry.note_heartbeat(HEALTHY_VILLAGE, beat, clock.now_ms)
    await county.context.registry.flush()

    shown = await outpost_fleet(fleet, "gateways", "show", HEALTHY_GATEWAY, "--tz", "UTC")

    lines = dict(re.split(r"\s{2,}", line, maxsplit=1) for line in shown.stdout.splitlines())
    assert lines["update"] == (
        "agent 1.0.2 rolled_back at 2023-11-14 22:13:20 UTC (job wave-1): "
        "the new agent 1.0.2 failed its health gate: no heartbeat reached the broker"
    )
