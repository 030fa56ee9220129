"""The gateway's MQTT uplink: one persistent session with the broker, fed from the store-and-forward buffer.

On connect it registers a retained Last Will (``offline``/``lost``) and publishes a retained
``online`` presence; on a clean stop it publishes ``offline``/``shutdown`` before disconnecting.
It forwards the buffer oldest first, up to ``window`` messages in flight at QoS 1, and confirms a
batch (deleting it from the buffer) only once the broker acknowledged every message in it; after a
lost connection everything unconfirmed is sent again (the fleet de-duplicates by event id).
Transient failures reconnect with exponential backoff and jitter; a permanent refusal (bad
credentials, not authorised) stops with :class:`~edge.errors.UplinkRefusedError`.
"""

import asyncio
import logging
import ssl
from collections.abc import Callable, Coroutine
from typing import Any

import aiomqtt
from aiomqtt.exceptions import MqttConnectError

from edge.buffer import StoreAndForwardBuffer, Stored
from edge.envelope import EnvelopeStamper
from edge.errors import EdgeConfigError, UplinkRefusedError
from edge.outgoing import Outgoing
from edge.settings import BrokerSettings
from protocol.codec import encode
from protocol.messages import Presence, PresenceReason, PresenceState
from protocol.reconnect import Backoff, is_permanent_refusal, refusal_code
from protocol.topics import Channel, gateway_filters, gateway_topic

logger = logging.getLogger(__name__)

DEFAULT_WINDOW = 128
_CHUNKS_IN_FLIGHT = 4


def _ignore_downlink(topic: str, payload: bytes) -> None:
    logger.debug("downlink message on %s (%d bytes) has no handler yet", topic[:200], len(payload))


async def _first_to_fail(*coroutines: Coroutine[Any, Any, None]) -> None:
    """Run the coroutines together until one of them ends; cancel the rest and re-raise its error."""
    tasks = [asyncio.create_task(coroutine) for coroutine in coroutines]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    for task in done:
        task.result()


def tls_context(broker: BrokerSettings) -> ssl.SSLContext | None:
    """The TLS context for ``broker.tls`` (server verified against its CA, optional client cert)."""
    tls = broker.tls
    if tls is None:
        return None
    try:
        context = ssl.create_default_context(cafile=str(tls.ca_file))
        if tls.cert_file is not None:
            context.load_cert_chain(str(tls.cert_file), str(tls.key_file) if tls.key_file else None)
    except (OSError, ssl.SSLError) as exc:
        raise EdgeConfigError(f"cannot load the broker's TLS files: {exc}") from exc
    context.check_hostname = tls.check_hostname
    return context


