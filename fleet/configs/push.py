"""Config push as the API, the ingest router and enrollment use it: layers written, gateways' configs shown,
reports recorded, and every gateway's desired config kept in line with the layers.

Writing a layer is one transaction: the layer, its audit entry, and the new desired config of every
gateway it reaches (each must validate, or nothing changes). So a change the API accepted is never lost:
the publisher sends whatever the broker has not taken yet, now or after an outage or a restart. Changes
to desired configs are serialised by one lock in this process (the only one that serves the API), so
two layer writes can never each compute a gateway's config without the other's layer.

A gateway the inventory moves or removes is followed in the inventory's own transaction, under the same
lock (:meth:`ConfigPush.serialised`): moved, its desired config is recomputed for its new place (the
publisher then sends it on the new village's topic) and the retained one on its old village's topic is
erased; removed, its desired config is dropped and the retained one erased. Reconciliation would catch
both later, but would leave the old retained config where it is.
"""

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from fleet.access.roles import Actor
from fleet.configs.desired import Recomputed, forget_removed_gateways, recompute, resign_all_but
from fleet.configs.layers import GATEWAY_CONFIG
from fleet.configs.placements import (
    placement,
    placement_in_village,
    placement_query,
    placements,
    within,
)
from fleet.configs.schemas import GatewayConfigView, GatewaySync, LayerChange, StatusReport, layer_public
from fleet.configs.signing import ConfigSigner
from fleet.configs.state import SyncStatus, note_report, raise_above
from fleet.db.schema import ConfigLayerRow, GatewayConfigRow, GatewayRow
from fleet.errors import DataIntegrityError, NotFoundError
from fleet.layers.rows import LayerRows
from fleet.layers.scope import GatewayPlace, LayerKey, Scope
from fleet.sites.records import Records
from protocol.gateway_config import GatewayConfig
from protocol.messages import ConfigReported
from protocol.topics import Channel, gateway_topic

logger = logging.getLogger(__name__)

EraseRetained = Callable[[str], Awaitable[None]]
"""Deletes a topic's retained message, returning once the broker took the erasure
(:meth:`fleet.mqtt.downlink.Downlink.erase_retained`)."""


