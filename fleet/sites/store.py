"""The site hierarchy in the fleet database: counties, towns, villages and grids.

Every change runs in one transaction with its audit entry. A parent must exist before its
children; removing something that still has children, or that gateways or alerts refer to, is
refused with :class:`~fleet.errors.ConflictError` naming what is in the way.
"""

import asyncio
import logging
from collections.abc import Callable
from typing import Any, Final, cast

from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from fleet.access.roles import Actor
from fleet.db.in_lists import in_chunks
from fleet.db.schema import AlertRow, Base, CountyRow, GatewayRow, GridRow, TownRow, VillageRow
from fleet.errors import ConflictError, DataIntegrityError, NotFoundError
from fleet.sites.csv_import import SiteSheet
from fleet.sites.records import Records, refuse_if_used, require
from fleet.sites.schemas import (
    CountyPatch,
    CountySpec,
    GridPatch,
    GridSpec,
    ImportReport,
    TownPatch,
    TownSpec,
    VillagePatch,
    VillageSpec,
)

logger = logging.getLogger(__name__)

_ROWS: Final[dict[str, type[Base]]] = {"county": CountyRow, "town": TownRow, "village": VillageRow, "grid": GridRow}


IMPORT_CHUNK: Final = 50
"""Sites written per transaction by an import."""
_CHUNK_ATTEMPTS: Final = 3
IMPORT_PAUSE_S: Final = 0.02
"""Between an import's transactions: writers that waited for the last one (an alert's) go first."""
_PLURAL: Final = {"county": "counties", "town": "towns", "village": "villages", "grid": "grids"}
_Site = tuple[str, str | tuple[str, str], BaseModel]


