"""Runs the demo: the whole stack, a panic press every few seconds, node faults, a live view, and a summary."""

import asyncio
import contextlib
import logging
import signal
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Literal

from rich.console import Console
from rich.live import Live

from fleet.alerts.filters import AlertFilter
from fleet.service import FleetService
from protocol.clock import utc_now_ms
from protocol.messages import AlertKind
from simulators.demo.output import log_through_root
from simulators.demo.stack import DemoStack
from simulators.demo.stimulus import Stimulus
from simulators.demo.summary import DemoSummary, press_to_case
from simulators.demo.view import render
from simulators.governance.recorder import CaseLedger

logger = logging.getLogger(__name__)

_REFRESH_S = 0.5
_MAX_ALERTS = 10_000
_SETTLE_S = 3.0
"""At the end, how long the last press may take to become a case before the stack stops."""
_SETTLE_WITH_NODES_S = 10.0
"""The same with nodes: one may be back from a Wi-Fi outage or a power cut, sending late presses."""
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


async def run_demo(
    *,
    villages: int,
    duration_s: float | None,
    broker_kind: Literal["auto", "mosquitto", "embedded"],
    press_every_s: float,
    node_villages: int,
    fault_every_s: float,
    api_port: int,
    console: Console,
    output_gone: Callable[[], bool] = lambda: False,
) -> DemoSummary:
    """Run until ``duration_s``, a signal (SIGINT, SIGTERM, SIGHUP) or ``output_gone()``; ``fault_every_s`` 0 puts
    the nodes through no faults.

    Then the last presses get a few seconds to become cases, unless a second signal comes or the output is gone
    (nobody would see the summary), and the stack stops, its servers with it.
    """
    stop = asyncio.Event()
    hurry = asyncio.Event()

    def on_signal(signum: signal.Signals) -> None:
        if stop.is_set():
            hurry.set()
            logger.info("%s again: not waiting for the last cases", signum.name)
        else:
            logger.info("%s: stopping", signum.name)
        stop.set()

    loop = asyncio.get_running_loop()
    for signum in _STOP_SIGNALS:
        loop.add_signal_handler(signum, on_signal, signum)
    with tempfile.TemporaryDirectory(prefix="outpost-demo-") as workdir:
        stack = DemoStack(
            villages, Path(workdir), broker_kind=broker_kind, api_port=api_port, node_villages=node_villages
        )
        async with stack:
            log_through_root("uvicorn", "uvicorn.access")  # its servers are set up now: their log lines join the view
            assert stack.fleet is not None
            assert stack.county is not None
            fleet, county = stack.fleet, stack.county
            started = time.monotonic()
            stimulus = Stimulus(county, press_every_s, fault_every_s, started)
            seen_online: set[str] = set()
            last_written, last_tick = 0, started
            points_per_s = 0.0
            with Live(console=console, refresh_per_second=4, transient=False) as live:
                while not stop.is_set() and not output_gone():
                    now = time.monotonic()
                    if duration_s is not None and now - started >= duration_s:
                        break
                    stimulus.tick(now)
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
                            presses=stimulus.presses,
                            cases=stack.ledger.cases,
                            nodes=[(v.village_id, status) for v in county.villages_with_nodes for status in v.status()],
                            fleet_url=fleet.http.url,
                            platform_url=stack.platform.url,
                        )
                    )
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(_REFRESH_S):
                            await stop.wait()
            elapsed = time.monotonic() - started
            settle_s = _SETTLE_WITH_NODES_S if stimulus.sensor_nodes else _SETTLE_S

            def hurried() -> bool:
                return hurry.is_set() or output_gone()

            await _settle(fleet, stack.ledger, stimulus.presses, settle_s, hurried)
        health = fleet.health()
        alerts = await fleet.alerts.list(AlertFilter(limit=_MAX_ALERTS))
        return DemoSummary(
            villages=villages,
            broker=type(stack.broker).__name__,
            duration_s=round(elapsed, 1),
            gateways_seen_online=len(seen_online),
            sensor_nodes=stimulus.sensor_nodes,
            telemetry_points_stored=health.timeseries.written_points,
            panic_presses=stimulus.presses,
            node_presses=stimulus.node_presses,
            node_faults=dict(stimulus.faults),
            alerts_raised=health.alerts.raised,
            alerts_by_kind=dict(Counter(str(a.kind) for a in alerts)),
            presses_on_open_alerts=sum(a.occurrences - 1 for a in alerts if a.kind == AlertKind.PANIC),
            cases_delivered=len(stack.ledger.cases),
            duplicate_case_requests=stack.ledger.duplicate_requests,
            rejected_messages=sum(health.ingest.rejected.values()),
            press_to_case=press_to_case(stack.ledger.cases),
        )


async def _settle(
    fleet: FleetService, ledger: CaseLedger, presses: int, seconds: float, hurried: Callable[[], bool]
) -> None:
    """Give the last presses up to ``seconds`` to reach the fleet, and every alert to become a case, unless
    ``hurried()``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not hurried():
        alerts = await fleet.alerts.list(AlertFilter(limit=_MAX_ALERTS))
        counted = sum(a.occurrences for a in alerts if a.kind == AlertKind.PANIC)
        if counted >= presses and len(ledger.cases) >= len(alerts):
            return
        await asyncio.sleep(0.05)
