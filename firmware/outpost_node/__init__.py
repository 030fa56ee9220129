"""Outpost sensor-node firmware: the logic of a panic button, door contact or PIR node.

Nothing in this package touches hardware or imports asyncio: the board's pins, clock, flash and MQTT
client are passed in by ``main.py`` (on a board) or by the node simulator and the tests (elsewhere),
so the same code runs under MicroPython and CPython.
"""

FIRMWARE_VERSION = "1.0.0"