class SiteStore:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], clock: Callable[[], int]) -> None:
        self._records = Records(sessions, clock)
        self._clock = clock

    # --- reading ------------------------------------------------------------------------------

    async def counties(self) -> list[CountyRow]:
        return await self._records.all(select(CountyRow).order_by(CountyRow.id), "list counties")

    async def towns(self, county_id: str | None = None) -> list[TownRow]:
        query = select(TownRow).order_by(TownRow.county_id, TownRow.id)
        if county_id is not None:
            query = query.where(TownRow.county_id == county_id)
        return await self._records.all(query, "list towns")

    async def villages(
        self, *, town_id: str | None = None, county_id: str | None = None, unplaced: bool = False
    ) -> list[VillageRow]:
        """Villages of a town, of a county, or all; ``unplaced``: only those not yet in any town."""
        query = select(VillageRow).order_by(VillageRow.town_id, VillageRow.id)
        if unplaced:
            query = query.where(VillageRow.town_id.is_(None))
        if town_id is not None:
            query = query.where(VillageRow.town_id == town_id)
        if county_id is not None:
            query = query.join(TownRow, TownRow.id == VillageRow.town_id).where(TownRow.county_id == county_id)
        return await self._records.all(query, "list villages")

    async def grids(self, village_id: str) -> list[GridRow]:
        async with self._records.read(f"list the grids of village {village_id}") as session:
            await require(session, VillageRow, village_id, f"village {village_id!r}")
            return list((await session.scalars(select(GridRow).where(GridRow.village_id == village_id))).all())

    async def county(self, county_id: str) -> CountyRow:
        async with self._records.read(f"read county {county_id}") as session:
            return await require(session, CountyRow, county_id, f"county {county_id!r}")

    async def town(self, town_id: str) -> TownRow:
        async with self._records.read(f"read town {town_id}") as session:
            return await require(session, TownRow, town_id, f"town {town_id!r}")

    async def village(self, village_id: str) -> VillageRow:
        async with self._records.read(f"read village {village_id}") as session:
            return await require(session, VillageRow, village_id, f"village {village_id!r}")

    async def grid(self, village_id: str, grid_id: str) -> GridRow:
        async with self._records.read(f"read grid {grid_id}") as session:
            return await require(session, GridRow, (village_id, grid_id), _grid_label(village_id, grid_id))

    # --- bulk import ------------------------------------------------------------------------

    async def import_sites(self, actor: Actor, sheet: SiteSheet, *, dry_run: bool = False) -> ImportReport:
        """Create what ``sheet`` names and is missing, update what differs.

        Every parent is checked first (a county, town or village the sheet names must be in the sheet or
        the database), so nothing is written unless all of it can be. Then the sites are written parents
        first, :data:`IMPORT_CHUNK` to a transaction, with a pause between transactions: a big import holds
        the database's write lock (SQLite) or its new rows' locks (PostgreSQL) for one chunk at a time, and
        an alert arriving meanwhile waits for one chunk, never for the whole import. A chunk that fails
        leaves the ones before it written; importing the same list again completes it (an import is
        idempotent). With ``dry_run`` everything runs in one transaction that is rolled back, and the
        report says what would change. A site the sheet leaves unnamed keeps its name; coordinates left
        empty are kept too."""
        report = ImportReport(rows=sheet.rows, dry_run=dry_run)
        async with self._records.read(f"check the parents of {sheet.rows} site rows") as session:
            await _check_parents(session, sheet)
        sites = _parents_first(sheet)
        chunks = [sites[start : start + IMPORT_CHUNK] for start in range(0, len(sites), IMPORT_CHUNK)]
        if dry_run:
            async with self._records.transaction(f"import {sheet.rows} site rows", commit=False) as session:
                for chunk in chunks:
                    await self._import_chunk(session, actor, sheet, chunk, report)
            logger.info("%s checked %d site rows (dry run, nothing changed): %s", actor.name, sheet.rows, _told(report))
            return report
        for number, chunk in enumerate(chunks, 1):
            await self._write_chunk(actor, sheet, chunk, report, f"import part {number} of {len(chunks)}")
            if number < len(chunks):
                await asyncio.sleep(IMPORT_PAUSE_S)
        logger.info("%s imported %d site rows: %s", actor.name, sheet.rows, _told(report))
        return report

    async def _write_chunk(
        self, actor: Actor, sheet: SiteSheet, chunk: list[_Site], report: ImportReport, what: str
    ) -> None:
        """Write ``chunk`` in a transaction of its own. A gateway's first message may register its village
        between the chunk's read and its insert (a duplicate key): the chunk is then written again, and reads
        that village as existing."""
        for attempt in range(1, _CHUNK_ATTEMPTS + 1):
            tally = report.model_copy(deep=True)
            try:
                async with self._records.write(what) as session:
                    await self._import_chunk(session, actor, sheet, chunk, tally)
            except DataIntegrityError:
                if attempt == _CHUNK_ATTEMPTS:
                    raise
                logger.info("%s met a site created meanwhile; writing it again", what)
                continue
            for level in _PLURAL.values():
                setattr(report, level, getattr(tally, level))
            return

    async def _import_chunk(
        self, session: AsyncSession, actor: Actor, sheet: SiteSheet, chunk: list[_Site], report: ImportReport
    ) -> None:
        """Write ``chunk`` in ``session``: the rows it names that exist are read in one query per level."""
        existing: dict[tuple[str, str | tuple[str, str]], Base] = {}
        for level in _ROWS:
            keys = [key for site_level, key, _ in chunk if site_level == level]
            if keys:
                existing.update(((level, key), row) for key, row in (await _rows(session, level, keys)).items())
        previous_level = None
        for level, key, spec in chunk:
            if level != previous_level:  # parents are written before their children: the database checks them
                await session.flush()
                previous_level = level
            tally = getattr(report, _PLURAL[level])
            cls = _ROWS[level]
            values = spec.model_dump(exclude_unset=True)
            label = key if isinstance(key, str) else "/".join(key)
            if isinstance(key, tuple):
                values["village_id"] = key[0]
            row = existing.get((level, key))
            if row is None:
                stamp = "first_seen_ms" if cls is VillageRow else "created_ms"
                created = cls(**values, **{stamp: self._clock()})
                self._records.add_new(session, actor, created, level, label, logged=False)
                logger.debug("%s %s %s %s", actor.name, "would create" if report.dry_run else "created", level, label)
                tally.created += 1
                continue
            if not sheet.named(level, key):
                values.pop("name", None)
            if self._records.change(session, actor, row, level, label, values, logged=False):
                logger.debug("%s %s %s %s", actor.name, "would update" if report.dry_run else "updated", level, label)
                tally.updated += 1
            else:
                tally.unchanged += 1
        await session.flush()

    # --- changing -----------------------------------------------------------------------------

    async def create_county(self, actor: Actor, spec: CountySpec) -> CountyRow:
        async with self._records.write(f"create county {spec.id}") as session:
            row = CountyRow(id=spec.id, name=spec.name, created_ms=self._clock())
            await self._records.add(session, actor, row, "county", spec.id)
        return row

    async def update_county(self, actor: Actor, county_id: str, patch: CountyPatch) -> CountyRow:
        async with self._records.write(f"update county {county_id}") as session:
            row = await require(session, CountyRow, county_id, f"county {county_id!r}")
            self._records.change(session, actor, row, "county", county_id, patch.changes())
        return row

    async def delete_county(self, actor: Actor, county_id: str) -> None:
        async with self._records.write(f"remove county {county_id}") as session:
            row = await require(session, CountyRow, county_id, f"county {county_id!r}")
            await refuse_if_used(
                session, f"county {county_id!r}", county_id, [(TownRow, lambda k: TownRow.county_id == k, "towns")]
            )
            await self._records.remove(session, actor, row, "county", county_id)
            await self._records.remove_config_layer(session, actor, "county", county_id)

    async def create_town(self, actor: Actor, spec: TownSpec) -> TownRow:
        async with self._records.write(f"create town {spec.id}") as session:
            await require(session, CountyRow, spec.county_id, f"county {spec.county_id!r}")
            row = TownRow(id=spec.id, county_id=spec.county_id, name=spec.name, created_ms=self._clock())
            await self._records.add(session, actor, row, "town", spec.id)
        return row

    async def update_town(self, actor: Actor, town_id: str, patch: TownPatch) -> TownRow:
        changes = patch.changes()
        async with self._records.write(f"update town {town_id}") as session:
            row = await require(session, TownRow, town_id, f"town {town_id!r}")
            if changes.get("county_id") is not None:
                await require(session, CountyRow, changes["county_id"], f"county {changes['county_id']!r}")
            self._records.change(session, actor, row, "town", town_id, changes)
        return row

    async def delete_town(self, actor: Actor, town_id: str) -> None:
        async with self._records.write(f"remove town {town_id}") as session:
            row = await require(session, TownRow, town_id, f"town {town_id!r}")
            await refuse_if_used(
                session, f"town {town_id!r}", town_id, [(VillageRow, lambda k: VillageRow.town_id == k, "villages")]
            )
            await self._records.remove(session, actor, row, "town", town_id)
            await self._records.remove_config_layer(session, actor, "town", town_id)

    async def create_village(self, actor: Actor, spec: VillageSpec) -> VillageRow:
        async with self._records.write(f"create village {spec.id}") as session:
            await require(session, TownRow, spec.town_id, f"town {spec.town_id!r}")
            existing = await session.get(VillageRow, spec.id)
            if existing is not None and existing.town_id is None:
                # Heard of from a gateway before anyone placed it: placing it is an update.
                self._records.change(session, actor, existing, "village", spec.id, spec.model_dump(exclude={"id"}))
                return existing
            row = VillageRow(
                id=spec.id,
                town_id=spec.town_id,
                name=spec.name,
                latitude=spec.latitude,
                longitude=spec.longitude,
                first_seen_ms=self._clock(),
            )
            await self._records.add(session, actor, row, "village", spec.id)
        return row

    async def update_village(self, actor: Actor, village_id: str, patch: VillagePatch) -> VillageRow:
        changes = patch.changes()
        async with self._records.write(f"update village {village_id}") as session:
            row = await require(session, VillageRow, village_id, f"village {village_id!r}")
            if changes.get("town_id") is not None:
                await require(session, TownRow, changes["town_id"], f"town {changes['town_id']!r}")
            self._records.change(session, actor, row, "village", village_id, changes)
            if (row.latitude is None) != (row.longitude is None):
                raise ConflictError(f"village {village_id!r} would have only one of latitude and longitude")
        return row

    async def delete_village(self, actor: Actor, village_id: str) -> None:
        async with self._records.write(f"remove village {village_id}") as session:
            row = await require(session, VillageRow, village_id, f"village {village_id!r}")
            await refuse_if_used(
                session,
                f"village {village_id!r}",
                village_id,
                [
                    (GatewayRow, lambda k: GatewayRow.village_id == k, "gateways"),
                    (GridRow, lambda k: GridRow.village_id == k, "grids"),
                    (AlertRow, lambda k: AlertRow.village_id == k, "alerts on record"),
                ],
            )
            await self._records.remove(session, actor, row, "village", village_id)
            await self._records.remove_config_layer(session, actor, "village", village_id)

    async def create_grid(self, actor: Actor, village_id: str, spec: GridSpec) -> GridRow:
        async with self._records.write(f"create grid {spec.id}") as session:
            await require(session, VillageRow, village_id, f"village {village_id!r}")
            row = GridRow(village_id=village_id, id=spec.id, name=spec.name, created_ms=self._clock())
            await self._records.add(session, actor, row, "grid", f"{village_id}/{spec.id}")
        return row

    async def update_grid(self, actor: Actor, village_id: str, grid_id: str, patch: GridPatch) -> GridRow:
        async with self._records.write(f"update grid {grid_id}") as session:
            row = await require(session, GridRow, (village_id, grid_id), _grid_label(village_id, grid_id))
            self._records.change(session, actor, row, "grid", f"{village_id}/{grid_id}", patch.changes())
        return row

    async def delete_grid(self, actor: Actor, village_id: str, grid_id: str) -> None:
        async with self._records.write(f"remove grid {grid_id}") as session:
            row = await require(session, GridRow, (village_id, grid_id), _grid_label(village_id, grid_id))
            await self._records.remove(session, actor, row, "grid", f"{village_id}/{grid_id}")


