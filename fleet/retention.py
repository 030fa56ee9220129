"""Keeping what the fleet stores no longer than it must: fetched snapshots, the audit log, finished commands and
delivered outbox messages are purged once older than ``retention.*`` (each may be 0: kept forever).

A purge runs every ``retention.interval_s`` and deletes at most ``retention.batch`` rows per transaction, so
an alert arriving meanwhile waits for one short transaction at most (on SQLite, the database's only writer).
A snapshot's JPEG goes first (it is a camera frame that left the gateway); the command it answered stays, as
evidence of who fetched what, until commands themselves are purged. Dead outbox messages are never purged:
they wait for someone to retry or read them.
"""

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any

from sqlalchemy import Select, delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from fleet.commands.store import FINAL
from fleet.db.engine import database_errors
from fleet.db.schema import AuditRow, CommandRow, DeliveryState, OutboxRow
from fleet.errors import TransientError
from fleet.settings import RetentionSettings

logger = logging.getLogger(__name__)

_DAY_MS = 86_400_000


@dataclass(slots=True)
class Purged:
    """Rows purged since the process started."""

    snapshots: int = 0
    audit_entries: int = 0
    commands: int = 0
    outbox_messages: int = 0


class RetentionPurge:
    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], clock: Callable[[], int], settings: RetentionSettings
    ) -> None:
        self._sessions = sessions
        self._clock = clock
        self._settings = settings
        self.purged = Purged()

    async def run(self) -> None:
        while True:
            try:
                await self.purge_once()
            except TransientError as exc:
                logger.warning("retention purge postponed: %s", exc)
            await asyncio.sleep(self._settings.interval_s)

    async def purge_once(self) -> Purged:
        """One pass over every kind of row; what it purged (also added to :attr:`purged`)."""
        now, kept = self._clock(), self._settings
        this_pass = Purged()
        if kept.snapshot_days:
            this_pass.snapshots = await self._snapshots(now - kept.snapshot_days * _DAY_MS)
        if kept.audit_days:
            old = select(AuditRow.id).where(AuditRow.at_ms < now - kept.audit_days * _DAY_MS)
            this_pass.audit_entries = await self._delete(AuditRow, old, "audit entries")
        if kept.command_days:
            old = select(CommandRow.id).where(
                CommandRow.state.in_([state.value for state in FINAL]),
                CommandRow.created_ms < now - kept.command_days * _DAY_MS,
            )
            this_pass.commands = await self._delete(CommandRow, old, "finished commands")
        if kept.outbox_days:
            old = select(OutboxRow.id).where(
                OutboxRow.state == DeliveryState.DELIVERED.value,
                OutboxRow.delivered_ms < now - kept.outbox_days * _DAY_MS,
            )
            this_pass.outbox_messages = await self._delete(OutboxRow, old, "delivered messages")
        counts = [field.name for field in fields(Purged)]
        for name in counts:
            setattr(self.purged, name, getattr(self.purged, name) + getattr(this_pass, name))
        if any(getattr(this_pass, name) for name in counts):
            logger.info("retention: purged %s", this_pass)
        return this_pass

    async def _snapshots(self, before_ms: int) -> int:
        """Drop the JPEG of snapshots fetched before ``before_ms``, a batch per transaction."""
        total = 0
        while True:
            batch = (
                select(CommandRow.id)
                .where(CommandRow.attachment_bytes.is_not(None), CommandRow.created_ms < before_ms)
                .limit(self._settings.batch)
            )
            with database_errors("purge old snapshots"):
                async with self._sessions.begin() as session:
                    ids = list((await session.scalars(batch)).all())
                    if ids:
                        await session.execute(
                            update(CommandRow)
                            .where(CommandRow.id.in_(ids))
                            .values(attachment=None, attachment_bytes=None, attachment_content_type=None)
                        )
            total += len(ids)
            if len(ids) < self._settings.batch:
                return total

    async def _delete(self, table: type[AuditRow | CommandRow | OutboxRow], old: Select[Any], what: str) -> int:
        """Delete the rows ``old`` selects (their ids), a batch per transaction."""
        total = 0
        while True:
            with database_errors(f"purge old {what}"):
                async with self._sessions.begin() as session:
                    ids = list((await session.scalars(old.limit(self._settings.batch))).all())
                    if ids:
                        await session.execute(delete(table).where(table.id.in_(ids)))
            total += len(ids)
            if len(ids) < self._settings.batch:
                return total
