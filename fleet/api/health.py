"""``GET /gateways/{gateway_id}/health``: a gateway's health over time, read from the time-series store.

Times are epoch milliseconds or ISO-8601 with a time zone (``2026-05-01T08:00:00Z``); a step is
milliseconds or a number with a unit (``500ms``, ``30s``, ``5m``, ``1h``, ``1d``). The bounds and
what a step means are in :mod:`fleet.timeseries.history`.
"""

import re
from datetime import datetime
from typing import Annotated, Final

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel, ConfigDict

from fleet.api.context import CALLER_RESPONSES, Context, IdPath, Reader
from fleet.errors import InvalidRequestError, NotFoundError, TimeSeriesRejectedError
from fleet.timeseries.history import MAX_SAMPLES, HealthQuery
from protocol.clock import utc_now_ms

DEFAULT_SPAN_MS: Final = 3_600_000
_DURATION: Final = re.compile(r"^(\d+)(ms|s|m|h|d)?$")
_UNIT_MS: Final = {None: 1, "ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
_EPOCH_MS: Final = re.compile(r"^\d{1,16}$")
_LATEST_MS: Final = 2**53

router = APIRouter(tags=["gateways"])


class HealthSamplePublic(BaseModel):
    model_config = ConfigDict(frozen=True, from_attributes=True)

    ts_ms: int
    cpu_percent: float | None
    memory_percent: float | None
    disk_percent: float | None
    temperature_c: float | None
    uplink_rtt_ms: float | None
    uptime_s: float | None
    buffer_depth: float | None
    buffer_bytes: float | None
    dropped_total: float | None
    adapters_not_running: float | None


class HealthHistoryPublic(BaseModel):
    model_config = ConfigDict(frozen=True)

    gateway_id: str
    since_ms: int
    until_ms: int
    step_ms: int | None
    store: str
    truncated: bool
    samples: list[HealthSamplePublic]


def parse_time(value: str, name: str) -> int:
    """Epoch milliseconds from epoch milliseconds or ISO-8601 with a time zone."""
    if _EPOCH_MS.match(value):
        ms = int(value)
    else:
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            raise InvalidRequestError(f"{name} must be epoch milliseconds or ISO-8601, not {value[:40]!r}") from None
        if moment.tzinfo is None:
            raise InvalidRequestError(f"{name} needs a time zone (Z or +hh:mm): {value[:40]!r}")
        try:
            ms = round(moment.timestamp() * 1000)
        except (OverflowError, ValueError):
            ms = -1
    if not 0 <= ms < _LATEST_MS:
        raise InvalidRequestError(f"{name} must lie between 1970 and the year 285,000: {value[:40]!r}")
    return ms


def parse_step(value: str) -> int:
    match = _DURATION.match(value.strip())
    if match is None:
        raise InvalidRequestError(f"step must be milliseconds or a number with ms, s, m, h or d, not {value[:40]!r}")
    return int(match[1]) * _UNIT_MS[match[2]]


@router.get(
    "/gateways/{gateway_id}/health",
    responses={
        **CALLER_RESPONSES,
        404: {"description": "No such gateway"},
        422: {"description": "A time, step or range out of bounds"},
        502: {"description": "The time-series server refused the query"},
        503: {"description": "The time-series server is unavailable"},
    },
)
async def gateway_health_history(
    ctx: Context,
    _: Reader,
    gateway_id: IdPath,
    since: Annotated[
        str | None, Query(max_length=40, description="Start (inclusive); default: an hour before until.")
    ] = None,
    until: Annotated[str | None, Query(max_length=40, description="End (exclusive); default: now.")] = None,
    step: Annotated[
        str | None,
        Query(max_length=20, description="One sample per window of this length (means); unset: every heartbeat."),
    ] = None,
    limit: Annotated[
        int, Query(ge=1, le=MAX_SAMPLES, description="Without a step: the most samples in one answer.")
    ] = MAX_SAMPLES,
) -> HealthHistoryPublic:
    """The gateway's health samples in time order (CPU, memory, disk, temperature, uplink round trip,
    buffer, drops, adapters not running), from the time-series store. Without a step, when
    ``truncated`` is true, ask again with ``since`` one millisecond after the last sample."""
    if await ctx.registry.gateway(gateway_id) is None:
        raise NotFoundError(f"no gateway {gateway_id!r}")
    until_ms = parse_time(until, "until") if until is not None else utc_now_ms()
    since_ms = parse_time(since, "since") if since is not None else max(0, until_ms - DEFAULT_SPAN_MS)
    query = HealthQuery.of(gateway_id, since_ms, until_ms, parse_step(step) if step else None, limit)
    try:
        page = await ctx.health_history.health(query)
    except TimeSeriesRejectedError as exc:
        raise HTTPException(502, f"the time-series store refused the query: {exc}") from exc
    return HealthHistoryPublic(
        gateway_id=gateway_id,
        since_ms=query.since_ms,
        until_ms=query.until_ms,
        step_ms=query.step_ms,
        store=ctx.health_history.name,
        truncated=page.truncated,
        samples=[HealthSamplePublic.model_validate(sample) for sample in page.samples],
    )
