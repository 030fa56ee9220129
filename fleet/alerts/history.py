"""An alert's history: every step it takes is recorded (who, when, why) and offered to the outbox in one go.

:func:`record_step` is the one way a step is written, wherever it comes from (a gateway raising it, the
escalator, staff, the governance platform), so no step reaches the history without reaching the
channels that want it, in the same transaction. Notes are history only.
"""

from typing import Final

from sqlalchemy.ext.asyncio import AsyncSession

from fleet.alerts.outbox import RAISE, Outbox
from fleet.db.schema import AlertRow, AlertTransitionRow, OutboxRow

__all__ = ["ESCALATE", "FLEET_ACTOR", "NOTE", "RAISE", "record_step", "transition_of"]

ESCALATE: Final = "escalate"
NOTE: Final = "note"
FLEET_ACTOR: Final = "fleet"


def transition_of(
    row: AlertRow, step: str, to_state: str, actor: str, reason: str | None, at_ms: int
) -> AlertTransitionRow:
    """The record of ``row`` taking ``step`` (or a note) from its current state and level."""
    return AlertTransitionRow(
        alert_id=row.id,
        step=step,
        from_state=None if step == RAISE else row.state,
        to_state=to_state,
        level=row.level,
        actor=actor[:64],
        reason=reason[:512] if reason else None,
        at_ms=at_ms,
    )


async def record_step(
    session: AsyncSession,
    outbox: Outbox,
    row: AlertRow,
    step: str,
    to_state: str,
    actor: str,
    reason: str | None,
    at_ms: int,
    *,
    not_before_ms: int | None = None,
) -> list[OutboxRow]:
    """Record ``row`` taking ``step`` to ``to_state`` (call it before changing the row) and queue what each
    channel is to be told of it; ``not_before_ms`` holds people's notifications back (quiet hours). Returns
    the messages queued."""
    session.add(transition_of(row, step, to_state, actor, reason, at_ms))
    return await outbox.follow(session, row, step, reason, at_ms, not_before_ms=not_before_ms)
