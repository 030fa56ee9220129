"""The registry of villages and gateways: who exists, who is online, and their last health.

Gateways are enrolled through the API, and a gateway heard from that the registry does not hold yet is
registered on first contact. A control message (presence, heartbeat, alert, reply) registers its gateway
at once (:meth:`Registry.register`): what it causes refers to the gateway's row. Bulk traffic (telemetry,
events) only goes to the time series, so its gateway is noted (:meth:`Registry.note_seen`) and registered
with every other newcomer in the next flush: an ingest worker meeting 2,000 gateways for the first time
writes a few transactions, not 2,000 on its message loop. Last-seen times and health are collected in
memory and written in one batch per flush, never one transaction per message. Presence transitions are
written as they come by one writer task, each transaction taking everything that arrived while the
previous one was being written (:meth:`Registry.apply`).
"""

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final, cast

from sqlalchemy import Table, bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from fleet.db.engine import database_errors
from fleet.db.schema import GatewayRow, VillageRow
from fleet.db.upsert import insert_all_missing, insert_if_missing
from fleet.errors import DatabaseUnavailableError, FleetError
from fleet.gateways.presence import Transition
from protocol.messages import Heartbeat

logger = logging.getLogger(__name__)

AFTER_RESTART = "unknown_after_fleet_restart"
FLUSH_CHUNK: Final = 100
"""Gateways whose last-seen times and health one flush transaction writes."""

_GATEWAYS: Final = cast(Table, GatewayRow.__table__)
_THIS_GATEWAY: Final = _GATEWAYS.c.id == bindparam("gateway")
_SEEN: Final = update(_GATEWAYS).where(_THIS_GATEWAY).values(last_seen_ms=bindparam("seen"))
_HEALTHY: Final = (
    update(_GATEWAYS)
    .where(_THIS_GATEWAY)
    .values(
        last_seen_ms=bindparam("seen"),
        last_health=bindparam("health"),
        last_health_ms=bindparam("health_ms"),
        heartbeat_interval_s=bindparam("interval"),
    )
)
_VERSION: Final = update(_GATEWAYS).where(_THIS_GATEWAY).values(agent_version=bindparam("version"))


@dataclass(slots=True)
class _Pending:
    last_seen_ms: int
    health: dict[str, Any] | None = None
    health_ms: int | None = None
    interval_s: float | None = None
    agent_version: str | None = None


