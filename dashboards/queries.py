"""What a panel asks for, once, rendered as PromQL or as InfluxQL: one definition, two data-source flavours.

A query names a field of :mod:`protocol.series`, the tags it is broken down by (``by``), and filters
(``where``). The kinds differ in how points become numbers:

- :class:`Current` — gauges the fleet exports every few seconds (village and gateway state, open
  alerts, deliveries): the latest value of each series, reduced across series (sum by town, ...);
  ``now=True`` asks for the present only (a stat, a map, a table), else a curve over time. A series
  not written for :data:`FRESH` is gone (a combination of tags no longer present);
- :class:`Reading` — values the gateways send with each message (health): averaged (or maxed) per
  time bucket;
- :class:`Rate` — counters (``*_total``): per second;
- :class:`Count` and :class:`Total` — event points: how many per bucket (``bucket``, default the
  panel's interval), or over the dashboard's whole range (``over_range=True``); :class:`Total`
  adds their values up (line crossings per hour);
- :class:`Average` — the mean of event values over the dashboard's range (time to acknowledge).

PromQL: VictoriaMetrics names a field ``{measurement}_{field}`` with the tags as labels; template
variables match as ``tag=~"$var"``. InfluxQL: see :mod:`dashboards.influxql`; the reduction across
series is a subquery (latest value per series first, ``GROUP BY *``, then the reduction by ``by``).
"""

import re
from dataclasses import dataclass
from typing import Final, Literal

from dashboards import influxql as iql
from protocol.series import Field

FRESH: Final = "1m"
"""How recent a gauge's point must be to count as the present: four of the fleet's 15 s exports."""

Reduce = Literal["sum", "max", "min", "count"]


# --- filters -------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Match:
    """The tag matches template variable ``variable`` (every value when it is "All")."""

    tag: str
    variable: str


@dataclass(frozen=True, slots=True)
class Is:
    tag: str
    value: str


@dataclass(frozen=True, slots=True)
class OneOf:
    tag: str
    values: tuple[str, ...]


Where = Match | Is | OneOf


# --- the kinds of query --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Current:
    field: Field
    reduce: Reduce = "sum"
    by: tuple[str, ...] = ()
    where: tuple[Where, ...] = ()
    now: bool = False


@dataclass(frozen=True, slots=True)
class Reading:
    field: Field
    by: tuple[str, ...] = ()
    where: tuple[Where, ...] = ()
    agg: Literal["mean", "max"] = "mean"


@dataclass(frozen=True, slots=True)
class Rate:
    field: Field
    by: tuple[str, ...] = ()
    where: tuple[Where, ...] = ()


@dataclass(frozen=True, slots=True)
class Count:
    field: Field
    by: tuple[str, ...] = ()
    where: tuple[Where, ...] = ()
    bucket: str | None = None
    over_range: bool = False


@dataclass(frozen=True, slots=True)
class Total:
    field: Field
    by: tuple[str, ...] = ()
    where: tuple[Where, ...] = ()
    bucket: str | None = None
    over_range: bool = False


@dataclass(frozen=True, slots=True)
class Average:
    field: Field
    by: tuple[str, ...] = ()
    where: tuple[Where, ...] = ()


Query = Current | Reading | Rate | Count | Total | Average


def _check(query: Query) -> None:
    unknown = [tag for tag in query.by + tuple(w.tag for w in query.where) if not query.field.measurement.has_tag(tag)]
    if unknown:
        raise ValueError(f"{query.field.measurement.name} has no tag {', '.join(unknown)}")


def is_instant(query: Query) -> bool:
    """One value per group (a stat, a bar, a table row), not a curve over time."""
    match query:
        case Current(now=now):
            return now
        case Count(over_range=over_range) | Total(over_range=over_range):
            return over_range
        case Average():
            return True
        case _:
            return False


def bucket(query: Query) -> str | None:
    """A fixed bucket width the panel must use (line crossings per hour), if any."""
    return query.bucket if isinstance(query, Count | Total) and not query.over_range else None


# --- PromQL --------------------------------------------------------------------------------------------


def _prom_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _selector(query: Query) -> str:
    matchers = []
    for where in query.where:
        match where:
            case Match(tag, variable):
                matchers.append(f'{tag}=~"${variable}"')
            case Is(tag, value):
                matchers.append(f"{tag}={_prom_string(value)}")
            case OneOf(tag, values):
                matchers.append(f"{tag}=~{_prom_string('|'.join(re.escape(v) for v in values))}")
    labels = "{" + ",".join(matchers) + "}" if matchers else ""
    return query.field.prom_name + labels


def _by(by: tuple[str, ...]) -> str:
    return f" by ({', '.join(by)})" if by else ""


