"""The gateway's MQTT uplink: one persistent session with the broker, fed from the store-and-forward buffer.

On connect it registers a retained Last Will (``offline``/``lost``) and publishes a retained
``online`` presence; on a clean stop it publishes ``offline``/``shutdown`` before disconnecting.
It forwards the buffer oldest first, up to ``window`` messages in flight at QoS 1, and confirms a
batch (deleting it from the buffer) only once the broker acknowledged every message in it; after a
lost connection everything unconfirmed is sent again (the fleet de-duplicates by event id).
Transient failures reconnect with exponential backoff and jitter. A refusal that retrying with the
same settings cannot fix (bad credentials, not authorised, a broker certificate the CA did not sign
or not issued for ``broker.host``) never ends the agent: the devices, rules, sirens and local bus run
on while the uplink retries on a long backoff (``broker.refused_retry_base_s`` doubling up to
``broker.refused_retry_cap_s``), the reason kept in :class:`~edge.faults.GatewayFaults` (``uplink``,
logged at ERROR when it appears or changes) and each refused attempt counted (``uplink_refused``).

Alerts the buffer could not store (a full disk) wait in :class:`~edge.unbuffered.UnbufferedAlerts`
and are published from memory, beside the buffered stream, whenever the uplink is connected.
"""

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any, Final, cast

import aiomqtt
import paho.mqtt.client as mqtt
from paho.mqtt.client import CallbackOnPublish_v2
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from edge.broker_connection import BrokerLink, raise_if_cancelled, stay_connected, tls_context
from edge.buffer import BufferStorageError, StoreAndForwardBuffer, Stored
from edge.envelope import EnvelopeStamper
from edge.errors import BrokerCertificateError, EdgeConfigError, EdgeError, UplinkRefusedError
from edge.faults import STORE, UPLINK, UPLINK_REFUSED, GatewayFaults
from edge.outgoing import Outgoing
from edge.settings import BrokerSettings
from edge.unbuffered import UnbufferedAlerts
from protocol.codec import encode
from protocol.messages import Presence, PresenceReason, PresenceState
from protocol.mqtt_socket import NO_DELAY
from protocol.reconnect import Backoff
from protocol.topics import Channel, gateway_filters, gateway_topic

logger = logging.getLogger(__name__)

DEFAULT_WINDOW = 128
_CHUNKS_IN_FLIGHT = 4
_CHUNKS_PER_READ = 8  # chunks read from the buffer with one query
_ACK_TIMEOUT_S: Final = 10.0  # a chunk not acknowledged within this: the connection is treated as dead


class _Chunk:
    """Rows published together; ``acked`` completes once the broker acknowledged every one of them."""

    __slots__ = ("_unacked", "acked", "rows")

    def __init__(self, rows: list[Stored]) -> None:
        self.rows = rows
        self.acked: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._unacked = len(rows)

    def ack_one(self) -> None:
        self._unacked -= 1
        if self._unacked == 0 and not self.acked.done():
            self.acked.set_result(None)


class _Window:
    """How many more publishes may be in flight; claimed a chunk at a time, given back as chunks are acked."""

    def __init__(self, size: int) -> None:
        self._free = size
        self._freed = asyncio.Event()

    async def claim(self, count: int) -> None:
        while self._free < count:
            self._freed.clear()
            await self._freed.wait()
        self._free -= count

    def release(self, count: int) -> None:
        self._free += count
        self._freed.set()


class _Acknowledged:
    """Rows whose PUBACKs are all in, in id order, waiting to be deleted from the buffer."""

    def __init__(self) -> None:
        self._rows: list[Stored] = []
        self._ready = asyncio.Event()

    def add(self, rows: list[Stored]) -> None:
        self._rows.extend(rows)
        self._ready.set()

    async def take(self) -> list[Stored]:
        """Everything acknowledged so far (waits for at least one row)."""
        await self._ready.wait()
        self._ready.clear()
        rows, self._rows = self._rows, []
        return rows


