"""``outpost fleet sites|gateways|tokens`` against the fleet's API served over real HTTP."""

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from typer.testing import Result

from fleet.access.roles import Actor
from fleet.cli import client as cli_client
from fleet.cli.app import app
from fleet.db.schema import CountyRow
from fleet.sites.csv_import import SiteSheet
from fleet.sites.schemas import ImportReport
from fleet.sites.store import SiteStore
from protocol.identifiers import IDENTIFIER_RULE
from tests.fleet.api_client import ADMIN_TOKEN, api_context
from tests.fleet.cli.busy_county import words_of
from tests.fleet.helpers import FakeClock
from tests.fleet.served_api import invoke, served_api

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


async def as_admin(fleet: str, args: list[str]) -> Result:
    return await invoke(app, args, token=ADMIN_TOKEN, fleet=fleet)


@pytest.fixture
async def fleet(sessions: async_sessionmaker[AsyncSession], clock: FakeClock) -> AsyncIterator[str]:
    async with served_api(api_context(sessions, clock)) as url:
        yield url


async def test_a_technician_token_builds_nothing_above_its_role(fleet: str) -> None:
    created = await as_admin(fleet, ["tokens", "create", "li-tech", "--role", "technician"])
    assert created.exit_code == 0, created.output
    secret = created.stdout.strip().splitlines()[-1]
    assert secret.startswith("opt_")

    refused = await invoke(app, ["sites", "add", "county", "anxi", "--name", "Anxi"], token=secret, fleet=fleet)
    assert refused.exit_code == 1
    assert "refused (403)" in refused.output
    assert "may not manage sites" in refused.output


