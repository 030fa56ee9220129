"""Where each gateway stands in the site hierarchy, and so which config layers reach it."""

from typing import Any, TypeVar

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from fleet.db.schema import GatewayRow, TownRow, VillageRow
from fleet.layers.scope import GatewayPlace, LayerKey, Scope

_Query = TypeVar("_Query", bound="Select[*tuple[Any, ...]]")


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


async def placements(session: AsyncSession, reach: LayerKey | None = None) -> list[GatewayPlace]:
    """Every gateway (or those the layer at ``reach`` applies to) with its place, in one query."""
    query = placement_query() if reach is None else within(placement_query(), *reach)
    return [
        GatewayPlace(village_id, town_id, county_id, gateway_id)
        for gateway_id, village_id, town_id, county_id in (await session.execute(query)).all()
    ]


async def placement(session: AsyncSession, gateway_id: str) -> GatewayPlace | None:
    found = await placements(session, (Scope.GATEWAY, gateway_id))
    return found[0] if found else None


async def placement_in_village(session: AsyncSession, village_id: str, gateway_id: str) -> GatewayPlace | None:
    """Where ``gateway_id`` stands once it is in ``village_id`` (it may not be recorded yet); None for an
    unknown village."""
    query = (
        select(VillageRow.town_id, TownRow.county_id)
        .outerjoin(TownRow, TownRow.id == VillageRow.town_id)
        .where(VillageRow.id == village_id)
    )
    found = (await session.execute(query)).first()
    return None if found is None else GatewayPlace(village_id, *found, gateway_id)
