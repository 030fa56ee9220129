"""Real servers for the integration tests: Mosquitto, the reference governance platform, the fleet."""

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import httpx
import pytest

from fleet.api.server import HttpServer
from fleet.service import FleetService
from fleet.settings import (
    DEVELOPMENT_ADMIN_TOKEN,
    ApiSettings,
    BrokerSettings,
    FleetSettings,
    GovernanceSettings,
    InfluxSettings,
    PresenceSettings,
    TimeSeriesSettings,
)
from simulators.governance.app import create_platform_app
from simulators.governance.recorder import CaseLedger
from simulators.infra.mosquitto import MosquittoBroker
from simulators.infra.victoria import VictoriaMetricsServer

PLATFORM_TOKEN = "integration-platform-token"


def fleet_api(url: str) -> httpx.AsyncClient:
    """A client of the fleet's REST API with the development admin token (the fleet's default in tests)."""
    return httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {DEVELOPMENT_ADMIN_TOKEN}"})


async def eventually(check: Callable[[], Awaitable[bool]], timeout_s: float = 10.0, what: str = "condition") -> None:
    """Poll ``check`` until it holds; fail the test naming ``what`` if it never does."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            pytest.fail(f"{what} did not happen within {timeout_s} s")
        await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def running_service(settings: FleetSettings, *, timeout_s: float = 20.0) -> AsyncIterator[FleetService]:
    """``fleet run`` in this process: yields once it serves and its ingest session and downlink are up,
    stops it (and raises whatever stopped it early) after."""
    service = FleetService(settings)
    stop = asyncio.Event()
    task = asyncio.create_task(service.run(stop))

    async def started() -> bool:
        if task.done():
            task.result()
        return service.ready.is_set() and service.consumer.connected.is_set() and service.downlink.connected

    try:
        await eventually(started, timeout_s=timeout_s, what="fleet start-up")
        yield service
    finally:
        stop.set()
        await task


@pytest.fixture
async def mosquitto() -> AsyncIterator[MosquittoBroker]:
    if not MosquittoBroker.available():
        pytest.fail("mosquitto is not installed: run scripts/test, which installs it")
    async with MosquittoBroker() as broker:
        yield broker


@pytest.fixture
async def victoria() -> AsyncIterator[VictoriaMetricsServer]:
    if not VictoriaMetricsServer.available():
        pytest.fail("victoria-metrics is not installed: run scripts/test, which installs it")
    async with VictoriaMetricsServer() as server:
        yield server


class Platform:
    def __init__(self) -> None:
        self.ledger = CaseLedger()
        self.server = HttpServer(create_platform_app(self.ledger, PLATFORM_TOKEN), "127.0.0.1", 0, "governance")


@pytest.fixture
async def platform() -> AsyncIterator[Platform]:
    platform = Platform()
    await platform.server.start()
    yield platform
    await platform.server.stop()


FleetFactory = Callable[..., Awaitable[FleetService]]


@pytest.fixture
async def start_fleet(tmp_path: Path, mosquitto: MosquittoBroker, platform: Platform) -> AsyncIterator[FleetFactory]:
    """Starts a fleet service against the test's Mosquitto and platform; stops it afterwards."""
    running: list[tuple[asyncio.Event, asyncio.Task[None]]] = []

    async def start(*, influx: InfluxSettings | None = None, heartbeat_interval_s: float = 1.0) -> FleetService:
        settings = FleetSettings(
            database_url=f"sqlite+aiosqlite:///{tmp_path / 'fleet.db'}",
            broker=BrokerSettings(host=mosquitto.host, port=mosquitto.port, client_id=f"fleet-{len(running)}"),
            api=ApiSettings(port=0),
            timeseries=TimeSeriesSettings(
                influx=influx, embedded_path=tmp_path / "timeseries.db", flush_interval_s=0.1
            ),
            governance=GovernanceSettings(url=platform.server.url, token=PLATFORM_TOKEN),
            presence=PresenceSettings(
                missed_heartbeats=3, default_interval_s=heartbeat_interval_s, sweep_interval_s=0.1
            ),
            registry_flush_interval_s=0.2,
        )
        service = FleetService(settings)
        stop = asyncio.Event()
        task = asyncio.create_task(service.run(stop))
        running.append((stop, task))
        await eventually(lambda: _ready(service, task), what="fleet start-up")
        await eventually(lambda: _flag(service.consumer.connected), what="fleet subscribing")
        return service

    yield start
    for stop, task in running:
        stop.set()
        await task


async def _ready(service: FleetService, task: "asyncio.Task[None]") -> bool:
    if task.done():
        task.result()
    return service.ready.is_set()


async def _flag(event: asyncio.Event) -> bool:
    return event.is_set()
