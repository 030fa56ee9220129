"""Bulk import of a site list (CSV): all or nothing, idempotent, with problems reported by line."""

import logging
from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from fleet.sites.csv_import import SheetError, parse_sites
from tests.fleet.api_client import api_client, api_context
from tests.fleet.helpers import FakeClock

SHEET = """\ufeffcounty_id,county_name,town_id,town_name,village_id,village_name,latitude,longitude,grid_id,grid_name
anxi,Anxi County,hutou,Hutou Town,shiqiao,Shiqiao,25.05,118.01,g01,Grid 1
anxi,Anxi County,hutou,Hutou Town,shiqiao,Shiqiao,25.05,118.01,g02,Grid 2
anxi,Anxi County,hutou,Hutou Town,dongcun,Dongcun,,,,
anxi,Anxi County,xiping,Xiping Town,,,,,,
"""


@pytest.fixture
async def admin(any_sessions: async_sessionmaker[AsyncSession], clock: FakeClock) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(api_context(any_sessions, clock)) as client:
        yield client


async def _import(admin: httpx.AsyncClient, sheet: str, **params: str) -> httpx.Response:
    return await admin.post(
        "/sites/import", content=sheet.encode(), headers={"Content-Type": "text/csv"}, params=params
    )


async def test_a_site_list_creates_the_hierarchy_and_a_second_import_changes_nothing(admin: httpx.AsyncClient) -> None:
    first = (await _import(admin, SHEET)).json()
    second = (await _import(admin, SHEET)).json()

    assert first["rows"] == 4
    assert [first[level]["created"] for level in ("counties", "towns", "villages", "grids")] == [1, 2, 2, 2]
    assert [second[level]["unchanged"] for level in ("counties", "towns", "villages", "grids")] == [1, 2, 2, 2]
    assert {v["id"]: v["latitude"] for v in (await admin.get("/villages")).json()} == {
        "shiqiao": 25.05,
        "dongcun": None,
    }


async def test_an_import_updates_what_differs_and_keeps_what_the_sheet_leaves_empty(admin: httpx.AsyncClient) -> None:
    await _import(admin, SHEET)
    update = "county_id,town_id,village_id,village_name\nanxi,xiping,shiqiao,Shiqiao Village\n"

    report = (await _import(admin, update)).json()

    assert report["villages"] == {"created": 0, "updated": 1, "unchanged": 0}
    village = (await admin.get("/villages/shiqiao")).json()
    assert (village["town_id"], village["name"], village["latitude"]) == ("xiping", "Shiqiao Village", 25.05)
    assert (await admin.get("/counties/anxi")).json()["name"] == "Anxi County"  # unnamed in the sheet: kept


async def test_a_dry_run_reports_and_changes_nothing(admin: httpx.AsyncClient) -> None:
    report = (await _import(admin, SHEET, dry_run="true")).json()

    assert report["dry_run"] is True
    assert report["grids"]["created"] == 2
    assert (await admin.get("/counties")).json() == []


async def test_a_sheet_with_any_bad_row_imports_nothing_and_names_each_line(admin: httpx.AsyncClient) -> None:
    bad = SHEET + "anxi,Anxi County,hutou,Other Name,,,,,,\nAnxi!,x,,,,,,,,\nanxi,,,,bad-village,,,,,\n"

    response = await _import(admin, bad)

    assert response.status_code == 422
    detail = response.json()["detail"]
    assert "line 6: hutou is described differently" in detail
    assert "line 7: county id" in detail
    assert "line 8: village_id given without town_id" in detail
    assert (await admin.get("/counties")).json() == []


def test_unknown_and_missing_columns_are_reported_before_any_row() -> None:
    with pytest.raises(SheetError) as caught:
        parse_sites("town_id,colour\nhutou,red\n")

    assert caught.value.problems == [
        "line 1: missing column 'county_id'",
        "line 1: unknown column 'colour' (known: county_id, county_name, town_id, town_name, village_id, "
        "village_name, latitude, longitude, grid_id, grid_name)",
    ]


def test_coordinates_out_of_range_and_half_given_are_refused() -> None:
    with pytest.raises(SheetError) as caught:
        parse_sites("county_id,town_id,village_id,latitude,longitude\na,t,v1,91,10\na,t,v2,10,\n")

    assert caught.value.problems[0].startswith("line 2: village latitude")
    assert "line 3: village" in caught.value.problems[1]
    assert "both latitude and longitude" in caught.value.problems[1]


