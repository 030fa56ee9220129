"""Gateways placed in villages, and the devices wired to them, as technicians record them.

Presence, health and last-seen state of gateways belong to :mod:`fleet.registry`; this module
changes only what people decide: which gateway stands in which village under what name, and which
devices it has on which grid. Each change is one transaction with its audit entry.
"""

import logging
from collections.abc import Callable

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from fleet.access.roles import Actor
from fleet.db.schema import AlertRow, DeviceRow, GatewayRow, GridRow, VillageRow
from fleet.errors import ConflictError, InvalidRequestError
from fleet.sites.records import Records, refuse_if_used, require
from fleet.sites.schemas import DeviceSpec, GatewayPatch, GatewaySpec

logger = logging.getLogger(__name__)


class GatewayInventory:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], clock: Callable[[], int]) -> None:
        self._records = Records(sessions, clock)
        self._now = clock

    async def create_gateway(self, actor: Actor, spec: GatewaySpec) -> GatewayRow:
        async with self._records.write(f"create gateway {spec.id}") as session:
            await require(session, VillageRow, spec.village_id, f"village {spec.village_id!r}")
            row = GatewayRow(id=spec.id, village_id=spec.village_id, name=spec.name, first_seen_ms=self._now())
            await self._records.add(session, actor, row, "gateway", spec.id)
        return row

    async def update_gateway(self, actor: Actor, gateway_id: str, patch: GatewayPatch) -> GatewayRow:
        changes = patch.changes()
        async with self._records.write(f"update gateway {gateway_id}") as session:
            row = await require(session, GatewayRow, gateway_id, f"gateway {gateway_id!r}")
            village_id = changes.get("village_id")
            if village_id is not None and village_id != row.village_id:
                await require(session, VillageRow, village_id, f"village {village_id!r}")
                await self._refuse_grids_elsewhere(session, gateway_id, str(village_id))
            self._records.change(session, actor, row, "gateway", gateway_id, changes)
        return row

    async def delete_gateway(self, actor: Actor, gateway_id: str) -> None:
        async with self._records.write(f"remove gateway {gateway_id}") as session:
            row = await require(session, GatewayRow, gateway_id, f"gateway {gateway_id!r}")
            await refuse_if_used(
                session,
                f"gateway {gateway_id!r}",
                gateway_id,
                [(AlertRow, lambda k: AlertRow.gateway_id == k, "alerts on record (replace it instead)")],
            )
            for device in await self._devices(session, gateway_id):
                await self._records.remove(session, actor, device, "device", f"{gateway_id}/{device.id}")
            await self._records.remove(session, actor, row, "gateway", gateway_id)

    async def devices(self, gateway_id: str) -> list[DeviceRow]:
        async with self._records.read(f"list the devices of gateway {gateway_id}") as session:
            await require(session, GatewayRow, gateway_id, f"gateway {gateway_id!r}")
            return await self._devices(session, gateway_id)

    async def put_device(self, actor: Actor, gateway_id: str, device_id: str, spec: DeviceSpec) -> DeviceRow:
        """Create the device, or change it to match ``spec``."""
        async with self._records.write(f"record device {device_id} of gateway {gateway_id}") as session:
            gateway = await require(session, GatewayRow, gateway_id, f"gateway {gateway_id!r}")
            if spec.grid_id is not None and await session.get(GridRow, (gateway.village_id, spec.grid_id)) is None:
                raise InvalidRequestError(f"village {gateway.village_id!r} has no grid {spec.grid_id!r}")
            key = f"{gateway_id}/{device_id}"
            row = await session.get(DeviceRow, (gateway_id, device_id))
            if row is None:
                row = DeviceRow(gateway_id=gateway_id, id=device_id, created_ms=self._now(), **_columns(spec))
                await self._records.add(session, actor, row, "device", key)
            else:
                self._records.change(session, actor, row, "device", key, _columns(spec))
        return row

    async def delete_device(self, actor: Actor, gateway_id: str, device_id: str) -> None:
        async with self._records.write(f"remove device {device_id} of gateway {gateway_id}") as session:
            row = await require(session, DeviceRow, (gateway_id, device_id), f"device {device_id!r} on {gateway_id!r}")
            await self._records.remove(session, actor, row, "device", f"{gateway_id}/{device_id}")

    @staticmethod
    async def _devices(session: AsyncSession, gateway_id: str) -> list[DeviceRow]:
        query = select(DeviceRow).where(DeviceRow.gateway_id == gateway_id).order_by(DeviceRow.id)
        return list((await session.scalars(query)).all())

    async def _refuse_grids_elsewhere(self, session: AsyncSession, gateway_id: str, village_id: str) -> None:
        """A gateway cannot move while its devices sit on grids of its old village."""
        on_grids = [device.id for device in await self._devices(session, gateway_id) if device.grid_id is not None]
        if on_grids:
            raise ConflictError(
                f"gateway {gateway_id!r} has devices on grids of its village ({', '.join(on_grids[:5])}): "
                f"clear their grid before moving it to {village_id!r}"
            )


def _columns(spec: DeviceSpec) -> dict[str, object]:
    return {"kind": spec.kind.value, "name": spec.name, "grid_id": spec.grid_id}
