"""Where a layer applies, and which layers reach a place."""

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import TypeVar

T = TypeVar("T")


class Scope(StrEnum):
    """Where a layer applies, from the most general (applied first) to the most specific (applied last)."""

    COUNTY = "county"
    TOWN = "town"
    VILLAGE = "village"
    GATEWAY = "gateway"


LayerKey = tuple[Scope, str]


def target(key: LayerKey) -> str:
    """A layer's audit target id: ``scope/id``."""
    return f"{key[0].value}/{key[1]}"


@dataclass(frozen=True, slots=True)
class Place:
    """A village with its town and county (a village not yet placed in a town has neither)."""

    village_id: str
    town_id: str | None
    county_id: str | None

    def layer_keys(self) -> list[LayerKey]:
        """The layers that reach this place, most general first."""
        keys: list[LayerKey] = []
        if self.county_id is not None:
            keys.append((Scope.COUNTY, self.county_id))
        if self.town_id is not None:
            keys.append((Scope.TOWN, self.town_id))
        keys.append((Scope.VILLAGE, self.village_id))
        return keys

    def chain(self, layers: Mapping[LayerKey, T]) -> list[tuple[LayerKey, T]]:
        """The layers of ``layers`` that reach this place, most general first."""
        return [(key, layers[key]) for key in self.layer_keys() if key in layers]


@dataclass(frozen=True, slots=True)
class GatewayPlace(Place):
    """A gateway in its village: the village's layers, then the gateway's own."""

    gateway_id: str

    def layer_keys(self) -> list[LayerKey]:
        return [*Place.layer_keys(self), (Scope.GATEWAY, self.gateway_id)]
