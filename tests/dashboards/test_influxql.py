"""The InfluxQL builder renders what InfluxDB parses, quoting everything that could break out of its place."""

import pytest

from dashboards import influxql as iql


def test_a_grouped_select_renders_every_clause_in_influxqls_order() -> None:
    select = iql.Select(
        (iql.Aggregate("mean", "cpu_percent", "cpu"),),
        "gateway_health",
        (iql.TagMatchesVariable("village", "village"), iql.TagIs("gateway", "gw-1"), iql.TimeFilter()),
        group_by_time=iql.INTERVAL,
        group_by_tags=("gateway",),
        fill="none",
        newest_first=True,
        limit=10,
    )
    assert select.render() == (
        'SELECT mean("cpu_percent") AS "cpu" FROM "gateway_health" '
        'WHERE "village" =~ /^$village$/ AND "gateway" = \'gw-1\' AND $timeFilter '
        'GROUP BY time($__interval), "gateway" fill(none) ORDER BY time DESC LIMIT 10'
    )


def test_a_subquery_reduces_the_latest_value_of_every_series() -> None:
    per_series = iql.Select(
        (iql.Aggregate("last", "online", "v"),), "gateway_state", (iql.Recent("1m"),), group_by_tags=iql.ALL_TAGS
    )
    select = iql.Select((iql.Aggregate("sum", "v", "online"),), per_series, group_by_tags=("town",))
    assert select.render() == (
        'SELECT sum("v") AS "online" FROM (SELECT last("online") AS "v" FROM "gateway_state" '
        'WHERE time > now() - 1m GROUP BY *) GROUP BY "town"'
    )


def test_identifiers_and_strings_are_escaped() -> None:
    assert iql.identifier('we"ird\\name') == '"we\\"ird\\\\name"'
    assert iql.TagIs("kind", "it's").render() == "\"kind\" = 'it\\'s'"
    assert iql.TagIn("step", ("raise", "a.b/c")).render() == '"step" =~ /^(raise|a\\.b\\/c)$/'


def test_a_counter_rate_and_arithmetic_columns() -> None:
    assert iql.Derivative(iql.Aggregate("last", "received_total"), "1s", "r").render() == (
        'non_negative_derivative(last("received_total"), 1s) AS "r"'
    )
    assert iql.Difference(iql.Aggregate("sum", "t"), iql.Aggregate("sum", "o"), "off").render() == (
        'sum("t") - sum("o") AS "off"'
    )
    assert iql.Ratio(iql.Aggregate("sum", "s"), iql.Aggregate("count", "s"), "mean").render() == (
        'sum("s") / count("s") AS "mean"'
    )


@pytest.mark.parametrize(
    ("select", "problem"),
    [
        (iql.Select((), "m"), "at least one column"),
        (iql.Select((iql.Aggregate("sum", "f"),), "m", fill="0"), "fill() needs GROUP BY time()"),
        (iql.Select((iql.Aggregate("sum", "f"),), "m", limit=0), "LIMIT must be positive"),
        (iql.Select((iql.Aggregate("sum", "f"),), "m", group_by_time="1 h"), "not an InfluxQL duration"),
        (iql.Select((iql.Aggregate("sum", "f"),), "m", (iql.Recent("now()"),)), "not an InfluxQL duration"),
        (iql.Select((iql.Aggregate("sum", "f"),), "m", (iql.TagMatchesVariable("v", "a/ b"),)), "template variable"),
        (iql.Select((iql.Aggregate("sum", "f"),), "m", (iql.TagIn("v", ()),)), "at least one value"),
    ],
)
def test_a_select_that_influxdb_would_refuse_is_refused_when_built(select: iql.Select, problem: str) -> None:
    with pytest.raises(ValueError, match=problem.replace("(", r"\(").replace(")", r"\)")):
        select.render()