def promql(query: Query) -> str:
    _check(query)
    selector = _selector(query)
    by = _by(query.by)
    match query:
        case Current(reduce=reduce):
            return f"{reduce}{by} (last_over_time({selector}[{FRESH}]))"
        case Reading(agg=agg):
            return f"{'avg' if agg == 'mean' else 'max'}{by} ({selector})"
        case Rate():
            return f"sum{by} (rate({selector}[$__rate_interval]))"
        case Count() | Total():
            function = "count_over_time" if isinstance(query, Count) else "sum_over_time"
            if query.over_range:
                return f"sum{by} ({function}({selector}[$__range]))"
            # A bucket from its start, as InfluxQL's GROUP BY time(): Grafana aligns the steps to the
            # bucket width and ends at the last whole one, so a look back would never show the
            # current, unfinished bucket. Negative offsets: VictoriaMetrics, Prometheus 3.
            window = query.bucket or "$__interval"
            return f"sum{by} ({function}({selector}[{window}] offset -{window}))"
        case Average():
            return f"sum{by} (sum_over_time({selector}[$__range])) / sum{by} (count_over_time({selector}[$__range]))"


def prom_legend(query: Query, name: str) -> str:
    """The series' legend: the values of the ``by`` labels, or ``name`` when there are none."""
    return " ".join("{{" + tag + "}}" for tag in query.by) or name


# --- InfluxQL ------------------------------------------------------------------------------------------


def _conditions(query: Query) -> tuple[iql.Condition, ...]:
    conditions: list[iql.Condition] = []
    for where in query.where:
        match where:
            case Match(tag, variable):
                conditions.append(iql.TagMatchesVariable(tag, variable))
            case Is(tag, value):
                conditions.append(iql.TagIs(tag, value))
            case OneOf(tag, values):
                conditions.append(iql.TagIn(tag, values))
    return tuple(conditions)


def influxql(query: Query) -> iql.Select:
    _check(query)
    name = query.field.name
    filters = _conditions(query)
    match query:
        case Current():
            return _current(query, filters)
        case Reading(agg=agg):
            return _bucketed(query, iql.Aggregate(agg, name, name), filters, None, "none", query.by)
        case Rate():
            rate = iql.Derivative(iql.Aggregate("last", name), "1s", "v")
            return _across_series(query, "sum", _bucketed(query, rate, filters, None, None, iql.ALL_TAGS))
        case Count() | Total():
            column = iql.Aggregate("count" if isinstance(query, Count) else "sum", name, name)
            if query.over_range:
                return _whole_range(query, column, filters)
            return _bucketed(query, column, filters, query.bucket, "0", query.by)
        case Average():
            return _whole_range(query, iql.Aggregate("mean", name, name), filters)


def _current(query: Current, filters: tuple[iql.Condition, ...]) -> iql.Select:
    """The latest value of each series (``GROUP BY *``), then reduced across series by ``query.by``."""
    latest = iql.Aggregate("last", query.field.name, "v")
    if query.now:
        per_series = iql.Select(
            (latest,), query.field.measurement.name, (*filters, iql.Recent(FRESH)), group_by_tags=iql.ALL_TAGS
        )
        return iql.Select((iql.Aggregate(query.reduce, "v", query.field.name),), per_series, group_by_tags=query.by)
    per_series = _bucketed(query, latest, filters, None, None, iql.ALL_TAGS)
    return _across_series(query, query.reduce, per_series)


def _bucketed(
    query: Query,
    column: iql.Column,
    filters: tuple[iql.Condition, ...],
    width: str | None,
    fill: iql.Fill | None,
    by: tuple[str, ...],
) -> iql.Select:
    """``column`` per time bucket of ``width`` (default: the panel's interval) in the dashboard's range, by ``by``."""
    return iql.Select(
        (column,),
        query.field.measurement.name,
        (*filters, iql.TimeFilter()),
        group_by_time=width or iql.INTERVAL,
        group_by_tags=by,
        fill=fill,
    )


def _across_series(query: Query, reduce: iql.Function, per_series: iql.Select) -> iql.Select:
    return iql.Select(
        (iql.Aggregate(reduce, "v", query.field.name),),
        per_series,
        (iql.TimeFilter(),),
        group_by_time=iql.INTERVAL,
        group_by_tags=query.by,
        fill="none",
    )


def _whole_range(query: Query, column: iql.Aggregate, filters: tuple[iql.Condition, ...]) -> iql.Select:
    return iql.Select((column,), query.field.measurement.name, (*filters, iql.TimeFilter()), group_by_tags=query.by)


def influx_alias(query: Query, name: str) -> str:
    """The series' alias: the values of the ``by`` tags, or ``name`` when there are none."""
    return " ".join("$tag_" + tag for tag in query.by) or name
