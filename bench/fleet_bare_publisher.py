"""The broker's floor for config fan-out: ready payloads published retained at QoS 1 by a bare paho client.

No database, no signing, no asyncio: paho's own network thread and no limit on messages in flight,
so the payloads reach the broker as fast as one Python client can hand them over. Blocking; run it
in a thread (:func:`asyncio.to_thread`).
"""

import threading
from collections.abc import Sequence
from typing import Any, Final

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

_CONNECT_TIMEOUT_S: Final = 10.0


def publish_retained(host: str, port: int, messages: Sequence[tuple[str, bytes]], timeout_s: float) -> None:
    """Publish every ``(topic, payload)`` retained at QoS 1 and return once the broker acknowledged them all."""
    connected = threading.Event()

    def on_connect(_client: mqtt.Client, _userdata: Any, _flags: Any, reason: Any, _properties: Any) -> None:
        if not reason.is_failure:
            connected.set()

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-bare-config-publisher")
    client.max_inflight_messages_set(0)  # no limit: every publish goes out at once
    client.max_queued_messages_set(0)
    client.on_connect = on_connect
    client.connect(host, port)
    client.loop_start()
    try:
        if not connected.wait(_CONNECT_TIMEOUT_S):
            raise RuntimeError(f"the bare publisher could not connect to {host}:{port}")
        sent = [client.publish(topic, payload, qos=1, retain=True) for topic, payload in messages]
        for info in sent:
            info.wait_for_publish(timeout_s)
            if not info.is_published():
                raise RuntimeError(f"the broker did not acknowledge a config within {timeout_s} s")
    finally:
        client.disconnect()
        client.loop_stop()
