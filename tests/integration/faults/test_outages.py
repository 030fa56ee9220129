"""Long outages of the fleet's stores while panic buttons are pressed (marked ``faults``: scripts/faults runs them).

- The time-series store (VictoriaMetrics) stopped for three minutes while 1,000 simulated gateways send telemetry
  and heartbeats: every press becomes one case within a bound all along; after it, no telemetry is lost.
- The registry database (PostgreSQL) stopped for 30 s: presses wait (nothing but the registry may stand between
  an alert and its case), then every one becomes exactly one case.
"""

import asyncio
import json
import logging
import sys
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from pydantic import AnyHttpUrl, SecretStr

from fleet.settings import InfluxSettings, TimeSeriesSettings
from simulators.infra.mosquitto import MosquittoBroker
from simulators.infra.postgres import PostgresServer
from simulators.infra.victoria import VictoriaMetricsServer
from tests.integration.conftest import Platform, eventually, fleet_settings, running_service

pytestmark = [pytest.mark.integration, pytest.mark.faults, pytest.mark.timeout(900)]
logger = logging.getLogger(__name__)

CASE_BOUND_S = 2.0
"""Every press must become a case within this while the time-series store is away."""
CATCH_UP_BOUND_S = 300.0
"""After the store is back, every held point must be written within this (a correctness bound)."""


class Gateways:
    """``python -m bench.alerts_gateways``: simulated gateways in a process of their own, pressing when told."""

    def __init__(self, broker: MosquittoBroker, count: int, *, heartbeat_s: float = 5.0, telemetry_s: float = 1.0):
        self._argv = [
            sys.executable, "-m", "bench.alerts_gateways", broker.host, str(broker.port), "0", str(count),
            str(heartbeat_s), str(telemetry_s),
        ]  # fmt: skip
        self._process: asyncio.subprocess.Process | None = None
        self._round = 0

    async def __aenter__(self) -> "Gateways":
        self._process = await asyncio.create_subprocess_exec(
            *self._argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, limit=2**24
        )
        assert "ready" in await self._answer(120)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._process is not None
        self._process.kill()
        await self._process.wait()

    async def _answer(self, timeout_s: float) -> dict[str, Any]:
        assert self._process is not None
        assert self._process.stdout is not None
        line = await asyncio.wait_for(self._process.stdout.readline(), timeout_s)
        answer: dict[str, Any] = json.loads(line)
        return answer

    async def press(self, presses: int, spacing_ms: float = 200.0) -> dict[UUID, float]:
        """Press ``presses`` panic buttons (each on the next gateway); their alert ids and when (epoch ms)."""
        assert self._process is not None
        assert self._process.stdin is not None
        self._round += 1
        self._process.stdin.write(f"press {self._round} {presses} {spacing_ms}\n".encode())
        await self._process.stdin.drain()
        answer = await self._answer(60 + presses * spacing_ms / 1000)
        return {UUID(event_id): ms for event_id, ms in answer["fleet"].items()}


def case_delays_ms(platform: Platform, pressed: dict[UUID, float]) -> dict[UUID, float]:
    """Press to case, for the pressed alerts whose case is open."""
    return {
        case.alert_id: case.received_at_ms - pressed[case.alert_id]
        for case in platform.ledger.cases
        if case.alert_id in pressed
    }


