"""A raw MQTT subscriber that records what reaches the broker, across broker restarts."""

import asyncio
import ssl
from uuid import UUID

import aiomqtt

from protocol.codec import Decoder, Inbound
from protocol.topics import Channel, fleet_filter
from tests.background_listener import BackgroundListener


class Recorder(BackgroundListener):
    """Subscribes (persistent session, QoS 1) to some channels of every gateway and keeps, in arrival
    order, every decoded message; reconnects on its own when the broker goes away. With ``tls_context``
    it connects over TLS (e.g. ``edge.uplink.tls_context`` of the broker's settings)."""

    def __init__(
        self, host: str, port: int, channels: list[Channel], *, tls_context: ssl.SSLContext | None = None
    ) -> None:
        super().__init__()
        self._host = host
        self._port = port
        self._channels = channels
        self._tls_context = tls_context
        self.arrivals: list[Inbound] = []

    def unique(self) -> dict[UUID, Inbound]:
        """First arrival of each event id."""
        first: dict[UUID, Inbound] = {}
        for inbound in self.arrivals:
            first.setdefault(inbound.message.event_id, inbound)
        return first

    async def listen(self) -> None:
        decoder = Decoder()
        while True:
            try:
                async with aiomqtt.Client(
                    self._host,
                    self._port,
                    identifier="test-recorder",
                    clean_session=False,
                    keepalive=5,
                    tls_context=self._tls_context,
                ) as client:
                    for channel in self._channels:
                        await client.subscribe(fleet_filter(channel), qos=1)
                    self.subscribed.set()
                    async for message in client.messages:
                        decoded = decoder.decode(str(message.topic), bytes(message.payload))
                        if isinstance(decoded, Inbound):
                            self.arrivals.append(decoded)
            except aiomqtt.MqttError:
                await asyncio.sleep(0.2)
