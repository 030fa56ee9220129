"""The gateway's connection to its village's local MQTT broker: it hears the sensor nodes and tells the village centre.

This path never depends on the uplink: the local broker runs in the village (usually on the
gateway itself), so panic presses on nodes and alerts for the village centre keep flowing while the
fleet is unreachable. The session is persistent (QoS 1), so node events published while the agent
restarts wait at the broker. Each node's messages go to the adapter attached for it; messages from
nodes nobody declared, and malformed ones, are counted and logged, never raised.

Alerts for the village centre are published at QoS 1 as soon as they are raised; while the local
broker is down up to ``pending_limit`` of them wait and go out on reconnect, older ones beyond that
are dropped and counted.
"""

import asyncio
import logging
from collections import Counter, deque
from collections.abc import Callable, Coroutine
from typing import Final, Protocol

import aiomqtt

from edge.broker_connection import BrokerLink, raise_if_cancelled, stay_connected, tls_context
from edge.errors import EdgeConfigError, LocalBrokerRefusedError
from edge.settings import BrokerSettings
from protocol.codec import Rejection, encode
from protocol.messages import Alert
from protocol.mqtt_socket import NO_DELAY
from protocol.node import NodeChannel, NodeConfig, NodeDecoder, NodeInbound, node_filters, node_topic
from protocol.reconnect import Backoff
from protocol.village_centre import village_centre_topic

logger = logging.getLogger(__name__)

DEFAULT_PENDING_LIMIT: Final = 100


class NodeListener(Protocol):
    def on_node_message(self, message: NodeInbound, received_ms: int) -> None: ...


class LocalBus:
    def __init__(
        self,
        broker: BrokerSettings,
        village_id: str,
        gateway_id: str,
        clock: Callable[[], int],
        *,
        backoff: Backoff | None = None,
        pending_limit: int = DEFAULT_PENDING_LIMIT,
    ) -> None:
        self._broker = broker
        self._tls = tls_context(broker, "local_broker")
        self._gateway_id = gateway_id
        self._client_id = broker.client_id or f"outpost-gw-local-{gateway_id}"
        self._centre_topic = village_centre_topic(village_id, gateway_id)
        self._clock = clock
        self._backoff = backoff or Backoff()
        self._listeners: dict[str, NodeListener] = {}
        self._client: aiomqtt.Client | None = None
        self._pending: deque[bytes] = deque(maxlen=pending_limit)
        self._publishing: set[asyncio.Task[None]] = set()
        self._node_configs: dict[str, bytes] = {}
        self.decoder = NodeDecoder()
        self.connected = asyncio.Event()
        self.unknown_nodes: Counter[str] = Counter()
        self.notified = 0
        self.notifications_dropped = 0

    def attach(self, node_id: str, listener: NodeListener) -> None:
        """Send ``node_id``'s messages to ``listener``; EdgeConfigError if another device already listens."""
        current = self._listeners.get(node_id)
        if current is not None and current is not listener:
            raise EdgeConfigError(f"sensor node {node_id} is declared for two devices")
        self._listeners[node_id] = listener

    def detach(self, node_id: str, listener: NodeListener) -> None:
        if self._listeners.get(node_id) is listener:
            del self._listeners[node_id]

    def configure_node(self, config: NodeConfig) -> None:
        """Publish ``config`` to its node's retained config topic, now and again on every reconnect."""
        payload = config.encode()
        self._node_configs[config.node_id] = payload
        if self._client is not None:
            self._spawn(self._configure(self._client, config.node_id, payload))

    def notify_village_centre(self, alert: Alert) -> None:
        """Publish ``alert`` to the village centre now, or as soon as the local broker is back."""
        payload = encode(alert)
        if self._client is None:
            if len(self._pending) == self._pending.maxlen:
                self.notifications_dropped += 1
            self._pending.append(payload)
            logger.warning("local broker down: alert %s for the village centre waits", alert.event_id)
            return
        self._spawn(self._notify(self._client, payload))

    def _spawn(self, publishing: Coroutine[None, None, None]) -> None:
        task = asyncio.get_running_loop().create_task(publishing)
        self._publishing.add(task)
        task.add_done_callback(self._publishing.discard)

    async def _notify(self, client: aiomqtt.Client, payload: bytes) -> None:
        try:
            await client.publish(self._centre_topic, payload, qos=1)
            self.notified += 1
        except aiomqtt.MqttError as exc:
            logger.warning("alert for the village centre not delivered (%s); it waits for the reconnect", exc)
            self._pending.append(payload)

    async def _configure(self, client: aiomqtt.Client, node_id: str, payload: bytes) -> None:
        try:
            await client.publish(node_topic(node_id, NodeChannel.CONFIG), payload, qos=1, retain=True)
        except aiomqtt.MqttError as exc:
            logger.warning("settings for node %s not published (%s); they go out on the reconnect", node_id, exc)

    async def run(self) -> None:
        """Stay connected until cancelled; raise LocalBrokerRefusedError when retrying cannot help."""
        await stay_connected(
            self._session,
            BrokerLink(self._broker, "local_broker", "local broker", self._gateway_id),
            self._backoff,
            refused=LocalBrokerRefusedError,
            untrusted=LocalBrokerRefusedError,
            log=logger,
        )

    async def _session(self) -> None:
        password = self._broker.password.get_secret_value() if self._broker.password else None
        async with aiomqtt.Client(
            self._broker.host,
            self._broker.port,
            identifier=self._client_id,
            username=self._broker.username,
            password=password,
            clean_session=False,
            keepalive=self._broker.keepalive_s,
            tls_context=self._tls,
            timeout=10,
            socket_options=NO_DELAY,
        ) as client:
            raise_if_cancelled()
            self._backoff.reset()
            for topic_filter in node_filters():
                await client.subscribe(topic_filter, qos=1)
            self._client = client
            self.connected.set()
            logger.info("local broker %s:%d connected", self._broker.host, self._broker.port)
            try:
                while self._pending:
                    self._spawn(self._notify(client, self._pending.popleft()))
                for node_id, config in self._node_configs.items():
                    self._spawn(self._configure(client, node_id, config))
                async for message in client.messages:
                    payload = message.payload if isinstance(message.payload, bytes) else str(message.payload).encode()
                    self._dispatch(str(message.topic), payload)
            finally:
                self.connected.clear()
                self._client = None

    def _dispatch(self, topic: str, payload: bytes) -> None:
        received = self.decoder.decode(topic, payload)
        if isinstance(received, Rejection):
            return  # counted and logged by the decoder
        node_id = received.topic.node_id
        listener = self._listeners.get(node_id)
        if listener is None:
            self.unknown_nodes[node_id] += 1
            if self.unknown_nodes[node_id] == 1:
                logger.warning("node %s is not declared on this gateway; its messages are ignored", node_id)
            return
        listener.on_node_message(received.message, self._clock())