async def test_every_press_is_a_case_within_bound_while_the_time_series_store_is_down_for_three_minutes(
    tmp_path: Path, mosquitto: MosquittoBroker, platform: Platform, victoria: VictoriaMetricsServer
) -> None:
    influx = InfluxSettings(url=AnyHttpUrl(victoria.url), token=SecretStr("unused"), timeout_s=2.0)
    settings = fleet_settings(tmp_path, mosquitto, platform.server.url, heartbeat_interval_s=5.0)
    settings = settings.model_copy(
        update={"timeseries": TimeSeriesSettings(influx=influx, flush_interval_s=0.5, buffer_points=50_000)}
    )
    async with running_service(settings) as fleet, Gateways(mosquitto, 1_000) as gateways:
        await eventually(lambda: _online(fleet.presence.online_count, 1_000), timeout_s=60, what="1,000 online")
        await victoria.stop()
        pressed: dict[UUID, float] = {}
        loop = asyncio.get_running_loop()
        outage_ends = loop.time() + 180
        while loop.time() < outage_ends:
            pressed |= await gateways.press(10)
            await asyncio.sleep(5)
        assert not fleet.writer.healthy
        await eventually(lambda: _all_cases(platform, pressed), timeout_s=CASE_BOUND_S, what="the last presses' cases")
        health = fleet.health()
        delays = case_delays_ms(platform, pressed)
        logger.info(
            "%d presses during the outage: max %.1f ms; %d points held, bulk paused %s",
            len(pressed),
            max(delays.values(), default=-1),
            health.timeseries.buffered_points,
            health.ingest.paused,
        )
        assert set(delays) == set(pressed), "every press during the outage became a case"
        assert max(delays.values()) < CASE_BOUND_S * 1000
        assert all(lane.oldest_unacked_s is None or lane.oldest_unacked_s < 5 for lane in health.ingest.lanes[:2])
        assert fleet.presence.online_count == 1_000, "heartbeats kept flowing: nobody was declared offline"
        held, written = fleet.writer.buffered, fleet.writer.written
        await victoria.start()
        back = loop.time()
        # Nothing lost, not speed: the buffer is first in, first out, so once the writer has written as many
        # points as it held when the store came back, every held point is stored (what the broker kept
        # unacknowledged meanwhile follows). Catching up with the 1,000 gateways' live traffic is a throughput
        # matter: in two runs on 2 shared cores the buffer stayed at its bound for 300 s (docs/SCALING.md).
        await eventually(
            lambda: _at_least(fleet.writer.written, written + held), timeout_s=CATCH_UP_BOUND_S, what="held points"
        )
        logger.info("%d held points written %.0f s after the store came back", held, loop.time() - back)
        assert fleet.writer.dropped == 0
    assert all(case.duplicate_requests == 0 for case in platform.ledger.cases)


async def test_presses_wait_while_the_registry_database_is_down_then_each_becomes_exactly_one_case(
    tmp_path: Path, mosquitto: MosquittoBroker, platform: Platform
) -> None:
    async with PostgresServer() as database:
        url = await database.create_database("fleet")
        settings = fleet_settings(tmp_path, mosquitto, platform.server.url, heartbeat_interval_s=5.0)
        settings = settings.model_copy(update={"database_url": url})
        async with running_service(settings) as fleet, Gateways(mosquitto, 50) as gateways:
            await eventually(lambda: _online(fleet.presence.online_count, 50), timeout_s=60, what="50 online")
            pressed = await gateways.press(5)
            await eventually(lambda: _all_cases(platform, pressed), timeout_s=10, what="cases before the outage")
            await database.stop()
            during = await gateways.press(10, spacing_ms=1_000)
            await asyncio.sleep(20)  # 30 s in all
            assert not set(during) & {case.alert_id for case in platform.ledger.cases}
            await database.start()
            await eventually(lambda: _all_cases(platform, during), timeout_s=60, what="every press's case after it")
            delays = case_delays_ms(platform, during)
            logger.info("cases of the presses during the outage arrived %.1f-%.1f s after", *_span_s(delays))
    assert all(case.duplicate_requests == 0 for case in platform.ledger.cases)
    assert len({case.alert_id for case in platform.ledger.cases} & (set(pressed) | set(during))) == 15


async def _online(count: int, expected: int) -> bool:
    return count >= expected


async def _at_least(count: int, wanted: int) -> bool:
    return count >= wanted


async def _all_cases(platform: Platform, pressed: dict[UUID, float]) -> bool:
    return set(pressed) <= {case.alert_id for case in platform.ledger.cases}


def _span_s(delays: dict[UUID, float]) -> tuple[float, float]:
    return min(delays.values()) / 1000, max(delays.values()) / 1000
