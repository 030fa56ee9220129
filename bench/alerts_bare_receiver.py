"""The transport's floor for press-to-case: a bare paho subscriber that only notes when each alert arrived.

``python -m bench.alerts_bare_receiver HOST PORT VILLAGES`` connects over MQTT 5, subscribes at QoS 1 to
the village centre's alert topic of villages ``0 … VILLAGES - 1`` (``protocol.village_centre``: the same
:class:`~protocol.messages.Alert` payloads the fleet gets, on topics the fleet does not take), prints
``subscribed`` once the broker granted them all, then one line ``EVENT_ID MS`` per alert: its event id
(read with :func:`json.loads`, no validation) and the wall-clock time it arrived (UTC epoch ms, with its
fraction). No
decoding, no storage, no HTTP; paho's own network loop and PUBACK. Run in a process of its own, as the
fleet is.
"""

import json
import sys
import time
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from bench.fleet_gateways import village_id
from protocol.village_centre import village_centre_filter


def main(host: str, port: int, villages: int) -> None:
    granted = 0

    def on_connect(client: mqtt.Client, _userdata: Any, _flags: Any, reason: Any, _properties: Any) -> None:
        if reason.is_failure:
            raise SystemExit(f"refused: {reason}")
        client.subscribe([(village_centre_filter(village_id(index)), 1) for index in range(villages)])

    def on_subscribe(_client: mqtt.Client, _userdata: Any, _mid: int, reasons: Any, _properties: Any) -> None:
        nonlocal granted
        granted += len(reasons)
        if granted >= villages:
            print("subscribed", flush=True)

    def on_message(_client: mqtt.Client, _userdata: Any, message: mqtt.MQTTMessage) -> None:
        arrived_ms = time.time_ns() / 1e6
        print(json.loads(message.payload)["event_id"], arrived_ms, flush=True)

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-bare-alert-receiver", protocol=mqtt.MQTTv5)
    client.on_connect = on_connect
    client.on_subscribe = on_subscribe
    client.on_message = on_message
    client.connect(host, port, clean_start=True)
    client.loop_forever()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
