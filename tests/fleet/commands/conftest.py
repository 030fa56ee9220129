"""Fixtures for the command tests: a store on each supported database, a real Mosquitto and a downlink to it."""

import asyncio
from collections.abc import AsyncIterator

import aiomqtt
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from fleet.commands.store import CommandStore
from fleet.mqtt.downlink import Downlink
from fleet.settings import BrokerSettings
from protocol.codec import Decoder, Inbound
from protocol.messages import Command
from protocol.reconnect import Backoff
from protocol.topics import Channel, gateway_topic
from simulators.infra.mosquitto import MosquittoBroker
from tests.fleet.helpers import FakeClock
from tests.integration.conftest import mosquitto

__all__ = ["mosquitto"]

VILLAGE = "lakeside"
GATEWAY = "gw-01"


@pytest.fixture
def store(any_sessions: async_sessionmaker[AsyncSession], clock: FakeClock) -> CommandStore:
    return CommandStore(any_sessions, clock)


@pytest.fixture
async def downlink(mosquitto: MosquittoBroker) -> AsyncIterator[Downlink]:
    """The fleet's downlink, connected to the test's Mosquitto."""
    link = Downlink(
        BrokerSettings(host=mosquitto.host, port=mosquitto.port), "test-fleet-downlink", backoff=Backoff(0.05, 0.2)
    )
    running = asyncio.create_task(link.run())
    while not link.connected:
        if running.done():
            running.result()
        await asyncio.sleep(0.01)
    yield link
    running.cancel()
    await asyncio.gather(running, return_exceptions=True)


@pytest.fixture
async def gateway_inbox(mosquitto: MosquittoBroker) -> AsyncIterator["asyncio.Queue[Command]"]:
    """The commands the gateway's topic receives, decoded, as the gateway would take them."""
    inbox: asyncio.Queue[Command] = asyncio.Queue()
    subscribed = asyncio.Event()

    async def listen() -> None:
        decoder = Decoder()
        async with aiomqtt.Client(mosquitto.host, mosquitto.port, identifier="test-gateway") as client:
            await client.subscribe(gateway_topic(VILLAGE, GATEWAY, Channel.COMMAND), qos=1)
            subscribed.set()
            async for message in client.messages:
                decoded = decoder.decode(str(message.topic), bytes(message.payload))
                assert isinstance(decoded, Inbound)
                assert isinstance(decoded.message, Command)
                inbox.put_nowait(decoded.message)

    listener = asyncio.create_task(listen())
    await asyncio.wait_for(subscribed.wait(), 10)
    yield inbox
    listener.cancel()
    await asyncio.gather(listener, return_exceptions=True)
