"""What a fleet MQTT connection does when it drops: stop for good on a refused login or a broker certificate it
cannot trust (both are settings to fix), else back off.

Shared by ingest's session and the downlink, which keep their own connections to the same broker with
the fleet's credentials.
"""

import asyncio
import logging

import aiomqtt
from aiomqtt.exceptions import MqttConnectError

from fleet.errors import BrokerRefusedError
from fleet.settings import BrokerSettings
from protocol.mqtt_tls import CLOCK_VERIFY_CODES, certificate_failure
from protocol.reconnect import Backoff, is_permanent_refusal, refusal_code

logger = logging.getLogger(__name__)


async def wait_to_reconnect(
    exc: aiomqtt.MqttError, broker: BrokerSettings, client_id: str, backoff: Backoff, *, role: str
) -> None:
    """Sleep the backoff's next delay after ``exc``; raise :class:`BrokerRefusedError` if the broker refused
    ``client_id``'s credentials, which retrying cannot fix."""
    # Only a CONNACK refusal can be permanent; other codes are paho's own (e.g. 4 = no connection).
    code = refusal_code(exc.rc) if isinstance(exc, MqttConnectError) else None
    if is_permanent_refusal(code):
        raise BrokerRefusedError(f"broker {broker.host}:{broker.port} refused {client_id} (code {code})") from exc
    failure = certificate_failure(exc)
    if failure is not None and failure.verify_code not in CLOCK_VERIFY_CODES:  # expired: a renewal heals it
        ca_file = broker.tls.ca_file if broker.tls is not None else None
        raise BrokerRefusedError(
            f"{role} does not trust broker {broker.host}:{broker.port}: {failure.verify_message or failure} "
            f"(broker.tls.ca_file {ca_file}; broker.host must be a name the certificate lists)"
        ) from exc
    delay = backoff.next_delay()
    logger.warning("%s %s lost the broker (%s); reconnecting in %.1f s", role, client_id, exc, delay)
    await asyncio.sleep(delay)
