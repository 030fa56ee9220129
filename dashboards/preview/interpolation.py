"""Grafana's substitution of template variables and macros in a query, for a chosen place and time range.

As Grafana does it: a variable matched as a regular expression gets its values regex-escaped and,
when there are several, as ``(a|b)``; "All" becomes the variable's all-value ``.*``. ``$__interval``
is the time range over the number of points the panel can show (never below the panel's own
minimum interval), ``$__rate_interval`` at least four of the fleet's 15 s exports, ``$__range``
the whole range, and InfluxQL's ``$timeFilter`` the range in epoch milliseconds.
"""

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

_VARIABLE: Final = re.compile(r"\$\{(\w+)\}|\$(\w+)")
_DURATION: Final = re.compile(r"(\d+)(ms|s|m|h|d|w)")
_SECONDS: Final = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
MAX_POINTS: Final = 300
"""About the points a panel a third of a screen wide shows: what Grafana sizes ``$__interval`` for."""
_MIN_RATE_INTERVAL_S: Final = 60


def seconds(duration: str) -> float:
    """A Grafana/Prometheus duration (``15s``, ``1h``) in seconds."""
    found = _DURATION.fullmatch(duration)
    if found is None:
        raise ValueError(f"not a duration: {duration!r}")
    return int(found.group(1)) * _SECONDS[found.group(2)]


@dataclass(frozen=True, slots=True)
class TimeRange:
    start_ms: int
    end_ms: int

    @property
    def seconds(self) -> int:
        return max(1, round((self.end_ms - self.start_ms) / 1000))

    def interval_s(self, minimum: str | None) -> int:
        """The bucket width for a panel: the range over :data:`MAX_POINTS`, at least ``minimum``."""
        floor = seconds(minimum) if minimum else 1
        return max(1, round(max(self.seconds / MAX_POINTS, floor)))


@dataclass(frozen=True, slots=True)
class Interpolation:
    """``values``: each variable's chosen values (empty, or the variable missing: "All")."""

    time_range: TimeRange
    values: Mapping[str, Sequence[str]] = field(default_factory=dict)

    def apply(self, text: str, *, interval_s: int) -> str:
        macros = {
            "__interval": f"{interval_s}s",
            "__rate_interval": f"{max(2 * interval_s, _MIN_RATE_INTERVAL_S)}s",
            "__range": f"{self.time_range.seconds}s",
            "timeFilter": f"time >= {self.time_range.start_ms}ms and time <= {self.time_range.end_ms}ms",
        }

        def replace(found: re.Match[str]) -> str:
            name = found.group(1) or found.group(2)
            if name in macros:
                return macros[name]
            chosen = self.values.get(name)
            if not chosen:
                return ".*"
            escaped = [re.escape(value).replace("/", r"\/") for value in chosen]
            return escaped[0] if len(escaped) == 1 else "(" + "|".join(escaped) + ")"

        return _VARIABLE.sub(replace, text)
