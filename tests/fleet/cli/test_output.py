"""What ``outpost fleet`` prints, against the fleet's API served over real HTTP: with ``--json`` exactly what
the API answered, for every list and show command; times in one zone (``--tz``, ``OUTPOST_TZ``), which is also
the zone a date without an offset is read in."""

import json
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.fleet.api_client import ADMIN_TOKEN
from tests.fleet.cli.busy_county import HEALTHY_GATEWAY, County, busy_county, iso, outpost_fleet, words_of
from tests.fleet.health_history_data import BASE_MS, UNTIL_MS
from tests.fleet.helpers import FakeClock
from tests.fleet.served_api import served_api

CREATED = "2023-11-14 22:13:20 UTC"
"""The fake clock's instant (1_700_000_000_000), when everything in these tests was made, in UTC …"""
CREATED_IN_SHANGHAI = "2023-11-15 06:13:20 CST"
"""… and in Asia/Shanghai."""


@pytest.fixture
async def county(sessions: async_sessionmaker[AsyncSession], clock: FakeClock, tmp_path: Path) -> County:
    return await busy_county(sessions, clock, tmp_path)


@pytest.fixture
async def fleet(county: County) -> AsyncIterator[str]:
    async with served_api(county.context) as url:
        yield url


@pytest.fixture
async def api(fleet: str) -> AsyncIterator[httpx.AsyncClient]:
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    async with httpx.AsyncClient(base_url=fleet, headers=headers) as client:
        yield client


async def test_json_is_exactly_what_the_api_answered_for_every_list_and_show_command(
    fleet: str, api: httpx.AsyncClient, county: County
) -> None:
    for setup in (
        api.post("/tokens", json={"name": "duty-desk", "role": "command_staff"}),
        api.post("/villages/lakeside/grids", json={"id": "grid-7", "name": "Grid 7"}),
        api.post("/enrollment-tokens", json={"village_id": "lakeside"}),
        api.put("/config/layers/village/lakeside", json={"heartbeat_interval_s": 9.0}),
        api.put("/alert-rules/town/hutou", json={"clear_hold_s": 30}),
        api.post("/gateways/gw-01/commands", json={"name": "diagnostics"}),
    ):
        assert (await setup).status_code < 300
    alert_id = county.dead.alert_id
    health = {"since": str(BASE_MS), "until": str(UNTIL_MS)}
    cases: list[tuple[list[str], str, dict[str, str]]] = [
        (["sites", "list", "county"], "/counties", {}),
        (["sites", "list", "village"], "/villages", {}),
        (["sites", "list", "grid", "--village", "lakeside"], "/villages/lakeside/grids", {}),
        (["gateways", "list"], "/gateways", {}),
        (["gateways", "show", "gw-01"], "/gateways/gw-01", {}),
        (["gateways", "health", HEALTHY_GATEWAY, "--since", iso(BASE_MS), "--until", iso(UNTIL_MS)],
         f"/gateways/{HEALTHY_GATEWAY}/health", health),
        (["devices", "list", "gw-01"], "/gateways/gw-01/devices", {}),
        (["tokens", "list"], "/tokens", {}),
        (["enrollment", "list", "--all"], "/enrollment-tokens", {"include_inactive": "true"}),
        (["config", "list"], "/config/layers", {}),
        (["config", "get", "village", "lakeside"], "/config/layers/village/lakeside", {}),
        (["config", "show", "gw-01"], "/gateways/gw-01/config", {}),
        (["config", "status"], "/config/status", {}),
        (["command", "list", "gw-01"], "/gateways/gw-01/commands", {}),
        (["alerts", "list"], "/alerts", {}),
        (["alerts", "rules", "show", "lakeside"], "/villages/lakeside/alert-rules", {}),
        (["alerts", "rules", "get", "town", "hutou"], "/alert-rules/town/hutou", {}),
        (["deliveries", "list"], "/deliveries", {}),
        (["deliveries", "list", "--state", "dead"], "/deliveries", {"state": "dead"}),
        (["deliveries", "summary"], "/deliveries/summary", {}),
        (["dead-letters", "list"], "/ingest/dead-letters", {"limit": "50"}),
        (["dead-letters", "summary"], "/ingest/dead-letters/summary", {}),
        (["audit", "list"], "/audit", {}),
    ]  # fmt: skip

    for args, path, params in cases:
        printed = await outpost_fleet(fleet, *args, "--json")
        answered = await api.get(path, params=params)
        assert printed.exit_code == 0, f"{args}: {printed.output}"
        assert answered.status_code == 200, answered.text
        assert json.loads(printed.stdout) == answered.json(), f"outpost fleet {' '.join(args)} --json"
        assert answered.json(), f"{path} answered nothing: the case proves little"

    shown = json.loads((await outpost_fleet(fleet, "alerts", "show", alert_id[:8], "--json")).stdout)
    alert = (await api.get(f"/alerts/{alert_id}")).json()
    history = (await api.get(f"/alerts/{alert_id}/history")).json()
    assert shown == {"alert": alert, "history": history}


async def test_times_are_shown_in_one_zone_chosen_by_tz_or_outpost_tz(fleet: str, clock: FakeClock) -> None:
    assert (await outpost_fleet(fleet, "tokens", "create", "duty-desk", "--role", "command_staff")).exit_code == 0

    utc = await outpost_fleet(fleet, "tokens", "list", "--tz", "UTC")
    from_env = await outpost_fleet(fleet, "audit", "list", env={"OUTPOST_TZ": "Asia/Shanghai"})
    option_wins = await outpost_fleet(
        fleet, "devices", "list", "gw-01", "--tz", "UTC", env={"OUTPOST_TZ": "Asia/Shanghai"}
    )
    by_default = await outpost_fleet(fleet, "tokens", "list")
    unknown = await outpost_fleet(fleet, "tokens", "list", "--tz", "Mars/Olympus_Mons")

    assert CREATED in utc.stdout
    assert CREATED_IN_SHANGHAI in from_env.stdout
    assert CREATED not in from_env.stdout
    assert CREATED in option_wins.stdout, "--tz wins over OUTPOST_TZ"
    local = datetime.fromtimestamp(clock.now_ms / 1000).astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")
    assert local in by_default.stdout, "by default: this machine's zone"
    assert unknown.exit_code == 2
    assert "'Mars/Olympus_Mons' is no time zone this machine knows" in words_of(unknown)


async def test_a_date_without_an_offset_is_read_in_the_zone_times_are_shown_in(fleet: str) -> None:
    async def changes_since(when: str, zone: str) -> int:
        listed = await outpost_fleet(fleet, "audit", "list", "--since", when, "--tz", zone, "--json")
        assert listed.exit_code == 0, listed.output
        return len(json.loads(listed.stdout))

    everything = await changes_since("2023-11-15T06:13:20", "Asia/Shanghai")
    assert everything > 0, "the county's sites were made at the fake clock's instant"
    assert await changes_since("2023-11-15T06:13:21", "Asia/Shanghai") == 0
    assert await changes_since("2023-11-14 22:13:20", "UTC") == everything
    assert await changes_since("2023-11-14T22:13:20+00:00", "Asia/Shanghai") == everything, "its own offset wins"
    bad = await outpost_fleet(fleet, "audit", "list", "--since", "yesterday")
    assert bad.exit_code == 2
    assert "'yesterday' is neither a duration" in words_of(bad)
