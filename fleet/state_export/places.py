"""Where each village sits: its town and county (from the registry) and its coordinates, as tags.

A village first heard of from a gateway's traffic has no town yet: its town and county are
:data:`~protocol.series.UNASSIGNED`, so dashboards show the gap instead of dropping the series.
"""

from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from fleet.db.schema import TownRow, VillageRow
from protocol.series import UNASSIGNED

COORDINATE_DECIMALS = 5
"""About a metre: enough for a map, and a coordinate edited in the last digits only starts no new series."""


@dataclass(frozen=True, slots=True)
class Place:
    county: str
    town: str
    village: str
    latitude: str | None = None
    longitude: str | None = None

    def tags(self) -> dict[str, str | None]:
        """county, town, village: every measurement about a place carries them."""
        return {"county": self.county, "town": self.town, "village": self.village}

    def map_tags(self) -> dict[str, str | None]:
        """:meth:`tags` and, when both are known, latitude and longitude (a map cannot use one alone)."""
        tags = self.tags()
        if self.latitude is not None and self.longitude is not None:
            tags |= {"latitude": self.latitude, "longitude": self.longitude}
        return tags


def unplaced(village_id: str) -> Place:
    """A village the registry does not know (yet): only its id."""
    return Place(UNASSIGNED, UNASSIGNED, village_id)


async def read_places(connection: AsyncConnection) -> Mapping[str, Place]:
    """Every village's place, by village id (one query: villages outer-joined to their towns)."""
    query = select(VillageRow.id, VillageRow.latitude, VillageRow.longitude, TownRow.id, TownRow.county_id).outerjoin(
        TownRow, VillageRow.town_id == TownRow.id
    )
    return {
        village: Place(county or UNASSIGNED, town or UNASSIGNED, village, _coordinate(latitude), _coordinate(longitude))
        for village, latitude, longitude, town, county in await connection.execute(query)
    }


def _coordinate(value: float | None) -> str | None:
    return None if value is None else f"{value:.{COORDINATE_DECIMALS}f}"
