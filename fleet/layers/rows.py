"""Layers as stored: one row per (scope, id) holding the overrides, written and removed with their audit entries
in the caller's transaction (so a kind that must change more in the same transaction, as config push recomputing
every desired config a layer reaches, does)."""

from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from fleet.access.audit import Change, record, snapshot
from fleet.access.roles import Actor
from fleet.db.schema import Base, CountyRow, GatewayRow, LayerColumns, TownRow, VillageRow
from fleet.layers.document import LayeredModel
from fleet.layers.scope import LayerKey, Scope, target
from fleet.sites.records import require

R = TypeVar("R", bound=LayerColumns)

_PLACE_ROWS: dict[Scope, type[Base]] = {
    Scope.COUNTY: CountyRow,
    Scope.TOWN: TownRow,
    Scope.VILLAGE: VillageRow,
    Scope.GATEWAY: GatewayRow,
}


class LayerRows(Generic[R]):
    """The layers of one kind (``kind``), stored as ``row_type``, audited as ``audit_target``."""

    def __init__(self, row_type: type[R], kind: LayeredModel[Any], audit_target: str, clock: Callable[[], int]) -> None:
        self.row_type = row_type
        self.kind = kind
        self._audit_target = audit_target
        self._clock = clock

    async def get(self, session: AsyncSession, key: LayerKey) -> R:
        """The layer at ``key``; :class:`~fleet.errors.NotFoundError` if there is none."""
        return await require(session, self.row_type, (key[0].value, key[1]), self.kind.label(key))

    async def put(
        self, session: AsyncSession, actor: Actor, key: LayerKey, overrides: dict[str, Any]
    ) -> tuple[R, bool]:
        """Set the layer at ``key`` to ``overrides`` (checked already), replacing it whole, with its audit entry;
        the row and whether anything changed. :class:`~fleet.errors.NotFoundError` for a place that does not exist."""
        scope, scope_id = key
        await require(session, _PLACE_ROWS[scope], scope_id, f"{scope.value} {scope_id!r}")
        row = await session.get(self.row_type, (scope.value, scope_id))
        if row is not None and row.overrides == overrides:
            return row, False
        before = snapshot(row)
        if row is None:
            row = self.row_type(scope=scope.value, scope_id=scope_id)
            session.add(row)
        row.overrides = overrides
        row.updated_ms = self._clock()
        row.updated_by = actor.name
        action = f"{self._audit_target}.{'create' if before is None else 'update'}"
        record(session, actor, Change(action, self._audit_target, target(key), before, snapshot(row)), self._clock())
        return row, True

    async def delete(self, session: AsyncSession, actor: Actor, key: LayerKey) -> None:
        """Remove the layer at ``key``, with its audit entry; :class:`~fleet.errors.NotFoundError` if there is none."""
        row = await self.get(session, key)
        before = snapshot(row)
        await session.delete(row)
        change = Change(f"{self._audit_target}.delete", self._audit_target, target(key), before, None)
        record(session, actor, change, self._clock())

    async def at(self, session: AsyncSession, keys: Sequence[LayerKey]) -> list[R]:
        """The layer rows at ``keys`` that exist, in the order of ``keys``."""
        rows = [await session.get(self.row_type, (scope.value, scope_id)) for scope, scope_id in keys]
        return [row for row in rows if row is not None]

    async def overrides(self, session: AsyncSession) -> dict[LayerKey, dict[str, Any]]:
        """Every layer's overrides, by key."""
        rows = (await session.scalars(select(self.row_type))).all()
        return {key_of(row): row.overrides for row in rows}


def key_of(row: LayerColumns) -> LayerKey:
    return Scope(row.scope), row.scope_id
