"""How the fleet's own MQTT sessions (ingest, downlink, the dynamic-security administrator) reach the broker:
every connection is made by :func:`new_client` (:func:`session_client` with the fleet's own login), TLS from
``broker.tls``, and client ids no gateway can guess.

A client id names a persistent session, and Mosquitto hands a session to whoever connects with its id (the
older connection is closed, its Will fired): a gateway that knew the fleet's ids could take over its ingest
sessions. So every fleet session's id carries a tag derived from the fleet's broker password (an HMAC: it
reveals nothing of the password), stable across restarts so the sessions resume, and unknown to anyone
without the password.
"""

import hashlib
import hmac
import ssl
from typing import Any

import aiomqtt

from fleet.errors import BrokerTlsSettingsError
from fleet.settings import BrokerSettings
from protocol.errors import TlsSettingsError
from protocol.mqtt_socket import NO_DELAY
from protocol.mqtt_tls import mqtt_tls_context

_TAG_LABEL = b"outpost/fleet-client-id/v1"


def broker_tls_context(broker: BrokerSettings) -> ssl.SSLContext | None:
    """The context every fleet session to ``broker`` connects with (None: plain MQTT, development only).

    Raises :class:`BrokerTlsSettingsError` naming the setting and the file that cannot be loaded."""
    try:
        return mqtt_tls_context(broker.tls, "broker")
    except TlsSettingsError as exc:
        raise BrokerTlsSettingsError(str(exc)) from exc


def session_prefix(broker: BrokerSettings) -> str:
    """What every fleet session's client id starts with: ``broker.client_id``, and a tag made from the
    password when there is one (``outpost-fleet-3f9c1d2e7b6a``)."""
    if broker.password is None:
        return broker.client_id
    tag = hmac.new(broker.password.get_secret_value().encode("utf-8"), _TAG_LABEL, hashlib.sha256).hexdigest()
    return f"{broker.client_id}-{tag[:12]}"


def new_client(
    host: str,
    port: int,
    client_id: str | None,
    *,
    username: str | None,
    password: str | None,
    keepalive_s: int,
    tls: ssl.SSLContext | None,
    timeout_s: float = 10.0,
    **session: Any,
) -> aiomqtt.Client:
    """One connection to the broker (no Nagle delay: alerts and acknowledgements leave at once); ``session``:
    aiomqtt's session options (protocol, clean start, properties, in-flight window)."""
    return aiomqtt.Client(
        host,
        port,
        identifier=client_id,
        username=username,
        password=password,
        keepalive=keepalive_s,
        timeout=timeout_s,
        tls_context=tls,
        socket_options=NO_DELAY,
        **session,
    )


def session_client(
    broker: BrokerSettings, client_id: str, tls: ssl.SSLContext | None, **session: Any
) -> aiomqtt.Client:
    """One connection with the fleet's own login from ``broker`` (ingest and the downlink)."""
    password = broker.password.get_secret_value() if broker.password is not None else None
    return new_client(
        broker.host,
        broker.port,
        client_id,
        username=broker.username,
        password=password,
        keepalive_s=broker.keepalive_s,
        tls=tls,
        **session,
    )
