"""A raw MQTT subscriber that records what reaches the broker, across broker restarts."""

import asyncio
import contextlib
import ssl
from uuid import UUID

import aiomqtt

from protocol.codec import Decoder, Inbound
from protocol.topics import Channel, fleet_filter


class Recorder:
    """Subscribes (persistent session, QoS 1) to some channels of every gateway and keeps, in arrival
    order, every decoded message; reconnects on its own when the broker goes away. With ``tls_context``
    it connects over TLS (e.g. ``edge.uplink.tls_context`` of the broker's settings)."""

    def __init__(
        self, host: str, port: int, channels: list[Channel], *, tls_context: ssl.SSLContext | None = None
    ) -> None:
        self._host = host
        self._port = port
        self._channels = channels
        self._tls_context = tls_context
        self.arrivals: list[Inbound] = []
        self.subscribed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def unique(self) -> dict[UUID, Inbound]:
        """First arrival of each event id."""
        first: dict[UUID, Inbound] = {}
        for inbound in self.arrivals:
            first.setdefault(inbound.message.event_id, inbound)
        return first

    async def __aenter__(self) -> "Recorder":
        self._task = asyncio.create_task(self._run())
        await asyncio.wait_for(self.subscribed.wait(), 10)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
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