async def test_sites_and_gateways_from_the_terminal(fleet: str, tmp_path: Path) -> None:
    sheet = tmp_path / "sites.csv"
    sheet.write_text(
        "county_id,county_name,town_id,town_name,village_id,village_name,latitude,longitude,grid_id,grid_name\n"
        "anxi,Anxi County,hutou,Hutou Town,shiqiao,Shiqiao,25.05,118.01,g01,Grid 1\n",
        encoding="utf-8",
    )
    dry = await as_admin(fleet, ["sites", "import", str(sheet), "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "dry run: nothing changed" in dry.output
    assert (await as_admin(fleet, ["sites", "list", "village"])).output.count("\n") == 1

    imported = await as_admin(fleet, ["sites", "import", str(sheet)])
    assert imported.exit_code == 0, imported.output
    added = await invoke(
        app,
        ["gateways", "add", "gw-shiqiao-1", "--village", "shiqiao", "--name", "east gate"],
        token=ADMIN_TOKEN,
        fleet=fleet,
    )
    assert added.exit_code == 0, added.output

    villages = await as_admin(fleet, ["sites", "list", "village"])
    gateways = await as_admin(fleet, ["gateways", "list", "--village", "shiqiao"])
    assert villages.output.splitlines()[1].split() == ["shiqiao", "hutou", "Shiqiao", "25.05", "118.01"]
    header, row = gateways.output.splitlines()
    assert header.split()[:3] == ["ID", "VILLAGE_ID", "NAME"]
    assert row.split()[:2] == ["gw-shiqiao-1", "shiqiao"]

    in_use = await as_admin(fleet, ["sites", "remove", "village", "shiqiao"])
    assert in_use.exit_code == 1
    assert "refused (409)" in in_use.output


async def test_a_grid_needs_its_village_and_an_unreachable_fleet_is_named(fleet: str) -> None:
    no_village = await as_admin(fleet, ["sites", "list", "grid"])
    assert no_village.exit_code == 2
    assert "give --village" in no_village.output

    down = await invoke(app, ["sites", "list", "county"], token=ADMIN_TOKEN, fleet="http://127.0.0.1:9")
    assert down.exit_code == 2
    assert "cannot reach the fleet at http://127.0.0.1:9" in down.output


async def test_a_revoked_token_is_refused(fleet: str) -> None:
    created = await as_admin(fleet, ["tokens", "create", "duty-desk", "--role", "command_staff"])
    secret = created.stdout.strip().splitlines()[-1]
    listed = await as_admin(fleet, ["tokens", "list"])
    assert "duty-desk" in listed.output
    assert secret not in listed.output

    assert (await as_admin(fleet, ["tokens", "revoke", "duty-desk"])).exit_code == 0
    refused = await invoke(app, ["gateways", "list"], token=secret, fleet=fleet)
    assert refused.exit_code == 1
    assert "refused (401)" in refused.output


async def test_a_token_scoped_to_a_town_is_created_listed_and_kept_to_its_town(fleet: str) -> None:
    for args in (["sites", "add", "county", "anxi", "--name", "Anxi"],
                 ["sites", "add", "town", "hutou", "--parent", "anxi", "--name", "Hutou"],
                 ["sites", "add", "town", "xiping", "--parent", "anxi", "--name", "Xiping"]):  # fmt: skip
        assert (await as_admin(fleet, args)).exit_code == 0

    created = await as_admin(fleet, ["tokens", "create", "hutou-desk", "--role", "admin", "--scope", "town:hutou"])
    bad = await as_admin(fleet, ["tokens", "create", "x", "--role", "admin", "--scope", "province:zj"])
    listed = await as_admin(fleet, ["tokens", "list"])
    secret = created.stdout.strip().splitlines()[-1]
    elsewhere = await invoke(
        app, ["sites", "add", "village", "beicun", "--parent", "xiping", "--name", "Beicun"], token=secret, fleet=fleet
    )
    own = await invoke(
        app, ["sites", "add", "village", "shiqiao", "--parent", "hutou", "--name", "Shiqiao"], token=secret, fleet=fleet
    )

    assert created.exit_code == 0, created.output
    assert "for town:hutou" in created.stderr
    assert bad.exit_code == 2
    assert "--scope" in bad.output
    assert "town:hutou" in listed.stdout
    assert elsewhere.exit_code == 1
    assert "outside the scope of this token (town hutou)" in elsewhere.output
    assert own.exit_code == 0, own.output


class HeldSites(SiteStore):
    """The site store behind a gate: an import (and a county listing) waits until the test releases it."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], clock: FakeClock) -> None:
        super().__init__(sessions, clock)
        self.importing = asyncio.Event()
        self.released = asyncio.Event()

    async def import_sites(self, actor: Actor, sheet: SiteSheet, *, dry_run: bool = False) -> ImportReport:
        self.importing.set()
        await self.released.wait()
        return await super().import_sites(actor, sheet, dry_run=dry_run)

    async def counties(self) -> list[CountyRow]:
        await self.released.wait()
        return await super().counties()


SITE_LIST = (
    "county_id,county_name,town_id,town_name,village_id,village_name,latitude,longitude,grid_id,grid_name\n"
    "anxi,Anxi County,hutou,Hutou Town,shiqiao,Shiqiao,25.05,118.01,g01,Grid 1\n"
)


@pytest.mark.parametrize("token", ["", "  "])
async def test_without_a_token_the_cli_says_so_and_how_to_set_one(fleet: str, token: str) -> None:
    result = await invoke(app, ["sites", "list", "county"], token=token, fleet=fleet)

    assert result.exit_code == 2
    assert result.stderr.startswith("no API token: set OUTPOST_TOKEN or give --token")
    assert "outpost fleet tokens create" in result.stderr
    assert "Illegal header" not in result.output


async def test_a_site_list_that_is_not_utf8_or_not_csv_is_refused_by_line(fleet: str, tmp_path: Path) -> None:
    latin_1, unclosed, short = tmp_path / "latin-1.csv", tmp_path / "unclosed.csv", tmp_path / "short.csv"
    latin_1.write_bytes(SITE_LIST.replace("Shiqiao,", "Shíqiáo,").encode("latin-1"))
    unclosed.write_text(SITE_LIST.replace("Anxi County", '"Anxi County'), encoding="utf-8")
    short.write_text(SITE_LIST.removesuffix(",g01,Grid 1\n") + "\n", encoding="utf-8")

    not_utf8 = await as_admin(fleet, ["sites", "import", str(latin_1)])
    not_closed = await as_admin(fleet, ["sites", "import", str(unclosed), "--dry-run"])
    cut = await as_admin(fleet, ["sites", "import", str(short), "--dry-run"])

    assert (not_utf8.exit_code, not_closed.exit_code, cut.exit_code) == (1, 1, 1)
    assert "refused (422): the site list is not UTF-8 text: first bad byte 0xed at offset" in not_utf8.stderr
    assert "(line 2)" in not_utf8.stderr
    assert "line 2: a quoted field is never closed" in not_closed.stderr
    assert "line 2: 8 fields but 10 columns (no grid_id, grid_name)" in cut.stderr


async def test_bad_ids_are_refused_one_line_per_problem(fleet: str) -> None:
    one = await as_admin(fleet, ["gateways", "add", "Gate 1", "--village", "shiqiao"])
    two = await as_admin(fleet, ["sites", "add", "village", "Shiqiao!", "--parent", "Hu Tou", "--name", "Shiqiao"])
    in_path = await as_admin(fleet, ["config", "show", "--gateway", "GW!"])

    rule = f"not an id: {IDENTIFIER_RULE}"
    assert (one.exit_code, two.exit_code, in_path.exit_code) == (1, 1, 1)
    assert one.stderr == f"refused (422): id: {rule}\n"
    assert two.stderr == f"refused (422):\n  id: {rule}\n  town_id: {rule}\n"
    assert in_path.stderr == f"refused (422): gateway_id: {rule}\n"


async def test_a_dry_run_prints_what_it_would_create(fleet: str, tmp_path: Path) -> None:
    sheet = tmp_path / "sites.csv"
    sheet.write_text(SITE_LIST, encoding="utf-8")

    dry = await as_admin(fleet, ["sites", "import", str(sheet), "--dry-run"])

    assert dry.exit_code == 0, dry.output
    header, *rows = dry.stdout.splitlines()[1:]
    assert header.split() == ["LEVEL", "WOULD", "CREATE", "WOULD", "UPDATE", "UNCHANGED"]
    assert rows[0].split() == ["counties", "1", "0", "0"]


async def test_an_import_waits_for_the_fleet_however_long_it_takes_and_says_so(
    sessions: async_sessionmaker[AsyncSession], clock: FakeClock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A city's list takes the fleet longer than an ordinary call may wait: the import waits on."""
    monkeypatch.setattr(cli_client, "TIMEOUT_S", 0.2)  # the ordinary wait, made short
    sheet = tmp_path / "sites.csv"
    sheet.write_text(SITE_LIST, encoding="utf-8")
    sites = HeldSites(sessions, clock)
    async with served_api(replace(api_context(sessions, clock), sites=sites)) as fleet:
        importing = asyncio.create_task(as_admin(fleet, ["sites", "import", str(sheet)]))
        arrived = asyncio.create_task(sites.importing.wait())
        await asyncio.wait([importing, arrived], return_when=asyncio.FIRST_COMPLETED)
        assert arrived.done(), (await importing).output
        async with httpx.AsyncClient(base_url=fleet, headers=ADMIN, timeout=cli_client.TIMEOUT_S) as ordinary:
            with pytest.raises(httpx.ReadTimeout):  # meanwhile, an ordinary call has given up
                await ordinary.get("/counties")
        sites.released.set()
        imported = await importing

    assert imported.exit_code == 0, imported.output
    assert "waiting for the fleet to import sites.csv" in imported.stderr
    assert "1 rows" in imported.stdout


async def test_a_token_lives_as_long_as_a_duration_says(fleet: str) -> None:
    ninety_minutes = await as_admin(
        fleet, ["tokens", "create", "night-desk", "--role", "command_staff", "--ttl", "1h30m"]
    )
    old_option = await as_admin(fleet, ["tokens", "create", "day-desk", "--role", "command_staff", "--ttl-s", "3600"])
    too_short = await as_admin(fleet, ["tokens", "create", "x", "--role", "admin", "--ttl", "30s"])
    unreadable = await as_admin(fleet, ["tokens", "create", "x", "--role", "admin", "--ttl", "90 minutes"])
    both = await as_admin(fleet, ["tokens", "create", "x", "--role", "admin", "--ttl", "1h", "--ttl-s", "3600"])
    listed = {row["name"]: row for row in json.loads((await as_admin(fleet, ["tokens", "list", "--json"])).stdout)}

    assert (ninety_minutes.exit_code, old_option.exit_code) == (0, 0), ninety_minutes.output + old_option.output
    night, day = listed["night-desk"], listed["day-desk"]
    assert night["expires_ms"] - night["created_ms"] == 90 * 60_000
    assert day["expires_ms"] - day["created_ms"] == 60 * 60_000, "the old --ttl-s still works, hidden"
    assert too_short.exit_code == 2
    assert "'30s' is shorter than 1m" in words_of(too_short)
    assert unreadable.exit_code == 2
    assert "'90 minutes': unknown unit 'minutes'; use d, h, m, s or ms" in words_of(unreadable)
    assert both.exit_code == 2
    assert "give --ttl only" in words_of(both)
    assert "x" not in listed


async def test_one_verb_per_concept_and_the_old_names_still_work(fleet: str, tmp_path: Path) -> None:
    for args in (["sites", "add", "county", "anxi", "--name", "Anxi"],
                 ["sites", "add", "town", "hutou", "--parent", "anxi", "--name", "Hutou"],
                 ["sites", "add", "village", "shiqiao", "--parent", "hutou", "--name", "Shiqiao"],
                 ["gateways", "add", "gw-1", "--village", "shiqiao"]):  # fmt: skip
        assert (await as_admin(fleet, args)).exit_code == 0
    layer = tmp_path / "town.toml"
    layer.write_text("heartbeat_interval_s = 20.0\n", encoding="utf-8")

    positional = await as_admin(fleet, ["config", "set", "town", "hutou", str(layer)])
    old_file_option = await as_admin(fleet, ["config", "set", "village", "shiqiao", "--file", str(layer)])
    neither = await as_admin(fleet, ["config", "set", "village", "shiqiao"])
    shown = await as_admin(fleet, ["config", "show", "gw-1", "--tz", "UTC"])
    old_gateway_option = await as_admin(fleet, ["config", "show", "--gateway", "gw-1", "--tz", "UTC"])
    got = await as_admin(fleet, ["config", "get", "town", "hutou"])
    unset = await as_admin(fleet, ["config", "unset", "village", "shiqiao"])
    cleared = await as_admin(fleet, ["config", "clear", "town", "hutou"])

    assert positional.stdout == "set town layer hutou: 1 of 1 gateways changed\n"
    assert old_file_option.exit_code == 0, old_file_option.output
    assert neither.exit_code == 2
    assert "give the layer's FILE (or - for stdin), once" in words_of(neither)
    assert shown.exit_code == 0, shown.output
    assert "layer town hutou (by bootstrap-admin, 2023-11-14 22:13:20 UTC)" in shown.stdout
    assert old_gateway_option.stdout == shown.stdout
    assert json.loads(got.stdout) == {"heartbeat_interval_s": 20.0}
    assert unset.stdout.startswith("removed village layer shiqiao: ")
    assert cleared.stdout.startswith("removed town layer hutou: "), "clear: the name alert rules used, hidden"


async def test_enrollment_tokens_are_created_for_a_duration_listed_in_one_zone_and_revoked(fleet: str) -> None:
    for args in (["sites", "add", "county", "anxi", "--name", "Anxi"],
                 ["sites", "add", "town", "hutou", "--parent", "anxi", "--name", "Hutou"],
                 ["sites", "add", "village", "shiqiao", "--parent", "hutou", "--name", "Shiqiao"]):  # fmt: skip
        assert (await as_admin(fleet, args)).exit_code == 0

    created = [
        await as_admin(fleet, ["enrollment", "create", "--village", "shiqiao", "--ttl", ttl, "--no-qr", "--tz", "UTC"])
        for ttl in ("2h", "1d")
    ]
    too_long = await as_admin(fleet, ["enrollment", "create", "--village", "shiqiao", "--ttl", "8d"])
    listed = await as_admin(fleet, ["enrollment", "list", "--tz", "UTC"])
    first, second = (row.split()[0] for row in listed.stdout.splitlines()[1:])
    revoked = await as_admin(fleet, ["enrollment", "revoke", first])
    old_name = await as_admin(fleet, ["enrollment", "revoke-token", second])
    left = await as_admin(fleet, ["enrollment", "list", "--json"])

    assert [result.exit_code for result in created] == [0, 0], created[0].output
    assert "valid until 2023-11-15 00:13:20 UTC" in created[0].stderr, "two hours after the fake clock's now"
    assert created[0].stdout.strip().startswith("outpost-enroll:1?")
    assert too_long.exit_code == 2
    assert "'8d' is longer than 7d" in words_of(too_long)
    assert "2023-11-15 22:13:20 UTC" in listed.stdout
    assert revoked.stdout == f"revoked enrollment token {first}\n"
    assert old_name.stdout == f"revoked enrollment token {second}\n"
    assert json.loads(left.stdout) == []