class _Publisher:
    """Publishes buffered rows through the paho client inside aiomqtt's, and hands each PUBACK to its chunk.

    aiomqtt's ``publish()`` costs, per message, a Task to await it, an Event, a timer and a scan of
    every call still pending: with a window of 128 the event loop spent about 120 µs per forwarded
    message through it against about 80 µs through paho (bench ``edge.replay_rate``, 2 cores).
    Only this hot path bypasses aiomqtt: the connection, the session, TLS, the Will,
    subscriptions, heartbeats and presence all go through aiomqtt, and so do errors (a paho error
    code becomes aiomqtt's :class:`~aiomqtt.MqttCodeError`). aiomqtt keeps receiving every PUBACK
    first, for its own publishes. paho calls back in the event loop's thread (aiomqtt drives its
    socket from the loop), so no locking is needed.
    """

    def __init__(self, client: aiomqtt.Client) -> None:
        paho = getattr(client, "_client", None)  # aiomqtt 2.x keeps its paho client here (pinned <3)
        if not isinstance(paho, mqtt.Client):
            raise TypeError("this aiomqtt version does not expose its paho client; check the uplink's _Publisher")
        self._paho = paho
        self._chunks: dict[int, _Chunk] = {}  # by message id, until its PUBACK
        self._aiomqtt_on_publish = paho.on_publish
        paho.on_publish = self._on_publish

    def publish(self, chunk: _Chunk) -> None:
        """Send every row of ``chunk``, in order, without waiting."""
        for stored in chunk.rows:
            item = stored.item
            info = self._paho.publish(item.topic, item.payload, item.qos, item.retain)
            if info.rc != mqtt.MQTT_ERR_SUCCESS:
                raise aiomqtt.MqttCodeError(info.rc, "Could not publish message")
            if info.is_published():  # QoS 0 already written: no PUBACK will come
                chunk.ack_one()
            else:
                self._chunks[info.mid] = chunk

    def close(self) -> None:
        self._paho.on_publish = self._aiomqtt_on_publish
        self._chunks.clear()

    def _on_publish(
        self, client: mqtt.Client, userdata: object, mid: int, reason_code: ReasonCode, properties: Properties
    ) -> None:
        if self._aiomqtt_on_publish is not None:
            cast(CallbackOnPublish_v2, self._aiomqtt_on_publish)(client, userdata, mid, reason_code, properties)
        chunk = self._chunks.pop(mid, None)
        if chunk is not None:
            chunk.ack_one()


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
        faults: GatewayFaults | None = None,
        refused_backoff: Backoff | None = None,
    ) -> None:
        self._broker = broker
        self._tls = tls_context(broker, "broker")
        self._stamper = stamper
        self._buffer = buffer
        self._agent_version = agent_version
        self._backoff = backoff or Backoff()
        self._refused_backoff = refused_backoff or Backoff(broker.refused_retry_base_s, broker.refused_retry_cap_s)
        self._faults = faults or GatewayFaults()
        self.unbuffered = UnbufferedAlerts(self._faults)
        """Alerts the buffer could not store, published from memory when connected."""
        self._window = window
        self._presence_topic = gateway_topic(village_id, stamper.gateway_id, Channel.PRESENCE)
        self._downlink_filters = gateway_filters(village_id, stamper.gateway_id)
        self._on_downlink = on_downlink or _ignore_downlink
        self._client: aiomqtt.Client | None = None
        self.connected = asyncio.Event()
        self.connects = 0
        self.forwarded = 0

    def _reload_tls(self) -> None:
        """Read the TLS files again for a new connection: a renewed certificate (``install_certificate``, or one a
        technician put in place) is used from the next connection on, with no restart."""
        try:
            self._tls = tls_context(self._broker, "broker")
        except EdgeConfigError as exc:
            logger.error("cannot load the uplink's TLS files again, connecting with those loaded before: %s", exc)

    def _presence(self, state: PresenceState, reason: PresenceReason) -> bytes:
        return encode(Presence(**self._stamper.stamp(), state=state, reason=reason, agent_version=self._agent_version))

    async def run(self) -> None:
        """Keep the uplink up until cancelled; never ends on its own.

        A refusal (the broker refusing the gateway's credentials, as :class:`UplinkRefusedError`; a broker
        certificate that the configured CA did not sign or that is not for ``broker.host``, as
        :class:`BrokerCertificateError`) is reported and retried on the long backoff. A certificate that
        is expired or not yet valid is retried on the ordinary one: the clock or a renewal can fix that."""
        await stay_connected(
            self._session,
            BrokerLink(self._broker, "broker", "uplink to", self._stamper.gateway_id),
            self._backoff,
            refused=UplinkRefusedError,
            untrusted=BrokerCertificateError,
            log=logger,
            on_refused=self._refused,
            refused_backoff=self._refused_backoff,
        )

    def _refused(self, refusal: EdgeError) -> None:
        self._faults.count(UPLINK_REFUSED)
        self._faults.failing(UPLINK, str(refusal))

    @property
    def refusal(self) -> str | None:
        """Why the broker refuses the gateway now (None while it does not)."""
        return self._faults.reason(UPLINK)

    async def _session(self) -> None:
        password = self._broker.password.get_secret_value() if self._broker.password else None
        # Stamped in this order so the session's Will outranks its own `online` (see fleet.gateways.presence).
        online = self._presence(PresenceState.ONLINE, PresenceReason.CONNECTED)
        lost = self._presence(PresenceState.OFFLINE, PresenceReason.LOST)
        self._reload_tls()
        async with aiomqtt.Client(
            self._broker.host,
            self._broker.port,
            identifier=self._broker.client_id or f"outpost-gw-{self._stamper.gateway_id}",
            username=self._broker.username,
            password=password,
            will=aiomqtt.Will(self._presence_topic, lost, qos=1, retain=True),
            clean_session=False,
            keepalive=self._broker.keepalive_s,
            tls_context=self._tls,
            # The forwarding window is the flow control (see _forward). With a limit of its own, paho
            # would scan every message in flight on each PUBACK to find queued ones to send.
            max_inflight_messages=0,
            timeout=10,
            socket_options=NO_DELAY,
        ) as client:
            raise_if_cancelled()
            self._backoff.reset()
            self._refused_backoff.reset()
            self._faults.recovered(UPLINK)
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
                await _first_to_fail(self._forward(client), self._listen(client), self._publish_unbuffered(client))
            finally:
                self.connected.clear()
                self._client = None
                self._buffer.release()

    async def _publish_unbuffered(self, client: aiomqtt.Client) -> None:
        """Publish the alerts held in memory, oldest first, each forgotten once the broker acknowledged it."""
        while True:
            item = await self.unbuffered.first()
            await client.publish(item.topic, item.payload, qos=item.qos, retain=item.retain)
            self.unbuffered.sent(item)
            logger.warning("alert published from memory (the buffer could not store it); %d wait", len(self.unbuffered))

    async def _listen(self, client: aiomqtt.Client) -> None:
        """Hand downlink messages (config, commands) on; raises when the connection drops."""
        async for message in client.messages:
            payload = message.payload if isinstance(message.payload, bytes) else str(message.payload).encode()
            self._on_downlink(str(message.topic), payload)

    async def _forward(self, client: aiomqtt.Client) -> None:
        """Keep up to ``window`` publishes in flight, in chunks; delete each chunk once all its PUBACKs are in.

        A sliding window rather than "publish N, wait for N": the broker's acknowledgements keep
        flowing while the next chunk goes out. Three loops share the work: the sender reads the
        buffer several chunks at a time (the next read under way while it publishes) and publishes
        a chunk as soon as the window has room for it; the acknowledger waits for each chunk's
        PUBACKs, in order, and gives its room back at once; the confirmer deletes what was
        acknowledged, in as few transactions as it can (everything acknowledged while the previous
        deletion was being committed)."""
        publisher = _Publisher(client)
        window = _Window(self._window)
        sent: asyncio.Queue[_Chunk] = asyncio.Queue()  # bounded by the window
        acked = _Acknowledged()
        try:
            await _first_to_fail(
                self._send_chunks(publisher, window, sent),
                self._acknowledge_chunks(window, sent, acked),
                self._confirm_chunks(acked),
            )
        finally:
            publisher.close()

    async def _send_chunks(self, publisher: _Publisher, window: _Window, sent: "asyncio.Queue[_Chunk]") -> None:
        size = max(1, self._window // _CHUNKS_IN_FLIGHT)
        # The next rows are read while these go out: a read waits its turn on the buffer's thread
        # (behind deletions), and the window would drain if the sender stopped for it.
        reading = asyncio.create_task(self._buffer.take(size * _CHUNKS_PER_READ))
        try:
            while True:
                rows = await reading
                reading = asyncio.create_task(self._buffer.take(size * _CHUNKS_PER_READ))
                for start in range(0, len(rows), size):
                    chunk = _Chunk(rows[start : start + size])
                    await window.claim(len(chunk.rows))
                    publisher.publish(chunk)  # in id order, so each stream reaches the broker in order
                    sent.put_nowait(chunk)
        finally:
            reading.cancel()
            await asyncio.gather(reading, return_exceptions=True)

    async def _acknowledge_chunks(self, window: _Window, sent: "asyncio.Queue[_Chunk]", acked: _Acknowledged) -> None:
        while True:
            chunk = await sent.get()
            try:
                async with asyncio.timeout(_ACK_TIMEOUT_S):
                    await chunk.acked
            except TimeoutError:
                raise aiomqtt.MqttError(
                    f"no PUBACK for {len(chunk.rows)} messages within {_ACK_TIMEOUT_S:.0f} s"
                ) from None
            window.release(len(chunk.rows))
            acked.add(chunk.rows)

    async def _confirm_chunks(self, acked: _Acknowledged) -> None:
        while True:
            rows = await acked.take()
            try:
                await self._buffer.confirm(rows)
            except BufferStorageError as exc:
                # A full disk can refuse even a deletion. The rows stay stored and go out again after the
                # next reconnect (the fleet de-duplicates by event id); forwarding goes on meanwhile.
                self._faults.failing(STORE, str(exc))
            self.forwarded += len(rows)

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
                # asyncio.timeout, not wait_for: 3.11's wait_for can swallow a cancellation that arrives
                # as the drain completes, and the agent would outlive its shutdown.
                async with asyncio.timeout(drain_timeout_s):
                    await self._buffer.drained()
            except TimeoutError:
                logger.warning("stopping with %d messages still buffered", self._buffer.depth)
        client = self._client
        if client is not None:
            try:
                offline = self._presence(PresenceState.OFFLINE, PresenceReason.SHUTDOWN)
                await client.publish(self._presence_topic, offline, qos=1, retain=True, timeout=2)
            except aiomqtt.MqttError as exc:
                logger.warning("could not announce shutdown: %s", exc)
