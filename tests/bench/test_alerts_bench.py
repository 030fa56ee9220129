"""The ``alerts`` benchmark group: every figure measured on its smallest sizes, shaped as documented.

No timing thresholds: the figures are only checked to be there, well formed and consistent. The group
test starts real servers and processes (Mosquitto, VictoriaMetrics, ``outpost fleet run``, the reference
governance platform, 100 simulated gateways that press buttons, ``mosquitto_pub`` flooding, a site import,
then the gateways lose power) and takes one to two minutes on the 2-core machine, so it is marked slow.
"""

import pytest

from bench.alerts_flood import FLOOD_GOAL_MS
from bench.alerts_import import IMPORT_GOAL_MS
from bench.alerts_latency import PRESS_TO_CASE_GOAL_MS
from bench.alerts_outage import TSDB_OUTAGE_GOAL_MS
from bench.alerts_rig import CaseArrival
from bench.alerts_storm import STORM_DRAIN_GOAL_S, duplicates_among, repeats_among
from bench.harness import QUICK, Profile, run_group
from bench.site_sheet import county_sheet
from fleet.sites.csv_import import parse_sites
from simulators.flood import Flood
from simulators.infra.mosquitto import MosquittoBroker
from simulators.infra.victoria import VictoriaMetricsServer
from tests.bench.test_harness import check_line

FIGURES = [
    "alerts.press_to_case_p50_ms",
    "alerts.press_to_case_p99_ms",
    "alerts.press_to_case_p99_tsdb_outage_ms",
    "alerts.press_to_case_p99_flood_ms",
    "alerts.flood_published_per_s",
    "alerts.flood_dead_lettered_per_s",
    "alerts.press_to_case_max_import_ms",
    "alerts.site_import_s",
    "alerts.storm_drain_s",
    "alerts.storm_alerts_per_s",
    "alerts.storm_duplicate_cases",
    "alerts.storm_repeated_requests",
]


