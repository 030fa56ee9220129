"""Builds the health-history reader for the store the fleet writes to (see :mod:`fleet.timeseries.factory`)."""

from fleet.settings import TimeSeriesSettings
from fleet.timeseries.history import HealthHistory
from fleet.timeseries.history_influxql import InfluxqlHealthHistory
from fleet.timeseries.history_promql import PromqlHealthHistory
from fleet.timeseries.history_sql import SqlHealthHistory


def history_for(settings: TimeSeriesSettings) -> HealthHistory:
    """SQL on the embedded store, else the server's query language (``influx.query_language``)."""
    if settings.influx is None:
        return SqlHealthHistory(settings.embedded_path)
    if settings.influx.query_language == "influxql":
        return InfluxqlHealthHistory(settings.influx)
    return PromqlHealthHistory(settings.influx)
