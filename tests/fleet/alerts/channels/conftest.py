"""Fixtures for the people-facing channels: a real webhook receiver, a real Mosquitto and the fleet's
publishing connection to it."""

from collections.abc import AsyncIterator

import pytest

from fleet.mqtt.downlink import Downlink
from simulators.infra.mosquitto import MosquittoBroker
from tests.fleet.alerts.channels.publisher import connected, publisher_for
from tests.fleet.alerts.channels.receiver import WebhookReceiver, webhook_receiver
from tests.integration.conftest import mosquitto

__all__ = ["mosquitto"]


@pytest.fixture
async def receiver() -> AsyncIterator[WebhookReceiver]:
    async with webhook_receiver() as running:
        yield running


@pytest.fixture
async def publisher(mosquitto: MosquittoBroker) -> AsyncIterator[Downlink]:
    """The fleet's publishing connection, connected to the test's Mosquitto."""
    link = publisher_for(mosquitto)
    async with connected(link):
        yield link
