"""When ingest is behind (messages wait unhandled), against a real Mosquitto: the presence sweep waits then."""

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from fleet.alerts.store import AlertStore
from fleet.gateways.registry import Registry
from fleet.ingest.consumer import BEHIND_AFTER_S, IngestConsumer
from fleet.ingest.dead_letters import DeadLetters
from fleet.ingest.router import IngestRouter
from fleet.mqtt.ingest_session import IngestSession, Received
from fleet.settings import BrokerSettings
from fleet.timeseries.embedded import EmbeddedSink
from fleet.timeseries.writer import BatchingWriter
from protocol.codec import Decoder
from simulators.infra.mosquitto import MosquittoBroker
from tests.fleet.helpers import FakeClock, default_escalation
from tests.fleet.ingest.conftest import publish

pytestmark = pytest.mark.integration

TOPIC = "outpost/v1/lakeside/gw-01/telemetry"


class Seconds:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def taken_one(mosquitto: MosquittoBroker) -> AsyncIterator[tuple[IngestSession, Seconds, list[Received]]]:
    """A session (Receive Maximum 3) whose consumer took one message and then stopped taking more."""
    seconds = Seconds()
    session = IngestSession(
        BrokerSettings(host=mosquitto.host, port=mosquitto.port),
        "ingest-behind",
        ["outpost/v1/+/+/telemetry"],
        receive_maximum=3,
        session_expiry_s=600,
        clock=seconds,
    )
    messages = session.messages()
    first = asyncio.ensure_future(anext(messages))
    await asyncio.wait_for(session.connected.wait(), 10)
    await publish(mosquitto, TOPIC, [b"one"])
    taken = [await asyncio.wait_for(first, 10)]
    yield session, seconds, taken
    await messages.aclose()


async def until_received(session: IngestSession, count: int) -> None:
    async with asyncio.timeout(10):
        while session.received < count:  # noqa: ASYNC110 - the session signals no single message
            await asyncio.sleep(0.01)


async def test_messages_waiting_unhandled_age_on_the_sessions_clock(
    mosquitto: MosquittoBroker, taken_one: tuple[IngestSession, Seconds, list[Received]]
) -> None:
    session, seconds, _ = taken_one
    assert session.oldest_undelivered_age_s() is None

    await publish(mosquitto, TOPIC, [b"two"])
    await until_received(session, 2)
    seconds.now += 2.5

    assert session.oldest_undelivered_age_s() == 2.5


async def test_the_session_is_saturated_at_the_receive_maximum_until_an_ack(
    mosquitto: MosquittoBroker, taken_one: tuple[IngestSession, Seconds, list[Received]]
) -> None:
    session, _, taken = taken_one
    await publish(mosquitto, TOPIC, [b"two", b"three"])
    await until_received(session, 3)

    assert session.saturated
    session.ack(taken[0])
    assert not session.saturated


async def test_the_consumer_is_behind_while_a_message_waits_unhandled_or_it_is_paused(
    mosquitto: MosquittoBroker,
    taken_one: tuple[IngestSession, Seconds, list[Received]],
    sessions: async_sessionmaker[AsyncSession],
    clock: FakeClock,
    tmp_path: Path,
) -> None:
    session, seconds, _ = taken_one
    writer = BatchingWriter(EmbeddedSink(tmp_path / "ts.db"), 10, 60, 100)
    router = IngestRouter(
        Registry(sessions, clock), None, writer, AlertStore(sessions, clock, default_escalation()), lambda: None, clock
    )
    consumer = IngestConsumer(session, Decoder(), router, writer, DeadLetters(sessions, clock))
    assert not consumer.behind()
    consumer.paused = True  # the time-series buffer is full: it takes nothing
    assert consumer.behind()
    consumer.paused = False

    await publish(mosquitto, TOPIC, [b"two"])
    await until_received(session, 2)
    seconds.now += BEHIND_AFTER_S / 2
    assert not consumer.behind(), "a message just received is not a backlog"
    seconds.now += BEHIND_AFTER_S
    assert consumer.behind()
