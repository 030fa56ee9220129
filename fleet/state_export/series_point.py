"""A :class:`~fleet.timeseries.points.Point` of one of the agreed measurements, its names checked against them.

The names dashboards read are agreed in :mod:`protocol.series`; building every exported point through
:func:`series_point` makes a misspelt tag or field fail in the fleet's tests, not as an empty panel. Each
combination of names is checked once (a round builds thousands of points of a few shapes).
"""

from collections.abc import Mapping
from functools import cache

from fleet.timeseries.points import Point
from protocol.series import UNASSIGNED, Measurement


def series_point(
    measurement: Measurement, tags: Mapping[str, str | None], fields: Mapping[str, float], ts_ms: int
) -> Point:
    """``measurement``'s point with ``tags`` (None or empty: :data:`~protocol.series.UNASSIGNED`; sorted by
    name, as InfluxDB stores them) and ``fields``; ValueError for a tag or field the measurement lacks."""
    _check_names(measurement, tuple(tags), tuple(fields))
    return Point(
        measurement.name,
        tuple(sorted([(tag, value or UNASSIGNED) for tag, value in tags.items()])),
        tuple([(field, float(value)) for field, value in fields.items()]),
        ts_ms,
    )


@cache
def _check_names(measurement: Measurement, tags: tuple[str, ...], fields: tuple[str, ...]) -> None:
    for tag in tags:
        if not measurement.has_tag(tag):
            raise ValueError(
                f"measurement {measurement.name} has no tag {tag!r} (it has {', '.join(measurement.tags)})"
            )
    for field in fields:
        measurement.field(field)
