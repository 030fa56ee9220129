"""Builds the configured time-series sink."""

from fleet.settings import TimeSeriesSettings
from fleet.timeseries.embedded import EmbeddedSink
from fleet.timeseries.influx import InfluxSink
from fleet.timeseries.influx_v1 import InfluxV1Sink
from fleet.timeseries.sink import TimeSeriesSink
from fleet.timeseries.writer import BatchingWriter


def sink_for(settings: TimeSeriesSettings) -> TimeSeriesSink:
    """The InfluxDB-API sink when ``influx`` is set (its ``write_api``: v2 or v1), else the embedded SQLite store."""
    if settings.influx is not None:
        if settings.influx.write_api == "v1":
            return InfluxV1Sink(settings.influx)
        return InfluxSink(settings.influx)
    return EmbeddedSink(settings.embedded_path)


def writer_for(settings: TimeSeriesSettings) -> BatchingWriter:
    return BatchingWriter(
        sink_for(settings),
        settings.batch_points,
        settings.flush_interval_s,
        settings.buffer_points,
        idle_flush_s=settings.idle_flush_s,
    )
