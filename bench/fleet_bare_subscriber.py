"""The broker's ceiling for ``fleet.ingest``: a bare paho subscriber in its own process, as a worker is.

``python -m bench.fleet_bare_subscriber HOST PORT FILTER BATCH`` connects over MQTT 5 with the same
Receive Maximum as an ingest worker, subscribes to ``FILTER`` at QoS 1 (the workers' shared filter),
prints ``subscribed`` and then ``received N`` each time another ``BATCH`` messages have arrived. It does
nothing with a message but count it: no decoding, no storage, paho's own PUBACK as soon as its callback
returns, and paho's blocking network loop (no asyncio), so it takes messages as fast as the broker and
one Python client can pass them.
"""

import sys
from typing import Any, Final

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

RECEIVE_MAXIMUM: Final = 10_000  # the ingest worker's default (fleet.settings.IngestSettings)


def main(host: str, port: int, topic_filter: str, batch: int) -> None:
    received = 0

    def on_connect(client: mqtt.Client, _userdata: Any, _flags: Any, reason: Any, _properties: Any) -> None:
        if reason.is_failure:
            raise SystemExit(f"refused: {reason}")
        client.subscribe(topic_filter, qos=1)

    def on_subscribe(_client: mqtt.Client, _userdata: Any, _mid: int, _reasons: Any, _properties: Any) -> None:
        print("subscribed", flush=True)

    def on_message(_client: mqtt.Client, _userdata: Any, _message: mqtt.MQTTMessage) -> None:
        nonlocal received
        received += 1
        if received % batch == 0:
            print(f"received {received}", flush=True)

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-bare-subscriber", protocol=mqtt.MQTTv5)
    client.on_connect = on_connect
    client.on_subscribe = on_subscribe
    client.on_message = on_message
    properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    properties.ReceiveMaximum = RECEIVE_MAXIMUM
    client.connect(host, port, clean_start=True, properties=properties)
    client.loop_forever()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]))