def _told(report: ImportReport) -> str:
    """An import's counts in a line: ``created 1 county, 20 villages; updated no site; 3 grids unchanged`` (``would
    create``, ``would update`` for a dry run)."""
    created, updated = ("would create", "would update") if report.dry_run else ("created", "updated")
    counts = {outcome: _counts(report, outcome) for outcome in ("created", "updated", "unchanged")}
    return f"{created} {counts['created']}; {updated} {counts['updated']}; {counts['unchanged']} unchanged"


def _counts(report: ImportReport, outcome: str) -> str:
    """``1 county, 20 villages`` (levels with none left out), or ``no site``: how many sites had ``outcome``."""
    counts = [(getattr(getattr(report, plural), outcome), level, plural) for level, plural in _PLURAL.items()]
    return ", ".join(f"{n} {level if n == 1 else plural}" for n, level, plural in counts if n) or "no site"


def _grid_label(village_id: str, grid_id: str) -> str:
    return f"grid {grid_id!r} in village {village_id!r}"


def _parents_first(sheet: SiteSheet) -> list[_Site]:
    """Every site of ``sheet`` as (level, key, spec), counties first, grids last."""
    return [
        *(("county", key, spec) for key, spec in sheet.counties.items()),
        *(("town", key, spec) for key, spec in sheet.towns.items()),
        *(("village", key, spec) for key, spec in sheet.villages.items()),
        *(("grid", key, spec) for key, spec in sheet.grids.items()),
    ]


