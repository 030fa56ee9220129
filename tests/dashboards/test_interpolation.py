"""Grafana's substitution as the previews and the query tests do it."""

from dashboards.model import Flavour
from dashboards.preview.interpolation import Interpolation, TimeRange

RANGE = TimeRange(1_000_000, 4_600_000)


def test_a_place_is_escaped_for_each_languages_regex_and_several_are_alternatives() -> None:
    places = {"village": ["xi.he/2"], "town": ["a", "b"], "county": []}
    prom = Interpolation(RANGE, places).apply(
        'x{village=~"$village",town=~"$town",county=~"$county"}', flavour=Flavour.PROMETHEUS, interval_s=15
    )
    assert prom == 'x{village=~"xi\\\\.he/2",town=~"(a|b)",county=~".*"}'
    influx = Interpolation(RANGE, places).apply('"village" =~ /^$village$/', flavour=Flavour.INFLUXDB, interval_s=15)
    assert influx == '"village" =~ /^xi\\.he\\/2$/'


def test_macros_follow_grafana_and_unknown_variables_stay() -> None:
    text = "[$__interval] [$__rate_interval] [$__range] $timeFilter $datasource"
    applied = Interpolation(RANGE).apply(text, flavour=Flavour.INFLUXDB, interval_s=60)
    assert applied == "[1m] [75s] [3600s] time >= 1000000ms and time <= 4600000ms $datasource"


def test_a_range_query_is_aligned_to_its_step_and_a_panel_interval_has_a_floor() -> None:
    assert RANGE.aligned(60) == TimeRange(960_000, 4_560_000)
    assert RANGE.interval_s("15s") == 15
    assert TimeRange(0, 86_400_000).interval_s("15s") == 288