@pytest.mark.integration
@pytest.mark.slow
def test_the_alerts_group_measures_every_figure_once_on_its_smallest_sizes() -> None:
    if not (MosquittoBroker.available() and VictoriaMetricsServer.available() and Flood.available()):
        pytest.fail("mosquitto, mosquitto_pub and victoria-metrics are needed: run scripts/test, which installs them")
    profile = Profile(runs=1, target_s=QUICK.target_s)  # --quick sizes: one run of 100 gateways

    lines = [check_line(figure.json_line()) for figure in run_group("alerts", profile)]

    assert [line["figure"] for line in lines] == FIGURES
    by_name = {str(line["figure"]): line for line in lines}
    for name in ("alerts.press_to_case_p50_ms", "alerts.press_to_case_p99_ms"):
        line = by_name[name]
        assert line["unit"] == "ms"
        assert line["better"] == "lower"
        assert line["goal"] == PRESS_TO_CASE_GOAL_MS
        assert line["runs"] == 2  # two rounds of presses
        assert isinstance(line["value"], float)
        assert line["value"] > 0
        assert isinstance(line["baseline"], float)  # the bare subscriber's delays in the same rounds
        assert line["baseline"] >= 0
    p50, p99 = by_name["alerts.press_to_case_p50_ms"]["value"], by_name["alerts.press_to_case_p99_ms"]["value"]
    assert isinstance(p50, float)
    assert isinstance(p99, float)
    assert p50 <= p99
    quiet_p99 = by_name["alerts.press_to_case_p99_ms"]["value"]
    for name, goal in (
        ("alerts.press_to_case_p99_tsdb_outage_ms", TSDB_OUTAGE_GOAL_MS),
        ("alerts.press_to_case_p99_flood_ms", FLOOD_GOAL_MS),
    ):
        line = by_name[name]
        assert (line["unit"], line["better"], line["goal"], line["runs"]) == ("ms", "lower", goal, 1)
        assert isinstance(line["value"], float)
        assert line["value"] > 0
        assert line["baseline"] == quiet_p99  # the same run's rounds without the fault
    published, dead_lettered = by_name["alerts.flood_published_per_s"], by_name["alerts.flood_dead_lettered_per_s"]
    assert (published["unit"], published["better"], published["goal"]) == ("messages/s", "higher", None)
    assert isinstance(published["value"], float)
    assert published["value"] > 0
    assert (dead_lettered["unit"], dead_lettered["better"], dead_lettered["baseline"]) == (
        "messages/s",
        "higher",
        published["value"],
    )
    assert isinstance(dead_lettered["value"], float)
    assert dead_lettered["value"] > 0  # the fleet dead-lettered some of the flood while it lasted
    worst = by_name["alerts.press_to_case_max_import_ms"]
    assert (worst["unit"], worst["better"], worst["goal"], worst["runs"]) == ("ms", "lower", IMPORT_GOAL_MS, 1)
    assert isinstance(worst["value"], float)
    assert isinstance(worst["baseline"], float)  # the worst press of the rounds without an import
    assert worst["value"] > 0
    assert worst["baseline"] > 0
    imported = by_name["alerts.site_import_s"]
    assert (imported["unit"], imported["better"], imported["goal"], imported["runs"]) == ("s", "lower", None, 1)
    assert isinstance(imported["value"], float)
    assert imported["value"] > 0
    drain = by_name["alerts.storm_drain_s"]
    assert (drain["unit"], drain["better"], drain["goal"], drain["runs"]) == ("s", "lower", STORM_DRAIN_GOAL_S, 1)
    assert isinstance(drain["value"], float)
    assert drain["value"] > 0
    rate = by_name["alerts.storm_alerts_per_s"]
    assert (rate["unit"], rate["better"], rate["goal"]) == ("alerts/s", "higher", None)
    assert isinstance(rate["value"], float)
    assert rate["value"] > 0
    assert isinstance(rate["baseline"], float)  # the governance client alone, right after the storm
    assert rate["baseline"] > 0
    duplicates = by_name["alerts.storm_duplicate_cases"]
    assert (duplicates["unit"], duplicates["better"], duplicates["goal"]) == ("cases", "lower", 0.0)
    assert duplicates["value"] == 0.0  # exactly one case per gateway lost, none for a gateway lost twice
    repeated = by_name["alerts.storm_repeated_requests"]
    assert (repeated["unit"], repeated["better"], repeated["goal"]) == ("requests", "lower", None)
    assert isinstance(repeated["value"], float)
    assert repeated["value"] >= 0


def _arrival(alert_id: str, gateway: str) -> CaseArrival:
    return CaseArrival(alert_id=alert_id, kind="gateway_offline", gateway_id=gateway, received_ms=0, status=201)


def test_a_second_alert_for_one_gateway_is_a_duplicate_case_and_a_resent_one_a_repeated_request() -> None:
    once_each = [_arrival("a1", "gw-0001"), _arrival("a2", "gw-0002")]
    resent = [*once_each, _arrival("a1", "gw-0001")]
    second_alert = [*once_each, _arrival("a3", "gw-0002")]

    assert (duplicates_among(once_each), repeats_among(once_each)) == (0, 0)
    assert (duplicates_among(resent), repeats_among(resent)) == (0, 1)
    assert (duplicates_among(second_alert), repeats_among(second_alert)) == (1, 0)
    assert (duplicates_among([]), repeats_among([])) == (0, 0)


def test_the_import_sheet_is_a_county_of_towns_villages_and_grids_the_fleet_parses() -> None:
    sheet = parse_sites(county_sheet("bench-0", towns=55, villages_per_town=20, grids_per_village=6))

    assert (len(sheet.counties), len(sheet.towns), len(sheet.villages), len(sheet.grids)) == (1, 55, 1_100, 6_600)
    assert sheet.rows == 6_600
