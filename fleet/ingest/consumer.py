"""The MQTT consumer: one persistent session subscribed to every gateway's uplink channels.

Each message is decoded against the contract; rejections are counted by the decoder, handler
failures are logged and counted, and neither stops the loop. Transient broker failures reconnect
with backoff; a refused login stops with :class:`~fleet.errors.BrokerRefusedError`.
"""

import asyncio
import logging

import aiomqtt
from aiomqtt.exceptions import MqttConnectError

from fleet.errors import BrokerRefusedError, TransientError
from fleet.ingest.router import IngestRouter
from fleet.settings import BrokerSettings
from protocol.codec import Decoder, Rejection
from protocol.reconnect import Backoff, is_permanent_refusal, refusal_code
from protocol.topics import uplink_filters

logger = logging.getLogger(__name__)


class IngestConsumer:
    def __init__(self, broker: BrokerSettings, decoder: Decoder, router: IngestRouter) -> None:
        self._broker = broker
        self.decoder = decoder
        self._router = router
        self._backoff = Backoff()
        self.connected = asyncio.Event()
        self.received = 0
        self.handler_errors = 0
        self.stalls = 0

    async def run(self) -> None:
        while True:
            try:
                await self._session()
            except aiomqtt.MqttError as exc:
                self.connected.clear()
                # Only a CONNACK refusal can be permanent; other codes are paho's own (e.g. 4 = no connection).
                code = refusal_code(exc.rc) if isinstance(exc, MqttConnectError) else None
                if is_permanent_refusal(code):
                    raise BrokerRefusedError(
                        f"broker {self._broker.host}:{self._broker.port} refused the fleet (code {code})"
                    ) from exc
                delay = self._backoff.next_delay()
                logger.warning("ingest lost the broker (%s); reconnecting in %.1f s", exc, delay)
                await asyncio.sleep(delay)

    async def _session(self) -> None:
        password = self._broker.password.get_secret_value() if self._broker.password else None
        async with aiomqtt.Client(
            self._broker.host,
            self._broker.port,
            identifier=self._broker.client_id,
            username=self._broker.username,
            password=password,
            clean_session=False,
            keepalive=self._broker.keepalive_s,
            timeout=10,
        ) as client:
            for topic_filter in uplink_filters():
                await client.subscribe(topic_filter, qos=1)
            self._backoff.reset()
            self.connected.set()
            logger.info("ingest subscribed at %s:%d", self._broker.host, self._broker.port)
            try:
                async for message in client.messages:
                    await self._process(str(message.topic), message.payload)
            finally:
                self.connected.clear()

    async def _process(self, topic: str, payload: object) -> None:
        self.received += 1
        if not isinstance(payload, bytes | bytearray):
            payload = str(payload).encode()
        decoded = self.decoder.decode(topic, bytes(payload))
        if isinstance(decoded, Rejection):
            return
        backoff = Backoff(base_s=0.1, cap_s=10.0)
        while True:
            try:
                await self._router.handle(decoded)
                return
            except TransientError as exc:
                # Hold the loop (and so the broker's delivery) until storage answers again:
                # the message is not dropped and later ones wait their turn.
                self.stalls += 1
                delay = backoff.next_delay()
                logger.warning("handling %s stalled (%s); retrying in %.1f s", topic[:200], exc, delay)
                await asyncio.sleep(delay)
            except Exception:
                self.handler_errors += 1
                logger.exception("handling %s failed; message dropped", topic[:200])
                return
