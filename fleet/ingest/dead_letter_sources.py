"""Who sends what ingest dead-letters: counts per gateway and channel, and the moment one starts to flood.

:class:`SourceTally` is told of every dead letter whose topic names a gateway (a dictionary update, no I/O).
It keeps two counts per source: since the last :meth:`SourceTally.take` (for the fleet's own
``messages_dead_lettered`` alerts, :mod:`fleet.alerts.ingest_watch`), and within a fixed window of
``flood_window_s``; each dead letter that brings a source to a multiple of ``flood_after`` in its window calls
``on_flood`` at once (the quarantine, :mod:`fleet.ingest.quarantine`, which is extended while it goes on).
"""

import time
from collections.abc import Callable
from dataclasses import dataclass

from protocol.topics import Channel


@dataclass(frozen=True, slots=True)
class Source:
    village_id: str
    gateway_id: str
    channel: Channel


class SourceTally:
    def __init__(
        self,
        *,
        flood_after: int = 0,
        flood_window_s: float = 10.0,
        on_flood: Callable[[Source, int], None] = lambda source, count: None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        """``flood_after`` 0: no source is ever called flooding."""
        self._flood_after = flood_after
        self._flood_window_s = flood_window_s
        self._on_flood = on_flood
        self._monotonic = monotonic
        self._taken: dict[Source, int] = {}
        self._window: dict[Source, int] = {}
        self._window_started = monotonic()

    def note(self, source: Source) -> None:
        self._taken[source] = self._taken.get(source, 0) + 1
        if not self._flood_after:
            return
        now = self._monotonic()
        if now - self._window_started >= self._flood_window_s:
            self._window.clear()
            self._window_started = now
        count = self._window.get(source, 0) + 1
        self._window[source] = count
        if count % self._flood_after == 0:  # again at each multiple: a flood that goes on is told again
            self._on_flood(source, count)

    def take(self) -> dict[Source, int]:
        """Dead letters per source since the last call."""
        taken, self._taken = self._taken, {}
        return taken
