"""The ``jobs`` benchmark group on small numbers: one restart of a real agent under presses, then a real fleet and
Mosquitto with 200 simulated updating gateways, one bare fan-out and one update job. No timing thresholds: the
figures are only checked to be there and shaped as documented (about 25 s on the 2-core machine)."""

import pytest

from bench.harness import QUICK, run_group
from simulators.infra.mosquitto import MosquittoBroker
from tests.bench.test_harness import check_line


@pytest.mark.integration
def test_the_jobs_group_measures_every_figure_against_its_baseline() -> None:
    if not MosquittoBroker.available():
        pytest.fail("mosquitto is needed: run scripts/test, which installs it")

    lines = [check_line(figure.json_line()) for figure in run_group("jobs", QUICK)]

    figures = ["jobs.local_safety_downtime_s", "jobs.wave_seconds", "jobs.fleet_cpu_ms_per_gateway"]
    assert [line["figure"] for line in lines] == figures
    assert lines[0]["goal"] == 5.0
    for line in lines:
        assert isinstance(line["value"], float)
        assert line["value"] > 0
        assert isinstance(line["baseline"], float)
        assert line["baseline"] > 0
        assert line["runs"] == 1
        assert line["better"] == "lower"
