"""Where each gateway stands in the site hierarchy, and so which layers reach it."""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from fleet.configs.layers import LayerKey, Scope
from fleet.db.schema import ConfigLayerRow, GatewayRow, TownRow, VillageRow

_Query = TypeVar("_Query", bound="Select[*tuple[Any, ...]]")


@dataclass(frozen=True, slots=True)
class Placement:
    """A gateway and its village, town and county (a village not yet placed in a town has neither)."""

    gateway_id: str
    village_id: str
    town_id: str | None
    county_id: str | None

    def layer_keys(self) -> list[LayerKey]:
        """The layers that reach this gateway, most general first."""
        keys: list[LayerKey] = []
        if self.county_id is not None:
            keys.append((Scope.COUNTY, self.county_id))
        if self.town_id is not None:
            keys.append((Scope.TOWN, self.town_id))
        keys.append((Scope.VILLAGE, self.village_id))
        keys.append((Scope.GATEWAY, self.gateway_id))
        return keys

    def layers(self, all_layers: Mapping[LayerKey, Mapping[str, Any]]) -> list[Mapping[str, Any]]:
        """The overrides of the layers that reach this gateway and exist, most general first."""
        return [all_layers[key] for key in self.layer_keys() if key in all_layers]


def placement_query() -> Select[str, str, str | None, str]:
    return (
        select(GatewayRow.id, GatewayRow.village_id, VillageRow.town_id, TownRow.county_id)
        .join(VillageRow, VillageRow.id == GatewayRow.village_id)
        .outerjoin(TownRow, TownRow.id == VillageRow.town_id)
        .order_by(GatewayRow.id)
    )


def within(query: _Query, scope: Scope, scope_id: str) -> _Query:
    """``query`` (over :func:`placement_query`'s joins) narrowed to the gateways ``scope``/``scope_id`` reaches."""
    column = {
        Scope.COUNTY: TownRow.county_id,
        Scope.TOWN: VillageRow.town_id,
        Scope.VILLAGE: GatewayRow.village_id,
        Scope.GATEWAY: GatewayRow.id,
    }[scope]
    return query.where(column == scope_id)


async def placements(session: AsyncSession, reach: LayerKey | None = None) -> list[Placement]:
    """Every gateway (or those the layer at ``reach`` applies to) with its place, in one query."""
    query = placement_query() if reach is None else within(placement_query(), *reach)
    return [Placement(*row) for row in (await session.execute(query)).all()]


async def placement(session: AsyncSession, gateway_id: str) -> Placement | None:
    found = await placements(session, (Scope.GATEWAY, gateway_id))
    return found[0] if found else None


async def placement_in_village(session: AsyncSession, village_id: str, gateway_id: str) -> Placement | None:
    """Where ``gateway_id`` stands once it is in ``village_id`` (it may not be recorded yet); None for an
    unknown village."""
    query = (
        select(VillageRow.town_id, TownRow.county_id)
        .outerjoin(TownRow, TownRow.id == VillageRow.town_id)
        .where(VillageRow.id == village_id)
    )
    found = (await session.execute(query)).first()
    return None if found is None else Placement(gateway_id, village_id, *found)


async def all_layers(session: AsyncSession) -> dict[LayerKey, dict[str, Any]]:
    rows = (await session.scalars(select(ConfigLayerRow))).all()
    return {(Scope(row.scope), row.scope_id): row.overrides for row in rows}


async def layer_rows(session: AsyncSession, keys: Sequence[LayerKey]) -> list[ConfigLayerRow]:
    """The layer rows at ``keys`` that exist, in the order of ``keys``."""
    rows = []
    for scope, scope_id in keys:
        row = await session.get(ConfigLayerRow, (scope.value, scope_id))
        if row is not None:
            rows.append(row)
    return rows
