"""Heartbeats whose health history every reader must answer alike (SQL, PromQL, InfluxQL).

Twelve heartbeats of ``gw-hist`` ten seconds apart from ``BASE_MS``, CPU ``i`` %, the temperature
only on even ones (a board reporting it intermittently) and no round trip on the first; another
gateway's heartbeats at the same instants, which no answer may include; and one of ``gw-hist``'s
exactly at ``UNTIL_MS``, outside the half-open range.
"""

import dataclasses
import uuid
from typing import Final

import pytest

from fleet.timeseries.history import HealthSample
from fleet.timeseries.points import Point, health_point
from protocol.messages import GatewayHealth, Heartbeat

VILLAGE: Final = "hills"
GATEWAY: Final = "gw-hist"
OTHER_GATEWAY: Final = "gw-other"
BASE_MS: Final = 1_795_000_000_000
PERIOD_MS: Final = 10_000
COUNT: Final = 12
UNTIL_MS: Final = BASE_MS + COUNT * PERIOD_MS
STEP_MS: Final = 3 * PERIOD_MS


def heartbeat(gateway_id: str, i: int, ts_ms: int, seq: int | None = None) -> Heartbeat:
    return Heartbeat(
        gateway_id=gateway_id,
        seq=i if seq is None else seq,
        event_id=uuid.uuid4(),
        ts=ts_ms,
        interval_s=PERIOD_MS / 1000,
        health=GatewayHealth(
            cpu_percent=float(i),
            memory_percent=50.0 + i,
            disk_percent=20.0,
            uptime_s=100.0 + i * 10,
            temperature_c=40.0 + i if i % 2 == 0 else None,
            uplink_rtt_ms=None if i == 0 else 5.0 * i,
            buffer_depth=i,
            buffer_bytes=100 * i,
            dropped={"telemetry": i // 4} if i >= 4 else {},
        ),
    )


def seed_points() -> list[Point]:
    """Every point to write, in a shuffled order (stores must sort)."""
    ours = [health_point(VILLAGE, heartbeat(GATEWAY, i, BASE_MS + i * PERIOD_MS)) for i in range(COUNT)]
    theirs = [health_point(VILLAGE, heartbeat(OTHER_GATEWAY, COUNT - i, BASE_MS + i * PERIOD_MS)) for i in range(COUNT)]
    beyond = health_point(VILLAGE, heartbeat(GATEWAY, 0, UNTIL_MS, seq=COUNT))
    return [*reversed(ours), *theirs, beyond]


def expected_raw() -> list[HealthSample]:
    return [
        HealthSample(
            ts_ms=BASE_MS + i * PERIOD_MS,
            cpu_percent=float(i),
            memory_percent=50.0 + i,
            disk_percent=20.0,
            temperature_c=40.0 + i if i % 2 == 0 else None,
            uplink_rtt_ms=None if i == 0 else 5.0 * i,
            uptime_s=100.0 + i * 10,
            buffer_depth=float(i),
            buffer_bytes=100.0 * i,
            dropped_total=float(i // 4),
            adapters_not_running=0.0,
        )
        for i in range(COUNT)
    ]


def _mean(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return sum(present) / len(present) if present else None


def expected_stepped() -> list[HealthSample]:
    """Windows of three heartbeats from ``BASE_MS``: each field's mean, labelled with the window's start."""
    raw = expected_raw()
    windows = [raw[k : k + 3] for k in range(0, COUNT, 3)]
    return [
        HealthSample(
            ts_ms=window[0].ts_ms,
            **{
                name: _mean([getattr(sample, name) for sample in window])
                for name in HealthSample.__dataclass_fields__
                if name != "ts_ms"
            },
        )
        for window in windows
    ]


def assert_samples(actual: list[HealthSample], expected: list[HealthSample]) -> None:
    """Equal instants, and equal values up to float rounding (stores average differently)."""
    assert [s.ts_ms for s in actual] == [s.ts_ms for s in expected]
    for got, want in zip(actual, expected, strict=True):
        assert dataclasses.asdict(got) == pytest.approx(dataclasses.asdict(want)), got.ts_ms
