"""Grafana's substitution of template variables and macros in a query, for a chosen place and time range.

As Grafana does it:

- a place variable (``$county``, ``$town``, ``$village``) is matched as a regular expression, so its
  values are regex-escaped the way Grafana escapes them for the data source (PromQL: inside a
  ``=~"…"`` string literal, backslashes doubled; InfluxQL: inside ``/…/``), several as ``(a|b)``,
  and "All" (no value chosen) as the variable's all-value ``.*``;
- ``$__interval`` is the panel's bucket width, ``$__rate_interval`` ``max($__interval + scrape,
  4 * scrape)`` with Grafana's default 15 s scrape interval, ``$__range`` the whole range, and
  InfluxQL's ``$timeFilter`` the range in epoch milliseconds;
- a PromQL range query's start and end are rounded down to a multiple of its step.

Variables it was not given are left as they are, so a caller can tell a query it cannot run.
"""

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

from dashboards.model import Flavour

SCRAPE_INTERVAL_S: Final = 15
"""Grafana's Prometheus data source assumes a 15 s scrape interval; the fleet exports its state every 15 s."""
MAX_POINTS: Final = 300
"""About the points a panel a third of a screen wide shows: what Grafana sizes ``$__interval`` for."""
_DURATION: Final = re.compile(r"(\d+)(ms|s|m|h|d|w)")
_SECONDS: Final = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}
_VARIABLE: Final = re.compile(r"\$\{(\w+)\}|\$(\w+)")
_PROM_REGEX_SPECIALS: Final = re.compile(r"[$^*{}\[\]'+?.()|]")
_INFLUX_REGEX_SPECIALS: Final = re.compile(r"[\\^$*+?.()|\[\]{}/]")
ALL_VALUE: Final = ".*"


def seconds(duration: str) -> float:
    """A Grafana/Prometheus duration (``15s``, ``1h``) in seconds."""
    found = _DURATION.fullmatch(duration)
    if found is None:
        raise ValueError(f"not a duration: {duration!r}")
    return int(found.group(1)) * _SECONDS[found.group(2)]


def duration(total_s: int) -> str:
    """Whole seconds as Grafana writes an interval: ``15s``, ``1m``, ``2h``."""
    for unit, size in (("d", 86_400), ("h", 3600), ("m", 60)):
        if total_s % size == 0:
            return f"{total_s // size}{unit}"
    return f"{total_s}s"


def prom_escape(value: str) -> str:
    """A variable's value as Grafana writes it into a PromQL regex matcher's string literal."""
    return _PROM_REGEX_SPECIALS.sub(lambda m: "\\\\" + m.group(0), value.replace("\\", "\\\\\\\\"))


def influx_escape(value: str) -> str:
    """A variable's value as Grafana writes it into an InfluxQL ``/…/`` regex."""
    return _INFLUX_REGEX_SPECIALS.sub(lambda m: "\\" + m.group(0), value)


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

    def aligned(self, step_s: int) -> "TimeRange":
        """Start and end rounded down to a multiple of ``step_s``, as Grafana sends a range query."""
        step_ms = step_s * 1000
        return TimeRange(self.start_ms // step_ms * step_ms, self.end_ms // step_ms * step_ms)


@dataclass(frozen=True, slots=True)
class Interpolation:
    """``places``: each place variable's chosen values; an empty sequence is "All"."""

    time_range: TimeRange
    places: Mapping[str, Sequence[str]] = field(default_factory=dict)

    def apply(self, text: str, *, flavour: Flavour, interval_s: int) -> str:
        escape = prom_escape if flavour is Flavour.PROMETHEUS else influx_escape
        macros = {
            "__interval": duration(interval_s),
            "__rate_interval": duration(max(interval_s + SCRAPE_INTERVAL_S, 4 * SCRAPE_INTERVAL_S)),
            "__range": f"{self.time_range.seconds}s",
            "timeFilter": f"time >= {self.time_range.start_ms}ms and time <= {self.time_range.end_ms}ms",
        }

        def replace(found: re.Match[str]) -> str:
            name = found.group(1) or found.group(2)
            if name in macros:
                return macros[name]
            if name not in self.places:
                return found.group(0)
            chosen = [escape(value) for value in self.places[name]]
            if not chosen:
                return ALL_VALUE
            return chosen[0] if len(chosen) == 1 else "(" + "|".join(chosen) + ")"

        return _VARIABLE.sub(replace, text)
