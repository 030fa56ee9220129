"""Software debouncing of one digital input, fast enough for a panic button.

A change is accepted as soon as the new level is read back ``confirm_ms`` after the first edge of a
burst, and stamped with that first edge; contact bounce in the ``settle_ms`` after an accepted
change is ignored, and the level is read again once it has settled, so a quick release is never
lost. A spike that is gone before it is confirmed, and stays gone for ``settle_ms``, is a glitch:
counted, not reported.

Edges come from the pin's interrupt (``edge``); without interrupts, polling alone finds changes too.
"""


class Debouncer:
    def __init__(self, level: bool, confirm_ms: int, settle_ms: int) -> None:
        self.level = level  # the accepted, debounced level
        self.confirm_ms = confirm_ms
        self.settle_ms = settle_ms
        self.glitches = 0
        self._burst_at = -1  # first edge of the burst being confirmed; -1: none
        self._check_at = 0
        self._last_edge = 0
        self._settled_at = -1  # end of the quiet time after an accepted change; -1: none
        self._edge_while_settling = False

    def edge(self, now: int) -> None:
        """The pin changed (called from its interrupt); cheap and allocation-free."""
        self._last_edge = now
        if self._settled_at >= 0:
            self._edge_while_settling = True
        elif self._burst_at < 0:
            self._burst_at = now
            self._check_at = now + self.confirm_ms

    def poll(self, now: int, raw: bool) -> int:
        """Read the pin's ``raw`` level at ``now``; return the time of an accepted change, else -1."""
        if self._settled_at >= 0:
            if now < self._settled_at:
                return -1
            self._settled_at = -1
            if raw != self.level:  # it changed back while settling: a quick release
                self._burst_at = self._last_edge if self._edge_while_settling else now
                self._check_at = now
            self._edge_while_settling = False
        if self._burst_at < 0:
            if raw == self.level:
                return -1
            self._burst_at = now  # a change no interrupt told of
            self._check_at = now + self.confirm_ms
        if now < self._check_at:
            return -1
        if raw != self.level:
            self.level = raw
            changed_at = self._burst_at
            self._burst_at = -1
            self._settled_at = now + self.settle_ms
            return changed_at
        if now - self._last_edge >= self.settle_ms or now - self._burst_at >= self.settle_ms + self.confirm_ms:
            self._burst_at = -1
            self.glitches += 1
        else:
            self._check_at = now + self.confirm_ms
        return -1

    def due(self) -> int:
        """When ``poll`` next has something to do; -1 when nothing is pending."""
        if self._settled_at >= 0:
            return self._settled_at
        if self._burst_at >= 0:
            return self._check_at
        return -1
