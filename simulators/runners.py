"""Long-running simulators for ``outpost sim``: the reference platform, and a county of gateways."""

import asyncio
import contextlib
import logging
import signal
from pathlib import Path

from edge.settings import BrokerSettings
from fleet.api.server import HttpServer
from simulators.county import SimulatedCounty
from simulators.governance.app import create_platform_app
from simulators.governance.recorder import CaseLedger

logger = logging.getLogger(__name__)


def _stop_on_signals() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    return stop


async def run_platform(port: int, token: str) -> None:
    stop = _stop_on_signals()
    ledger = CaseLedger()
    server = HttpServer(create_platform_app(ledger, token), "127.0.0.1", port, "governance")
    await server.start()
    try:
        await stop.wait()
    finally:
        await server.stop()
        logger.info("platform stopped after %d cases (%d duplicate requests)", len(ledger), ledger.duplicate_requests)


async def run_county(broker_host: str, broker_port: int, villages: int, press_every_s: float, state_dir: str) -> None:
    stop = _stop_on_signals()
    county = SimulatedCounty(villages, BrokerSettings(host=broker_host, port=broker_port), Path(state_dir))
    await county.start()
    logger.info("%d simulated gateways running against %s:%d", villages, broker_host, broker_port)
    try:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), press_every_s if press_every_s > 0 else None)
            if press_every_s > 0 and not stop.is_set():
                gateway, device_id = county.press_random_panic()
                logger.info("pressed %s on %s", device_id, gateway.gateway_id)
    finally:
        await county.stop()
