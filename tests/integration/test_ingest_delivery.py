"""Ingest loses nothing: a worker killed mid-stream, a time-series outage, and workers sharing the load.

Gateways publish telemetry batches at QoS 1 while ingest runs against a real Mosquitto and a real
VictoriaMetrics. Every point must end up stored; a point may be written twice only by a worker that
was killed between storing a batch and acknowledging it (a time-series write is idempotent per
series and timestamp), so the stored points are compared as a set of (series, timestamp, value).
"""

import asyncio
import json
import os
import re
import signal
import sys
import uuid
from pathlib import Path

import aiomqtt
import pytest
from pydantic import AnyHttpUrl, SecretStr

from fleet.db.engine import create_engine, migrate
from fleet.ingest.subscriptions import Lane
from fleet.service import FleetService
from fleet.settings import (
    ApiSettings,
    BrokerSettings,
    FleetSettings,
    InfluxSettings,
    IngestSettings,
    TimeSeriesSettings,
)
from protocol.codec import encode
from protocol.messages import TelemetryBatch, TelemetryPoint
from protocol.topics import Channel, gateway_topic
from simulators.infra.mosquitto import MosquittoBroker
from simulators.infra.victoria import VictoriaMetricsServer
from tests.integration.conftest import eventually

pytestmark = pytest.mark.integration

BASE_MS = 1_795_000_000_000
POINTS_PER_BATCH = 10
GATEWAYS = ("gw-a", "gw-b", "gw-c")

Stored = set[tuple[str, int, float]]


def batch(gateway: str, seq: int) -> TelemetryBatch:
    points = [
        TelemetryPoint(device_id="meter", metric="n", value=float(seq), ts=BASE_MS + seq * 100 + i)
        for i in range(POINTS_PER_BATCH)
    ]
    return TelemetryBatch(gateway_id=gateway, seq=seq, event_id=uuid.uuid4(), ts=BASE_MS + seq * 100, points=points)


def expected(batches: int) -> Stored:
    return {
        (gateway, BASE_MS + seq * 100 + i, float(seq))
        for gateway in GATEWAYS
        for seq in range(batches)
        for i in range(POINTS_PER_BATCH)
    }


async def publish(broker: MosquittoBroker, seqs: range, *, pause_s: float = 0.0) -> None:
    """Every gateway publishes batches ``seqs`` at QoS 1 (each its own client, as a gateway would)."""

    async def one(gateway: str) -> None:
        async with aiomqtt.Client(broker.host, broker.port, identifier=f"pub-{gateway}") as client:
            topic = gateway_topic("riverside", gateway, Channel.TELEMETRY)
            for seq in seqs:
                await client.publish(topic, encode(batch(gateway, seq)), qos=1)
                if pause_s:
                    await asyncio.sleep(pause_s)

    await asyncio.gather(*(one(gateway) for gateway in GATEWAYS))


async def stored(victoria: VictoriaMetricsServer) -> tuple[Stored, int]:
    """The distinct stored points and how many samples were stored in all."""
    await victoria.flush()
    points: Stored = set()
    samples = 0
    for series in await victoria.export('telemetry_n{village="riverside"}'):
        gateway = series["metric"]["gateway"]
        samples += len(series["timestamps"])
        points.update(zip([gateway] * len(series["timestamps"]), series["timestamps"], series["values"], strict=True))
    return points, samples


async def all_stored(victoria: VictoriaMetricsServer, want: Stored, timeout_s: float = 60.0) -> int:
    got: Stored = set()

    async def complete() -> bool:
        nonlocal got
        got, _ = await stored(victoria)
        return got >= want

    try:
        await eventually(complete, timeout_s=timeout_s, what="every point stored")
    finally:
        missing = want - got
        assert not missing, f"{len(missing)} points lost, e.g. {sorted(missing)[:3]}"
    assert got == want
    return (await stored(victoria))[1]


