"""The ``fleet`` benchmark group: every figure measured on small numbers, shaped as documented.

No timing thresholds: the figures are only checked to be there, positive and consistent. The group
test starts real servers and fleet processes (Mosquitto, VictoriaMetrics, 1 + 2 + 4 ingest workers,
``outpost fleet run``, 200 simulated gateways that take two config pushes) and takes about 50 s on the
2-core machine.
"""

import json
import subprocess
import sys
from uuid import UUID

import pytest

from bench.fleet_config_fanout import CONFIG_FANOUT_GOAL_S
from bench.fleet_gateways import gateway_id, village_id
from bench.fleet_ingest import GATEWAYS, POINTS_PER_MESSAGE, history_base_ms, telemetry_messages
from bench.fleet_presence import sizes_for as presence_sizes
from bench.harness import QUICK, Profile, run_group
from bench.percentiles import percentile
from protocol.clock import utc_now_ms
from protocol.codec import Decoder, Inbound
from protocol.messages import TelemetryBatch
from simulators.infra.mosquitto import MosquittoBroker
from simulators.infra.victoria import VictoriaMetricsServer
from tests.bench.test_harness import REPO_ROOT, check_line

INGEST_FIGURES = [
    "fleet.ingest_1_worker",
    "fleet.ingest_2_workers",
    "fleet.ingest_4_workers",
]
FIGURES = [
    *INGEST_FIGURES,
    "fleet.ingest_store_ceiling",
    "fleet.ingest_broker_ceiling",
    "fleet.config_fanout_p50_s",
    "fleet.config_fanout_p99_s",
    "fleet.config_fanout_api_s",
    "fleet.presence_offline_p50_s",
    "fleet.presence_offline_p99_s",
    "fleet.presence_last_will_p50_ms",
    "fleet.presence_last_will_p99_ms",
]


def _servers_installed() -> None:
    if not (MosquittoBroker.available() and VictoriaMetricsServer.available()):
        pytest.fail("mosquitto and victoria-metrics are needed: run scripts/test, which installs them")


@pytest.mark.integration
def test_the_fleet_group_measures_every_figure_once_on_small_numbers() -> None:
    _servers_installed()
    profile = Profile(runs=1, target_s=QUICK.target_s)  # --quick sizes, one round

    lines = [check_line(figure.json_line()) for figure in run_group("fleet", profile)]

    assert [line["figure"] for line in lines] == FIGURES
    by_name = {str(line["figure"]): line for line in lines}
    assert all(isinstance(line["value"], float) and line["value"] > 0 for line in lines)
    for name in INGEST_FIGURES:
        line = by_name[name]
        assert line["unit"] == "points/s"
        assert line["better"] == "higher"
        assert line["runs"] == 1
        assert isinstance(line["baseline"], float)
        assert line["baseline"] > 0  # the store's ceiling, measured after the same run
        assert isinstance(line["goal"], float)
        assert line["goal"] >= 100_000.0
    for name in ("fleet.ingest_store_ceiling", "fleet.ingest_broker_ceiling"):
        assert by_name[name]["unit"] == "points/s"
        assert by_name[name]["baseline"] is None
    for name in ("fleet.config_fanout_p50_s", "fleet.config_fanout_p99_s"):
        line = by_name[name]
        assert line["unit"] == "s"
        assert line["better"] == "lower"
        assert line["goal"] == CONFIG_FANOUT_GOAL_S
        assert line["runs"] == 1
        assert isinstance(line["baseline"], float)
        assert line["baseline"] > 0  # the same signed configs republished by a bare client
    p50, p99 = by_name["fleet.config_fanout_p50_s"]["value"], by_name["fleet.config_fanout_p99_s"]["value"]
    assert isinstance(p50, float)
    assert isinstance(p99, float)
    assert p50 <= p99
    assert by_name["fleet.config_fanout_api_s"]["unit"] == "s"
    assert by_name["fleet.config_fanout_api_s"]["baseline"] is None
    timeout_s = presence_sizes(profile).heartbeat_timeout_s
    for name in ("fleet.presence_offline_p50_s", "fleet.presence_offline_p99_s"):
        assert by_name[name]["unit"] == "s"
        assert by_name[name]["better"] == "lower"
        assert by_name[name]["goal"] == timeout_s + 1.0
    for name in ("fleet.presence_last_will_p50_ms", "fleet.presence_last_will_p99_ms"):
        assert by_name[name]["unit"] == "ms"
        assert by_name[name]["goal"] is None


@pytest.mark.slow
def test_python_m_bench_fleet_quick_prints_each_figure_once() -> None:
    _servers_installed()
    result = subprocess.run(
        [sys.executable, "-m", "bench", "fleet", "--quick"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    )
    figures = [check_line(line) for line in result.stdout.splitlines()]
    assert [figure["figure"] for figure in figures] == FIGURES


def test_the_load_is_valid_telemetry_from_every_gateway_on_its_own_topic_and_stretch_of_time() -> None:
    base_ms = history_base_ms()
    batch_set = telemetry_messages(2 * GATEWAYS, 3, base_ms)
    decoder = Decoder()

    decoded = [decoder.decode(message.topic, message.payload) for message in batch_set.messages]

    assert all(isinstance(item, Inbound) for item in decoded)
    batches = [item.message for item in decoded if isinstance(item, Inbound)]
    assert all(isinstance(batch, TelemetryBatch) for batch in batches)
    points = [point for batch in batches if isinstance(batch, TelemetryBatch) for point in batch.points]
    assert len(points) == batch_set.points == 2 * GATEWAYS * POINTS_PER_MESSAGE
    assert all(batch_set.first_ms <= point.ts <= batch_set.last_ms for point in points)
    assert batch_set.last_ms < utc_now_ms()  # VictoriaMetrics refuses points far ahead of its clock
    assert len({batch.event_id for batch in batches}) == len(batches)  # none is dropped as a repeat
    assert {message.topic for message in batch_set.messages} == {
        f"outpost/v1/{village_id(index)}/{gateway_id(index)}/telemetry" for index in range(GATEWAYS)
    }
    other = telemetry_messages(GATEWAYS, 4, base_ms)
    assert other.first_ms > batch_set.last_ms
    assert {UUID(json.loads(message.payload)["event_id"]) for message in other.messages}.isdisjoint(
        batch.event_id for batch in batches
    )


def test_percentile_is_the_nearest_rank() -> None:
    values = [float(value) for value in range(1, 101)]

    assert percentile(values, 0.5) == 50.0
    assert percentile(values, 0.99) == 99.0
    assert percentile([7.0], 0.99) == 7.0
    assert percentile([3.0, 1.0, 2.0], 0.5) == 2.0
    with pytest.raises(ValueError, match="no values"):
        percentile([], 0.5)
