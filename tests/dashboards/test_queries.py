"""One panel query, two languages: each kind renders to the PromQL and InfluxQL that mean the same.

That they also *run* on real servers and return the expected series is proven in
tests/integration/test_dashboard_queries.py; here the rendering rules are pinned.
"""

import pytest

from dashboards import queries as q
from protocol.series import ALERT_STEP, FLEET_INGEST, GATEWAY_HEALTH, TELEMETRY, VILLAGE_STATE

ONLINE = VILLAGE_STATE.field("gateways_online")
IN_COUNTY = (q.Match("county", "county"),)


def test_current_state_over_time_takes_each_series_latest_value_then_sums_it() -> None:
    query = q.Current(ONLINE, by=("town",), where=IN_COUNTY)
    assert q.promql(query) == 'sum by (town) (last_over_time(village_state_gateways_online{county=~"$county"}[1m]))'
    assert q.influxql(query).render() == (
        'SELECT sum("v") AS "gateways_online" FROM (SELECT last("gateways_online") AS "v" FROM "village_state" '
        'WHERE "county" =~ /^$county$/ AND $timeFilter GROUP BY time($__interval), *) '
        'WHERE $timeFilter GROUP BY time($__interval), "town" fill(none)'
    )
    assert not q.is_instant(query)


def test_current_state_now_looks_only_at_the_last_minute() -> None:
    query = q.Current(ONLINE, reduce="count", by=("town",), now=True)
    assert q.promql(query) == "count by (town) (last_over_time(village_state_gateways_online[1m]))"
    assert "time > now() - 1m GROUP BY *" in q.influxql(query).render()
    assert q.is_instant(query)


def test_counters_become_rates_per_second() -> None:
    query = q.Rate(FLEET_INGEST.field("received_total"), by=("instance",))
    assert q.promql(query) == "sum by (instance) (rate(fleet_ingest_received_total[$__rate_interval]))"
    assert 'non_negative_derivative(last("received_total"), 1s)' in q.influxql(query).render()


def test_events_are_counted_per_bucket_or_over_the_whole_range() -> None:
    steps = ALERT_STEP.field("count")
    hourly = q.Total(TELEMETRY.field("line_in"), by=("device",), bucket="1h")
    assert q.promql(hourly) == "sum by (device) (sum_over_time(telemetry_line_in[1h] offset -1h))"
    assert 'GROUP BY time(1h), "device" fill(0)' in q.influxql(hourly).render()
    assert q.bucket(hourly) == "1h"
    over_range = q.Count(steps, by=("step",), where=(q.OneOf("step", ("raise", "resolve")),), over_range=True)
    assert q.promql(over_range) == 'sum by (step) (count_over_time(alert_step_count{step=~"raise|resolve"}[$__range]))'
    assert q.influxql(over_range).render() == (
        'SELECT count("count") AS "count" FROM "alert_step" WHERE "step" =~ /^(raise|resolve)$/ AND $timeFilter '
        'GROUP BY "step"'
    )
    assert q.is_instant(over_range)
    assert q.bucket(over_range) is None


def test_an_average_over_the_range_weighs_every_point_not_every_series() -> None:
    query = q.Average(ALERT_STEP.field("since_raised_s"), by=("town",), where=(q.Is("step", "acknowledge"),))
    selector = 'alert_step_since_raised_s{step="acknowledge"}'
    assert q.promql(query) == (
        f"sum by (town) (sum_over_time({selector}[$__range])) / sum by (town) (count_over_time({selector}[$__range]))"
    )
    assert q.influxql(query).render().startswith('SELECT mean("since_raised_s")')


def test_readings_per_gateway_and_their_legends() -> None:
    query = q.Reading(GATEWAY_HEALTH.field("cpu_percent"), by=("gateway",), where=(q.Match("village", "village"),))
    assert q.promql(query) == 'avg by (gateway) (gateway_health_cpu_percent{village=~"$village"})'
    assert q.prom_legend(query, "cpu") == "{{gateway}}"
    assert q.influx_alias(query, "cpu") == "$tag_gateway"
    alone = q.Reading(GATEWAY_HEALTH.field("cpu_percent"))
    assert (q.prom_legend(alone, "cpu"), q.influx_alias(alone, "cpu")) == ("cpu", "cpu")


def test_values_in_promql_matchers_are_escaped() -> None:
    query = q.Count(ALERT_STEP.field("count"), where=(q.Is("kind", 'a"b'), q.OneOf("step", ("a.b",))))
    assert 'kind="a\\"b"' in q.promql(query)
    assert 'step=~"a\\\\.b"' in q.promql(query)


def test_a_tag_the_measurement_lacks_is_refused_in_both_flavours() -> None:
    query = q.Current(ONLINE, by=("gateway",))
    with pytest.raises(ValueError, match="village_state has no tag gateway"):
        q.promql(query)
    with pytest.raises(ValueError, match="village_state has no tag gateway"):
        q.influxql(query)
    with pytest.raises(ValueError, match="has no field"):
        VILLAGE_STATE.field("gateways_onlien")
