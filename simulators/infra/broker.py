"""The interface the tests and the demo use to run an MQTT broker, and picking one for this machine."""

from types import TracebackType
from typing import Literal, Protocol, Self

from simulators.infra.embedded_broker import EmbeddedBroker
from simulators.infra.errors import BinaryNotFoundError, InfraError
from simulators.infra.mosquitto import MosquittoBroker

BrokerKind = Literal["auto", "mosquitto", "embedded"]


class Broker(Protocol):
    """An MQTT broker on a loopback port: :class:`MosquittoBroker` or :class:`EmbeddedBroker`."""

    @property
    def host(self) -> str: ...

    @property
    def port(self) -> int: ...

    @property
    def url(self) -> str:
        """``mqtt://host:port``."""

    @property
    def speaks_mqtt5(self) -> bool:
        """Whether clients may connect with MQTT 5 (and use shared subscriptions); else 3.1.1 only."""

    async def start(self) -> None:
        """Return once the broker accepts connections."""

    async def stop(self) -> None:
        """Stop it; it can be started again on the same port."""

    async def restart(self) -> None:
        """Stop and start again on the same port (only Mosquitto with persistence keeps state)."""

    async def close(self) -> None:
        """Stop it and release its files; it cannot be started again."""

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...


def make_broker(kind: BrokerKind = "auto", *, port: int | None = None, persistence: bool = False) -> Broker:
    """A broker of ``kind`` (not started): ``"auto"`` is Mosquitto when installed, else the embedded one.

    ``port`` fixes the port (a free one by default). ``persistence`` keeps retained messages and
    sessions across restarts; only Mosquitto can, so asking the embedded broker for it raises
    :class:`InfraError`, and so does ``"mosquitto"`` when Mosquitto is not installed.
    """
    if kind == "auto":
        kind = "mosquitto" if MosquittoBroker.available() else "embedded"
    if kind == "mosquitto":
        if not MosquittoBroker.available():
            raise BinaryNotFoundError(MosquittoBroker.not_installed_message())
        return MosquittoBroker(port=port, persistence=persistence)
    if persistence:
        raise InfraError("the embedded broker (amqtt) keeps nothing across restarts; install Mosquitto")
    return EmbeddedBroker(port=port)
