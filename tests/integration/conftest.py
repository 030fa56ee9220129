"""Real servers for the integration tests: Mosquitto, the reference governance platform, the fleet."""

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from fleet.api.server import HttpServer
from fleet.service import FleetService
from fleet.settings import (
    DEVELOPMENT_ADMIN_TOKEN,
    AlertSettings,
    ApiSettings,
    BrokerSettings,
    DeliverySettings,
    FleetSettings,
    GovernanceSettings,
    InfluxSettings,
    JobSettings,
    PresenceSettings,
    ReleaseSettings,
    TimeSeriesSettings,
)
from simulators.governance.app import create_platform_app
from simulators.governance.case_loop import CaseLoopSettings
from simulators.governance.platform import GovernancePlatform, callback_url_for
from simulators.governance.recorder import CaseLedger
from simulators.infra.mosquitto import MosquittoBroker
from simulators.infra.victoria import VictoriaMetricsServer
from simulators.nodes.village import NODE_IDS
from simulators.nodes.village_broker import VillageMosquitto

PLATFORM_TOKEN = "integration-platform-token"
PLATFORM_SIGNING_SECRET = "integration-platform-signing-secret"


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
async def running_service(
    settings: FleetSettings, *, timeout_s: float = 20.0, stop_timeout_s: float = 120.0
) -> AsyncIterator[FleetService]:
    """``fleet run`` in this process: yields once it serves and its ingest session and downlink are up,
    stops it (and raises whatever stopped it early) after."""
    service = FleetService(settings)
    stop = asyncio.Event()
    task = asyncio.create_task(service.run(stop))

    async def started() -> bool:
        if task.done():
            task.result()
        return service.ready.is_set() and service.ingest.connected and service.downlink.connected

    try:
        await eventually(started, timeout_s=timeout_s, what="fleet start-up")
        yield service
    finally:
        stop.set()
        try:
            async with asyncio.timeout(stop_timeout_s):
                await task
        except TimeoutError:
            stuck = "\n".join(_where(t) for t in asyncio.all_tasks() if t is not asyncio.current_task())
            pytest.fail(f"the fleet did not stop within {stop_timeout_s:g} s; tasks:\n{stuck}")


def _where(task: "asyncio.Task[object]") -> str:
    frames = " <- ".join(f"{f.f_code.co_name} ({f.f_code.co_filename}:{f.f_lineno})" for f in task.get_stack())
    return f"{task.get_name()}: {frames}"


@pytest.fixture
async def mosquitto() -> AsyncIterator[MosquittoBroker]:
    if not MosquittoBroker.available():
        pytest.fail("mosquitto is not installed: run scripts/test, which installs it")
    async with MosquittoBroker() as broker:
        yield broker


@pytest.fixture
async def local_broker() -> AsyncIterator[MosquittoBroker]:
    """A village's own broker (nodes, the village centre), beside the county's ``mosquitto``."""
    async with MosquittoBroker() as broker:
        yield broker


@pytest.fixture
async def village_broker() -> AsyncIterator[VillageMosquitto]:
    """A village's own Mosquitto as a gateway runs it: a login for the gateway, the centre and each demo node."""
    async with VillageMosquitto(NODE_IDS) as broker:
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
GovernanceFactory = Callable[..., Awaitable[GovernancePlatform]]


@pytest.fixture
async def governance_platform() -> AsyncIterator[GovernanceFactory]:
    """Starts reference governance platforms (:class:`GovernancePlatform`: signed requests both ways, its
    case loop calling the fleet back, faults, a request log); stops them afterwards."""
    running: list[GovernancePlatform] = []

    async def start(*, case_loop: CaseLoopSettings | None = None) -> GovernancePlatform:
        platform = GovernancePlatform(
            token=PLATFORM_TOKEN, signing_secrets=[PLATFORM_SIGNING_SECRET], case_loop=case_loop
        )
        running.append(platform)
        await platform.start()
        return platform

    yield start
    for platform in reversed(running):
        await platform.stop()


def fleet_settings(
    tmp_path: Path,
    mosquitto: MosquittoBroker,
    governance_url: str,
    *,
    client_id: str = "fleet-0",
    influx: InfluxSettings | None = None,
    heartbeat_interval_s: float = 1.0,
    signing_secret: str | None = None,
    alerts: AlertSettings | None = None,
    delivery: DeliverySettings | None = None,
    releases: ReleaseSettings | None = None,
) -> FleetSettings:
    """A fleet's settings for the integration tests: the test's Mosquitto, SQLite and embedded time series
    in ``tmp_path`` (the same database for every fleet of a test), the platform at ``governance_url``."""
    governance = GovernanceSettings(url=governance_url, token=PLATFORM_TOKEN)
    if signing_secret is not None:
        governance = governance.model_copy(update={"signing_secrets": [SecretStr(signing_secret)]})
    return FleetSettings(
        environment="development",
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'fleet.db'}",
        broker=BrokerSettings(host=mosquitto.host, port=mosquitto.port, client_id=client_id),
        api=ApiSettings(port=0),
        timeseries=TimeSeriesSettings(influx=influx, embedded_path=tmp_path / "timeseries.db", flush_interval_s=0.1),
        governance=governance,
        delivery=delivery or DeliverySettings(),
        alerts=alerts or AlertSettings(),
        presence=PresenceSettings(missed_heartbeats=3, default_interval_s=heartbeat_interval_s, sweep_interval_s=0.1),
        registry_flush_interval_s=0.2,
        releases=releases or ReleaseSettings(directory=tmp_path / "releases"),
        jobs=JobSettings(tick_s=0.2),
    )


@pytest.fixture
async def start_fleet(tmp_path: Path, mosquitto: MosquittoBroker, platform: Platform) -> AsyncIterator[FleetFactory]:
    """Starts a fleet service against the test's Mosquitto and platform; stops it afterwards.

    With ``governance=`` a :class:`GovernancePlatform` (see ``governance_platform``) instead of the plain
    ``platform``: the fleet signs with its secret, and its case loop calls this fleet back."""
    running: list[tuple[asyncio.Event, asyncio.Task[None]]] = []

    async def start(
        *,
        influx: InfluxSettings | None = None,
        heartbeat_interval_s: float = 1.0,
        governance: GovernancePlatform | None = None,
        alerts: AlertSettings | None = None,
        delivery: DeliverySettings | None = None,
        releases: ReleaseSettings | None = None,
    ) -> FleetService:
        settings = fleet_settings(
            tmp_path,
            mosquitto,
            governance.url if governance is not None else platform.server.url,
            client_id=f"fleet-{len(running)}",
            influx=influx,
            heartbeat_interval_s=heartbeat_interval_s,
            signing_secret=PLATFORM_SIGNING_SECRET if governance is not None else None,
            alerts=alerts,
            delivery=delivery,
            releases=releases,
        )
        service = FleetService(settings)
        stop = asyncio.Event()
        task = asyncio.create_task(service.run(stop))
        running.append((stop, task))
        await eventually(lambda: _ready(service, task), what="fleet start-up")
        await eventually(lambda: _holds(service.ingest.connected), what="fleet subscribing")
        if governance is not None and governance.loop is not None:
            governance.set_callback_url(callback_url_for(service.http.url))
        return service

    yield start
    for stop, task in running:
        stop.set()
        await task


async def _ready(service: FleetService, task: "asyncio.Task[None]") -> bool:
    if task.done():
        task.result()
    return service.ready.is_set()


async def _holds(condition: bool) -> bool:
    return condition
