"""Retention: old snapshots, audit entries, finished commands and delivered outbox messages are purged in batches;
what is recent, unfinished, undelivered or dead stays; 0 keeps a kind forever."""

import uuid

import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from fleet.db.schema import AuditRow, CommandRow, CommandState, DeliveryState, OutboxRow
from fleet.gateways.registry import Registry
from fleet.retention import Purged, RetentionPurge
from fleet.settings import RetentionSettings
from tests.fleet.alert_parts import raised, store_for
from tests.fleet.helpers import FakeClock

DAY_MS = 86_400_000


def _command(created_ms: int, state: CommandState, *, snapshot: bool = False) -> CommandRow:
    return CommandRow(
        request_id=str(uuid.uuid4()),
        gateway_id="gw-1",
        village_id="lakeside",
        name="fetch_snapshot" if snapshot else "diagnostics",
        args={},
        requested_by="li-wei",
        created_ms=created_ms,
        deadline_ms=created_ms + 30_000,
        state=state.value,
        attachment=b"\xff\xd8jpeg" if snapshot else None,
        attachment_bytes=6 if snapshot else None,
        attachment_content_type="image/jpeg" if snapshot else None,
    )


def _audit(at_ms: int) -> AuditRow:
    return AuditRow(at_ms=at_ms, actor="li-wei", role="technician", action="gateway.create", target_type="gateway",
                    target_id="gw-1", before=None, after=None)  # fmt: skip


@pytest.fixture
async def stored(sessions: async_sessionmaker[AsyncSession], clock: FakeClock) -> FakeClock:
    """A year of rows: each kind old (100 days) and recent (1 day), then the clock is now."""
    old, recent = clock.now_ms, clock.now_ms + 99 * DAY_MS
    await Registry(sessions, clock).register("lakeside", "gw-01")
    store = store_for(sessions, clock)
    alerts = [await raised(store, device_id=f"panic-{i}") for i in range(3)]
    async with sessions.begin() as session:
        session.add_all([_audit(old + i) for i in range(7)] + [_audit(recent)])
        session.add_all([
            _command(old, CommandState.SUCCEEDED, snapshot=True),
            _command(old, CommandState.SENT),  # still open: kept
            _command(recent, CommandState.FAILED),
            _command(recent - 30 * DAY_MS, CommandState.SUCCEEDED, snapshot=True),  # 31 days: its JPEG goes
        ])  # fmt: skip
        await session.execute(update(OutboxRow).where(OutboxRow.alert_id == alerts[0]).values(
            state=DeliveryState.DELIVERED.value, delivered_ms=old))  # fmt: skip
        await session.execute(update(OutboxRow).where(OutboxRow.alert_id == alerts[1]).values(
            state=DeliveryState.DELIVERED.value, delivered_ms=recent))  # fmt: skip
        await session.execute(update(OutboxRow).where(OutboxRow.alert_id == alerts[2]).values(
            state=DeliveryState.DEAD.value, delivered_ms=None))  # fmt: skip
    clock.now_ms = recent + DAY_MS
    return clock


async def test_what_is_past_its_retention_is_purged_and_the_rest_stays(
    sessions: async_sessionmaker[AsyncSession], stored: FakeClock
) -> None:
    kept = RetentionSettings(snapshot_days=30, audit_days=60, command_days=60, outbox_days=60, batch=3)
    purge = RetentionPurge(sessions, stored, kept)  # a batch of 3: several for the audit log

    purged = await purge.purge_once()

    assert purged == Purged(snapshots=2, audit_entries=7, commands=1, outbox_messages=1)
    async with sessions() as session:
        commands = (await session.scalars(select(CommandRow).order_by(CommandRow.id))).all()
        audit = (await session.scalars(select(AuditRow.at_ms))).all()
        outbox = (await session.scalars(select(OutboxRow.state))).all()
    assert [(c.state, c.attachment_bytes) for c in commands] == [("sent", None), ("failed", None), ("succeeded", None)]
    assert len(audit) == 1
    assert sorted(outbox) == ["dead", "delivered"]
    assert await purge.purge_once() == Purged(), "nothing left to purge"
    assert purge.purged == purged


async def test_zero_keeps_a_kind_forever(sessions: async_sessionmaker[AsyncSession], stored: FakeClock) -> None:
    forever = RetentionSettings(snapshot_days=0, audit_days=0, command_days=0, outbox_days=0)

    assert await RetentionPurge(sessions, stored, forever).purge_once() == Purged()
