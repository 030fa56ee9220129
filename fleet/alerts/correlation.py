"""Correlation: one open alert per condition, and conditions that clear themselves.

A condition is a kind of alert on one device of one gateway (:func:`condition_key`). While an alert for
it is open, the same condition raised again (a button pressed again, a camera lost again) counts on that
alert (``occurrences``, ``last_seen_ms``) instead of opening another case.

Some conditions end on their own, and the gateway says so with a device event (:data:`CLEARED_BY`: the
camera or node is back online, the door closed). The alert is then cleared, but only after the
condition stayed away for the hold-off (``clear_at_ms``, a stored deadline applied by the alert timers):
raised again meanwhile, the pending clear is dropped and the repeat counted. So a camera that drops and
returns every few seconds keeps one alert open instead of opening and clearing hundreds. Only an alert
nobody acts on yet can clear (:mod:`fleet.alerts.lifecycle`); once an officer is dispatched the case runs
its course and the clearing is noted in its history.
"""

from collections.abc import Mapping
from typing import Final

from protocol.messages import AlertKind, EventKind

CLEARED_BY: Final[Mapping[EventKind, frozenset[AlertKind]]] = {
    EventKind.DEVICE_ONLINE: frozenset({AlertKind.CAMERA_OFFLINE, AlertKind.NODE_SILENT}),
    EventKind.DOOR_CLOSED: frozenset({AlertKind.DOOR_HELD_OPEN}),
}
"""The device events that end a condition, and the alert kinds they end."""


def condition_key(gateway_id: str, device_id: str, kind: AlertKind | str) -> str:
    """The condition an alert is about: its kind on one device of one gateway."""
    return f"{gateway_id}/{device_id}/{kind}"
