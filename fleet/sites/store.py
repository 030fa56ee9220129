"""The site hierarchy in the fleet database: counties, towns, villages and grids.

Every change runs in one transaction with its audit entry. A parent must exist before its
children; removing something that still has children, or that gateways or alerts refer to, is
refused with :class:`~fleet.errors.ConflictError` naming what is in the way.
"""

import logging
from collections.abc import Callable
from typing import Final

from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from fleet.access.roles import Actor
from fleet.db.schema import AlertRow, Base, CountyRow, GatewayRow, GridRow, TownRow, VillageRow
from fleet.errors import ConflictError
from fleet.sites.csv_import import SiteSheet
from fleet.sites.records import Records, refuse_if_used, require
from fleet.sites.schemas import (
    CountyPatch,
    CountySpec,
    GridPatch,
    GridSpec,
    ImportReport,
    LevelTally,
    TownPatch,
    TownSpec,
    VillagePatch,
    VillageSpec,
)

logger = logging.getLogger(__name__)

_ROWS: Final[dict[str, type[Base]]] = {"county": CountyRow, "town": TownRow, "village": VillageRow, "grid": GridRow}


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
        """Create what ``sheet`` names and is missing, update what differs; all in one transaction.

        With ``dry_run`` the same checks run and the report says what would change; nothing is kept.
        A site the sheet leaves unnamed keeps its name; coordinates left empty are kept too."""
        report = ImportReport(rows=sheet.rows, dry_run=dry_run)
        async with self._records.transaction(f"import {sheet.rows} site rows", commit=not dry_run) as session:
            for county in sheet.counties.values():
                await self._upsert(session, actor, sheet, "county", county.id, county, report.counties)
            for town in sheet.towns.values():
                await require(session, CountyRow, town.county_id, f"county {town.county_id!r}")
                await self._upsert(session, actor, sheet, "town", town.id, town, report.towns)
            for village in sheet.villages.values():
                await require(session, TownRow, village.town_id, f"town {village.town_id!r}")
                await self._upsert(session, actor, sheet, "village", village.id, village, report.villages)
            for key, grid in sheet.grids.items():
                await require(session, VillageRow, key[0], f"village {key[0]!r}")
                await self._upsert(session, actor, sheet, "grid", key, grid, report.grids)
        logger.info("%s imported %d site rows%s: %s", actor.name, sheet.rows, " (dry run)" if dry_run else "", report)
        return report

    async def _upsert(
        self,
        session: AsyncSession,
        actor: Actor,
        sheet: SiteSheet,
        level: str,
        key: str | tuple[str, str],
        spec: BaseModel,
        tally: LevelTally,
    ) -> None:
        cls = _ROWS[level]
        values = spec.model_dump(exclude_unset=True)
        label = key if isinstance(key, str) else "/".join(key)
        if isinstance(key, tuple):
            values["village_id"] = key[0]
        row = await session.get(cls, key)
        if row is None:
            stamp = "first_seen_ms" if cls is VillageRow else "created_ms"
            await self._records.add(session, actor, cls(**values, **{stamp: self._clock()}), level, label)
            await session.flush()
            tally.created += 1
            return
        if not sheet.named(level, key):
            values.pop("name", None)
        if self._records.change(session, actor, row, level, label, values):
            tally.updated += 1
        else:
            tally.unchanged += 1

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


def _grid_label(village_id: str, grid_id: str) -> str:
    return f"grid {grid_id!r} in village {village_id!r}"
