"""The alert-step watermark's file: kept atomically, and a missing or damaged one means "from the beginning"."""

from pathlib import Path

import pytest

from fleet.state_export.series_point import series_point
from fleet.state_export.watermark import BEGINNING, Watermark, WatermarkFile, default_watermark_path
from protocol.series import DELIVERIES


async def test_a_kept_watermark_reads_back(tmp_path: Path) -> None:
    file = WatermarkFile(tmp_path / "deep" / "mark.json")
    assert await file.load() == BEGINNING
    assert await file.save(Watermark(42, "a1", 1_700_000_000_000))
    assert await WatermarkFile(tmp_path / "deep" / "mark.json").load() == Watermark(42, "a1", 1_700_000_000_000)
    assert not (tmp_path / "deep" / "mark.json.tmp").exists()


@pytest.mark.parametrize("content", ["{not json", "[1, 2]", '{"transition_id": -3}', '{"id": 4}'])
async def test_a_damaged_watermark_means_from_the_beginning(tmp_path: Path, content: str) -> None:
    (tmp_path / "mark.json").write_text(content)
    assert await WatermarkFile(tmp_path / "mark.json").load() == BEGINNING


async def test_a_watermark_that_cannot_be_kept_is_reported_not_raised(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("")
    assert not await WatermarkFile(tmp_path / "a-file" / "mark.json").save(Watermark(1, "a1", 1))


def test_the_default_place_is_beside_a_sqlite_database() -> None:
    assert default_watermark_path("sqlite+aiosqlite:////var/lib/outpost/fleet.db") == Path(
        "/var/lib/outpost/outpost-state-export.json"
    )
    assert default_watermark_path("postgresql+asyncpg://outpost@db/outpost") == Path("outpost-state-export.json")


def test_a_point_with_a_name_the_series_do_not_agree_is_refused() -> None:
    assert series_point(DELIVERIES, {"channel": "webhook", "state": ""}, {"count": 1}, 5).tags == (
        ("channel", "webhook"),
        ("state", "unassigned"),
    )
    with pytest.raises(ValueError, match="no tag 'village'"):
        series_point(DELIVERIES, {"village": "xihe"}, {"count": 1}, 5)
    with pytest.raises(ValueError, match="no field 'total'"):
        series_point(DELIVERIES, {"channel": "webhook"}, {"total": 1}, 5)
