"""Routes for ingest's dead letters: inbound messages that could not be processed (read permission).

Each was kept with its topic, the first bytes of its payload, its gateway and why, counted each time it came
back, and then acknowledged to the broker (:mod:`fleet.ingest.dead_letters`).
"""

from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from fleet.api.context import CALLER_RESPONSES, Context, FleetReader
from protocol.identifiers import IDENTIFIER_PATTERN

router = APIRouter(tags=["ingest"], responses=CALLER_RESPONSES)


class IngestDeadLetterPublic(BaseModel):
    model_config = ConfigDict(frozen=True, from_attributes=True)

    id: int
    topic: str
    channel: str | None
    village_id: str | None
    gateway_id: str | None
    reason: str = Field(description="failed, kept_failing, not_stored_in_time, or the contract's reason.")
    error: str
    payload: str = Field(description="The payload's first bytes; bytes that are not UTF-8 as \\x escapes.")
    payload_bytes: int
    count: int = Field(description="How many times this message (or, for a flood row, its source) was dead-lettered.")
    first_ms: int
    last_ms: int


class DeadLetterTotals(BaseModel):
    model_config = ConfigDict(frozen=True)

    reason: str
    rows: int
    messages: int
    last_ms: int


@router.get("/ingest/dead-letters")
async def list_dead_letters(
    ctx: Context,
    _: FleetReader,
    gateway_id: Annotated[str | None, Query(pattern=IDENTIFIER_PATTERN)] = None,
    reason: Annotated[str | None, Query(max_length=32)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[IngestDeadLetterPublic]:
    """Dead-lettered inbound messages, the most recently seen first."""
    rows = await ctx.dead_letters.list(gateway_id=gateway_id, reason=reason, limit=limit)
    return [IngestDeadLetterPublic.model_validate(row) for row in rows]


@router.get("/ingest/dead-letters/summary")
async def dead_letter_summary(ctx: Context, _: FleetReader) -> list[DeadLetterTotals]:
    """Dead letters per reason: rows, messages counted, and when the newest was seen."""
    totals = await ctx.dead_letters.totals()
    return [
        DeadLetterTotals(reason=reason, rows=rows, messages=messages, last_ms=last)
        for reason, (rows, messages, last) in sorted(totals.items())
    ]
