"""Reading a site list (CSV) into the county → town → village → grid hierarchy it describes.

One row per grid, or per village, town or county with the lower columns left empty::

    county_id,county_name,town_id,town_name,village_id,village_name,latitude,longitude,grid_id,grid_name
    anxi,Anxi County,hutou,Hutou Town,shiqiao,Shiqiao Village,25.05,118.01,g01,Grid 1

Columns may come in any order; ``*_name``, ``latitude``/``longitude`` and the grid columns are
optional. The file is UTF-8 (a byte-order mark from a spreadsheet is fine). A site named on
several rows must be described the same way on each. Every problem is reported with its line
number, and a sheet with any problem is not imported at all.
"""

import asyncio
import csv
import io
from collections.abc import Generator, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, TypeVar

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from fleet.errors import InvalidRequestError
from fleet.sites.schemas import CountySpec, GridSpec, TownSpec, VillageSpec

REQUIRED_COLUMNS: Final = ("county_id",)
KNOWN_COLUMNS: Final = (
    "county_id",
    "county_name",
    "town_id",
    "town_name",
    "village_id",
    "village_name",
    "latitude",
    "longitude",
    "grid_id",
    "grid_name",
)
MAX_ROWS: Final = 100_000
MAX_ERRORS_SHOWN: Final = 50


_Spec = TypeVar("_Spec", bound=BaseModel)
_Key = TypeVar("_Key", str, tuple[str, str])


class SheetError(InvalidRequestError):
    """The sheet has problems; ``problems`` lists each as ``line N: what``."""

    def __init__(self, problems: list[str]) -> None:
        shown = problems[:MAX_ERRORS_SHOWN]
        more = f" (and {len(problems) - len(shown)} more)" if len(problems) > len(shown) else ""
        counted = "1 problem" if len(problems) == 1 else f"{len(problems)} problems"
        super().__init__(f"{counted} in the site list{more}: " + "; ".join(shown))
        self.problems = problems


@dataclass(slots=True)
class SiteSheet:
    """The sites a sheet describes, each once, in the order first named."""

    counties: dict[str, CountySpec] = field(default_factory=dict)
    towns: dict[str, TownSpec] = field(default_factory=dict)
    villages: dict[str, VillageSpec] = field(default_factory=dict)
    grids: dict[tuple[str, str], GridSpec] = field(default_factory=dict)
    unnamed: set[tuple[str, str | tuple[str, str]]] = field(default_factory=set)  # (level, key): name left empty
    rows: int = 0

    def named(self, level: str, key: str | tuple[str, str]) -> bool:
        """Whether the sheet gave this site a name (an unnamed new site is named by its id)."""
        return (level, key) not in self.unnamed


