"""Gateways placed in villages, and the devices wired to them, as technicians record them.

Presence, health and last-seen state of gateways belong to :mod:`fleet.gateways.registry`; this module
changes only what people decide: which gateway stands in which village under what name, and which
devices it has on which grid. Each change is one transaction with its audit entry.

A gateway's village is part of every topic it uses, so moving or removing it reaches beyond this
database, through two injected seams this module knows only as protocols: its broker login
(:class:`GatewayAccess`: moved, its role allows the new village's topics only; removed, its client and
role are deleted) and its desired config (:class:`GatewayConfigs`: recomputed for the new place, the
retained one at the old village erased). Both run inside the transaction, after its rows changed and
before it commits, so a failure of either refuses the change (nothing is committed, no audit entry; a
broker that did not answer is 503, try again). The broker goes first: when the config step then fails, a
moved login is moved back; a removed login stays removed, which is what was asked, and trying again
completes the removal (as it completes a change whose commit failed after the broker took it). Without
them (no dynamic security administrator, or no config push) the inventory changes its rows only and logs
that the broker login is not managed.
"""

import contextlib
import logging
from collections.abc import Callable
from typing import Protocol

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from fleet.access.roles import Actor
from fleet.db.schema import AlertRow, DeviceRow, GatewayRow, GridRow, VillageRow
from fleet.errors import ConflictError, FleetError, InvalidRequestError
from fleet.sites.records import Records, refuse_if_used, require
from fleet.sites.schemas import DeviceSpec, GatewayPatch, GatewaySpec

logger = logging.getLogger(__name__)


class GatewayAccess(Protocol):
    """A gateway's broker login (``fleet.enrollment.broker.DynsecProvisioner``). Raises the fleet's errors
    the API answers: :class:`~fleet.errors.ConflictError`, a :class:`~fleet.errors.TransientError` (503)."""

    async def move_gateway(self, village_id: str, gateway_id: str) -> None:
        """From now on the gateway's login may use ``village_id``'s topics only (nothing if it has none)."""

    async def remove_gateway(self, gateway_id: str) -> None:
        """Delete the gateway's login, closing its sessions (nothing if it has none)."""


class GatewayConfigs(Protocol):
    """A gateway's desired config (``fleet.configs.push.ConfigPush``)."""

    def serialised(self) -> contextlib.AbstractAsyncContextManager[None]:
        """Held around the transaction that moves or removes a gateway: no desired config is computed
        meanwhile from where the gateway stood before."""

    async def follow_move(self, session: AsyncSession, gateway_id: str) -> None:
        """In ``session`` (the gateway's row moved): its desired config for its new place; the retained one
        at its old village erased."""

    async def forget_gateway(self, session: AsyncSession, gateway_id: str) -> None:
        """In ``session`` (the gateway's row removed): its desired config dropped, the retained one erased."""


class GatewayInventory:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        clock: Callable[[], int],
        *,
        access: GatewayAccess | None = None,
        configs: GatewayConfigs | None = None,
    ) -> None:
        self._records = Records(sessions, clock)
        self._now = clock
        self._access = access
        self._configs = configs

    async def create_gateway(self, actor: Actor, spec: GatewaySpec) -> GatewayRow:
        async with self._records.write(f"create gateway {spec.id}") as session:
            await require(session, VillageRow, spec.village_id, f"village {spec.village_id!r}")
            row = GatewayRow(id=spec.id, village_id=spec.village_id, name=spec.name, first_seen_ms=self._now())
            await self._records.add(session, actor, row, "gateway", spec.id)
        return row

    async def update_gateway(self, actor: Actor, gateway_id: str, patch: GatewayPatch) -> GatewayRow:
        """Rename the gateway or move it to another village (its broker login and desired config follow)."""
        changes = patch.changes()
        async with self._serialised(), self._records.write(f"update gateway {gateway_id}") as session:
            row = await require(session, GatewayRow, gateway_id, f"gateway {gateway_id!r}")
            old_village_id = row.village_id
            village_id = changes.get("village_id")
            moving = village_id is not None and village_id != old_village_id
            if moving:
                await require(session, VillageRow, village_id, f"village {village_id!r}")
                await self._refuse_grids_elsewhere(session, gateway_id, str(village_id))
            self._records.change(session, actor, row, "gateway", gateway_id, changes)
            if moving:
                await session.flush()  # the database's refusals come before anything changes on the broker
                await self._follow_move(session, gateway_id, old_village_id, str(village_id))
        return row

    async def delete_gateway(self, actor: Actor, gateway_id: str) -> None:
        """Remove the gateway and its devices, its broker login and its desired config; refused while alerts
        it raised are on record."""
        async with self._serialised(), self._records.write(f"remove gateway {gateway_id}") as session:
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
            await self._records.remove_config_layer(session, actor, "gateway", gateway_id)
            await session.flush()
            if self._access is None:
                logger.info("gateway %s removed; its broker login, if any, is not managed by this fleet", gateway_id)
            else:
                await self._access.remove_gateway(gateway_id)
            if self._configs is not None:
                await self._configs.forget_gateway(session, gateway_id)

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

    def _serialised(self) -> contextlib.AbstractAsyncContextManager[None]:
        return self._configs.serialised() if self._configs is not None else contextlib.nullcontext()

    async def _follow_move(self, session: AsyncSession, gateway_id: str, old_village_id: str, village_id: str) -> None:
        if self._access is None:
            logger.info("gateway %s moved to %s; its broker login is not managed by this fleet", gateway_id, village_id)
        else:
            await self._access.move_gateway(village_id, gateway_id)
        if self._configs is None:
            return
        try:
            await self._configs.follow_move(session, gateway_id)
        except Exception:
            if self._access is not None:
                await self._move_login_back(gateway_id, old_village_id, village_id)
            raise

    async def _move_login_back(self, gateway_id: str, old_village_id: str, village_id: str) -> None:
        """The move is refused after the broker moved the gateway's login: move it back."""
        assert self._access is not None
        try:
            await self._access.move_gateway(old_village_id, gateway_id)
        except FleetError as exc:
            logger.error(
                "gateway %s stays in village %s, but its broker login could not be moved back from %s (%s): "
                "move the gateway again",
                gateway_id,
                old_village_id,
                village_id,
                exc,
            )

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
