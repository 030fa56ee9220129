"""Staying connected to an MQTT broker (the county's, or the village's own): TLS, and retry or stop.

One policy for every broker the gateway talks to: transient failures are retried with backoff and
jitter; failures that retrying with the same settings cannot fix get an error naming the setting to
change: refused credentials, and a broker certificate the configured CA did not sign or that is not
issued for the configured host. Such an error ends the connection's task, unless the caller passes
``on_refused`` (the uplink does: a refused uplink must not stop the village's sirens), in which case
it is reported there and retried on a long backoff, since credentials are rotated and certificates
replaced from outside while the gateway runs. A certificate that is expired or not yet valid is retried, since a gateway
without a real-time clock sees exactly that before NTP, and a late renewal heals by itself.
"""

import asyncio
import logging
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import NoReturn

import aiomqtt
from aiomqtt.exceptions import MqttConnectError

from edge.errors import EdgeConfigError, EdgeError
from edge.settings import BrokerSettings
from protocol.errors import TlsSettingsError
from protocol.mqtt_tls import CLOCK_VERIFY_CODES, NAME_VERIFY_CODES, certificate_failure, mqtt_tls_context
from protocol.reconnect import Backoff, is_permanent_refusal, refusal_code


@dataclass(frozen=True, slots=True)
class BrokerLink:
    """One broker connection, as messages name it."""

    broker: BrokerSettings
    setting: str  # the settings key it comes from: "broker", "local_broker"
    label: str  # how log lines start: "uplink to", "local broker"
    gateway_id: str

    @property
    def where(self) -> str:
        return f"{self.broker.host}:{self.broker.port}"


def raise_if_cancelled() -> None:
    """Re-raise a cancellation the connect swallowed. aiomqtt connects through ``asyncio.wait_for``, which in
    Python 3.11 returns the connection when a cancellation arrives as it completes: the task, asked to stop, would
    go on into its session and wait for messages for ever. Call it first thing inside ``async with Client``."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


def tls_context(broker: BrokerSettings, setting: str) -> ssl.SSLContext | None:
    """The TLS context for ``broker.tls`` (see :func:`protocol.mqtt_tls.mqtt_tls_context`).

    Raises :class:`EdgeConfigError` naming the setting (``{setting}.tls.…``) and the file that cannot be loaded."""
    try:
        return mqtt_tls_context(broker.tls, setting)
    except TlsSettingsError as exc:
        raise EdgeConfigError(str(exc)) from exc


async def stay_connected(
    session: Callable[[], Awaitable[None]],
    link: BrokerLink,
    backoff: Backoff,
    *,
    refused: type[EdgeError],
    untrusted: type[EdgeError],
    log: logging.Logger,
    on_refused: Callable[[EdgeError], None] | None = None,
    refused_backoff: Backoff | None = None,
) -> NoReturn:
    """Run ``session`` again whenever the connection fails, until cancelled. A failure retrying cannot fix
    becomes ``refused`` (refused credentials) or ``untrusted`` (a broker certificate that cannot be
    trusted): raised, or, given ``on_refused``, handed to it and retried after ``refused_backoff``."""
    while True:
        try:
            await session()
        except aiomqtt.MqttError as exc:
            # Only a CONNACK refusal can be permanent; other codes are paho's own (e.g. 4 = no connection).
            code = refusal_code(exc.rc) if isinstance(exc, MqttConnectError) else None
            permanent: EdgeError | None = None
            if is_permanent_refusal(code):
                permanent = refused(
                    f"{link.setting} {link.where} refused gateway {link.gateway_id} (code {code}): "
                    f"check its credentials ({link.setting}.username, {link.setting}.password)"
                )
                permanent.__cause__ = exc
            failure = certificate_failure(exc)
            if permanent is None and failure is not None and failure.verify_code not in CLOCK_VERIFY_CODES:
                permanent = untrusted(_untrusted_broker(link, failure))
                permanent.__cause__ = failure
            if permanent is not None:
                if on_refused is None:
                    raise permanent from permanent.__cause__
                on_refused(permanent)
                delay = (refused_backoff or backoff).next_delay()
                log.info("%s %s refused; retrying in %.0f s", link.label, link.where, delay)
                await asyncio.sleep(delay)
                continue
            reason: object = exc
            if failure is not None:  # expired or not yet valid
                reason = (
                    f"the broker's TLS certificate is not valid now ({failure.verify_message}): "
                    "check this gateway's clock and the broker's certificate"
                )
            delay = backoff.next_delay()
            log.warning("%s %s down (%s); retrying in %.1f s", link.label, link.where, reason, delay)
            await asyncio.sleep(delay)


def _untrusted_broker(link: BrokerLink, failure: ssl.SSLCertVerificationError) -> str:
    """Why the gateway cannot trust the broker, and which setting to fix, for the operator."""
    reason = failure.verify_message or str(failure)
    where = f"{link.setting} {link.where}"
    if failure.verify_code in NAME_VERIFY_CODES:
        return (
            f"gateway {link.gateway_id} does not trust {where}: its TLS certificate is not issued for "
            f"{link.broker.host} ({reason}): set {link.setting}.host to a name or address the certificate lists"
        )
    ca_file = link.broker.tls.ca_file if link.broker.tls is not None else None
    return (
        f"gateway {link.gateway_id} does not trust {where}: its TLS certificate does not verify against "
        f"{link.setting}.tls.ca_file {ca_file} ({reason}): configure the CA that signed the broker's certificate"
    )
