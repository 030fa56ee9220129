"""How the fleet's own MQTT sessions (ingest, downlink, the dynamic-security administrator) reach the broker:
TLS from ``broker.tls``, and client ids no gateway can guess.

A client id names a persistent session, and Mosquitto hands a session to whoever connects with its id (the
older connection is closed, its Will fired): a gateway that knew the fleet's ids could take over its ingest
sessions. So every fleet session's id carries a tag derived from the fleet's broker password (an HMAC: it
reveals nothing of the password), stable across restarts so the sessions resume, and unknown to anyone
without the password.
"""

import hashlib
import hmac
import ssl

from fleet.errors import BrokerTlsSettingsError
from fleet.settings import BrokerSettings
from protocol.errors import TlsSettingsError
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
