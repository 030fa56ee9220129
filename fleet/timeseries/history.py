"""Reading a gateway's health history back from the time-series store the fleet writes to.

The heartbeats' :func:`~fleet.timeseries.points.health_point` rows are the record; the registry keeps
only the last one. One interface, :class:`HealthHistory`, with one reader per store: SQL on the
embedded SQLite file (:mod:`fleet.timeseries.history_sql`), PromQL on VictoriaMetrics
(:mod:`fleet.timeseries.history_promql`) and InfluxQL on InfluxDB's v1 ``/query``
(:mod:`fleet.timeseries.history_influxql`). All of them answer the same :class:`HealthQuery` the same
way, which the tests check on the same points:

- the range is half-open, ``since_ms <= ts < until_ms``;
- without a step, every stored sample (one per heartbeat), oldest first, at most ``limit``: one more
  than that is read so that :attr:`HealthPage.truncated` can say whether to ask again from
  ``samples[-1].ts_ms + 1``;
- with a step, the range is cut into windows ``[since + k*step, since + (k+1)*step)``; each window
  holding samples gives one sample, labelled with the window's start, holding the mean of each field
  over the window. ``until_ms`` is moved up to the end of the last window, so each window is whole.

A field a heartbeat did not carry (``temperature_c`` on boards without a sensor, ``uplink_rtt_ms``
before the first round trip) is None in that sample.
"""

from dataclasses import dataclass
from typing import Final, Protocol

from fleet.errors import InvalidRequestError

HEALTH_FIELDS: Final = (
    "cpu_percent",
    "memory_percent",
    "disk_percent",
    "temperature_c",
    "uplink_rtt_ms",
    "uptime_s",
    "buffer_depth",
    "buffer_bytes",
    "dropped_total",
    "adapters_not_running",
)
"""The fields :func:`~fleet.timeseries.points.health_point` writes (a test keeps the two in step)."""

MAX_SAMPLES: Final = 10_000
"""The most samples one answer holds: raw ones per page, or windows of a stepped range."""
MAX_RANGE_MS: Final = 31 * 24 * 3600 * 1000
"""The longest range a stepped query may cover."""
MAX_RAW_RANGE_MS: Final = 24 * 3600 * 1000
"""The longest range read without a step: a stepped read is aggregated by the store, a raw one is not,
and some stores (PromQL) cannot stop early at ``limit``, so the range bounds what they send."""
MIN_STEP_MS: Final = 1000


@dataclass(frozen=True, slots=True)
class HealthSample:
    """One heartbeat's health (or, with a step, the window's means) at ``ts_ms``."""

    ts_ms: int
    cpu_percent: float | None = None
    memory_percent: float | None = None
    disk_percent: float | None = None
    temperature_c: float | None = None
    uplink_rtt_ms: float | None = None
    uptime_s: float | None = None
    buffer_depth: float | None = None
    buffer_bytes: float | None = None
    dropped_total: float | None = None
    adapters_not_running: float | None = None


@dataclass(frozen=True, slots=True)
class HealthQuery:
    """A validated request for one gateway's health; build it with :meth:`of`."""

    gateway_id: str
    since_ms: int
    until_ms: int
    step_ms: int | None
    limit: int

    @classmethod
    def of(cls, gateway_id: str, since_ms: int, until_ms: int, step_ms: int | None, limit: int) -> "HealthQuery":
        """Check the bounds (:class:`~fleet.errors.InvalidRequestError` naming the one broken) and, with a
        step, move ``until_ms`` up to the end of the last whole window."""
        if since_ms < 0:
            raise InvalidRequestError("since must not be before 1970")
        if until_ms <= since_ms:
            raise InvalidRequestError(f"until ({until_ms}) must be after since ({since_ms})")
        if not 1 <= limit <= MAX_SAMPLES:
            raise InvalidRequestError(f"limit must be between 1 and {MAX_SAMPLES}")
        span = until_ms - since_ms
        if step_ms is None:
            if span > MAX_RAW_RANGE_MS:
                raise InvalidRequestError(f"a range over {MAX_RAW_RANGE_MS // 3_600_000} h needs a step (e.g. step=5m)")
            return cls(gateway_id, since_ms, until_ms, None, limit)
        if not MIN_STEP_MS <= step_ms <= MAX_RANGE_MS:
            raise InvalidRequestError(f"step must be between {MIN_STEP_MS} ms and {MAX_RANGE_MS // 86_400_000} days")
        if span > MAX_RANGE_MS:
            raise InvalidRequestError(f"the range must not exceed {MAX_RANGE_MS // 86_400_000} days")
        windows = -(-span // step_ms)
        if windows > MAX_SAMPLES:
            raise InvalidRequestError(f"{windows} windows of {step_ms} ms: at most {MAX_SAMPLES}, choose a longer step")
        return cls(gateway_id, since_ms, since_ms + windows * step_ms, step_ms, limit)

    def window_start(self, ts_ms: int) -> int:
        """The start of the step window holding ``ts_ms``."""
        assert self.step_ms is not None
        return self.since_ms + (ts_ms - self.since_ms) // self.step_ms * self.step_ms


@dataclass(frozen=True, slots=True)
class HealthPage:
    samples: list[HealthSample]
    truncated: bool
    """Whether more raw samples lie in the range after the last one (never with a step)."""


class HealthHistory(Protocol):
    """Reads a gateway's health from a time-series store.

    Raises :class:`~fleet.errors.TimeSeriesUnavailableError` when the store cannot be reached or
    refuses the fleet (down, 5xx, wrong token or database), and
    :class:`~fleet.errors.TimeSeriesRejectedError` when it refuses the query or answers nonsense.
    A reader opens what it needs for each query and closes it again: reads are an operator's chart,
    rare next to ingest's writes, so no connection outlives a request and nothing needs closing.
    """

    name: str

    async def health(self, query: HealthQuery) -> HealthPage: ...


def samples_from(values: dict[int, dict[str, float]]) -> list[HealthSample]:
    """Samples in time order from ``{ts_ms: {field: value}}``; unknown fields are left out."""
    return [
        HealthSample(ts_ms, **{name: value for name, value in fields.items() if name in HEALTH_FIELDS})
        for ts_ms, fields in sorted(values.items())
    ]


def page_of(values: dict[int, dict[str, float]], query: HealthQuery) -> HealthPage:
    """The first ``query.limit`` samples of ``values`` and whether any were left out."""
    samples = samples_from(values)
    if query.step_ms is None and len(samples) > query.limit:
        return HealthPage(samples[: query.limit], truncated=True)
    return HealthPage(samples, truncated=False)
