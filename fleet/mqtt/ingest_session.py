"""Ingest's MQTT session: QoS 1 on a persistent MQTT 5 session, acknowledged only when the caller says so.

aiomqtt does not expose paho-mqtt 2's manual acknowledgement yet (aiomqtt issue #345), and this module
is the one seam that adds it. Connecting, the CONNACK refusal, subscribing and the network loop go
through aiomqtt: paho's client inside it is switched to ``manual_ack`` before connecting, each PUBLISH
is taken as paho hands it over (not through aiomqtt's message queue, which costs a task per message),
the connection's end is noticed by wrapping paho's disconnect callback (aiomqtt's still runs), and
:meth:`IngestSession.ack` sends the PUBACK through that paho client.

Threading: aiomqtt drives paho's socket from the asyncio loop (``add_reader``/``add_writer`` and a
``loop_misc`` timer), so paho calls back in the loop's thread and a PUBACK is written from it. Compared
with paho's own network thread handing messages over with ``call_soon_threadsafe``, there is no thread
hop per message and no shared state between threads. :meth:`IngestSession.ack` may still be called from
another thread: it then hands itself over to the loop with ``call_soon_threadsafe``.

Ordering: messages are yielded in turn by sender (:mod:`fleet.ingest.fair_queue`: a flooding gateway
cannot crowd out another's panic), each sender's in arrival order. MQTT requires PUBACKs in the order the
PUBLISHes arrived (MQTT 5 §4.6). ``ack`` may be called in any order; it marks the message and sends the
PUBACKs of the longest acknowledged prefix.

Flow control and back-pressure: the CONNECT carries a Receive Maximum, the number of QoS 1 messages
the broker may have sent without a PUBACK. While the caller withholds acks (its store is slow or
down) the broker stops sending at that number and keeps the rest queued in the session (Mosquitto
needs ``max_queued_messages 0``, or it drops QoS 1 messages beyond 1000 queued). Memory here is
bounded by ``receive_maximum`` messages.

Retained messages: a :class:`Subscription` says whether its channels are retained by contract. Those that are
not (events) are subscribed, over MQTT 5, with Retain Handling 2, so the broker sends no retained message at
subscribe (a message a gateway published retained would otherwise come again at every connection), and Retain As
Published, so the retain flag of a message received live or from the session's queue is the publisher's
(:attr:`Received.retain`). MQTT 3.1.1 has neither: there, every subscription gets the retained messages.

No loss: the session is persistent (``clean_start=False`` with a Session Expiry Interval), so
whatever was not acknowledged when the connection or the process dies is sent again on the next
connection with the same client id. An ``ack`` for a message of an earlier connection is ignored:
its packet id means nothing on the new connection, and the broker redelivers that message anyway.
"""

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import aiomqtt
import paho.mqtt.client as mqtt
from paho.mqtt.enums import MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from fleet.ingest.fair_queue import FairQueue
from fleet.mqtt.client import broker_tls_context, session_client
from fleet.mqtt.reconnect import wait_to_reconnect
from fleet.settings import BrokerSettings
from protocol.codec import MAX_PACKET_BYTES
from protocol.reconnect import Backoff

logger = logging.getLogger(__name__)

_PACKETS_PER_READ = 256
"""Packets read per readable event at most: the rest wait for the next, so other tasks get their turn."""


@dataclass(frozen=True, slots=True)
class Subscription:
    """A topic filter ingest subscribes to at QoS 1, and whether the channels it matches are retained by contract
    (``protocol.topics.Channel.retained``): if not, the broker sends none of their retained messages at subscribe
    (MQTT 5)."""

    topic_filter: str
    retained: bool = True


@dataclass(slots=True, eq=False)
class Received:
    """One message as the broker delivered it; hand it back to :meth:`IngestSession.ack` once handled."""

    topic: str
    payload: bytes
    mid: int
    qos: int
    received_at: float  # time.monotonic()
    connection: object  # a token of the connection that delivered it
    retain: bool = False  # the retain flag: as published (MQTT 5, channels not retained), else the broker's
    acked: bool = field(default=False, repr=False)