class ConfigPush:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        clock: Callable[[], int],
        signer: ConfigSigner,
        *,
        erase_retained: EraseRetained | None = None,
    ) -> None:
        self._records = Records(sessions, clock)
        self._layers = LayerRows(ConfigLayerRow, GATEWAY_CONFIG, "config_layer", clock)
        self._clock = clock
        self.signer = signer
        self._erase_retained = erase_retained
        self._lock = asyncio.Lock()
        self.changed = asyncio.Event()
        """Set whenever a desired config changed: the publisher waits on it."""

    # --- layers --------------------------------------------------------------------------------

    async def layers(self, scope: Scope | None = None) -> list[ConfigLayerRow]:
        query = select(ConfigLayerRow).order_by(ConfigLayerRow.scope, ConfigLayerRow.scope_id)
        if scope is not None:
            query = query.where(ConfigLayerRow.scope == scope.value)
        return await self._records.all(query, "list config layers")

    async def layer(self, scope: Scope, scope_id: str) -> ConfigLayerRow:
        async with self._records.read(f"read the {scope.value} config layer {scope_id}") as session:
            return await self._layers.get(session, (scope, scope_id))

    async def put_layer(self, actor: Actor, scope: Scope, scope_id: str, overrides: Mapping[str, Any]) -> LayerChange:
        """Set the layer at ``scope``/``scope_id`` to ``overrides`` (replacing it whole) and every desired
        config it reaches; refused, changing nothing, if the layer or any reached gateway's config is invalid."""
        key = (scope, scope_id)
        checked = GATEWAY_CONFIG.check(overrides, key)
        async with self._lock, self._records.write(f"set the {scope.value} config layer {scope_id}") as session:
            row, changed = await self._layers.put(session, actor, key, checked)
            reached = await placements(session, key)
            if not changed:
                return LayerChange(layer=layer_public(row), gateways=len(reached), changed=0)
            outcome = await self._recompute(session, reached, refuse_invalid=True)
        self._log_change(actor, "set", key, outcome)
        return LayerChange(layer=layer_public(row), gateways=outcome.gateways, changed=len(outcome.changed))

    async def delete_layer(self, actor: Actor, scope: Scope, scope_id: str) -> LayerChange:
        key = (scope, scope_id)
        async with self._lock, self._records.write(f"remove the {scope.value} config layer {scope_id}") as session:
            await self._layers.delete(session, actor, key)
            reached = await placements(session, key)
            outcome = await self._recompute(session, reached, refuse_invalid=True)
        self._log_change(actor, "removed", key, outcome)
        return LayerChange(layer=None, gateways=outcome.gateways, changed=len(outcome.changed))

    def _log_change(self, actor: Actor, verb: str, key: LayerKey, outcome: Recomputed) -> None:
        logger.info(
            "%s %s %s: %d of %d gateways get a new config",
            actor.name, verb, GATEWAY_CONFIG.label(key), len(outcome.changed), outcome.gateways,
        )  # fmt: skip
        self._changed(outcome)

    # --- gateways --------------------------------------------------------------------------------

    async def gateway_config(self, gateway_id: str) -> GatewayConfigView:
        async with self._records.read(f"read the config of gateway {gateway_id}") as session:
            place = await placement(session, gateway_id)
            if place is None:
                raise NotFoundError(f"no gateway {gateway_id!r}")
            layers = await self._layers.at(session, place.layer_keys())
            row = await session.get(GatewayConfigRow, gateway_id)
        resolved: GatewayConfig | None = None
        resolve_error: str | None = None
        if layers:
            try:
                resolved = GATEWAY_CONFIG.resolve(layer.overrides for layer in layers)
            except ValueError as exc:
                resolve_error = str(exc)
        return GatewayConfigView(
            sync=GatewaySync.of(gateway_id, place.village_id, row),
            town_id=place.town_id,
            county_id=place.county_id,
            layers=[layer_public(layer) for layer in layers],
            resolved=resolved,
            resolve_error=resolve_error,
            key_id=row.key_id if row is not None else None,
        )

    async def statuses(
        self,
        *,
        village_id: str | None = None,
        town_id: str | None = None,
        county_id: str | None = None,
        status: SyncStatus | None = None,
    ) -> StatusReport:
        """Every gateway's status (of a village, town or county), with counts per status, in one query."""
        query = placement_query().add_columns(GatewayConfigRow)
        query = query.outerjoin(GatewayConfigRow, GatewayConfigRow.gateway_id == GatewayRow.id)
        for scope, scope_id in ((Scope.VILLAGE, village_id), (Scope.TOWN, town_id), (Scope.COUNTY, county_id)):
            if scope_id is not None:
                query = within(query, scope, scope_id)
        async with self._records.read("read the config status of gateways") as session:
            rows = (await session.execute(query)).all()
        listed = [GatewaySync.of(gateway_id, village, row) for gateway_id, village, _town, _county, row in rows]
        if status is not None:
            listed = [sync for sync in listed if sync.status is status]
        counts = {each: 0 for each in SyncStatus}
        for sync in listed:
            counts[sync.status] += 1
        return StatusReport(counts=counts, gateways=listed)

    # --- gateways the inventory moves or removes (its GatewayConfigs) ---------------------------

    @contextlib.asynccontextmanager
    async def serialised(self) -> AsyncIterator[None]:
        """Held around the inventory's transaction that moves or removes a gateway; the publisher is woken
        after it (a rolled-back change leaves it nothing to do)."""
        async with self._lock:
            yield
        self.changed.set()

    async def follow_move(self, session: AsyncSession, gateway_id: str) -> None:
        """In the inventory's transaction, the gateway's row moved: its desired config for its new place, and
        the retained one at the village it was signed for erased. Raises
        :class:`~fleet.errors.DownlinkUnavailableError` if the broker did not take the erasure."""
        place = await placement(session, gateway_id)
        if place is None:
            raise NotFoundError(f"no gateway {gateway_id!r}")
        row = await session.get(GatewayConfigRow, gateway_id)
        stale_village = row.village_id if row is not None and row.village_id != place.village_id else None
        outcome = await self._recompute(session, [place], refuse_invalid=False)
        if gateway_id in outcome.invalid:  # kept invalid, like a reconciliation: a move records a fact
            logger.warning(
                "gateway %s moved to %s has no valid config there: %s",
                gateway_id,
                place.village_id,
                outcome.invalid[gateway_id],
            )
        if stale_village is not None:
            await self.erase_retained(stale_village, gateway_id)

    async def forget_gateway(self, session: AsyncSession, gateway_id: str) -> None:
        """In the inventory's transaction, the gateway's row removed: its desired config dropped, and the
        retained one erased. Raises :class:`~fleet.errors.DownlinkUnavailableError` as :meth:`follow_move`."""
        row = await session.get(GatewayConfigRow, gateway_id)
        if row is None:
            return
        village_id = row.village_id
        await session.delete(row)
        if village_id is not None:
            await self.erase_retained(village_id, gateway_id)

    async def erase_retained(self, village_id: str, gateway_id: str) -> None:
        """Delete the retained desired config on the gateway's topic in ``village_id`` (nothing without a broker)."""
        if self._erase_retained is None:
            logger.info(
                "no broker configured: the retained config of gateway %s in %s is not erased", gateway_id, village_id
            )
            return
        await self._erase_retained(gateway_topic(village_id, gateway_id, Channel.CONFIG_DESIRED))

    # --- the service: reconciliation, reports, enrollment --------------------------------------

    async def reconcile(self) -> Recomputed:
        """Recompute every gateway's desired config from the layers: gateways registered, moved or removed and
        sites moved since the last change. A gateway whose layers no longer validate is marked invalid."""
        async with self._lock, self._records.write("reconcile the desired configs") as session:
            reached = await placements(session)
            outcome = await self._recompute(session, reached, refuse_invalid=False)
            forgotten = await forget_removed_gateways(session)
            resigned = await resign_all_but(session, self.signer.key_id)
        if outcome.changed or forgotten or resigned or outcome.invalid:
            logger.info(
                "reconciled %d gateways: %d new desired configs, %d invalid, %d removed, %d to sign with key %s",
                outcome.gateways,
                len(outcome.changed),
                len(outcome.invalid),
                forgotten,
                resigned,
                self.signer.key_id,
            )
        if resigned:
            self.changed.set()
        self._changed(outcome)
        return outcome

    async def record_reports(self, reports: Sequence[ConfigReported]) -> None:
        """Store what gateways run, or why they refused a version, in one transaction for all ``reports``
        (:class:`~fleet.configs.reports.ReportRecorder` batches them off the ingest loop)."""
        try:
            behind = await self._note(reports)
        except DataIntegrityError:  # a row was created meanwhile (a first desired config): now it exists
            behind = await self._note(reports)
        if behind:
            await self._raise_above_reports(behind)

    async def _note(self, reports: Sequence[ConfigReported]) -> list[str]:
        """Note each report on its gateway's row (created if missing); the gateways running a version above
        the fleet's, whose desired version must be raised."""
        gateway_ids = {report.gateway_id for report in reports}
        async with self._records.write(f"record {len(reports)} config reports") as session:
            query = select(GatewayConfigRow).where(GatewayConfigRow.gateway_id.in_(gateway_ids))
            rows = {row.gateway_id: row for row in await session.scalars(query)}
            behind: list[str] = []
            now = self._clock()
            for report in reports:
                row = rows.get(report.gateway_id)
                if row is None:
                    row = rows[report.gateway_id] = GatewayConfigRow(gateway_id=report.gateway_id, version=0)
                    session.add(row)
                if note_report(row, report, now):
                    behind.append(report.gateway_id)
            return behind

    async def _raise_above_reports(self, gateway_ids: Sequence[str]) -> None:
        what = f"raise the config version of {len(gateway_ids)} gateways"
        async with self._lock, self._records.write(what) as session:
            for gateway_id in gateway_ids:
                row = await session.get(GatewayConfigRow, gateway_id)
                if row is not None and row.config is not None and (row.reported_version or 0) > row.version:
                    logger.warning(
                        "gateway %s runs config version %d, above the fleet's %d: publishing it again as %d",
                        gateway_id,
                        row.reported_version,
                        row.version,
                        (row.reported_version or 0) + 1,
                    )
                    raise_above(row, row.reported_version or 0)
        self.changed.set()

    async def initial_config(self, village_id: str, gateway_id: str) -> GatewayConfig | None:
        """What the layers make for ``gateway_id`` in ``village_id`` now (it may be enrolling and not yet
        recorded), for enrollment to hand over; None if the village is unknown, no layer reaches the gateway,
        or its layers do not make a valid config (then the fleet pushes none)."""
        async with self._records.read(f"resolve the config of gateway {gateway_id}") as session:
            place = await placement_in_village(session, village_id, gateway_id)
            if place is None:
                return None
            layers = [overrides for _, overrides in place.chain(await self._layers.overrides(session))]
        if not layers:
            return None
        try:
            return GATEWAY_CONFIG.resolve(layers)
        except ValueError as exc:
            logger.error("gateway %s has no valid config to start with: %s", gateway_id, exc)
            return None

    def signing_public_key(self) -> str:
        """The PEM public key a gateway's ``config_signing_key`` file holds."""
        return self.signer.public_key_pem

    async def _recompute(
        self, session: AsyncSession, reached: Sequence[GatewayPlace], *, refuse_invalid: bool
    ) -> Recomputed:
        """:func:`~fleet.configs.desired.recompute` for ``reached`` under every layer, naming the revoked keys."""
        layers = await self._layers.overrides(session)
        revoked = self.signer.revoked_key_ids
        return await recompute(
            session, reached, layers, self._clock(), refuse_invalid=refuse_invalid, revoked_key_ids=revoked
        )

    def _changed(self, outcome: Recomputed) -> None:
        if outcome.changed:
            self.changed.set()
