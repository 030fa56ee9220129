"""Socket options every Outpost MQTT client sets on its connection to the broker.

``TCP_NODELAY``: MQTT packets are small and each one matters on its own (a panic alert, the PUBACK that
frees the broker's send window). With Nagle's algorithm on, a small packet written while an earlier one
is still unacknowledged waits for that acknowledgement, which the broker's kernel may delay by up to
40 ms: on a connection that also carries telemetry, an alert would wait behind it. The broker needs the
same on its side (Mosquitto's ``set_tcp_nodelay true``).
"""

import socket
from typing import Final

NO_DELAY: Final = ((socket.IPPROTO_TCP, socket.TCP_NODELAY, 1),)
"""For ``aiomqtt.Client(socket_options=...)``."""
