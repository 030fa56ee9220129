"""An async client of Mosquitto's dynamic security control API, over one MQTT session (aiomqtt).

Use it as an async context manager: it logs in as a dynamic security administrator, subscribes to the
answers, and then :meth:`DynsecControl.execute` publishes batches of commands and returns their answers
in order. It does not reconnect: once its connection is lost, every call raises
:class:`~fleet.errors.BrokerControlUnavailableError` and the caller opens a new one.
"""

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Sequence
from types import TracebackType
from typing import Self

import aiomqtt
from aiomqtt.exceptions import MqttConnectError

from fleet.broker_access.commands import CONTROL_TOPIC, RESPONSE_TOPIC, Command, encode_batch
from fleet.broker_access.correlation import PendingResponses
from fleet.broker_access.responses import CommandResponse, decode_responses
from fleet.errors import BrokerControlUnavailableError, BrokerRefusedError
from fleet.mqtt.client import new_client
from protocol.reconnect import is_permanent_refusal, refusal_code

logger = logging.getLogger(__name__)

_SUBACK_FAILURE = 0x80  # MQTT 3.1.1 "failure"; MQTT 5 reason codes from 0x80 up are failures too


class DynsecControl:
    """A control session with the broker's dynamic security plugin, as administrator ``username``.

    Raises, on entering, :class:`~fleet.errors.BrokerRefusedError` if the broker refuses the credentials
    or does not let them read the answers, and :class:`~fleet.errors.BrokerControlUnavailableError` if
    it cannot be reached within ``timeout_s``.
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        username: str,
        password: str,
        identifier: str | None = None,
        timeout_s: float = 5.0,
        keepalive_s: int = 30,
        tls_context: ssl.SSLContext | None = None,
    ) -> None:
        self._host = host
        self._port = port
        self._username = username
        self._timeout_s = timeout_s
        self._password = password
        self._identifier = identifier
        self._keepalive_s = keepalive_s
        self._tls_context = tls_context
        self._pending = PendingResponses()
        self._stack = contextlib.AsyncExitStack()
        self._client: aiomqtt.Client | None = None
        self._reader: asyncio.Task[None] | None = None

    @property
    def where(self) -> str:
        return f"{self._host}:{self._port}"

    async def __aenter__(self) -> Self:
        if self._client is not None:
            raise RuntimeError("a DynsecControl is entered once; make a new one")
        client = self._client = new_client(
            self._host,
            self._port,
            self._identifier,
            username=self._username,
            password=self._password,
            keepalive_s=self._keepalive_s,
            tls=self._tls_context,
            timeout_s=self._timeout_s,
            clean_session=True,
        )
        try:
            async with asyncio.timeout(self._timeout_s):
                await self._stack.enter_async_context(client)
                codes = await client.subscribe(RESPONSE_TOPIC, qos=1)
        except MqttConnectError as exc:
            await self._stack.aclose()
            code = refusal_code(exc.rc)
            if is_permanent_refusal(code):
                raise BrokerRefusedError(
                    f"broker {self.where} refused dynamic security administrator {self._username!r} (code {code})"
                ) from exc
            raise BrokerControlUnavailableError(f"cannot log in to broker {self.where}: {exc}") from exc
        except (aiomqtt.MqttError, TimeoutError) as exc:
            await self._stack.aclose()
            raise BrokerControlUnavailableError(f"broker {self.where} did not answer: {exc!r}") from exc
        if any((refusal_code(code) or 0) >= _SUBACK_FAILURE for code in codes):
            await self._stack.aclose()
            raise BrokerRefusedError(
                f"broker {self.where} does not let {self._username!r} read {RESPONSE_TOPIC}: "
                "is it a dynamic security administrator?"
            )
        self._reader = asyncio.create_task(self._read(client), name="dynsec-responses")
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
            self._reader = None
        self._pending.fail_all(BrokerControlUnavailableError("the dynamic security control session is closed"))
        with contextlib.suppress(aiomqtt.MqttError):
            await self._stack.aclose()

    async def execute(self, commands: Sequence[Command]) -> list[CommandResponse]:
        """Send ``commands`` as one batch (the plugin runs them in order) and return their answers in order.

        A refused command is an answer with an ``error``, not an exception (see
        :func:`~fleet.broker_access.responses.raise_for_errors`). Raises
        :class:`~fleet.errors.BrokerControlUnavailableError` if not every answer arrives within
        ``timeout_s`` or the connection is lost.
        """
        if not commands:
            return []
        client = self._client
        if self._reader is None or client is None:
            raise BrokerControlUnavailableError("the dynamic security control session is not open")
        futures = self._pending.expect(len(commands))
        payload = encode_batch(commands, list(futures))
        try:
            async with asyncio.timeout(self._timeout_s):
                await client.publish(CONTROL_TOPIC, payload, qos=1)
                return [await future for future in futures.values()]
        except TimeoutError as exc:
            raise BrokerControlUnavailableError(
                f"broker {self.where} did not answer {', '.join(map(str, commands))} within {self._timeout_s} s "
                "(is the dynamic security plugin loaded?)"
            ) from exc
        except aiomqtt.MqttError as exc:
            raise BrokerControlUnavailableError(f"lost broker {self.where}: {exc}") from exc
        finally:
            self._pending.discard(futures)
            for future in futures.values():
                if future.done() and not future.cancelled():
                    future.exception()  # retrieved: a failure is raised once, not logged again

    async def _read(self, client: aiomqtt.Client) -> None:
        try:
            async for message in client.messages:
                if not message.topic.matches(RESPONSE_TOPIC) or not isinstance(message.payload, bytes | bytearray):
                    continue
                try:
                    responses = decode_responses(bytes(message.payload))
                except ValueError as exc:
                    logger.warning("ignoring an unreadable dynamic security response: %s", exc)
                    continue
                self._pending.resolve(responses)
        except aiomqtt.MqttError as exc:
            logger.warning("lost the dynamic security control session with %s: %s", self.where, exc)
            self._pending.fail_all(BrokerControlUnavailableError(f"lost broker {self.where}: {exc}"))
        else:
            self._pending.fail_all(BrokerControlUnavailableError(f"broker {self.where} ended the session"))
