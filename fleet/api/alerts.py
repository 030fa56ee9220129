"""Routes for alerts: find them, read one with its history, and act on it (acknowledge, note, cancel, resolve).

Reading needs the read permission; acting needs handle_alerts (command staff, admins). Every action is
checked against the lifecycle (an illegal step is a 409 naming the states it is allowed from) and
audited with its transition.
"""

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, status
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from fleet.alerts.filters import AlertFilter
from fleet.alerts.lifecycle import Step
from fleet.api.context import CALLER_RESPONSES, AlertHandler, Context, Reader
from fleet.api.schemas import AlertPublic, AlertStepPublic
from fleet.db.schema import DeliveryState
from fleet.errors import NotFoundError
from protocol.identifiers import IDENTIFIER_PATTERN
from protocol.messages import AlertKind, FleetAlertKind, Severity
from protocol.notifications import AlertLevel, AlertState

router = APIRouter(tags=["alerts"], responses=CALLER_RESPONSES)

AlertIdPath = Annotated[str, Path(min_length=36, max_length=36)]
Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=512)]
_UNKNOWN: dict[int | str, dict[str, Any]] = {404: {"description": "No such alert"}}
_TEN_YEARS_S = 10 * 365 * 24 * 3600
_ACTED: dict[int | str, dict[str, Any]] = {
    **_UNKNOWN,
    409: {"description": "The alert's state does not allow this step"},
}


class Reason(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    reason: Text | None = Field(default=None, description="Why; required to cancel (e.g. why it was a false alarm).")


class Cancellation(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    reason: Text = Field(description="Why the alert is cancelled, e.g. a test press or a false alarm.")


class Note(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    text: Text


@router.get("/alerts")
async def list_alerts(
    ctx: Context,
    actor: Reader,
    village_id: Annotated[str | None, Query(pattern=IDENTIFIER_PATTERN)] = None,
    town_id: Annotated[str | None, Query(pattern=IDENTIFIER_PATTERN)] = None,
    state: Annotated[
        list[AlertState] | None, Query(description="Repeat for several, e.g. raised and acknowledged.")
    ] = None,
    severity: Annotated[list[Severity] | None, Query()] = None,
    kind: Annotated[
        list[AlertKind | FleetAlertKind] | None,
        Query(description="Repeat for several, e.g. panic and door_forced, or the fleet's own gateway_offline."),
    ] = None,
    level: AlertLevel | None = None,
    delivery_state: DeliveryState | None = None,
    older_than_s: Annotated[
        float | None, Query(ge=0, le=_TEN_YEARS_S, description="Raised at least this long ago.")
    ] = None,
    since_ms: Annotated[
        int | None, Query(ge=0, lt=2**53, description="Raised at or after this instant (epoch ms).")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[AlertPublic]:
    """Alerts, newest first, with their lifecycle state, level and the state of their case upstream."""
    where = AlertFilter(
        village_id=village_id,
        town_id=town_id,
        within=actor.scope,
        states=frozenset(state) if state else None,
        severities=frozenset(severity) if severity else None,
        kinds=frozenset(kind) if kind else None,
        level=level,
        delivery_state=delivery_state,
        raised_before_ms=None if older_than_s is None else ctx.clock() - round(older_than_s * 1000),
        raised_since_ms=since_ms,
        limit=limit,
    )
    return [AlertPublic.of(row) for row in await ctx.alerts.list(where)]


@router.get("/alerts/{alert_id}", responses=_UNKNOWN)
async def get_alert(ctx: Context, _: Reader, alert_id: AlertIdPath) -> AlertPublic:
    row = await ctx.alerts.get(alert_id)
    if row is None:
        raise NotFoundError(f"no alert {alert_id!r}")
    return AlertPublic.of(row)


@router.get("/alerts/{alert_id}/history", responses=_UNKNOWN)
async def alert_history(ctx: Context, _: Reader, alert_id: AlertIdPath) -> list[AlertStepPublic]:
    """Every step the alert took and every note on it, oldest first: who, when, why."""
    return [AlertStepPublic.of(row) for row in await ctx.handling.history(alert_id)]


@router.post("/alerts/{alert_id}/acknowledge", responses=_ACTED)
async def acknowledge(
    ctx: Context, actor: AlertHandler, alert_id: AlertIdPath, body: Reason | None = None
) -> AlertPublic:
    """Take the alert on: it stops escalating."""
    reason = body.reason if body is not None else None
    return AlertPublic.of(await ctx.handling.take(actor, alert_id, Step.ACKNOWLEDGE, reason))


@router.post("/alerts/{alert_id}/resolve", responses=_ACTED)
async def resolve(ctx: Context, actor: AlertHandler, alert_id: AlertIdPath, body: Reason | None = None) -> AlertPublic:
    """The situation is dealt with (the alert must have been acknowledged or dispatched)."""
    reason = body.reason if body is not None else None
    return AlertPublic.of(await ctx.handling.take(actor, alert_id, Step.RESOLVE, reason))


@router.post("/alerts/{alert_id}/cancel", responses=_ACTED)
async def cancel(ctx: Context, actor: AlertHandler, alert_id: AlertIdPath, body: Cancellation) -> AlertPublic:
    """A false alarm (a test press, a misread): closed with the reason."""
    return AlertPublic.of(await ctx.handling.take(actor, alert_id, Step.CANCEL, body.reason))


@router.post("/alerts/{alert_id}/notes", status_code=status.HTTP_201_CREATED, responses=_UNKNOWN)
async def add_note(ctx: Context, actor: AlertHandler, alert_id: AlertIdPath, body: Note) -> AlertStepPublic:
    """Add a note to the alert's history (its state does not change)."""
    return AlertStepPublic.of(await ctx.handling.note(actor, alert_id, body.text))
