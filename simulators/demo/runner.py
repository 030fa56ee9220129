"""Runs the demo: the whole stack, a panic press every few seconds, a live view, and a summary."""

import asyncio
import contextlib
import logging
import signal
import tempfile
import time
from pathlib import Path
from typing import Literal

from rich.console import Console
from rich.live import Live

from fleet.alerts.filters import AlertFilter
from protocol.clock import utc_now_ms
from simulators.demo.stack import DemoStack
from simulators.demo.summary import DemoSummary, press_to_case
from simulators.demo.view import render

logger = logging.getLogger(__name__)

_REFRESH_S = 0.5
_MAX_ALERTS = 10_000


async def run_demo(
    *,
    villages: int,
    duration_s: float | None,
    broker_kind: Literal["auto", "mosquitto", "embedded"],
    press_every_s: float,
    api_port: int,
    console: Console,
) -> DemoSummary:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    with tempfile.TemporaryDirectory(prefix="outpost-demo-") as workdir:
        stack = DemoStack(villages, Path(workdir), broker_kind=broker_kind, api_port=api_port)
        async with stack:
            assert stack.fleet is not None
            assert stack.county is not None
            fleet, county = stack.fleet, stack.county
            started = time.monotonic()
            presses = 0
            next_press = started + min(press_every_s, 2.0)  # let the gateways connect first
            seen_online: set[str] = set()
            last_written, last_tick = 0, started
            points_per_s = 0.0
            with Live(console=console, refresh_per_second=4, transient=False) as live:
                while not stop.is_set():
                    now = time.monotonic()
                    if duration_s is not None and now - started >= duration_s:
                        break
                    if now >= next_press:
                        county.press_random_panic()
                        county.toggle_random_door()
                        presses += 1
                        next_press = now + press_every_s
                    gateways = await fleet.registry.gateways()
                    seen_online.update(row.id for row in gateways if row.online)
                    health = fleet.health()
                    if now - last_tick >= 1.0:
                        points_per_s = (health.timeseries.written_points - last_written) / (now - last_tick)
                        last_written, last_tick = health.timeseries.written_points, now
                    live.update(
                        render(
                            now_ms=utc_now_ms(),
                            elapsed_s=now - started,
                            duration_s=duration_s,
                            gateways=gateways,
                            health=health,
                            points_per_s=points_per_s,
                            presses=presses,
                            cases=stack.ledger.cases,
                            fleet_url=fleet.http.url,
                            platform_url=stack.platform.url,
                        )
                    )
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), _REFRESH_S)
            elapsed = time.monotonic() - started
            # Give the last press time to reach the fleet, and its alert to become a case, before the stack stops.
            deadline = time.monotonic() + 3.0
            while time.monotonic() < deadline:
                alerts = await fleet.alerts.list(AlertFilter(limit=_MAX_ALERTS))
                if sum(a.occurrences for a in alerts) >= presses and len(stack.ledger.cases) >= len(alerts):
                    break
                await asyncio.sleep(0.05)
        health = fleet.health()
        alerts = await fleet.alerts.list(AlertFilter(limit=_MAX_ALERTS))
        return DemoSummary(
            villages=villages,
            broker=type(stack.broker).__name__,
            duration_s=round(elapsed, 1),
            gateways_seen_online=len(seen_online),
            telemetry_points_stored=health.timeseries.written_points,
            panic_presses=presses,
            alerts_raised=health.alerts.raised,
            presses_on_open_alerts=sum(a.occurrences - 1 for a in alerts),
            cases_delivered=len(stack.ledger.cases),
            duplicate_case_requests=stack.ledger.duplicate_requests,
            rejected_messages=sum(health.ingest.rejected.values()),
            press_to_case=press_to_case(stack.ledger.cases),
        )
