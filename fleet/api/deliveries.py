"""Routes for the alert outbox: what each channel was told or still has to be told, and dead letters put back.

Reading needs the read permission; putting dead letters back in line needs handle_alerts and is audited.
"""

from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from fleet.api.context import CALLER_RESPONSES, Context, FleetAlertHandler, FleetReader
from fleet.api.schemas import ChannelCountsPublic, DeliveryPublic
from fleet.db.schema import DeliveryState

router = APIRouter(tags=["alerts"], responses=CALLER_RESPONSES)

_NOT_DEAD: dict[int | str, dict[str, Any]] = {404: {"description": "An id is not a dead letter"}}


class Retry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    ids: list[Annotated[int, Field(ge=1, lt=2**53)]] = Field(
        min_length=1, max_length=1000, description="Dead letters to put back in line."
    )


@router.get("/deliveries")
async def list_deliveries(
    ctx: Context,
    _: FleetReader,
    channel: Annotated[str | None, Query(max_length=32)] = None,
    state: DeliveryState | None = None,
    alert_id: Annotated[str | None, Query(min_length=36, max_length=36)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[DeliveryPublic]:
    """Outbox messages, newest first: e.g. ``?state=dead`` for the dead letters, ``?alert_id=`` for one alert's."""
    rows = await ctx.outbox.find(channel=channel, state=state, alert_id=alert_id, limit=limit)
    return [DeliveryPublic.of(row) for row in rows]


@router.get("/deliveries/summary")
async def delivery_summary(ctx: Context, _: FleetReader) -> list[ChannelCountsPublic]:
    """Messages per channel: pending, delivered and dead."""
    return [ChannelCountsPublic.model_validate(counts, from_attributes=True) for counts in await ctx.outbox.counts()]


@router.post("/deliveries/retry", responses=_NOT_DEAD)
async def retry_dead_letters(ctx: Context, actor: FleetAlertHandler, body: Retry) -> list[DeliveryPublic]:
    """Put dead letters back in line (after the channel was fixed): due now, their attempts counted afresh."""
    rows = await ctx.outbox.retry(actor, body.ids, ctx.clock())
    return [DeliveryPublic.of(row) for row in rows]