def decode_sheet(data: bytes) -> str:
    """The text of a site list as sent; :class:`~fleet.errors.InvalidRequestError` if it is not UTF-8, saying where
    it goes wrong (never quoting it: it may be anything)."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise InvalidRequestError(
            f"the site list is not UTF-8 text: first bad byte 0x{data[exc.start]:02x} at offset {exc.start} "
            f"(line {line}); save it as UTF-8 (in a spreadsheet: CSV UTF-8)"
        ) from None


def parse_sites(text: str) -> SiteSheet:
    """The hierarchy in ``text``; raises :class:`SheetError` listing every problem found."""
    steps = _parse_in_steps(text)
    while True:
        try:
            next(steps)
        except StopIteration as done:
            sheet: SiteSheet = done.value
            return sheet


async def parse_sites_cooperatively(text: str) -> SiteSheet:
    """:func:`parse_sites` on the event loop, handing it back every :data:`ROWS_PER_STEP` rows: a list of
    thousands of rows (~35 µs each) would otherwise hold every alert behind it. (In a thread it is worse:
    the loop then waits for the GIL at each of an alert's many steps.)"""
    steps = _parse_in_steps(text)
    while True:
        try:
            next(steps)
        except StopIteration as done:
            sheet: SiteSheet = done.value
            return sheet
        await asyncio.sleep(0)


ROWS_PER_STEP: Final = 200


def _parse_in_steps(text: str) -> Generator[None, None, SiteSheet]:
    """Parse ``text``, yielding every :data:`ROWS_PER_STEP` rows; returns the sheet or raises SheetError."""
    reader = csv.DictReader(io.StringIO(text.removeprefix("\ufeff")), strict=True)
    sheet = SiteSheet()
    problems: list[str] = []
    ended = 0  # the line the last row read ends on
    try:
        _check_header(reader)
        ended = reader.line_num
        for row in reader:
            sheet.rows += 1
            if sheet.rows > MAX_ROWS:
                raise SheetError([f"line {reader.line_num}: more than {MAX_ROWS} rows; split the list"])
            problems += [f"line {reader.line_num}: {problem}" for problem in _read_line(sheet, row)]
            ended = reader.line_num
            if sheet.rows % ROWS_PER_STEP == 0:
                yield
    except csv.Error as exc:
        problems.append(_not_csv(exc, ended + 1, reader.reader.line_num))
    if problems:
        raise SheetError(problems)
    return sheet


def _not_csv(error: csv.Error, first: int, last: int) -> str:
    """The reader's refusal of the row from line ``first`` (it read up to line ``last``)."""
    if str(error) == "unexpected end of data":  # strict mode: a quoted field ran on to the end
        return f'line {first}: a quoted field is never closed (its " runs on to the end of the list, line {last})'
    return f"line {last}: not CSV ({error})"


def _check_header(reader: "csv.DictReader[str]") -> None:
    header = [name.strip() for name in reader.fieldnames or []]
    missing = [name for name in REQUIRED_COLUMNS if name not in header]
    unknown = [name for name in header if name not in KNOWN_COLUMNS]
    if missing or unknown:
        raise SheetError(
            [f"line 1: missing column {name!r}" for name in missing]
            + [f"line 1: unknown column {name!r} (known: {', '.join(KNOWN_COLUMNS)})" for name in unknown]
        )
    reader.fieldnames = header


def _read_line(sheet: SiteSheet, row: dict[str | Any, str | Any]) -> list[str]:
    """The problems of one row; a row of empty cells (a blank line) is skipped. Every row has a cell for each
    column, empty or not: a row missing its last cells is more likely cut short than meant that way."""
    if None in row:  # DictReader keeps the fields past the header's under the key None
        return [f"{len(row) - 1 + len(row[None])} fields but {len(row) - 1} columns"]
    cells = {str(name): (value or "").strip() for name, value in row.items()}
    if not any(cells.values()):
        return []
    missing = [str(name) for name, value in row.items() if value is None]  # DictReader's filler: no such cell
    if missing:
        return [
            f"{len(row) - len(missing)} fields but {len(row)} columns (no {', '.join(missing)}): "
            "give each column a cell, an empty one if need be"
        ]
    return _read_row(sheet, cells)


def _read_row(sheet: SiteSheet, cells: dict[str, str]) -> list[str]:
    problems = [
        f"{level}_id given without {parent}_id"
        for level, parent in (("town", "county"), ("village", "town"), ("grid", "village"))
        if cells.get(f"{level}_id") and not cells.get(f"{parent}_id")
    ]
    if problems:
        return problems
    for level, key, model, values in _sites_of(cells):
        name = cells.get(f"{level}_name")
        if not name:
            sheet.unnamed.add((level, key))
        _note(getattr(sheet, _PLURAL[level]), key, model, {**values, "name": name or values["id"]}, problems)
    return problems


def _sites_of(cells: dict[str, str]) -> Iterator[tuple[str, str | tuple[str, str], type[BaseModel], dict[str, str]]]:
    """Each site a row names, from the county down: its level, key, model and values (without its name)."""
    county_id, town_id, village_id, grid_id = (cells.get(f"{level}_id", "") for level in _LEVELS)
    yield "county", county_id, CountySpec, {"id": county_id}
    if town_id:
        yield "town", town_id, TownSpec, {"id": town_id, "county_id": county_id}
    if village_id:
        village = {"id": village_id, "town_id": town_id}
        village.update({name: cells[name] for name in ("latitude", "longitude") if cells.get(name)})
        yield "village", village_id, VillageSpec, village
    if grid_id:
        yield "grid", (village_id, grid_id), GridSpec, {"id": grid_id}


def _note(
    known: dict[_Key, _Spec], key: _Key, model: type[_Spec], values: Mapping[str, object], problems: list[str]
) -> None:
    """Validate one site of a row and add it to ``known``, or say why not."""
    try:
        spec = model.model_validate(values)
    except ValidationError as exc:
        level = model.__name__.removesuffix("Spec").lower()
        problems.extend(f"{level} {_where(error)}: {error['msg']}" for error in exc.errors())
        return
    previous = known.setdefault(key, spec)
    if previous != spec:
        problems.append(f"{key} is described differently on an earlier line ({_difference(previous, spec)})")


_LEVELS: Final = ("county", "town", "village", "grid")
_PLURAL: Final = {"county": "counties", "town": "towns", "village": "villages", "grid": "grids"}


def _where(error: ErrorDetails) -> str:
    return ".".join(str(part) for part in error["loc"]) or "row"


def _difference(earlier: BaseModel, later: BaseModel) -> str:
    before, after = earlier.model_dump(), later.model_dump()
    return ", ".join(f"{name}: {before[name]!r} then {after[name]!r}" for name in before if before[name] != after[name])
