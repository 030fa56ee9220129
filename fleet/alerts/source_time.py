"""When an alert happened, as the fleet takes it: the gateway's time if its clock is believable, else the receipt.

A gateway's ``ts`` is its own clock's: one without time sync after a power cut says 1970, a misconfigured one
runs a day ahead. Its alert's time is believed within ``alerts.source_max_age_s`` before the fleet's clock (a
buffer replaying an outage of hours is legitimate) and ``alerts.source_max_ahead_s`` after it
(:func:`protocol.clock.judge_source_time`); outside that window the time of receipt replaces it, the alert's
history notes by how much the gateway's clock was off, and the fleet logs it once per gateway.
"""

import dataclasses
import logging
from dataclasses import dataclass
from typing import Final

from fleet.alerts.new_alert import NewAlert
from fleet.settings import AlertSettings
from protocol.clock import SourceWindow

logger = logging.getLogger(__name__)

DEFAULT_SOURCE_WINDOW: Final = SourceWindow(max_age_ms=7 * 86_400_000, max_ahead_ms=300_000)
"""7 days back, 5 minutes ahead: the defaults of ``alerts.source_max_age_s`` and ``alerts.source_max_ahead_s``."""


def source_window_of(settings: AlertSettings) -> SourceWindow:
    """The window of ``alerts.source_max_age_s`` and ``alerts.source_max_ahead_s``."""
    return SourceWindow(
        max_age_ms=round(settings.source_max_age_s * 1000), max_ahead_ms=round(settings.source_max_ahead_s * 1000)
    )


@dataclass(frozen=True, slots=True)
class Dated:
    alert: NewAlert
    """The alert, raised at its source's time or, that being outside the window, at its receipt."""
    skew_note: str | None
    """What the alert's history says about its source's clock; None when it was believed."""


class SourceClock:
    """Dates alerts by the window; counts the skewed ones and warns once per gateway."""

    def __init__(self, window: SourceWindow = DEFAULT_SOURCE_WINDOW) -> None:
        self._window = window
        self._warned: set[str] = set()
        self.skewed = 0
        """Alerts since start whose source time was outside the window."""

    def date(self, alert: NewAlert, received_ms: int) -> Dated:
        judged = self._window.judge(alert.raised_at_ms, received_ms)
        if not judged.skewed:
            return Dated(alert, None)
        self.skewed += 1
        offset_s = judged.offset_ms / 1000
        direction = "ahead of" if offset_s > 0 else "behind"
        note = (
            f"gateway {alert.gateway_id} clock skewed by {offset_s:+.0f} s ({abs(offset_s):.0f} s {direction} the "
            f"fleet's; it said ts={alert.raised_at_ms}): raised, and its deadlines counted, at receipt"
        )
        if alert.gateway_id not in self._warned:
            self._warned.add(alert.gateway_id)
            logger.warning("%s (logged once per gateway)", note)
        else:
            logger.debug("%s", note)
        return Dated(dataclasses.replace(alert, raised_at_ms=judged.ms), note)
