"""Figures of the gateway's store-and-forward path: durable writes into the buffer, and replay to a broker.

``edge.buffer_durable_writes`` (events/s): alerts submitted one by one (concurrently) to the buffer,
each counted when its own future says it is committed (WAL, ``synchronous=FULL``) and so may be
reported as accepted. Baseline: the same rows inserted by plain ``sqlite3`` with the same journal
settings, in batches of 500 per transaction, in the same run.

``edge.replay_rate`` (messages/s): after an outage, a buffer holding N alerts is forwarded to a real
local Mosquitto by the uplink (QoS 1, confirmed after PUBACK, deleted from the buffer). Baseline: a
bare aiomqtt QoS 1 publisher sending the same payloads with a sliding window of as many in flight,
set up as well as aiomqtt's ``publish()`` allows (see :func:`_bare_publisher`). The uplink publishes
through paho's own path under aiomqtt, so it can beat this baseline. Goals: at least 0.8 of the
baseline and at least 5,000 messages/s.
"""

import asyncio
import logging
import math
import sqlite3
import tempfile
import time
import uuid
from pathlib import Path
from typing import Final

import aiomqtt

from bench.harness import Figure, Profile, median
from edge.buffer import StoreAndForwardBuffer
from edge.envelope import EnvelopeStamper
from edge.outgoing import Outgoing, outgoing
from edge.sequence import SequenceCounter
from edge.settings import BrokerSettings
from edge.uplink import DEFAULT_WINDOW, Uplink
from protocol.messages import Alert, AlertKind, Severity
from simulators.infra.mosquitto import MosquittoBroker

logger = logging.getLogger(__name__)

VILLAGE, GATEWAY = "bench-village", "gw-bench"
REPLAY_RATE_GOAL: Final = 5_000.0
REPLAY_RATIO_GOAL: Final = 0.8
_BASELINE_BATCH: Final = 500


def _alerts(count: int) -> list[Outgoing]:
    return [
        outgoing(
            VILLAGE,
            GATEWAY,
            Alert(
                gateway_id=GATEWAY,
                seq=seq,
                event_id=uuid.uuid4(),
                ts=1_795_000_000_000 + seq,
                device_id="panic-centre",
                kind=AlertKind.PANIC,
                severity=Severity.CRITICAL,
                grid_id="grid-1",
                evidence={"held_ms": 300},
                summary="panic button panic-centre pressed",
            ),
        )
        for seq in range(count)
    ]


async def _durable_writes(directory: Path, items: list[Outgoing]) -> float:
    buffer = StoreAndForwardBuffer(directory / f"{uuid.uuid4()}.db", max_bytes=1 << 30)
    await buffer.open()
    try:
        started = time.perf_counter()
        # Each event is reported accepted on its own, as a device's would be: one future per event,
        # committed together by the buffer's group commit.
        await asyncio.gather(*(buffer.submit(item) for item in items))
        elapsed = time.perf_counter() - started
    finally:
        await buffer.close()
    return len(items) / elapsed


def _sqlite_batched_inserts(directory: Path, items: list[Outgoing]) -> float:
    db = sqlite3.connect(directory / f"{uuid.uuid4()}.db", isolation_level=None)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        db.execute(
            "CREATE TABLE t (id INTEGER PRIMARY KEY, channel TEXT, topic TEXT, payload BLOB, qos INT, retain INT)"
        )
        rows = [(i.channel.value, i.topic, i.payload, i.qos, int(i.retain)) for i in items]
        started = time.perf_counter()
        for start in range(0, len(rows), _BASELINE_BATCH):
            db.execute("BEGIN")
            db.executemany(
                "INSERT INTO t (channel, topic, payload, qos, retain) VALUES (?, ?, ?, ?, ?)",
                rows[start : start + _BASELINE_BATCH],
            )
            db.execute("COMMIT")
        return len(rows) / (time.perf_counter() - started)
    finally:
        db.close()