async def _rows(session: AsyncSession, level: str, keys: list[str | tuple[str, str]]) -> dict[Any, Base]:
    """The rows of ``level`` with these keys that exist, by key (grids are keyed by village and grid id)."""
    found: dict[Any, Base] = {}
    if level == "grid":
        by_village: dict[str, set[str]] = {}
        for key in keys:
            assert isinstance(key, tuple)
            by_village.setdefault(key[0], set()).add(key[1])
        for villages in in_chunks(sorted(by_village)):
            grids = await session.scalars(select(GridRow).where(GridRow.village_id.in_(villages)))
            found.update(((g.village_id, g.id), g) for g in grids if g.id in by_village[g.village_id])
        return found
    cls = _ROWS[level]
    ids = cast(Any, cls).id
    for part in in_chunks([key for key in keys if isinstance(key, str)]):
        found.update((cast(Any, row).id, row) for row in await session.scalars(select(cls).where(ids.in_(part))))
    return found


async def _check_parents(session: AsyncSession, sheet: SiteSheet) -> None:
    """Refuse the sheet (:class:`NotFoundError`) if a site's parent is neither in it nor in the database."""
    wanted = (
        ("county", CountyRow, {town.county_id for town in sheet.towns.values()} - set(sheet.counties)),
        ("town", TownRow, {village.town_id for village in sheet.villages.values()} - set(sheet.towns)),
        ("village", VillageRow, {village_id for village_id, _ in sheet.grids} - set(sheet.villages)),
    )
    for label, cls, ids in wanted:
        held: set[str] = set()
        for part in in_chunks(sorted(ids)):
            held.update(await session.scalars(select(cast(Any, cls).id).where(cast(Any, cls).id.in_(part))))
        missing = sorted(ids - held)
        if missing:
            raise NotFoundError(f"no {label} {missing[0]!r}")
