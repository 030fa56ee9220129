"""TLS for the fleet's own MQTT sessions (ingest, downlink, the dynamic-security administrator), from ``broker.tls``."""

import ssl

from fleet.errors import BrokerTlsSettingsError
from fleet.settings import BrokerSettings
from protocol.errors import TlsSettingsError
from protocol.mqtt_tls import mqtt_tls_context


def broker_tls_context(broker: BrokerSettings) -> ssl.SSLContext | None:
    """The context every fleet session to ``broker`` connects with (None: plain MQTT, development only).

    Raises :class:`BrokerTlsSettingsError` naming the setting and the file that cannot be loaded."""
    try:
        return mqtt_tls_context(broker.tls, "broker")
    except TlsSettingsError as exc:
        raise BrokerTlsSettingsError(str(exc)) from exc
