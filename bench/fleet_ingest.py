"""Ingest throughput through the real path: gateways' telemetry over MQTT into VictoriaMetrics.

``fleet.ingest_1_worker``, ``fleet.ingest_2_workers``, ``fleet.ingest_4_workers`` (points/s): a load
generator (this process) publishes :data:`POINTS_PER_MESSAGE`-point :class:`~protocol.messages.TelemetryBatch`
messages (encoded with :func:`protocol.codec.encode`; :data:`GATEWAYS` gateway ids, each on its own
topic, spread over ``bench.fleet_gateways.VILLAGES`` villages; each batch every metric of every device
at one instant) at QoS 1 into a real Mosquitto, as fast as :data:`PUBLISHERS` connections with
:data:`WINDOW` publishes in flight each allow. N ingest workers, each its own ``outpost fleet ingest
--index I`` process with the production settings (share group, Receive Maximum, batch size, flush
interval), share them through ``$share`` and write them into a real VictoriaMetrics. A run is timed
from the first publish until a reader of VictoriaMetrics sees every point of the run (a flush and a
count every 50 ms, :class:`bench.fleet_rig.StoredPoints`); then every point must be there exactly once,
and the workers' final status must show every message received by exactly one of them and acknowledged.
Goal: at least :data:`INGEST_GOAL` points/s and at least :data:`STORE_RATIO_GOAL` of the store's ceiling.

Baselines, measured in the same rounds on the same servers:

- ``fleet.ingest_store_ceiling``: the same points written straight into VictoriaMetrics by the
  fleet's own :class:`~fleet.timeseries.writer.BatchingWriter` and InfluxDB sink (production batch
  size), from this process, without MQTT or decoding: right after each ingest run. Each worker
  figure's baseline (and ratio) is the median of the store runs that followed its own runs; the
  ceiling figure is the median of all of them.
- ``fleet.ingest_broker_ceiling``: the same messages taken from the same kind of broker through the
  workers' shared filter by a bare paho subscriber in its own process (:mod:`bench.fleet_bare_subscriber`)
  that neither decodes nor stores them.

Each run starts fresh workers on a fresh broker (so no persistent session of another configuration
still holds a share of the group), warms them with one batch per gateway (each worker registers the
gateways it hears from, a transaction each), then takes the run's messages. Runs go in rounds, each
round one run of every configuration on the same messages, so that a slow spell of the machine hits
them alike.

The machine is shared by everything: on 2 cores the load generator, Mosquitto, VictoriaMetrics and the
workers compete for the CPU, so more workers than free cores cannot add throughput, and each figure
is a floor for a deployment with the broker, the store and the load elsewhere. The harness has no
notes field; the cores each process used during each run (and what the rest of the machine took) are
logged at INFO (``python -m bench fleet -v``), with a warning when other processes took a share.

With ``OUTPOST_BENCH_PROFILE_DIR`` set, every worker runs under cProfile (one ``ingest-{N}w-{I}.prof``
there each; see :func:`bench.fleet_rig.profiling_options`).
"""

import asyncio
import itertools
import logging
import math
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Final, Self

import aiomqtt
from pydantic import AnyHttpUrl, SecretStr

from bench.fleet_gateways import gateway_id, village_id
from bench.fleet_rig import CpuSplit, FleetProcess, StoredPoints, fleet_environment, migrate_database, profiling_options
from bench.harness import Figure, Profile, median
from fleet.ingest.subscriptions import Lane, lane_filters
from fleet.settings import InfluxSettings, IngestSettings, TimeSeriesSettings
from fleet.timeseries.factory import writer_for
from fleet.timeseries.points import telemetry_points
from protocol.clock import utc_now_ms
from protocol.codec import Decoder, Inbound, encode
from protocol.messages import TelemetryBatch, TelemetryPoint
from protocol.topics import Channel, gateway_topic
from simulators.infra.mosquitto import MosquittoBroker
from simulators.infra.victoria import VictoriaMetricsServer

logger = logging.getLogger(__name__)

INGEST_GOAL: Final = 100_000.0
STORE_RATIO_GOAL: Final = 0.5
WORKER_COUNTS: Final = (1, 2, 4)
POINTS_PER_MESSAGE: Final = 50
GATEWAYS: Final = 200
PUBLISHERS: Final = 4
WINDOW: Final = 128
DEVICES: Final = 10
METRICS: Final = ("temperature_c", "humidity_pct", "battery_v", "rssi_dbm", "water_level_cm")
HISTORY_DAYS: Final = 30
SET_SPACING_S: Final = 10_000
LAST_POINT: Final = f'telemetry_{METRICS[-1]}{{device="sensor-{DEVICES - 1:02d}"}}'
"""The series of the last point of every batch (see :func:`_through_ingest`)."""
EVERY_POINT: Final = '{__name__=~"telemetry_.+"}'
_RUN_TIMEOUT_S: Final = 300.0
_NOISY_CORES: Final = 0.25


