"""``outpost fleet sites|gateways|tokens`` against the fleet's API served over real HTTP."""

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from typer.testing import Result

from fleet.cli import app
from tests.fleet.api_client import ADMIN_TOKEN, api_context
from tests.fleet.helpers import FakeClock
from tests.fleet.served_api import invoke, served_api


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