class Uplink:
    def __init__(
        self,
        broker: BrokerSettings,
        village_id: str,
        stamper: EnvelopeStamper,
        buffer: StoreAndForwardBuffer,
        agent_version: str,
        *,
        backoff: Backoff | None = None,
        window: int = DEFAULT_WINDOW,
        on_downlink: Callable[[str, bytes], None] | None = None,
    ) -> None:
        self._broker = broker
        self._tls = tls_context(broker)
        self._stamper = stamper
        self._buffer = buffer
        self._agent_version = agent_version
        self._backoff = backoff or Backoff()
        self._window = window
        self._presence_topic = gateway_topic(village_id, stamper.gateway_id, Channel.PRESENCE)
        self._downlink_filters = gateway_filters(village_id, stamper.gateway_id)
        self._on_downlink = on_downlink or _ignore_downlink
        self._client: aiomqtt.Client | None = None
        self.connected = asyncio.Event()
        self.connects = 0
        self.forwarded = 0

    def _presence(self, state: PresenceState, reason: PresenceReason) -> bytes:
        return encode(Presence(**self._stamper.stamp(), state=state, reason=reason, agent_version=self._agent_version))

    async def run(self) -> None:
        """Keep the uplink up until cancelled; raise UplinkRefusedError on a permanent refusal."""
        while True:
            try:
                await self._session()
            except aiomqtt.MqttError as exc:
                # Only a CONNACK refusal can be permanent; other codes are paho's own (e.g. 4 = no connection).
                code = refusal_code(exc.rc) if isinstance(exc, MqttConnectError) else None
                if is_permanent_refusal(code):
                    raise UplinkRefusedError(
                        f"broker {self._broker.host}:{self._broker.port} refused gateway "
                        f"{self._stamper.gateway_id} (code {code}): check its credentials"
                    ) from exc
                delay = self._backoff.next_delay()
                logger.warning(
                    "uplink to %s:%d down (%s); retrying in %.1f s", self._broker.host, self._broker.port, exc, delay
                )
                await asyncio.sleep(delay)

    async def _session(self) -> None:
        password = self._broker.password.get_secret_value() if self._broker.password else None
        # Stamped in this order so the session's Will outranks its own `online` (see fleet.presence).
        online = self._presence(PresenceState.ONLINE, PresenceReason.CONNECTED)
        lost = self._presence(PresenceState.OFFLINE, PresenceReason.LOST)
        async with aiomqtt.Client(
            self._broker.host,
            self._broker.port,
            identifier=f"outpost-gw-{self._stamper.gateway_id}",
            username=self._broker.username,
            password=password,
            will=aiomqtt.Will(self._presence_topic, lost, qos=1, retain=True),
            clean_session=False,
            keepalive=self._broker.keepalive_s,
            tls_context=self._tls,
            max_inflight_messages=self._window,
            timeout=10,
        ) as client:
            self._backoff.reset()
            await client.publish(self._presence_topic, online, qos=1, retain=True)
            self._client = client
            self.connects += 1
            self.connected.set()
            logger.info(
                "uplink connected to %s:%d (%d buffered)", self._broker.host, self._broker.port, self._buffer.depth
            )
            for topic_filter in self._downlink_filters:
                await client.subscribe(topic_filter, qos=1)
            try:
                await _first_to_fail(self._forward(client), self._listen(client))
            finally:
                self.connected.clear()
                self._client = None
                self._buffer.release()

    async def _listen(self, client: aiomqtt.Client) -> None:
        """Hand downlink messages (config, commands) on; raises when the connection drops."""
        async for message in client.messages:
            payload = message.payload if isinstance(message.payload, bytes) else str(message.payload).encode()
            self._on_downlink(str(message.topic), payload)

    async def _forward(self, client: aiomqtt.Client) -> None:
        """Keep up to ``window`` publishes in flight, in chunks confirmed as each completes.

        A sliding window rather than "publish N, wait for N": the broker's acknowledgements keep
        flowing while the next chunk goes out (about twice the throughput of lock-step batches)."""
        in_flight: asyncio.Queue[tuple[list[Stored], list[asyncio.Task[None]]]] = asyncio.Queue(_CHUNKS_IN_FLIGHT - 1)
        await _first_to_fail(self._send_chunks(client, in_flight), self._confirm_chunks(in_flight))

    async def _send_chunks(
        self, client: aiomqtt.Client, in_flight: "asyncio.Queue[tuple[list[Stored], list[asyncio.Task[None]]]]"
    ) -> None:
        chunk = max(1, self._window // _CHUNKS_IN_FLIGHT)
        while True:
            batch = await self._buffer.take(chunk)
            publishes = [
                asyncio.create_task(client.publish(s.item.topic, s.item.payload, qos=s.item.qos, retain=s.item.retain))
                for s in batch
            ]
            await in_flight.put((batch, publishes))

    async def _confirm_chunks(self, in_flight: "asyncio.Queue[tuple[list[Stored], list[asyncio.Task[None]]]]") -> None:
        while True:
            batch, publishes = await in_flight.get()
            try:
                for result in await asyncio.gather(*publishes, return_exceptions=True):
                    if isinstance(result, BaseException):
                        raise result
            except BaseException:
                for publish in publishes:
                    publish.cancel()
                raise
            await self._buffer.confirm(batch)
            self.forwarded += len(batch)

    async def send_now(self, item: Outgoing) -> bool:
        """Publish ``item`` now if connected, bypassing the buffer (heartbeats: stale ones are useless)."""
        client = self._client
        if client is None:
            return False
        try:
            await client.publish(item.topic, item.payload, qos=item.qos, retain=item.retain)
        except aiomqtt.MqttError as exc:
            logger.debug("could not send %s now: %s", item.channel, exc)
            return False
        return True

    async def shutdown(self, drain_timeout_s: float = 5.0) -> None:
        """Forward what is buffered (for at most ``drain_timeout_s``), then announce a clean offline.

        Anything still buffered stays on disk and is sent after the next start."""
        if self.connected.is_set():
            try:
                await asyncio.wait_for(self._buffer.drained(), drain_timeout_s)
            except TimeoutError:
                logger.warning("stopping with %d messages still buffered", self._buffer.depth)
        client = self._client
        if client is not None:
            try:
                offline = self._presence(PresenceState.OFFLINE, PresenceReason.SHUTDOWN)
                await client.publish(self._presence_topic, offline, qos=1, retain=True, timeout=2)
            except aiomqtt.MqttError as exc:
                logger.warning("could not announce shutdown: %s", exc)
