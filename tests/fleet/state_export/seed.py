"""A small county written straight into the fleet's tables, for the state export's tests."""

from collections.abc import Iterable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from fleet.db.schema import (
    AlertRow,
    AlertTransitionRow,
    CountyRow,
    GatewayConfigRow,
    GatewayRow,
    OutboxRow,
    TownRow,
    VillageRow,
)
from fleet.timeseries.points import Point

NOW_MS = 1_700_000_000_000


async def add_rows(sessions: async_sessionmaker[AsyncSession], rows: Iterable[object]) -> None:
    """Each row in its own flush, in order (parents before children)."""
    async with sessions.begin() as session:
        for row in rows:
            session.add(row)
            await session.flush()


def county(county_id: str = "north") -> CountyRow:
    return CountyRow(id=county_id, name=county_id.title(), created_ms=0)


def town(town_id: str, county_id: str = "north") -> TownRow:
    return TownRow(id=town_id, county_id=county_id, name=town_id.title(), created_ms=0)


def village(
    village_id: str, town_id: str | None = None, latitude: float | None = None, longitude: float | None = None
) -> VillageRow:
    return VillageRow(
        id=village_id, name=village_id.title(), first_seen_ms=0, town_id=town_id, latitude=latitude, longitude=longitude
    )


def gateway(gateway_id: str, village_id: str, **fields: Any) -> GatewayRow:
    return GatewayRow(id=gateway_id, village_id=village_id, first_seen_ms=0, **fields)


def gateway_config(gateway_id: str, version: int, **fields: Any) -> GatewayConfigRow:
    return GatewayConfigRow(gateway_id=gateway_id, village_id=None, version=version, config={}, **fields)


def alert(alert_id: str, gateway_id: str, village_id: str, **fields: Any) -> AlertRow:
    """A critical panic alert, raised 2 s before :data:`NOW_MS` at the village level; ``fields`` override."""
    values: dict[str, Any] = {
        "device_id": "panic-1",
        "kind": "panic",
        "severity": "critical",
        "summary": "panic",
        "evidence": {},
        "seq": 1,
        "raised_at_ms": NOW_MS - 2_000,
        "received_at_ms": NOW_MS - 1_000,
        "state": "raised",
        "level": "village",
        "state_changed_ms": NOW_MS - 1_000,
        "escalate_at_ms": NOW_MS + 60_000,
        "condition_key": f"{gateway_id}/panic-1/{alert_id}",
        "last_seen_ms": NOW_MS - 2_000,
    }
    values.update(fields)
    return AlertRow(id=alert_id, gateway_id=gateway_id, village_id=village_id, **values)


def step(alert_id: str, step_name: str, at_ms: int, level: str = "village", **fields: Any) -> AlertTransitionRow:
    return AlertTransitionRow(
        alert_id=alert_id, step=step_name, to_state="raised", level=level, actor="fleet", at_ms=at_ms, **fields
    )


def outbox(number: int, alert_id: str, channel: str, state: str) -> OutboxRow:
    return OutboxRow(
        alert_id=alert_id,
        channel=channel,
        action="notify",
        step="raise",
        key=f"key-{number}",
        state=state,
        created_ms=NOW_MS,
        next_attempt_ms=NOW_MS,
    )


def as_plain(points: Iterable[Point]) -> list[tuple[str, dict[str, str], dict[str, float], int]]:
    """Points as comparable plain values, sorted."""
    plain = [(p.measurement, dict(p.tags), dict(p.fields), p.ts_ms) for p in points]
    return sorted(plain, key=lambda p: (p[0], sorted(p[1].items()), p[3]))
