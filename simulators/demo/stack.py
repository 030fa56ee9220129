"""Starts and stops everything the demo runs: brokers, governance platform, fleet and a county.

The county's broker is the one the fleet listens on; each village with sensor nodes also gets a
local broker of the same kind, as its gateway (a Pi running Mosquitto) has in the field.
"""

import asyncio
import logging
from pathlib import Path
from types import TracebackType
from typing import Final, Self

from edge.settings import BrokerSettings as GatewayBrokerSettings
from fleet.api.server import HttpServer
from fleet.service import FleetService
from fleet.settings import (
    ApiSettings,
    FleetSettings,
    GovernanceSettings,
    IngestSettings,
    PresenceSettings,
    TimeSeriesSettings,
)
from fleet.settings import BrokerSettings as FleetBrokerSettings
from simulators.county import SimulatedCounty
from simulators.governance.app import create_platform_app
from simulators.governance.recorder import CaseLedger
from simulators.infra.broker import Broker, BrokerKind, make_broker
from simulators.infra.mosquitto import MosquittoBroker
from simulators.nodes.village import NODE_IDS
from simulators.nodes.village_broker import VillageMosquitto

logger = logging.getLogger(__name__)

PLATFORM_TOKEN = "demo-platform-token"  # noqa: S105 - a local demo's own platform
_LOST_CANCELLATION_S: Final = 2.0
"""How often stopping the gateways looks for cancelled tasks that run on; one seen twice is cancelled again."""


def _village_broker(kind: BrokerKind) -> Broker:
    """A village's own broker: Mosquitto with a login for each node, as a gateway runs it; the embedded broker
    (anonymous: it has no ACLs) only when Mosquitto is not installed or not wanted."""
    if kind == "embedded" or (kind == "auto" and not MosquittoBroker.available()):
        return make_broker("embedded")
    return VillageMosquitto(NODE_IDS)


class DemoStack:
    def __init__(
        self,
        villages: int,
        workdir: Path,
        *,
        broker_kind: BrokerKind = "auto",
        api_port: int = 0,
        heartbeat_interval_s: float = 2.0,
        node_villages: int = 0,
    ) -> None:
        self.broker: Broker = make_broker(broker_kind)
        self.local_brokers = [_village_broker(broker_kind) for _ in range(min(node_villages, villages))]
        self.ledger = CaseLedger()
        self.platform = HttpServer(create_platform_app(self.ledger, PLATFORM_TOKEN), "127.0.0.1", 0, "governance")
        self._workdir = workdir
        self._villages = villages
        self._api_port = api_port
        self._heartbeat_interval_s = heartbeat_interval_s
        self._fleet_stop = asyncio.Event()
        self._fleet_task: asyncio.Task[None] | None = None
        self.fleet: FleetService | None = None
        self.county: SimulatedCounty | None = None

    async def __aenter__(self) -> Self:
        try:
            await self._start()
        except BaseException:
            await self.__aexit__(None, None, None)
            raise
        return self

    async def _start(self) -> None:
        await self.broker.start()
        await self.platform.start()
        self.fleet = FleetService(
            FleetSettings(
                environment="development",
                database_url=f"sqlite+aiosqlite:///{self._workdir / 'fleet.db'}",
                broker=FleetBrokerSettings(
                    host=self.broker.host,
                    port=self.broker.port,
                    mqtt_version="5" if self.broker.speaks_mqtt5 else "3.1.1",
                ),
                # One ingest process here; an MQTT 3.1.1-only broker has no shared subscriptions either.
                ingest=IngestSettings(share_group="outpost-ingest" if self.broker.speaks_mqtt5 else None),
                api=ApiSettings(port=self._api_port),
                timeseries=TimeSeriesSettings(embedded_path=self._workdir / "timeseries.db"),
                governance=GovernanceSettings(url=self.platform.url, token=PLATFORM_TOKEN),
                presence=PresenceSettings(default_interval_s=self._heartbeat_interval_s),
            )
        )
        self._fleet_task = asyncio.create_task(self.fleet.run(self._fleet_stop), name="fleet")
        ready = asyncio.create_task(self.fleet.ready.wait())
        await asyncio.wait([ready, self._fleet_task], return_when=asyncio.FIRST_COMPLETED)
        if self._fleet_task.done():  # it failed to start: raise its error (once)
            ready.cancel()
            failed, self._fleet_task = self._fleet_task, None
            failed.result()
        for local in self.local_brokers:
            await local.start()
        self.county = SimulatedCounty(
            self._villages,
            GatewayBrokerSettings(host=self.broker.host, port=self.broker.port),
            self._workdir / "gateways",
            heartbeat_interval_s=self._heartbeat_interval_s,
            local_brokers=self.local_brokers,
        )
        await self.county.start()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.county is not None:
            await _until_done(asyncio.create_task(self.county.stop(), name="county-stop"), "the gateways")
            await asyncio.sleep(0.3)  # let the fleet take in the gateways' last messages
        self._fleet_stop.set()
        if self._fleet_task is not None:
            try:
                await self._fleet_task  # bounded: the fleet gives its tasks a grace period, then leaves them
            except Exception:
                logger.exception("fleet stopped with an error")
        await self.platform.stop()
        for local in self.local_brokers:
            await local.close()
        await self.broker.close()


async def _until_done(stopping: asyncio.Task[None], what: str) -> None:
    """Wait for ``stopping`` (``what`` stopping); whenever it takes more than a moment, cancel again each task that
    was cancelled but runs on, and say where it was.

    Python 3.11's ``asyncio.wait_for``, with which aiomqtt connects, subscribes and publishes, swallows a
    cancellation that arrives as the operation completes. A gateway's uplink (or local bus) cancelled as it
    connects then carries on into its session and waits for messages for ever, and its agent, the county and the
    demo wait on it: a demo stopped right after it started (its output gone, a Ctrl-C) never ended. Asked again,
    such a task ends.
    """
    current = asyncio.current_task()
    seen: set[asyncio.Task[object]] = set()
    while not (await asyncio.wait({stopping}, timeout=_LOST_CANCELLATION_S))[0]:
        cancelling = {t for t in asyncio.all_tasks() if t.cancelling() and not t.done()} - {stopping, current}
        for task in cancelling & seen:  # still running a while after its cancellation: it was lost
            logger.warning(
                "stopping %s: task %s ignored its cancellation (at %s); cancelling it again",
                what,
                task.get_name(),
                _where(task),
            )
            task.cancel()
        seen = cancelling
    await stopping


def _where(task: asyncio.Task[object]) -> str:
    """Where ``task`` waits, innermost first (the chain of coroutines it awaits)."""
    frames: list[str] = []
    awaited: object = task.get_coro()
    while awaited is not None:
        frame = getattr(awaited, "cr_frame", None) or getattr(awaited, "gi_frame", None)
        if frame is None:
            break
        frames.append(f"{frame.f_code.co_name}:{frame.f_lineno}")
        awaited = getattr(awaited, "cr_await", None) or getattr(awaited, "gi_yieldfrom", None)
    return " <- ".join(reversed(frames)) or "?"