async def _replay(directory: Path, broker: MosquittoBroker, items: list[Outgoing]) -> float:
    state = directory / str(uuid.uuid4())
    buffer = StoreAndForwardBuffer(state / "buffer.db", max_bytes=1 << 30)
    await buffer.open()
    await buffer.put(items)  # what an outage left behind
    stamper = EnvelopeStamper(GATEWAY, SequenceCounter(state / "sequence"), lambda: 1_795_000_000_000)
    uplink = Uplink(BrokerSettings(host=broker.host, port=broker.port), VILLAGE, stamper, buffer, "bench")
    started = time.perf_counter()
    running = asyncio.create_task(uplink.run())
    try:
        await buffer.drained()
        elapsed = time.perf_counter() - started
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
        await buffer.close()
    return len(items) / elapsed


async def _bare_publisher(broker: MosquittoBroker, items: list[Outgoing]) -> float:
    """The same payloads from a bare aiomqtt client: QoS 1 with a sliding window of DEFAULT_WINDOW
    publishes in flight (faster than lock-step batches, so the baseline is a demanding one).

    Set up as the uplink sets up its client: the window is the only flow control (no paho in-flight
    limit, which costs a scan of every message in flight per PUBACK). And set up as well as aiomqtt
    allows: no per-publish timer, and no aiomqtt warning per publish while a full window is pending
    (a log line per message would measure logging, not publishing)."""
    window = asyncio.Semaphore(DEFAULT_WINDOW)

    async def publish(client: aiomqtt.Client, item: Outgoing) -> None:
        try:
            await client.publish(item.topic, item.payload, qos=1, retain=item.retain, timeout=math.inf)
        finally:
            window.release()

    async with aiomqtt.Client(
        broker.host, broker.port, identifier=f"bench-bare-{uuid.uuid4().hex[:8]}", max_inflight_messages=0
    ) as client:
        client.pending_calls_threshold = max(client.pending_calls_threshold, 2 * DEFAULT_WINDOW)
        started = time.perf_counter()
        publishes = []
        for item in items:
            await window.acquire()
            publishes.append(asyncio.create_task(publish(client, item)))
        await asyncio.gather(*publishes)
        return len(items) / (time.perf_counter() - started)


async def _buffer_figures(profile: Profile) -> list[Figure]:
    writes = 2_000 if profile.target_s < 0.1 else 10_000
    replays = 5_000 if profile.target_s < 0.1 else 20_000
    with tempfile.TemporaryDirectory(prefix="outpost-bench-") as tmp:
        directory = Path(tmp)
        write_rates, sqlite_rates = [], []
        for _ in range(profile.runs):
            write_rates.append(await _durable_writes(directory, _alerts(writes)))
            sqlite_rates.append(_sqlite_batched_inserts(directory, _alerts(writes)))
        replay_rates, bare_rates = [], []
        async with MosquittoBroker() as broker:
            await _replay(directory, broker, _alerts(500))  # warm-up
            for _ in range(profile.runs):
                replay_rates.append(await _replay(directory, broker, _alerts(replays)))
                bare_rates.append(await _bare_publisher(broker, _alerts(replays)))
    replay, bare = median(replay_rates), median(bare_rates)
    logger.info("replay %.0f msg/s (bare publisher %.0f msg/s, ratio %.2f)", replay, bare, replay / bare)
    return [
        Figure.measured(
            "edge.buffer_durable_writes",
            median(write_rates),
            "events/s",
            better="higher",
            runs=profile.runs,
            baseline=median(sqlite_rates),
        ),
        Figure.measured(
            "edge.replay_rate",
            replay,
            "messages/s",
            better="higher",
            runs=profile.runs,
            goal=max(REPLAY_RATE_GOAL, REPLAY_RATIO_GOAL * bare),
            baseline=bare,
        ),
    ]


def buffer_figures(profile: Profile) -> list[Figure]:
    return asyncio.run(_buffer_figures(profile))
