"""`python -m bench edge --quick` prints every figure of the group (slow: it starts servers and an agent)."""

import json
import subprocess
import sys

import pytest

FIGURES = {
    "edge.detection_fps",
    "edge.buffer_durable_writes",
    "edge.replay_rate",
    "edge.local_action_p50_ms",
    "edge.local_action_max_ms",
    "edge.agent_rss_mb",
    "edge.agent_cpu_percent",
}


@pytest.mark.slow
def test_the_edge_group_prints_each_figure_once() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bench", "edge", "--quick"], capture_output=True, text=True, check=True, timeout=120
    )
    figures = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert {figure["figure"] for figure in figures} == FIGURES
    assert all(figure["value"] > 0 for figure in figures)