async def test_a_site_list_that_is_not_utf8_is_refused_naming_its_first_bad_byte(admin: httpx.AsyncClient) -> None:
    latin_1 = "county_id,county_name\nanxi,Anxï County\n".encode("latin-1")  # a spreadsheet's "CSV" on Windows
    binary = bytes(range(256))

    latin = await admin.post("/sites/import", content=latin_1, headers={"Content-Type": "text/csv"})
    garbage = await admin.post("/sites/import", content=binary, headers={"Content-Type": "application/octet-stream"})

    assert (latin.status_code, garbage.status_code) == (422, 422)
    assert latin.json()["detail"].startswith(
        f"the site list is not UTF-8 text: first bad byte 0xef at offset {latin_1.index(0xEF)} (line 2)"
    )
    assert garbage.json()["detail"].startswith(
        "the site list is not UTF-8 text: first bad byte 0x80 at offset 128 (line 2)"
    )
    assert "Anx" not in latin.text, "the list is never echoed"
    assert (await admin.get("/counties")).json() == []


async def test_an_unclosed_quote_or_a_short_row_imports_nothing_and_names_the_line(admin: httpx.AsyncClient) -> None:
    unclosed = 'county_id,county_name,town_id\nanxi,Anxi,hutou\nanxi,"Anxi County,xiping\nanxi,Anxi,dongcun\n'
    short = "county_id,county_name,town_id,town_name\nanxi,Anxi,hutou,Hutou\nanxi,Anxi\n"

    quoted = await _import(admin, unclosed)
    cut = await _import(admin, short)

    assert (quoted.status_code, cut.status_code) == (422, 422)
    assert "line 3: a quoted field is never closed" in quoted.json()["detail"]
    assert "line 3: 2 fields but 4 columns (no town_id, town_name)" in cut.json()["detail"]
    assert (await admin.get("/counties")).json() == []


def test_every_row_must_have_a_cell_for_each_column_and_blank_lines_are_skipped() -> None:
    sheet = (
        "county_id,county_name,town_id,town_name\nanxi,Anxi,hutou,Hutou\n\n,,\nanxi,Anxi\nanxi,Anxi,xiping,Xiping,x\n"
    )

    with pytest.raises(SheetError) as caught:
        parse_sites(sheet)

    assert caught.value.problems == [
        "line 5: 2 fields but 4 columns (no town_id, town_name): give each column a cell, an empty one if need be",
        "line 6: 5 fields but 4 columns",
    ]


def test_a_quote_that_is_never_closed_is_refused_at_the_line_it_opens() -> None:
    with pytest.raises(SheetError) as caught:
        parse_sites('county_id,county_name\nanxi,Anxi\nlishui,"Lishui\nyunhe,Yunhe\n')
    with pytest.raises(SheetError) as stray:
        parse_sites('county_id,county_name\nanxi,"Anxi" County\n')

    assert caught.value.problems == [
        'line 3: a quoted field is never closed (its " runs on to the end of the list, line 4)'
    ]
    assert stray.value.problems[0].startswith("line 2: not CSV")


async def test_a_dry_run_says_what_it_would_create_in_one_line(
    admin: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="fleet")

    await _import(admin, SHEET, dry_run="true")

    lines = [record.getMessage() for record in caplog.records if record.name.startswith("fleet.sites")]
    assert len(lines) == 1, lines
    assert "dry run" in lines[0]
    assert "would create 1 county, 2 towns, 2 villages, 2 grids" in lines[0]
    assert not any(" created " in line for line in lines)


async def test_an_import_logs_its_counts_once_and_each_site_at_debug(
    admin: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="fleet")

    await _import(admin, SHEET)

    info = [record.getMessage() for record in caplog.records if record.levelno >= logging.INFO]
    debug = [record.getMessage() for record in caplog.records if record.levelno == logging.DEBUG]
    summaries = [line for line in info if "site rows" in line]
    assert len(summaries) == 1, info
    assert "created 1 county, 2 towns, 2 villages, 2 grids" in summaries[0]
    assert not any("created county" in line for line in info)
    assert any("created county anxi" in line for line in debug)
