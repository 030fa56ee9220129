"""An in-process MQTT broker (amqtt) on a loopback port, for machines without Mosquitto."""

import logging
from types import TracebackType
from typing import Any, Final, Self

from amqtt.broker import Broker as AmqttBroker

from simulators.infra.errors import ServerStartError, ServerStateError
from simulators.infra.ports import LOOPBACK, LoopbackServer, free_port

logger = logging.getLogger(__name__)

_START_ATTEMPTS: Final = 3
_NOISY_LOGGERS: Final = ("amqtt", "transitions")


class EmbeddedBroker(LoopbackServer):
    """amqtt's broker served from this process's event loop on 127.0.0.1 (a free port unless given).

    Anonymous clients are allowed; amqtt's event, packet and ``$SYS`` plugins are left out, and its
    loggers are set to WARNING unless ``quiet=False``. Verified with aiomqtt: QoS 1 publish and
    subscribe, retained messages delivered on subscribe, and a retained Last Will published when a
    client's socket dies without DISCONNECT.

    Where it differs from Mosquitto:

    * it speaks MQTT 3.1.1 only (no MQTT 5);
    * it keeps nothing on disk, so :meth:`stop` and :meth:`restart` drop retained messages and
      sessions, and it cannot be killed like a process (it runs in the caller's event loop, so a
      blocked loop blocks the broker too);
    * amqtt 0.12.1 bug: right after CONNACK it sends a connecting client every retained message that
      matches *any* session's subscription (including sessions that disconnected less than about a
      second ago), whether or not this client subscribes to it. Consumers must ignore topics they did
      not subscribe to, and tests must look for the message they expect rather than take the first.
    """

    url_scheme = "mqtt"

    def __init__(self, *, port: int | None = None, quiet: bool = True) -> None:
        super().__init__(port)
        self._quiet = quiet
        self._broker: Any = None  # amqtt ships no type information
        self._has_started = False

    @property
    def speaks_mqtt5(self) -> bool:
        """amqtt speaks MQTT 3.1.1 only (no MQTT 5, no shared subscriptions)."""
        return False

    @property
    def running(self) -> bool:
        return self._broker is not None

    async def start(self) -> None:
        """Start listening on :attr:`port`; raises :class:`ServerStartError` if amqtt cannot."""
        if self._broker is not None:
            raise ServerStateError(f"the embedded broker is already running on {self.url}")
        if self._quiet:
            for name in _NOISY_LOGGERS:
                logging.getLogger(name).setLevel(logging.WARNING)
        for attempt in range(1, _START_ATTEMPTS + 1):
            try:
                self._broker = await self._start_once()
            except ServerStartError:
                # A port we picked ourselves may have been taken meanwhile: pick another, but only
                # before the first start (afterwards clients already know the port).
                if self._port_given or self._has_started or attempt == _START_ATTEMPTS:
                    raise
                self._port = free_port()
            else:
                break
        self._has_started = True
        logger.info("embedded MQTT broker (amqtt) listening on %s", self.url)

    async def stop(self) -> None:
        """Disconnect every client and stop listening; retained messages and sessions are dropped."""
        broker, self._broker = self._broker, None
        if broker is None:
            return
        await broker.shutdown()
        logger.info("embedded MQTT broker on %s stopped", self.url)

    async def restart(self) -> None:
        """Stop and start again on the same port (with no retained messages or sessions)."""
        await self.stop()
        await self.start()

    async def close(self) -> None:
        """The same as :meth:`stop`: the broker owns no files."""
        await self.stop()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    def _config(self) -> dict[str, Any]:
        return {
            "listeners": {"default": {"type": "tcp", "bind": f"{LOOPBACK}:{self._port}"}},
            "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
        }

    async def _start_once(self) -> Any:
        broker = AmqttBroker(self._config())
        try:
            await broker.start()
        except Exception as exc:  # amqtt wraps every failure (e.g. the port is taken) in BrokerError
            raise ServerStartError(f"amqtt could not listen on {self.url}: {exc}") from exc
        return broker
