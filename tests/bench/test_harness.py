"""The benchmark harness: figure lines, median timing, the registry and the command line."""

import functools
import io
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from pydantic import ValidationError

from bench.contract import malformed_messages, plain_json_workload, round_trip_workload, telemetry_batch
from bench.harness import Figure, Profile, groups, median, median_rate, median_rates, run_group, write_figures

REPO_ROOT = Path(__file__).resolve().parents[2]
FIGURE_KEYS = ["figure", "value", "unit", "better", "goal", "baseline", "ratio", "runs"]


class FakeClock:
    """A timer that only moves when a fake workload spends the next scripted cost."""

    def __init__(self, costs: Iterator[float]) -> None:
        self.now = 0.0
        self.calls: list[str] = []
        self._costs = costs

    def __call__(self) -> float:
        return self.now

    def spend(self, name: str) -> None:
        self.calls.append(name)
        self.now += next(self._costs)

    def workload(self, name: str = "w") -> Callable[[], None]:
        return functools.partial(self.spend, name)


def check_line(line: str) -> dict[str, object]:
    """Parse one output line and check it against the documented format."""
    data = json.loads(line)
    assert isinstance(data, dict)
    assert list(data) == FIGURE_KEYS
    assert isinstance(data["figure"], str)
    assert data["figure"]
    assert isinstance(data["value"], float)
    assert isinstance(data["unit"], str)
    assert data["better"] in {"higher", "lower"}
    for key in ("goal", "baseline", "ratio"):
        assert data[key] is None or isinstance(data[key], float)
    assert isinstance(data["runs"], int)
    assert data["runs"] >= 1
    if data["baseline"] is None:
        assert data["ratio"] is None
    else:
        assert isinstance(data["baseline"], float)
        assert data["ratio"] == pytest.approx(data["value"] / data["baseline"])
    return data


def test_figure_line_has_every_key_in_order() -> None:
    figure = Figure.measured("demo.rate", 250.0, "items/s", better="higher", runs=5, goal=300.0, baseline=100.0)

    data = check_line(figure.json_line())

    assert data == {
        "figure": "demo.rate",
        "value": 250.0,
        "unit": "items/s",
        "better": "higher",
        "goal": 300.0,
        "baseline": 100.0,
        "ratio": 2.5,
        "runs": 5,
    }
    assert "\n" not in figure.json_line()
    assert Figure.model_validate_json(figure.json_line()) == figure


def test_figure_without_baseline_has_no_ratio() -> None:
    figure = Figure.measured("demo.latency", 3.0, "ms", better="lower", runs=1)

    data = check_line(figure.json_line())

    assert data["goal"] is None
    assert data["baseline"] is None
    assert data["ratio"] is None


def test_figure_refuses_an_inconsistent_ratio() -> None:
    with pytest.raises(ValidationError, match="ratio"):
        Figure(figure="x", value=2.0, unit="u", better="higher", goal=None, baseline=1.0, ratio=3.0, runs=1)


@pytest.mark.parametrize(
    "changes",
    [{"better": "faster"}, {"runs": 0}, {"value": float("nan")}, {"figure": ""}],
    ids=["better", "runs", "nan", "name"],
)
def test_figure_refuses_bad_fields(changes: dict[str, object]) -> None:
    fields: dict[str, object] = {
        "figure": "x",
        "value": 1.0,
        "unit": "u",
        "better": "higher",
        "goal": None,
        "baseline": None,
        "ratio": None,
        "runs": 1,
    }
    with pytest.raises(ValidationError):
        Figure.model_validate(fields | changes)


def test_write_figures_prints_one_line_per_figure() -> None:
    figures = [
        Figure.measured("a", 1.0, "u", better="higher", runs=3, baseline=2.0),
        Figure.measured("b", 5.0, "ms", better="lower", runs=3),
    ]
    stream = io.StringIO()

    write_figures(figures, stream)

    lines = stream.getvalue().splitlines()
    assert [check_line(line)["figure"] for line in lines] == ["a", "b"]
    assert stream.getvalue().endswith("\n")


