"""The contract's notion of time: UTC instants as integer epoch milliseconds, and how far a source's clock is trusted.

A message's ``ts`` is taken by its source's clock, which may be wrong (a gateway without NTP after a power
cut starts in 1970; a misconfigured one runs a day ahead). A receiver judges it against its own clock with
:func:`judge_source_time`: within a window (back far enough for a buffer replaying an outage, ahead only by
a small skew) the source's time stands; outside it the receipt time replaces it, and the result says so.
"""

import time
from dataclasses import dataclass
from datetime import UTC, datetime


def utc_now_ms() -> int:
    """The current UTC time in epoch milliseconds."""
    return time.time_ns() // 1_000_000


@dataclass(frozen=True, slots=True)
class JudgedTime:
    """A source's instant as the receiver takes it."""

    ms: int
    """The instant to use: the source's, or the receipt time if the source's is outside the window."""
    offset_ms: int
    """The source's instant minus the receipt time: negative when it is in the past."""
    skewed: bool
    """The source's instant was outside the window and ``ms`` is the receipt time."""


@dataclass(frozen=True, slots=True)
class SourceWindow:
    """How far from the receiver's clock a source's instant is believed: ``max_age_ms`` back, ``max_ahead_ms`` ahead."""

    max_age_ms: int
    max_ahead_ms: int

    def __post_init__(self) -> None:
        if self.max_age_ms < 0 or self.max_ahead_ms < 0:
            raise ValueError("a source time window reaches zero or more milliseconds each way")

    def judge(self, source_ms: int, received_ms: int) -> JudgedTime:
        """:func:`judge_source_time` with this window."""
        return judge_source_time(source_ms, received_ms, max_age_ms=self.max_age_ms, max_ahead_ms=self.max_ahead_ms)


def iso_utc(epoch_ms: int) -> str:
    """``epoch_ms`` as ISO 8601 in UTC to the second, e.g. ``2027-01-15T08:00:00Z``."""
    return datetime.fromtimestamp(epoch_ms // 1000, tz=UTC).isoformat().replace("+00:00", "Z")


def judge_source_time(source_ms: int, received_ms: int, *, max_age_ms: int, max_ahead_ms: int) -> JudgedTime:
    """``source_ms`` if it lies within ``max_age_ms`` before and ``max_ahead_ms`` after ``received_ms``, else
    ``received_ms``, marked skewed. Both ends are inclusive."""
    offset_ms = source_ms - received_ms
    if -max_age_ms <= offset_ms <= max_ahead_ms:
        return JudgedTime(source_ms, offset_ms, skewed=False)
    return JudgedTime(received_ms, offset_ms, skewed=True)
