"""A small typed InfluxQL ``SELECT`` builder: what the dashboards' InfluxDB flavour needs, rendered safely.

Grafana's InfluxDB data source (InfluxQL mode) takes the query text as written, after substituting
its variables: ``$timeFilter`` (the dashboard's time range), ``$__interval`` (the bucket width for
the panel's width and range) and template variables, which it regex-escapes inside ``/…/``, so a
variable is matched as ``"tag" =~ /^$village$/`` (that also serves "All" and multi-value choices).

Identifiers are always double-quoted (a tag called ``time`` or ``level`` is legal there), string
literals single-quoted, with InfluxQL's backslash escapes. Works on InfluxDB 1.x (subqueries since
1.2), 2.x through its v1 compatibility API, and 3.x.
"""

import re
from dataclasses import dataclass
from typing import Final, Literal

Function = Literal["last", "mean", "sum", "max", "min", "count", "median"]
Fill = Literal["none", "null", "0", "previous"]

TIME_FILTER: Final = "$timeFilter"
INTERVAL: Final = "$__interval"
_VARIABLE: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_DURATION: Final = re.compile(r"\d+(ns|u|µ|ms|s|m|h|d|w)|\$__interval")


def identifier(name: str) -> str:
    """``name`` as a double-quoted InfluxQL identifier."""
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def string(value: str) -> str:
    """``value`` as a single-quoted InfluxQL string literal."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _duration(value: str) -> str:
    if not _DURATION.fullmatch(value):
        raise ValueError(f"not an InfluxQL duration: {value!r}")
    return value


# --- what is selected --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Aggregate:
    """``function("field")``, optionally named ``AS alias``."""

    function: Function
    field: str
    alias: str | None = None

    def render(self) -> str:
        text = f"{self.function}({identifier(self.field)})"
        return text if self.alias is None else f"{text} AS {identifier(self.alias)}"


@dataclass(frozen=True, slots=True)
class Derivative:
    """``non_negative_derivative(function("field"), unit)``: a counter's rate per ``unit``."""

    of: Aggregate
    unit: str = "1s"
    alias: str | None = None

    def render(self) -> str:
        inner = Aggregate(self.of.function, self.of.field).render()
        text = f"non_negative_derivative({inner}, {_duration(self.unit)})"
        return text if self.alias is None else f"{text} AS {identifier(self.alias)}"


@dataclass(frozen=True, slots=True)
class Difference:
    """``left - right`` of two aggregates (e.g. a total less what is online), named ``alias``."""

    left: Aggregate
    right: Aggregate
    alias: str

    def render(self) -> str:
        left = Aggregate(self.left.function, self.left.field).render()
        right = Aggregate(self.right.function, self.right.field).render()
        return f"{left} - {right} AS {identifier(self.alias)}"


@dataclass(frozen=True, slots=True)
class Ratio:
    """``numerator / denominator`` of two aggregates, named ``alias``."""

    numerator: Aggregate
    denominator: Aggregate
    alias: str

    def render(self) -> str:
        top = Aggregate(self.numerator.function, self.numerator.field).render()
        bottom = Aggregate(self.denominator.function, self.denominator.field).render()
        return f"{top} / {bottom} AS {identifier(self.alias)}"


Column = Aggregate | Derivative | Difference | Ratio


# --- conditions ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TagIs:
    tag: str
    value: str

    def render(self) -> str:
        return f"{identifier(self.tag)} = {string(self.value)}"


@dataclass(frozen=True, slots=True)
class TagIn:
    """The tag is one of ``values``: a regex alternation of the escaped values."""

    tag: str
    values: tuple[str, ...]

    def render(self) -> str:
        if not self.values:
            raise ValueError(f"TagIn({self.tag}) needs at least one value")
        alternatives = "|".join(re.escape(value).replace("/", r"\/") for value in self.values)
        return f"{identifier(self.tag)} =~ /^({alternatives})$/"


@dataclass(frozen=True, slots=True)
class TagMatchesVariable:
    """The tag matches a Grafana template variable (which Grafana regex-escapes when it substitutes it)."""

    tag: str
    variable: str

    def render(self) -> str:
        if not _VARIABLE.fullmatch(self.variable):
            raise ValueError(f"not a template variable name: {self.variable!r}")
        return f"{identifier(self.tag)} =~ /^${self.variable}$/"


@dataclass(frozen=True, slots=True)
class TimeFilter:
    """The dashboard's time range (``$timeFilter``)."""

    def render(self) -> str:
        return TIME_FILTER


@dataclass(frozen=True, slots=True)
class Recent:
    """Only the last ``duration`` before now: the current state of periodically written gauges."""

    duration: str

    def render(self) -> str:
        return f"time > now() - {_duration(self.duration)}"


Condition = TagIs | TagIn | TagMatchesVariable | TimeFilter | Recent


# --- the statement ------------------------------------------------------------------------------------

ALL_TAGS: Final = ("*",)
"""``group_by_tags`` grouping by every tag: one group per series."""


@dataclass(frozen=True, slots=True)
class Select:
    """``SELECT columns FROM source [WHERE …] [GROUP BY time(…), tags] [fill(…)] [ORDER BY time DESC] [LIMIT n]``.

    ``source`` is a measurement name or another :class:`Select` (a subquery: aggregate per series
    first, then across series)."""

    columns: tuple[Column, ...]
    source: "str | Select"
    where: tuple[Condition, ...] = ()
    group_by_time: str | None = None
    group_by_tags: tuple[str, ...] = ()
    fill: Fill | None = None
    newest_first: bool = False
    limit: int | None = None

    def render(self) -> str:
        if not self.columns:
            raise ValueError("a SELECT needs at least one column")
        parts = ["SELECT " + ", ".join(column.render() for column in self.columns)]
        source = identifier(self.source) if isinstance(self.source, str) else f"({self.source.render()})"
        parts.append("FROM " + source)
        if self.where:
            parts.append("WHERE " + " AND ".join(condition.render() for condition in self.where))
        grouping = [] if self.group_by_time is None else [f"time({_duration(self.group_by_time)})"]
        grouping += ["*"] if self.group_by_tags == ALL_TAGS else [identifier(tag) for tag in self.group_by_tags]
        if grouping:
            parts.append("GROUP BY " + ", ".join(grouping))
        if self.fill is not None:
            if self.group_by_time is None:
                raise ValueError("fill() needs GROUP BY time()")
            parts.append(f"fill({self.fill})")
        if self.newest_first:
            parts.append("ORDER BY time DESC")
        if self.limit is not None:
            if self.limit < 1:
                raise ValueError("LIMIT must be positive")
            parts.append(f"LIMIT {self.limit}")
        return " ".join(parts)