def test_median() -> None:
    assert median([3.0]) == 3.0
    assert median([5.0, 1.0, 3.0]) == 3.0
    assert median([4.0, 1.0, 3.0, 2.0]) == 2.5
    with pytest.raises(ValueError, match="no values"):
        median([])


def test_median_rate_is_the_median_of_the_runs() -> None:
    # warm-up (1 call), calibration (1 call already reaches the target), then 3 timed runs of 1 call.
    clock = FakeClock(iter([9.0, 1.0, 1.0, 4.0, 2.0]))
    profile = Profile(runs=3, target_s=0.5, warmup=1)

    rate = median_rate(clock.workload(), items_per_call=10, profile=profile, timer=clock)

    assert rate == 5.0  # rates 10, 2.5 and 5 items/s


def test_calibration_doubles_calls_until_a_run_reaches_the_target() -> None:
    clock = FakeClock(iter([0.25] * 100))
    profile = Profile(runs=2, target_s=1.0, warmup=0)

    rate = median_rate(clock.workload(), items_per_call=1, profile=profile, timer=clock)

    assert rate == 4.0
    # calibration: 1 + 2 + 4 calls (1.0 s reached at 4), then 2 runs of 4 calls
    assert len(clock.calls) == 1 + 2 + 4 + 2 * 4


def test_runs_of_several_workloads_are_interleaved() -> None:
    clock = FakeClock(iter([1.0] * 100))
    profile = Profile(runs=3, target_s=1.0, warmup=0)

    rates = median_rates(
        [clock.workload("a"), clock.workload("b")], items_per_call=[2, 1], profile=profile, timer=clock
    )

    assert rates == [2.0, 1.0]
    assert clock.calls[2:] == ["a", "b", "a", "b", "a", "b"]


def test_median_rates_needs_one_item_count_per_workload() -> None:
    clock = FakeClock(iter([1.0] * 10))
    with pytest.raises(ValueError, match="items_per_call"):
        median_rates([clock.workload()], items_per_call=[1, 2], profile=Profile(1, 1.0), timer=clock)


def test_profile_refuses_nonsense() -> None:
    with pytest.raises(ValueError, match="runs"):
        Profile(runs=0, target_s=1.0)
    with pytest.raises(ValueError, match="target_s"):
        Profile(runs=1, target_s=0.0)


def test_contract_group_is_registered() -> None:
    assert "contract" in groups()
    with pytest.raises(KeyError):
        run_group("no-such-group", Profile(1, 0.001))


def test_contract_workloads_do_what_they_claim() -> None:
    batch = telemetry_batch(50)

    assert len(batch.points) == 50
    assert telemetry_batch(50) == batch  # deterministic
    round_trip_workload(batch)()
    plain_json_workload(batch)()
    reasons = [reason for _, _, reason in malformed_messages()]
    assert len(set(reasons)) == len(reasons) == 6


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bench", *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
        env={k: v for k, v in os.environ.items() if k != "FORCE_COLOR"} | {"NO_COLOR": "1", "COLUMNS": "200"},
    )


def test_quick_contract_run_prints_valid_lines() -> None:
    result = run_cli("contract", "--quick")

    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    figures = [check_line(line) for line in lines]
    assert [f["figure"] for f in figures] == ["contract.telemetry_round_trip", "contract.reject_malformed"]
    round_trip, reject = figures
    assert round_trip["unit"] == "points/s"
    assert round_trip["baseline"] is not None
    assert reject["unit"] == "messages/s"
    assert reject["baseline"] is None
    assert reject["goal"] is None
    assert all(isinstance(f["value"], float) and f["value"] > 0 for f in figures)


def test_unknown_group_is_a_clear_error() -> None:
    result = run_cli("no-such-group")

    assert result.returncode == 2
    assert result.stdout == ""
    assert "no-such-group" in result.stderr
    assert "contract" in result.stderr


def test_help_names_the_groups() -> None:
    result = run_cli("--help")

    assert result.returncode == 0, result.stderr
    assert "contract" in result.stdout
    assert "--quick" in result.stdout