class Worker:
    """``outpost fleet ingest`` as a child process, configured through the environment."""

    def __init__(self, index: int, env: dict[str, str], directory: Path) -> None:
        self.index = index
        self._env = env
        self.log = directory / f"worker-{index}.log"
        self.process: asyncio.subprocess.Process | None = None
        self._offset = 0

    async def start(self) -> None:
        self._offset = self.log.stat().st_size if self.log.exists() else 0
        with self.log.open("ab") as log:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "outpost_cli", "fleet", "ingest", "--index", str(self.index),
                env=self._env, stdout=log, stderr=log,
            )  # fmt: skip

        async def subscribed() -> bool:
            if self.process is not None and self.process.returncode is not None:
                pytest.fail(f"worker {self.index} exited with {self.process.returncode}: {self.output()[-2000:]}")
            return "subscribed at" in self.output()

        await eventually(subscribed, timeout_s=20, what=f"worker {self.index} subscribing")

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")[self._offset :]

    async def kill(self) -> None:
        assert self.process is not None
        self.process.kill()  # SIGKILL: no drain, no DISCONNECT, nothing flushed
        await self.process.wait()

    async def stop(self) -> dict[str, object]:
        """SIGTERM; the worker's final ingest status."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(self.process.wait(), 30) == 0, self.output()[-2000:]
        found = re.search(r"stopped: (\{.*\})", self.output())
        assert found is not None, self.output()[-2000:]
        status: dict[str, object] = json.loads(found.group(1))
        return status


def worker_env(tmp_path: Path, broker: MosquittoBroker, victoria: VictoriaMetricsServer) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("OUTPOST_FLEET_")}
    env.update({
        "OUTPOST_FLEET_ENVIRONMENT": "development",
        "OUTPOST_FLEET_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'fleet.db'}",
        "OUTPOST_FLEET_BROKER__HOST": broker.host,
        "OUTPOST_FLEET_BROKER__PORT": str(broker.port),
        "OUTPOST_FLEET_TIMESERIES__INFLUX__URL": victoria.url,
        "OUTPOST_FLEET_TIMESERIES__INFLUX__TOKEN": "unused-by-victoria",
        "OUTPOST_FLEET_TIMESERIES__FLUSH_INTERVAL_S": "0.3",
        "OUTPOST_FLEET_TIMESERIES__BATCH_POINTS": "500",
        "OUTPOST_FLEET_REGISTRY_FLUSH_INTERVAL_S": "0.5",
    })  # fmt: skip
    return env


@pytest.fixture
async def migrated(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'fleet.db'}")
    try:
        await migrate(engine)  # done by `fleet run` in production; workers never migrate
    finally:
        await engine.dispose()


@pytest.mark.usefixtures("migrated")
async def test_two_workers_on_a_shared_subscription_split_the_load_and_store_everything_once(
    tmp_path: Path, mosquitto: MosquittoBroker, victoria: VictoriaMetricsServer
) -> None:
    env = worker_env(tmp_path, mosquitto, victoria)
    workers = [Worker(index, env, tmp_path) for index in (0, 1)]
    for worker in workers:
        await worker.start()

    await publish(mosquitto, range(100))
    samples = await all_stored(victoria, expected(100))
    statuses = [await worker.stop() for worker in workers]

    received = [status["received"] for status in statuses]
    assert all(isinstance(count, int) and count > 0 for count in received), received
    assert sum(received) == len(GATEWAYS) * 100  # type: ignore[arg-type]
    assert samples == len(expected(100))  # nothing written twice
    assert all(status["unacked"] == 0 for status in statuses)


@pytest.mark.usefixtures("migrated")
async def test_a_worker_killed_mid_stream_loses_nothing_once_it_is_back(
    tmp_path: Path, mosquitto: MosquittoBroker, victoria: VictoriaMetricsServer
) -> None:
    env = worker_env(tmp_path, mosquitto, victoria)
    workers = [Worker(index, env, tmp_path) for index in (0, 1)]
    for worker in workers:
        await worker.start()
    batches = 300

    publishing = asyncio.create_task(publish(mosquitto, range(batches), pause_s=0.005))

    async def under_way() -> bool:
        _, samples = await stored(victoria)
        return samples >= 1000

    await eventually(under_way, timeout_s=30, what="ingest under way")
    await workers[0].kill()
    await publishing
    await asyncio.sleep(1.0)  # the survivor works on; the dead worker's session holds its share
    await workers[0].start()  # the same index: it resumes its session

    samples = await all_stored(victoria, expected(batches))
    statuses = [await worker.stop() for worker in workers]

    # The restarted worker resumed its session: the broker kept for it what its predecessor had not
    # acknowledged and its share of what arrived while it was dead.
    assert "(resumed session)" in workers[0].output()
    received = [status["received"] for status in statuses]
    assert isinstance(received[0], int)
    assert isinstance(received[1], int)
    assert received[0] > 0
    assert received[1] < len(GATEWAYS) * batches  # the survivor did not take the dead one's share
    assert samples >= len(expected(batches))


async def test_a_time_series_outage_pauses_ingest_within_its_bound_and_loses_nothing(
    tmp_path: Path, mosquitto: MosquittoBroker, victoria: VictoriaMetricsServer
) -> None:
    bound = 200
    settings = FleetSettings(
        environment="development",
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'fleet.db'}",
        broker=BrokerSettings(host=mosquitto.host, port=mosquitto.port, client_id="fleet-outage"),
        api=ApiSettings(port=0),
        timeseries=TimeSeriesSettings(
            influx=InfluxSettings(url=AnyHttpUrl(victoria.url), token=SecretStr("unused"), timeout_s=2.0),
            flush_interval_s=0.1,
            batch_points=50,
            buffer_points=bound,
        ),
        ingest=IngestSettings(receive_maximum=100),
        registry_flush_interval_s=0.2,
    )
    fleet = FleetService(settings)
    stop = asyncio.Event()
    running = asyncio.create_task(fleet.run(stop))
    try:
        await eventually(lambda: _connected(fleet, running), what="fleet subscribing")
        await publish(mosquitto, range(20))
        await all_stored(victoria, expected(20))

        await victoria.stop()
        outage = asyncio.create_task(publish(mosquitto, range(20, 120)))
        seen_buffered: list[int] = []

        async def paused() -> bool:
            health = fleet.health()
            seen_buffered.append(health.ingest.buffered_points)
            return health.ingest.paused

        await eventually(paused, timeout_s=30, what="ingest pausing at its bound")
        await asyncio.sleep(2.0)  # the outage goes on: ingest holds, reports its lag, takes nothing more
        health = fleet.health()
        received_while_paused = fleet.ingest[Lane.BULK].received
        await asyncio.sleep(1.0)
        assert fleet.ingest[Lane.BULK].received == received_while_paused
        assert health.status == "degraded"
        assert health.ingest.paused
        assert health.ingest.unacked > 0
        assert health.ingest.oldest_unacked_s is not None
        assert health.ingest.oldest_unacked_s > 1.0
        assert max(seen_buffered) <= bound + POINTS_PER_BATCH
        assert health.timeseries.dropped_points == 0

        await victoria.start()
        await outage
        await all_stored(victoria, expected(120))

        async def caught_up() -> bool:
            ingest = fleet.health().ingest
            return ingest.unacked == 0 and not ingest.paused

        await eventually(caught_up, timeout_s=20, what="ingest catching up")
        assert fleet.health().ingest.pauses >= 1
    finally:
        stop.set()
        await running


async def _connected(fleet: FleetService, running: "asyncio.Task[None]") -> bool:
    if running.done():
        running.result()
    return fleet.ingest.connected
