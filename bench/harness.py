"""The benchmark harness: the figure model, median-rate timing, the group registry, JSON-lines output.

Timing: each workload is calibrated once (timeit-style, doubling the number of calls until one run
lasts ``target_s``), then timed for ``runs`` runs of that many calls. When a figure has a baseline,
the workload's runs and the baseline's runs are interleaved, so drift in the machine's speed (clock
boost, thermal throttling, a noisy neighbour) hits both alike. Only medians are reported.
"""

import importlib
import json
import logging
import math
import statistics
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Final, Literal, TextIO

from pydantic import BaseModel, ConfigDict, Field, model_validator

logger = logging.getLogger(__name__)

Better = Literal["higher", "lower"]
Workload = Callable[[], object]
Timer = Callable[[], float]

GROUP_MODULES: Final = (
    "bench.alerts",
    "bench.contract",
    "bench.edge",
    "bench.firmware",
    "bench.fleet",
    "bench.jobs",
    "bench.security",
)
"""Modules that register benchmark groups when imported; add a module here to add its groups."""

DEFAULT_WARMUP: Final = 1
_RATIO_TOLERANCE: Final = 1e-9


class Figure(BaseModel):
    """One measured figure, printed as one JSON line; build it with :meth:`measured`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    figure: str = Field(min_length=1)
    value: float = Field(allow_inf_nan=False)
    unit: str = Field(min_length=1)
    better: Better
    goal: float | None = Field(allow_inf_nan=False)
    baseline: float | None = Field(allow_inf_nan=False)
    ratio: float | None = Field(allow_inf_nan=False)
    runs: int = Field(ge=1)

    @model_validator(mode="after")
    def _ratio_is_value_over_baseline(self) -> "Figure":
        expected = _ratio(self.value, self.baseline)
        consistent = (
            expected is None
            if self.ratio is None
            else (expected is not None and math.isclose(self.ratio, expected, rel_tol=_RATIO_TOLERANCE))
        )
        if not consistent:
            raise ValueError(f"ratio must be value / baseline ({expected}), got {self.ratio}")
        return self

    @classmethod
    def measured(
        cls,
        figure: str,
        value: float,
        unit: str,
        *,
        better: Better,
        runs: int,
        goal: float | None = None,
        baseline: float | None = None,
    ) -> "Figure":
        """A figure whose ratio is computed from ``value`` and ``baseline``."""
        return cls(
            figure=figure,
            value=value,
            unit=unit,
            better=better,
            goal=goal,
            baseline=baseline,
            ratio=_ratio(value, baseline),
            runs=runs,
        )

    def json_line(self) -> str:
        """The figure as one line of compact JSON, keys in the documented order."""
        return json.dumps(self.model_dump(), separators=(",", ":"))


def _ratio(value: float, baseline: float | None) -> float | None:
    if baseline is None or baseline == 0:
        return None
    return value / baseline


@dataclass(frozen=True, slots=True)
class Profile:
    """How hard to measure: ``runs`` timed runs of about ``target_s`` seconds each, per workload."""

    runs: int
    target_s: float
    warmup: int = DEFAULT_WARMUP

    def __post_init__(self) -> None:
        if self.runs < 1:
            raise ValueError("runs must be at least 1")
        if self.target_s <= 0:
            raise ValueError("target_s must be positive")
        if self.warmup < 0:
            raise ValueError("warmup must not be negative")


FULL: Final = Profile(runs=7, target_s=0.25)
QUICK: Final = Profile(runs=3, target_s=0.03)


def profile_for(*, quick: bool) -> Profile:
    return QUICK if quick else FULL


def median(values: Sequence[float]) -> float:
    """The median of ``values`` (the mean of the middle two for an even count)."""
    if not values:
        raise ValueError("the median of no values is undefined")
    return float(statistics.median(values))


def _time_calls(workload: Workload, calls: int, timer: Timer) -> float:
    start = timer()
    for _ in range(calls):
        workload()
    return timer() - start


def _calibrate(workload: Workload, target_s: float, timer: Timer) -> int:
    """How many calls of ``workload`` make one run last at least ``target_s`` (a power of two)."""
    calls = 1
    while True:
        elapsed = _time_calls(workload, calls, timer)
        if elapsed >= target_s or calls >= 2**30:
            return calls
        calls *= 2


def median_rates(
    workloads: Sequence[Workload],
    *,
    items_per_call: Sequence[float],
    profile: Profile,
    timer: Timer = time.perf_counter,
) -> list[float]:
    """The median rate (items per second) of each workload, their timed runs interleaved.

    Each workload is first called ``profile.warmup`` times untimed, then calibrated, then timed
    ``profile.runs`` times; run ``i`` of every workload happens before run ``i + 1`` of any.
    """
    if len(workloads) != len(items_per_call):
        raise ValueError("give one items_per_call for each workload")
    if any(items <= 0 for items in items_per_call):
        raise ValueError("items_per_call must be positive")
    for workload in workloads:
        for _ in range(profile.warmup):
            workload()
    calls = [_calibrate(workload, profile.target_s, timer) for workload in workloads]
    rates: list[list[float]] = [[] for _ in workloads]
    for _ in range(profile.runs):
        for index, workload in enumerate(workloads):
            elapsed = _time_calls(workload, calls[index], timer)
            if elapsed <= 0:
                raise RuntimeError("the timer did not advance; cannot compute a rate")
            rates[index].append(calls[index] * items_per_call[index] / elapsed)
    return [median(samples) for samples in rates]


def median_rate(
    workload: Workload,
    *,
    items_per_call: float,
    profile: Profile,
    timer: Timer = time.perf_counter,
) -> float:
    """The median rate (items per second) of ``workload`` over ``profile.runs`` timed runs."""
    [rate] = median_rates([workload], items_per_call=[items_per_call], profile=profile, timer=timer)
    return rate


# --- the group registry ----------------------------------------------------------------------

GroupFunction = Callable[[Profile], list[Figure]]


@dataclass(frozen=True, slots=True)
class Group:
    name: str
    description: str
    run: GroupFunction


_GROUPS: dict[str, Group] = {}


def register_group(name: str, description: str) -> Callable[[GroupFunction], GroupFunction]:
    """Decorator: register ``function`` as the benchmark group ``name``."""

    def decorate(function: GroupFunction) -> GroupFunction:
        existing = _GROUPS.get(name)
        if existing is not None and existing.run is not function:
            raise ValueError(f"benchmark group {name!r} is already registered")
        _GROUPS[name] = Group(name, description, function)
        return function

    return decorate


def groups() -> dict[str, Group]:
    """Every registered group by name (importing :data:`GROUP_MODULES` first), sorted by name."""
    for module in GROUP_MODULES:
        importlib.import_module(module)
    return dict(sorted(_GROUPS.items()))


def run_group(name: str, profile: Profile) -> list[Figure]:
    """Measure every figure of group ``name``; raise ``KeyError`` for an unknown group."""
    known = groups()
    if name not in known:
        raise KeyError(name)
    logger.info("running benchmark group %s (%d runs of ~%.2f s)", name, profile.runs, profile.target_s)
    return known[name].run(profile)


def write_figures(figures: Iterable[Figure], stream: TextIO) -> None:
    """Print each figure as one JSON line on ``stream``."""
    for figure in figures:
        stream.write(figure.json_line() + "\n")
    stream.flush()
