"""What a token reaches: the whole fleet, or one county, town or village and everything below it.

:func:`covers` decides whether a token's :class:`PlaceScope` reaches a :class:`Place` (where something stands:
its village, town and county, as far as they are known). A village not yet placed in a town (first heard of
from a gateway's traffic) is reached by unscoped tokens and its own village-scoped ones only.
"""

from dataclasses import dataclass
from enum import StrEnum


class PlaceKind(StrEnum):
    COUNTY = "county"
    TOWN = "town"
    VILLAGE = "village"


@dataclass(frozen=True, slots=True)
class PlaceScope:
    """What a scoped token reaches: one county, town or village and everything below it."""

    kind: PlaceKind
    id: str

    def __str__(self) -> str:
        return f"{self.kind.value} {self.id}"


@dataclass(frozen=True, slots=True)
class Place:
    """Where something stands; the parts not known (an unplaced village's town and county) are None."""

    county_id: str | None = None
    town_id: str | None = None
    village_id: str | None = None


def covers(scope: PlaceScope | None, place: Place) -> bool:
    """Whether a token scoped to ``scope`` (None: unscoped) reaches ``place``."""
    if scope is None:
        return True
    match scope.kind:
        case PlaceKind.COUNTY:
            return place.county_id == scope.id
        case PlaceKind.TOWN:
            return place.town_id == scope.id
        case PlaceKind.VILLAGE:
            return place.village_id == scope.id
