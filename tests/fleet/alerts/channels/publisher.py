"""The fleet's publishing connection as the village notify channel uses it, against a real broker."""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import aiomqtt

from fleet.mqtt.downlink import Downlink
from fleet.settings import BrokerSettings
from protocol.notifications import AlertNotification
from protocol.reconnect import Backoff
from protocol.topics import village_notify_filter
from simulators.infra.mosquitto import MosquittoBroker


def publisher_for(broker: MosquittoBroker, client_id: str = "test-fleet-downlink") -> Downlink:
    """The fleet's publishing connection (the village notify channel's publisher) to ``broker``."""
    return Downlink(BrokerSettings(host=broker.host, port=broker.port), client_id, backoff=Backoff(0.05, 0.2))


@asynccontextmanager
async def connected(publisher: Downlink) -> AsyncIterator[None]:
    running = asyncio.create_task(publisher.run())
    try:
        while not publisher.connected:
            if running.done():
                running.result()
            await asyncio.sleep(0.01)
        yield
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)


@dataclass(frozen=True, slots=True)
class Heard:
    topic: str
    notification: AlertNotification
    qos: int
    retain: bool


@asynccontextmanager
async def village_centre(
    broker: MosquittoBroker, village_id: str | None = None
) -> AsyncIterator["asyncio.Queue[Heard]"]:
    """A village centre's console subscribed at QoS 1 to its village's notifications (or every village's)."""
    inbox: asyncio.Queue[Heard] = asyncio.Queue()
    subscribed = asyncio.Event()

    async def listen() -> None:
        async with aiomqtt.Client(broker.host, broker.port, identifier=f"village-centre-{village_id}") as client:
            await client.subscribe(village_notify_filter(village_id), qos=1)
            subscribed.set()
            async for message in client.messages:
                notification = AlertNotification.model_validate_json(bytes(message.payload))
                await inbox.put(Heard(str(message.topic), notification, message.qos, message.retain))

    listening = asyncio.create_task(listen())
    try:
        while not subscribed.is_set():
            if listening.done():
                listening.result()
            await asyncio.sleep(0.01)
        yield inbox
    finally:
        listening.cancel()
        await asyncio.gather(listening, return_exceptions=True)
