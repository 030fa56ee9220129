"""Where things stand in the hierarchy (:class:`~fleet.access.scope.Place`), read from the registry: a county,
town, village, gateway, alert, command, enrollment token or config layer."""

from dataclasses import dataclass
from typing import Final

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from fleet.access.scope import Place, PlaceKind, PlaceScope
from fleet.db.engine import database_errors
from fleet.db.schema import AlertRow, CommandRow, EnrollmentTokenRow, GatewayRow, TownRow, VillageRow

_VILLAGE_PLACES: Final = select(VillageRow.id, VillageRow.town_id, TownRow.county_id).outerjoin(
    TownRow, TownRow.id == VillageRow.town_id
)
"""Each village with its town and that town's county (none for a village not placed in a town)."""


class Places:
    """Where things stand, read from the registry; None for what does not exist."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def of_county(self, county_id: str) -> Place:
        return Place(county_id=county_id)

    async def of_town(self, town_id: str) -> Place | None:
        county_id = await self._scalar(select(TownRow.county_id).where(TownRow.id == town_id))
        return None if county_id is None else Place(county_id=county_id, town_id=town_id)

    async def of_village(self, village_id: str) -> Place | None:
        with database_errors("find where a village stands"):
            async with self._sessions() as session:
                row = (await session.execute(_VILLAGE_PLACES.where(VillageRow.id == village_id))).first()
        return None if row is None else Place(county_id=row.county_id, town_id=row.town_id, village_id=row.id)

    async def of_gateway(self, gateway_id: str) -> Place | None:
        return await self._via_village(select(GatewayRow.village_id).where(GatewayRow.id == gateway_id))

    async def of_alert(self, alert_id: str) -> Place | None:
        return await self._via_village(select(AlertRow.village_id).where(AlertRow.id == alert_id))

    async def of_command(self, request_id: str) -> Place | None:
        return await self._via_village(select(CommandRow.village_id).where(CommandRow.request_id == request_id))

    async def of_enrollment_token(self, token_id: str) -> Place | None:
        return await self._via_village(select(EnrollmentTokenRow.village_id).where(EnrollmentTokenRow.id == token_id))

    async def of_layer(self, scope: str, scope_id: str) -> Place | None:
        """A config or alert-rule layer's place, by its scope (county, town, village or gateway)."""
        match scope:
            case "county":
                return await self.of_county(scope_id)
            case "town":
                return await self.of_town(scope_id)
            case "village":
                return await self.of_village(scope_id)
            case "gateway":
                return await self.of_gateway(scope_id)
        return None

    async def index(self) -> "PlaceIndex":
        """Where every town, village and gateway stands, read at once, to filter a listing by a token's scope."""
        with database_errors("read where everything stands"):
            async with self._sessions() as session:
                towns = {row.id: row.county_id for row in await session.execute(select(TownRow.id, TownRow.county_id))}
                places = {
                    row.id: Place(county_id=row.county_id, town_id=row.town_id, village_id=row.id)
                    for row in await session.execute(_VILLAGE_PLACES)
                }
                gateways = {
                    row.id: row.village_id
                    for row in await session.execute(select(GatewayRow.id, GatewayRow.village_id))
                }
        return PlaceIndex(towns, places, gateways)

    async def _via_village(self, village_of: Select[tuple[str]] | Select[str]) -> Place | None:
        village_id = await self._scalar(village_of)
        return None if village_id is None else await self.of_village(village_id)

    async def _scalar(self, query: Select[tuple[str]] | Select[str]) -> str | None:
        with database_errors("find where something stands"):
            async with self._sessions() as session:
                found = await session.scalar(query)
        return None if found is None else str(found)


def village_ids_within(scope: PlaceScope) -> Select[str]:
    """The ids of the villages ``scope`` reaches, as a subquery for a store's ``WHERE village_id IN (…)``."""
    match scope.kind:
        case PlaceKind.VILLAGE:
            return select(VillageRow.id).where(VillageRow.id == scope.id)
        case PlaceKind.TOWN:
            return select(VillageRow.id).where(VillageRow.town_id == scope.id)
        case PlaceKind.COUNTY:
            return (
                select(VillageRow.id)
                .join(TownRow, TownRow.id == VillageRow.town_id)
                .where(TownRow.county_id == scope.id)
            )


@dataclass(frozen=True, slots=True)
class PlaceIndex:
    """Where every town, village and gateway stood when it was read (:meth:`Places.index`)."""

    town_counties: dict[str, str]
    villages: dict[str, Place]
    gateway_villages: dict[str, str]

    def of_town(self, town_id: str) -> Place:
        return Place(county_id=self.town_counties.get(town_id), town_id=town_id)

    def of_village(self, village_id: str) -> Place:
        return self.villages.get(village_id, Place(village_id=village_id))

    def of_gateway(self, gateway_id: str) -> Place:
        village_id = self.gateway_villages.get(gateway_id)
        return self.of_village(village_id) if village_id is not None else Place()

    def of_layer(self, scope: str, scope_id: str) -> Place:
        match scope:
            case "county":
                return Place(county_id=scope_id)
            case "town":
                return self.of_town(scope_id)
            case "village":
                return self.of_village(scope_id)
        return self.of_gateway(scope_id)