class Registry:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        clock: Callable[[], int],
        *,
        on_presence: Callable[[Sequence[Transition]], None] = lambda transitions: None,
    ) -> None:
        """``on_presence`` hears every presence change as it is applied (the fleet's gateway watch)."""
        self._sessions = sessions
        self._clock = clock
        self._on_presence = on_presence
        self._village_of: dict[str, str] = {}
        self._pending: dict[str, _Pending] = {}
        self._newcomers: dict[str, str] = {}  # gateway id -> village id, to register at the next flush
        self._unapplied: list[dict[str, object]] = []
        self._writing: asyncio.Task[None] | None = None

    async def load(self) -> None:
        """Forget presence from before this process started: nobody is online until heard from."""
        with database_errors("load the registry"):
            async with self._sessions.begin() as session:
                await session.execute(
                    update(GatewayRow)
                    .where(GatewayRow.online.is_(True))
                    .values(online=False, presence_reason=AFTER_RESTART, presence_changed_ms=self._clock())
                )
                rows = await session.execute(select(GatewayRow.id, GatewayRow.village_id))
                self._village_of = {gateway_id: village_id for gateway_id, village_id in rows}
        logger.info("registry holds %d gateways", len(self._village_of))

    def known_gateways(self) -> dict[str, str]:
        """Every gateway the registry holds (as loaded or registered since), with its village."""
        return dict(self._village_of)

    def knows(self, gateway_id: str, village_id: str) -> bool:
        return self._village_of.get(gateway_id) == village_id

    async def register(self, village_id: str, gateway_id: str, agent_version: str | None = None) -> None:
        """Make sure the village and the gateway exist (the gateway moves if it changed village)."""
        now = self._clock()
        with database_errors(f"register gateway {gateway_id}"):
            async with self._sessions.begin() as session:
                village: dict[str, Any] = {"id": village_id, "name": village_id, "first_seen_ms": now}
                gateway_values: dict[str, Any] = {
                    "id": gateway_id,
                    "village_id": village_id,
                    "first_seen_ms": now,
                    "agent_version": agent_version,
                }
                await insert_if_missing(session, VillageRow, village)
                if await insert_if_missing(session, GatewayRow, gateway_values):
                    logger.info("registered gateway %s in village %s", gateway_id, village_id)
                else:  # known already, or another ingest process registered it at this moment
                    gateway = await session.get(GatewayRow, gateway_id)
                    if gateway is None:  # an admin deleted it at this moment: its next message registers it
                        return
                    if gateway.village_id != village_id:
                        logger.warning("gateway %s moved from %s to %s", gateway_id, gateway.village_id, village_id)
                    gateway.village_id = village_id
                    if agent_version is not None:
                        gateway.agent_version = agent_version
        self._village_of[gateway_id] = village_id

    def note_seen(self, gateway_id: str, village_id: str, now_ms: int) -> None:
        """Remember that a gateway was heard from in ``village_id``; written at the next flush, which
        first registers it (or records its move) if the registry does not hold it there yet."""
        if self._village_of.get(gateway_id) != village_id:
            self._newcomers[gateway_id] = village_id
        pending = self._pending.get(gateway_id)
        if pending is None:
            self._pending[gateway_id] = _Pending(now_ms)
        else:
            pending.last_seen_ms = now_ms

    def note_agent_version(self, gateway_id: str, village_id: str, agent_version: str, now_ms: int) -> None:
        self.note_seen(gateway_id, village_id, now_ms)
        self._pending[gateway_id].agent_version = agent_version

    def note_heartbeat(self, village_id: str, heartbeat: Heartbeat, now_ms: int) -> None:
        self.note_seen(heartbeat.gateway_id, village_id, now_ms)
        pending = self._pending[heartbeat.gateway_id]
        pending.health = heartbeat.health.model_dump(mode="json")
        pending.health_ms = heartbeat.ts
        pending.interval_s = heartbeat.interval_s

    def apply(self, transitions: Sequence[Transition]) -> "asyncio.Future[None]":
        """Store presence changes, without making the caller wait: they are queued and written by one writer
        task, everything queued while it writes going into its next transaction (a storm of Last Wills takes a
        few transactions, not one each). The returned future completes once they are written, or are kept for
        the next flush because the database did not answer (the tracker has already moved on, so they must not
        be lost). Nothing hangs on it: a fleet restart forgets presence anyway (:meth:`load`)."""
        if not transitions:
            written: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            written.set_result(None)
            return written
        for t in transitions:
            logger.info("gateway %s is %s (%s)", t.gateway_id, "online" if t.online else "offline", t.reason)
        self._on_presence(transitions)
        self._unapplied.extend(
            {"id": t.gateway_id, "online": t.online, "presence_reason": t.reason, "presence_changed_ms": t.at_ms}
            for t in transitions
        )
        return asyncio.shield(self._presence_writer())

    def _presence_writer(self) -> "asyncio.Task[None]":
        """The task writing queued presence changes: the running one, else a new one."""
        if self._writing is None or self._writing.done():
            self._writing = asyncio.create_task(self._write_presence(), name="presence-writer")
        return self._writing

    async def _write_presence(self) -> None:
        while self._unapplied:
            rows, self._unapplied = self._unapplied, []
            try:
                if self._newcomers:  # a gateway first heard on the bulk lane is online before its row exists
                    await self._register_newcomers()
                with database_errors(f"store {len(rows)} presence changes"):
                    async with self._sessions.begin() as session:
                        await session.execute(update(GatewayRow), rows)
            except DatabaseUnavailableError as exc:
                self._unapplied = rows + self._unapplied
                logger.warning("%d presence changes kept for the next flush: %s", len(self._unapplied), exc)
                return
            except FleetError as exc:  # refused: writing them again cannot help
                logger.error("%d presence changes not stored: %s", len(rows), exc)

    async def _register_newcomers(self) -> None:
        """Register every gateway noted in a village the registry does not hold it in, in one transaction."""
        newcomers, self._newcomers = self._newcomers, {}
        if not newcomers:
            return
        now = self._clock()
        try:
            with database_errors(f"register {len(newcomers)} gateways"):
                async with self._sessions.begin() as session:
                    villages = [{"id": v, "name": v, "first_seen_ms": now} for v in sorted(set(newcomers.values()))]
                    await insert_all_missing(session, VillageRow, villages)
                    await insert_all_missing(
                        session,
                        GatewayRow,
                        [{"id": g, "village_id": v, "first_seen_ms": now} for g, v in newcomers.items()],
                    )
                    held = await session.execute(
                        select(GatewayRow.id, GatewayRow.village_id).where(GatewayRow.id.in_(newcomers))
                    )
                    moved = [
                        {"id": gateway_id, "village_id": newcomers[gateway_id]}
                        for gateway_id, village_id in held
                        if village_id != newcomers[gateway_id]
                    ]
                    if moved:
                        await session.execute(update(GatewayRow), moved)
        except DatabaseUnavailableError:
            self._newcomers = newcomers | self._newcomers  # kept for the next flush; newer notes win
            raise
        for row in moved:
            logger.warning("gateway %s moved to village %s", row["id"], row["village_id"])
        logger.info("registered %d gateways heard from (%d moved village)", len(newcomers), len(moved))
        self._village_of.update(newcomers)

    async def flush(self) -> int:
        """Register gateways heard from for the first time, then write collected last-seen times and
        health; return how many gateways were updated.

        They are written :data:`FLUSH_CHUNK` gateways per transaction, each a few ``executemany`` statements:
        on SQLite a transaction holds the database's one write lock, and a long one would keep an alert
        waiting behind a thousand last-seen times."""
        if self._unapplied or (self._writing is not None and not self._writing.done()):
            await asyncio.shield(self._presence_writer())
        await self._register_newcomers()
        pending, self._pending = self._pending, {}
        gateway_ids = list(pending)
        for start in range(0, len(gateway_ids), FLUSH_CHUNK):
            chunk = {gateway_id: pending[gateway_id] for gateway_id in gateway_ids[start : start + FLUSH_CHUNK]}
            try:
                await self._write_notes(chunk)
            except DatabaseUnavailableError:
                unwritten = {gateway_id: pending[gateway_id] for gateway_id in gateway_ids[start:]}
                self._pending = unwritten | self._pending  # kept for the next flush; newer notes win
                raise
        return len(pending)

    async def _write_notes(self, notes: dict[str, _Pending]) -> None:
        seen = [{"gateway": g, "seen": p.last_seen_ms} for g, p in notes.items() if p.health is None]
        healthy = [
            {
                "gateway": g,
                "seen": p.last_seen_ms,
                "health": p.health,
                "health_ms": p.health_ms,
                "interval": p.interval_s,
            }
            for g, p in notes.items()
            if p.health is not None
        ]
        versions = [{"gateway": g, "version": p.agent_version} for g, p in notes.items() if p.agent_version is not None]
        with database_errors(f"flush {len(notes)} gateway updates"):
            async with self._sessions.begin() as session:
                for statement, rows in ((_SEEN, seen), (_HEALTHY, healthy), (_VERSION, versions)):
                    if rows:
                        await session.execute(statement, rows)

    async def gateways(self, village_id: str | None = None) -> list[GatewayRow]:
        query = select(GatewayRow).order_by(GatewayRow.village_id, GatewayRow.id)
        if village_id is not None:
            query = query.where(GatewayRow.village_id == village_id)
        with database_errors("list gateways"):
            async with self._sessions() as session:
                return list((await session.scalars(query)).all())

    async def gateway(self, gateway_id: str) -> GatewayRow | None:
        with database_errors(f"read gateway {gateway_id}"):
            async with self._sessions() as session:
                return await session.get(GatewayRow, gateway_id)