@dataclass(frozen=True, slots=True)
class Sizes:
    messages_per_run: int
    runs: int

    @property
    def points_per_run(self) -> int:
        return self.messages_per_run * POINTS_PER_MESSAGE


def sizes_for(profile: Profile) -> Sizes:
    """Quick: 1,000 messages (50,000 points) per run; full: 5,000 (250,000), several seconds a run."""
    quick = profile.target_s < 0.1
    return Sizes(messages_per_run=1_000 if quick else 5_000, runs=min(profile.runs, 3 if quick else 5))


@dataclass(frozen=True, slots=True)
class Message:
    topic: str
    payload: bytes
    gateway_index: int


@dataclass(frozen=True, slots=True)
class MessageSet:
    """Messages whose points all have timestamps in ``[first_ms, last_ms]``, a stretch no other set uses."""

    messages: list[Message]
    first_ms: int
    last_ms: int

    @property
    def points(self) -> int:
        return len(self.messages) * POINTS_PER_MESSAGE


def history_base_ms() -> int:
    """Where the sets' timestamps start: :data:`HISTORY_DAYS` days ago, on a whole second (VictoriaMetrics
    refuses points more than two days ahead of its clock, and keeps any past ones: retention 100 years)."""
    return (utc_now_ms() // 1000 - HISTORY_DAYS * 86_400) * 1000


def telemetry_messages(count: int, set_index: int, base_ms: int) -> MessageSet:
    """``count`` batches round-robin over the gateways, each the readings of every device's metrics at
    one instant (a gateway's batch every second). Set ``set_index`` has its own stretch of time (from
    ``base_ms + set_index * SET_SPACING_S``) and its own event ids, so that it can be counted apart."""
    first_ms = base_ms + set_index * SET_SPACING_S * 1000
    messages = []
    for number in range(count):
        index, round_ = number % GATEWAYS, number // GATEWAYS
        ts = first_ms + round_ * 1000
        points = [
            TelemetryPoint(device_id=f"sensor-{device:02d}", metric=metric, value=20.0 + device + round_ / 100, ts=ts)
            for device in range(DEVICES)
            for metric in METRICS
        ]
        seq = set_index * 1_000_000 + round_
        batch = TelemetryBatch(gateway_id=gateway_id(index), seq=seq, event_id=uuid.uuid4(), ts=ts, points=points)
        topic = gateway_topic(village_id(index), gateway_id(index), Channel.TELEMETRY)
        messages.append(Message(topic, encode(batch), index))
    last_ms = first_ms + (max(count - 1, 0) // GATEWAYS) * 1000
    return MessageSet(messages, first_ms, last_ms)


class LoadGenerator:
    """:data:`PUBLISHERS` connected clients, each publishing the messages of its own gateways at QoS 1
    with a sliding window of :data:`WINDOW` publishes awaiting their PUBACK (set up as the edge
    benchmark's bare publisher: no paho in-flight limit, no aiomqtt warning per queued publish)."""

    def __init__(self, broker: MosquittoBroker) -> None:
        self._clients = [
            aiomqtt.Client(
                broker.host, broker.port, identifier=f"bench-load-{n}-{uuid.uuid4().hex[:6]}", max_inflight_messages=0
            )
            for n in range(PUBLISHERS)
        ]

    async def __aenter__(self) -> Self:
        for client in self._clients:
            await client.__aenter__()
            client.pending_calls_threshold = max(client.pending_calls_threshold, 2 * WINDOW)
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        for client in self._clients:
            await client.__aexit__(kind, error, trace)

    async def publish(self, messages: Sequence[Message]) -> None:
        """Publish every message; return once the broker acknowledged them all."""
        await asyncio.gather(*(self._publish_part(client, messages, n) for n, client in enumerate(self._clients)))

    @staticmethod
    async def _publish_part(client: aiomqtt.Client, messages: Sequence[Message], part: int) -> None:
        window = asyncio.Semaphore(WINDOW)

        async def one(message: Message) -> None:
            try:
                await client.publish(message.topic, message.payload, qos=1, timeout=math.inf)
            finally:
                window.release()

        publishes = []
        for message in messages:
            if message.gateway_index % PUBLISHERS == part:
                await window.acquire()
                publishes.append(asyncio.create_task(one(message)))
        await asyncio.gather(*publishes)


async def _through_ingest(
    load: LoadGenerator, stored: StoredPoints, batch_set: MessageSet, cpu: CpuSplit | None = None
) -> float:
    """Points/s from the first publish until a reader of VictoriaMetrics sees every point of ``batch_set``.

    While the run lasts only the last point of each batch is counted (a cheap query): a worker writes
    its points in the order it took them, one batch of them after another, so once a message's last
    point is readable so is every point before it. Afterwards every point of the set is counted."""
    if cpu is not None:
        cpu.start()
    started = time.perf_counter()
    publishing = asyncio.create_task(load.publish(batch_set.messages))
    try:
        stored_at = await stored.reach(
            LAST_POINT, batch_set.first_ms, batch_set.last_ms, len(batch_set.messages), _RUN_TIMEOUT_S
        )
    finally:
        await publishing
    if cpu is not None:
        cores = cpu.cores()
        logger.info("cores used while ingesting: %s", cores)
        if cores["others"] > _NOISY_CORES:
            logger.warning(
                "other processes took %.2f cores during this run: it measured a busy machine", cores["others"]
            )
    every = await stored.count(EVERY_POINT, batch_set.first_ms, batch_set.last_ms)
    if every != batch_set.points:
        raise RuntimeError(f"VictoriaMetrics holds {every} points of a run of {batch_set.points}")
    return batch_set.points / (stored_at - started)


def _decoded(messages: Sequence[Message]) -> list[Inbound]:
    decoder = Decoder()
    inbound = [decoder.decode(message.topic, message.payload) for message in messages]
    return [item for item in inbound if isinstance(item, Inbound)]


async def _direct_to_store(victoria: VictoriaMetricsServer, batch_set: MessageSet) -> float:
    """Points/s of the same points through the fleet's own writer and sink, without MQTT or decoding."""
    point_lists = [
        telemetry_points(item.topic.village_id, item.message)
        for item in _decoded(batch_set.messages)
        if isinstance(item.message, TelemetryBatch)
    ]
    writer = writer_for(
        TimeSeriesSettings(influx=InfluxSettings(url=AnyHttpUrl(victoria.url), token=SecretStr("unused-by-victoria")))
    )
    running = asyncio.create_task(writer.run())
    try:
        started = time.perf_counter()
        tickets = [ticket for points in point_lists if (ticket := writer.add(points)) is not None]
        await asyncio.gather(*tickets)
        elapsed = time.perf_counter() - started
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
        await writer.sink.close()
    return sum(len(points) for points in point_lists) / elapsed


@dataclass(slots=True)
class _Rates:
    """Each worker count's ingest runs and the store-ceiling runs that followed them; the bare subscriber's runs."""

    ingest: dict[int, list[float]] = field(default_factory=lambda: {workers: [] for workers in WORKER_COUNTS})
    store: dict[int, list[float]] = field(default_factory=lambda: {workers: [] for workers in WORKER_COUNTS})
    bare: list[float] = field(default_factory=list)


async def _worker_round(
    workers: int,
    batch_set: MessageSet,
    warmup: MessageSet,
    victoria: VictoriaMetricsServer,
    stored: StoredPoints,
    directory: Path,
) -> tuple[float, float]:
    """One run of ``workers`` fresh ingest workers on a fresh broker, then a store-ceiling run of the same points."""
    async with MosquittoBroker() as broker:
        env = fleet_environment(directory / "fleet.db", broker, victoria, client_id=f"bench-{workers}w")
        processes = [
            FleetProcess(
                ["ingest", "--index", str(index)],
                env,
                directory / f"ingest-{workers}w-{index}.log",
                python_options=profiling_options(f"ingest-{workers}w-{index}"),
            )
            for index in range(workers)
        ]
        try:
            await asyncio.gather(*(process.start("subscribed at") for process in processes))
            cpu = CpuSplit({
                "load generator": os.getpid(), "mosquitto": broker.pid, "victoria-metrics": victoria.pid,
                **{f"worker {index}": process.pid for index, process in enumerate(processes)},
            })  # fmt: skip
            async with LoadGenerator(broker) as load:
                await _through_ingest(load, stored, warmup)  # each worker registers the gateways it hears from
                ingest = await _through_ingest(load, stored, batch_set, cpu)
            await asyncio.gather(*(process.stop() for process in processes))
        except BaseException:
            await asyncio.gather(*(process.kill() for process in processes), return_exceptions=True)
            raise
    _check_all_acknowledged(processes, len(warmup.messages) + len(batch_set.messages))
    store = await _direct_to_store(victoria, batch_set)
    logger.info("%d worker(s): %.0f points/s (store ceiling %.0f)", workers, ingest, store)
    return ingest, store


def _check_all_acknowledged(processes: Sequence[FleetProcess], messages: int) -> None:
    """Every message was received by exactly one worker and acknowledged (none left unacked)."""
    statuses = [process.final_status() for process in processes]
    received = sum(int(str(status["received"])) for status in statuses)
    unacked = sum(int(str(status["unacked"])) for status in statuses)
    rejected = [status["rejected"] for status in statuses if status["rejected"]]
    if received != messages or unacked or rejected:
        raise RuntimeError(
            f"the workers received {received} of {messages} messages, {unacked} left unacknowledged, "
            f"rejections {rejected}"
        )
    logger.debug("workers' shares: %s", [status["received"] for status in statuses])


async def _bare_round(batch_set: MessageSet, warmup: MessageSet) -> float:
    """Points/s of the same messages into a bare subscriber on a fresh broker (the broker's ceiling)."""
    shared = lane_filters(Lane.BULK, IngestSettings().share_group)[0]
    async with MosquittoBroker() as broker:
        subscriber = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bench.fleet_bare_subscriber", broker.host, str(broker.port), shared, str(GATEWAYS),
            stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        assert subscriber.stdout is not None
        try:
            if (await asyncio.wait_for(subscriber.stdout.readline(), 30)).strip() != b"subscribed":
                raise RuntimeError("the bare subscriber did not subscribe")
            async with LoadGenerator(broker) as load:
                for part in (warmup.messages, batch_set.messages):
                    started = time.perf_counter()
                    publishing = asyncio.create_task(load.publish(part))
                    for _ in range(len(part) // GATEWAYS):  # it says so after every GATEWAYS messages
                        line = await asyncio.wait_for(subscriber.stdout.readline(), _RUN_TIMEOUT_S)
                        if not line.startswith(b"received"):
                            raise RuntimeError(f"the bare subscriber said {line!r}")
                    finished = time.perf_counter()
                    await publishing
        finally:
            subscriber.terminate()
            await subscriber.wait()
    return batch_set.points / (finished - started)


async def _measure(sizes: Sizes) -> _Rates:
    """Round after round, each worker count then the bare subscriber, so that a slow spell of this shared
    machine hits every configuration alike. Every run takes messages of the same shape; each worker
    run's (and warm-up's) have their own stretch of time, so that VictoriaMetrics can count them apart."""
    base_ms, set_numbers = history_base_ms(), itertools.count()
    rates = _Rates()
    with tempfile.TemporaryDirectory(prefix="outpost-bench-ingest-") as tmp:
        directory = Path(tmp)
        await migrate_database(directory / "fleet.db")
        async with VictoriaMetricsServer() as victoria:
            stored = StoredPoints(victoria)
            try:
                for _ in range(sizes.runs):
                    for workers in WORKER_COUNTS:
                        warmup = telemetry_messages(GATEWAYS, next(set_numbers), base_ms)
                        batch_set = telemetry_messages(sizes.messages_per_run, next(set_numbers), base_ms)
                        ingest, store = await _worker_round(workers, batch_set, warmup, victoria, stored, directory)
                        rates.ingest[workers].append(ingest)
                        rates.store[workers].append(store)
                    rates.bare.append(await _bare_round(batch_set, warmup))
            finally:
                await stored.close()
    return rates


def ingest_figures(profile: Profile) -> list[Figure]:
    rates = asyncio.run(_measure(sizes_for(profile)))
    figures = []
    for workers in WORKER_COUNTS:
        ingest, store = rates.ingest[workers], median(rates.store[workers])
        logger.info("%d worker(s): runs %s, store runs %s", workers, _rounded(ingest), _rounded(rates.store[workers]))
        figures.append(
            Figure.measured(
                f"fleet.ingest_{workers}_worker{'s' if workers > 1 else ''}",
                median(ingest),
                "points/s",
                better="higher",
                runs=len(ingest),
                goal=max(INGEST_GOAL, STORE_RATIO_GOAL * store),
                baseline=store,
            )
        )
    every_store = [rate for runs in rates.store.values() for rate in runs]
    logger.info("bare subscriber runs %s", _rounded(rates.bare))
    return [
        *figures,
        Figure.measured(
            "fleet.ingest_store_ceiling", median(every_store), "points/s", better="higher", runs=len(every_store)
        ),
        Figure.measured(
            "fleet.ingest_broker_ceiling", median(rates.bare), "points/s", better="higher", runs=len(rates.bare)
        ),
    ]


def _rounded(rates: Sequence[float]) -> list[int]:
    return [round(rate) for rate in rates]