class IngestSession:
    """Keeps one persistent session up and yields every message of its subscriptions (:meth:`messages`).

    ``subscriptions`` are topic filters, plain or shared (``$share/{group}/…``), subscribed at QoS 1
    on every connection; a bare string is a :class:`Subscription` of retained channels (the broker's
    default: every retained message at subscribe). A transient failure reconnects with ``backoff``; a
    refused login raises :class:`~fleet.errors.BrokerRefusedError`.
    """

    def __init__(
        self,
        broker: BrokerSettings,
        client_id: str,
        subscriptions: Sequence[str | Subscription],
        *,
        receive_maximum: int = 10_000,
        session_expiry_s: int = 7 * 24 * 3600,
        backoff: Backoff | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._broker = broker
        self._tls = broker_tls_context(broker)
        self.client_id = client_id
        self._subscriptions = [each if isinstance(each, Subscription) else Subscription(each) for each in subscriptions]
        self._receive_maximum = receive_maximum
        self._session_expiry_s = session_expiry_s
        self._backoff = backoff or Backoff()
        self._clock = clock
        self._paho: mqtt.Client | None = None
        self._connection: object = object()
        self._unacked: deque[Received] = deque()  # this connection's, in receive order
        self._undelivered: FairQueue[Received] = FairQueue()  # received, not yet yielded: in turn by sender
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self.connected = asyncio.Event()
        self.connects = 0
        self.received = 0
        self.acked = 0
        self.stale_acks = 0
        self.session_resumed: bool | None = None

    @property
    def unacked(self) -> int:
        """Messages received on this connection and not yet acknowledged to the broker."""
        return len(self._unacked)

    @property
    def saturated(self) -> bool:
        """Whether as many messages wait unacknowledged as the broker may send (MQTT 5's Receive Maximum):
        it holds back the rest meanwhile."""
        return self._broker.mqtt_version != "3.1.1" and len(self._unacked) >= self._receive_maximum

    def oldest_undelivered_age_s(self) -> float | None:
        """How long the oldest message received and not yet taken by the consumer has waited, or None."""
        oldest = self._undelivered.oldest_received_at()
        return None if oldest is None else max(0.0, self._clock() - oldest)

    def oldest_unacked(self) -> Received | None:
        """The message that has waited longest unacknowledged, or None."""
        return self._unacked[0] if self._unacked else None

    def oldest_unacked_age_s(self) -> float | None:
        """How long the oldest unacknowledged message has waited, or None when there is none."""
        if not self._unacked:
            return None
        return max(0.0, self._clock() - self._unacked[0].received_at)

    async def messages(self) -> AsyncGenerator[Received, None]:
        """Every message, in receive order, across reconnections, until cancelled or refused."""
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        while True:
            try:
                async for message in self._connection_messages():
                    yield message
            except aiomqtt.MqttError as exc:
                await wait_to_reconnect(exc, self._broker, self.client_id, self._backoff, role="ingest")

    def _session_options(self) -> dict[str, Any]:
        """A persistent session: MQTT 5 with a Session Expiry and a Receive Maximum, or 3.1.1's clean_session=False."""
        if self._broker.mqtt_version == "3.1.1":
            return {"protocol": aiomqtt.ProtocolVersion.V311, "clean_session": False}
        properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        properties.SessionExpiryInterval = self._session_expiry_s
        properties.ReceiveMaximum = self._receive_maximum
        properties.MaximumPacketSize = MAX_PACKET_BYTES  # the broker drops, rather than sends, anything larger
        return {"protocol": aiomqtt.ProtocolVersion.V5, "clean_start": False, "properties": properties}

    def _client(self) -> tuple[aiomqtt.Client, mqtt.Client]:
        """A client for one connection, and the paho client inside it (set to manual acknowledgement)."""
        client = session_client(self._broker, self.client_id, self._tls, **self._session_options())
        paho = getattr(client, "_client", None)  # aiomqtt 2.x keeps its paho client here (pinned <3)
        if not isinstance(paho, mqtt.Client):
            raise TypeError("this aiomqtt version does not expose its paho client; check fleet.mqtt.ingest_session")
        paho.manual_ack_set(True)
        return client, paho

    def _hook(self, paho: mqtt.Client) -> tuple[asyncio.Event, list[str]]:
        """Take paho's messages straight from it, and note the session flag and the connection's end.

        Messages bypass aiomqtt's queue and iterator (a task and an ``asyncio.wait`` per message, and a
        ``Message`` ingest does not use): paho hands each to ``record`` in the loop's thread. Returns an
        event set by every message and by the end of the connection, and the list the end's reason
        goes into; aiomqtt's own connect and disconnect callbacks still run."""
        on_connect, on_disconnect = paho.on_connect, paho.on_disconnect
        arrived = asyncio.Event()
        lost: list[str] = []

        def record(client_: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
            received = Received(
                message.topic,
                bytes(message.payload),
                message.mid,
                message.qos,
                self._clock(),
                self._connection,
                message.retain,
            )
            self.received += 1
            if message.qos > 0:
                self._unacked.append(received)
            self._undelivered.append(received)
            arrived.set()

        def connected(client_: mqtt.Client, userdata: Any, flags: mqtt.ConnectFlags, *rest: Any) -> None:
            self.session_resumed = flags.session_present
            cast(Any, on_connect)(client_, userdata, flags, *rest)

        def disconnected(client_: mqtt.Client, userdata: Any, flags: Any, reason_code: Any, *rest: Any) -> None:
            lost.append(str(reason_code))
            arrived.set()
            cast(Any, on_disconnect)(client_, userdata, flags, reason_code, *rest)

        def read_many(max_packets: int = 1) -> MQTTErrorCode:
            """paho reads one packet per readable event (its ``max_packets`` counts QoS 2 state only), so each
            message cost a trip round the event loop; read what the socket holds, up to a bound per event."""
            del max_packets
            for _ in range(_PACKETS_PER_READ):
                if cast(Any, paho)._sock is None:
                    return MQTTErrorCode.MQTT_ERR_NO_CONN
                rc: MQTTErrorCode = cast(Any, paho)._packet_read()
                if rc == MQTTErrorCode.MQTT_ERR_AGAIN:
                    break
                if rc > 0:
                    return cast(MQTTErrorCode, cast(Any, paho)._loop_rc_handle(rc))
            return MQTTErrorCode.MQTT_ERR_SUCCESS

        paho.on_message = record
        paho.on_connect = connected
        paho.on_disconnect = disconnected
        cast(Any, paho).loop_read = read_many
        return arrived, lost

    async def _connection_messages(self) -> AsyncIterator[Received]:
        client, paho = self._client()
        arrived, lost = self._hook(paho)
        self._connection = object()
        self._unacked.clear()
        self._undelivered.clear()
        async with client:
            self._paho = paho
            try:
                for subscription in self._subscriptions:
                    await self._subscribe(client, subscription)
                self._backoff.reset()
                self.connects += 1
                self.connected.set()
                logger.info(
                    "ingest %s subscribed at %s:%d (%s session)",
                    self.client_id,
                    self._broker.host,
                    self._broker.port,
                    "resumed" if self.session_resumed else "new",
                )
                undelivered = self._undelivered
                while not lost:
                    while undelivered and not lost:
                        yield undelivered.popleft()
                    arrived.clear()
                    if not undelivered and not lost:
                        await arrived.wait()
                # aiomqtt's own record of the end, taken as its iterator would (else asyncio logs it unretrieved)
                ended: asyncio.Future[None] = cast(Any, client)._disconnected
                cause = ended.exception() if ended.done() and not ended.cancelled() else None
                raise aiomqtt.MqttError(f"disconnected during message iteration ({lost[0]})") from cause
            finally:
                self.connected.clear()
                self._paho = None
                self._unacked.clear()  # the broker sends these again on the next connection
                self._undelivered.clear()

    async def _subscribe(self, client: aiomqtt.Client, subscription: Subscription) -> None:
        if self._broker.mqtt_version == "3.1.1" or subscription.retained:
            await client.subscribe(subscription.topic_filter, qos=1)
            return
        # Retain Handling 2: no retained message at subscribe; Retain As Published: the publisher's retain flag.
        options = SubscribeOptions(qos=1, retainHandling=SubscribeOptions.RETAIN_DO_NOT_SEND, retainAsPublished=True)
        await client.subscribe(subscription.topic_filter, options=options)

    def ack(self, message: Received) -> None:
        """Acknowledge ``message``: its PUBACK goes out once every message received before it is acked too."""
        loop = self._loop
        if loop is not None and threading.get_ident() != self._loop_thread:
            loop.call_soon_threadsafe(self._ack, message)
        else:
            self._ack(message)

    def _ack(self, message: Received) -> None:
        if message.acked:
            return
        message.acked = True
        if message.qos == 0:
            return
        paho = self._paho
        if paho is None or message.connection is not self._connection:
            self.stale_acks += 1  # that connection is gone: the broker sends this message again
            return
        unacked = self._unacked
        while unacked and unacked[0].acked:
            done = unacked.popleft()
            paho.ack(done.mid, done.qos)
            self.acked += 1
