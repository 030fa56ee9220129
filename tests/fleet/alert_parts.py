"""Alerts stored for a test: a store whose alerts open governance cases, and a panic raised in it."""

from collections.abc import Callable
from typing import Final

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from fleet.alerts.channels.governance import GOVERNANCE_CHANNEL
from fleet.alerts.outbox import Outbox, case_route
from fleet.alerts.store import AlertStore
from fleet.db.schema import AlertRow
from tests.fleet.helpers import default_escalation, make_alert

CASES: Final = Outbox([case_route(GOVERNANCE_CHANNEL)])
"""The governance platform the only channel: a raised alert opens a case."""


def store_for(
    sessions: async_sessionmaker[AsyncSession], clock: Callable[[], int], outbox: Outbox = CASES
) -> AlertStore:
    return AlertStore(sessions, clock, default_escalation(), outbox=outbox)


async def raised(store: AlertStore, village: str = "lakeside", **changes: object) -> str:
    """A panic (see :func:`~tests.fleet.helpers.make_alert`, ``changes`` override it) stored as a new alert: its id."""
    alert = make_alert(gateway_id="gw-01" if village == "lakeside" else "gw-02", **changes)
    assert await store.record(village, alert)
    return str(alert.event_id)


async def alert_row(store: AlertStore, alert_id: str) -> AlertRow:
    row = await store.get(alert_id)
    assert row is not None
    return row
