"""Simulated sensor nodes that run the real node firmware (``firmware/outpost_node``) in CPython.

:mod:`~simulators.nodes.firmware` loads the firmware from its directory as a board would;
:mod:`~simulators.nodes.pins` drives its inputs with contact bounce, like switches and interrupts;
:mod:`~simulators.nodes.flash` is the node's flash (settings, boot counter, event ring);
:mod:`~simulators.nodes.node` runs it on asyncio against a real MQTT broker, with the faults a test
or the demo triggers (presses, door, motion, tamper, low battery, resets, Wi-Fi loss).
"""
