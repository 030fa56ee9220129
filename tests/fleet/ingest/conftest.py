"""A real Mosquitto for ingest's tests, and a helper that runs an ingest session in a task."""

import asyncio
from collections.abc import AsyncIterator

import aiomqtt
import pytest

from fleet.mqtt.ingest_session import IngestSession, Received
from simulators.infra.mosquitto import MosquittoBroker


@pytest.fixture
async def mosquitto() -> AsyncIterator[MosquittoBroker]:
    if not MosquittoBroker.available():
        pytest.fail("mosquitto is not installed: run scripts/test, which installs it")
    async with MosquittoBroker() as broker:
        yield broker


class Running:
    """An :class:`IngestSession` iterated in a task; what it yields lands in :attr:`inbox`."""

    def __init__(self, session: IngestSession) -> None:
        self.session = session
        self.inbox: asyncio.Queue[Received] = asyncio.Queue()
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        async for message in self.session.messages():
            self.inbox.put_nowait(message)

    async def take(self, count: int, timeout_s: float = 10.0) -> list[Received]:
        return [await asyncio.wait_for(self.inbox.get(), timeout_s) for _ in range(count)]

    async def nothing_more(self, wait_s: float = 0.5) -> bool:
        await asyncio.sleep(wait_s)
        return self.inbox.empty()

    async def stop(self) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


async def publish(broker: MosquittoBroker, topic: str, payloads: list[bytes]) -> None:
    async with aiomqtt.Client(broker.host, broker.port, identifier="test-publisher") as client:
        for payload in payloads:
            await client.publish(topic, payload, qos=1)
