"""outpost-update-guard, the real script run by /bin/sh, against files written and read by edge.updates: it counts
the starts of an agent on trial and rolls back past max_boots or past the deadline, ends a trial that never
switched, and leaves anything it cannot trust alone."""

import dataclasses
import os
import subprocess
from importlib.resources import files as package_files
from pathlib import Path

import pytest

from edge.updates.slots import SlotLayout
from edge.updates.trial import Trial, TrialFiles
from protocol.updates import ReleaseKind, UpdateReport, UpdateState

GUARD = str(package_files("edge").joinpath("systemd/outpost-update-guard"))
ROLLED_BACK_EXIT = 10
"""``check`` after a rollback where systemd is not running: the timer's unit cannot restart the agent itself."""
SYSTEMD_RUNS = Path("/run/systemd/system").is_dir()
FAR_FUTURE = 4_000_000_000
LONG_AGO = 1_000_000_000

TRIAL = Trial(
    slot="slots/b",
    previous="slots/a",
    version="0.2.0",
    previous_version="0.1.0",
    job_id="job-42",
    deadline_s=FAR_FUTURE,
    max_boots=3,
)


@pytest.fixture
def layout(tmp_path: Path) -> SlotLayout:
    root = tmp_path / "outpost"
    for name in ("a", "b"):
        (root / "slots" / name / "bin").mkdir(parents=True)
    layout = SlotLayout(root)
    layout.switch("slots/a")
    return layout


def _guard(mode: str, root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["/bin/sh", GUARD, mode, str(root)], capture_output=True, text=True, check=False, cwd=root)


def _on_trial(layout: SlotLayout, trial: Trial = TRIAL) -> TrialFiles:
    """What the updater does: the trial first, then the switch to the new slot."""
    files = TrialFiles(layout)
    files.begin(trial)
    layout.switch(trial.slot)
    return files


def _snapshot(root: Path) -> dict[str, str]:
    """Every entry under the root: a file's text, a link's target, a directory as ``/``."""
    entries = {}
    for path in sorted(root.rglob("*")):
        name = str(path.relative_to(root))
        if path.is_symlink():
            entries[name] = "-> " + os.readlink(path)
        elif path.is_dir():
            entries[name] = "/"
        else:
            entries[name] = path.read_text(encoding="utf-8")
    return entries


@pytest.mark.parametrize("mode", ["start", "check"])
def test_without_a_trial_nothing_changes(layout: SlotLayout, mode: str) -> None:
    before = _snapshot(layout.root)

    result = _guard(mode, layout.root)

    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
    assert _snapshot(layout.root) == before


def test_without_a_mode_it_tells_how_to_call_it(layout: SlotLayout) -> None:
    result = _guard("restart", layout.root)

    assert result.returncode == 2
    assert "usage" in result.stderr


def test_each_start_on_trial_is_counted_in_the_trial_file(layout: SlotLayout) -> None:
    files = _on_trial(layout)

    for boots in (1, 2, 3):
        result = _guard("start", layout.root)
        assert (result.returncode, result.stderr) == (0, "")
        assert files.trial() == dataclasses.replace(TRIAL, boots=boots)

    assert layout.target() == "slots/b"
    assert files.outcome() is None
    assert sorted(os.listdir(layout.root)) == ["current", "slots", "trial.env"]


@pytest.mark.parametrize("max_boots", [0, 1, 3])
def test_the_start_after_max_boots_rolls_back(layout: SlotLayout, max_boots: int) -> None:
    files = _on_trial(layout, dataclasses.replace(TRIAL, max_boots=max_boots))
    for _ in range(max_boots):
        assert _guard("start", layout.root).returncode == 0
    assert layout.active() == "b"

    result = _guard("start", layout.root)

    assert result.returncode == 0
    assert "rolled back to slots/a" in result.stderr
    assert layout.target() == "slots/a"
    assert (layout.active(), layout.inactive()) == ("a", "b")
    assert files.trial() is None
    outcome = files.outcome()
    assert outcome is not None
    assert (outcome.kind, outcome.state, outcome.version, outcome.job_id) == (
        ReleaseKind.AGENT,
        UpdateState.ROLLED_BACK,
        "0.2.0",
        "job-42",
    )
    assert outcome.reason == f"the new agent 0.2.0 did not pass its health gate in {max_boots} starts"
    assert outcome.changed_ms > 0
    assert sorted(os.listdir(layout.root)) == ["current", "last-update.env", "slots"]  # no staged files left


def test_a_rollback_returns_to_an_installation_from_before_slots(layout: SlotLayout) -> None:
    (layout.root / "venv").mkdir()
    layout.switch("venv")
    files = _on_trial(layout, dataclasses.replace(TRIAL, slot="slots/a", previous="venv", job_id="", max_boots=0))

    result = _guard("start", layout.root)

    assert result.returncode == 0
    assert layout.target() == "venv"
    assert layout.active() is None
    outcome = files.outcome()
    assert outcome is not None
    assert (outcome.state, outcome.job_id) == (UpdateState.ROLLED_BACK, None)


def test_check_before_the_deadline_changes_nothing(layout: SlotLayout) -> None:
    files = _on_trial(layout, dataclasses.replace(TRIAL, boots=3))  # a start now would roll back; a check does not
    before = _snapshot(layout.root)

    result = _guard("check", layout.root)

    assert (result.returncode, result.stderr) == (0, "")
    assert _snapshot(layout.root) == before
    assert files.trial() == dataclasses.replace(TRIAL, boots=3)


@pytest.mark.skipif(SYSTEMD_RUNS, reason="systemd runs here: the guard would restart outpost-gateway.service")
def test_check_past_the_deadline_rolls_back_and_exits_10_without_systemd(layout: SlotLayout) -> None:
    files = _on_trial(layout, dataclasses.replace(TRIAL, deadline_s=LONG_AGO))

    result = _guard("check", layout.root)

    assert result.returncode == ROLLED_BACK_EXIT
    assert "rolled back to slots/a" in result.stderr
    assert layout.target() == "slots/a"
    assert files.trial() is None
    outcome = files.outcome()
    assert outcome is not None
    assert (outcome.state, outcome.version, outcome.job_id) == (UpdateState.ROLLED_BACK, "0.2.0", "job-42")
    assert outcome.reason == "the new agent 0.2.0 did not pass its health gate before its deadline"
    assert sorted(os.listdir(layout.root)) == ["current", "last-update.env", "slots"]


@pytest.mark.parametrize("mode", ["start", "check"])
def test_a_trial_that_never_switched_is_ended_as_failed(layout: SlotLayout, mode: str) -> None:
    files = TrialFiles(layout)
    files.begin(dataclasses.replace(TRIAL, boots=3, deadline_s=LONG_AGO))  # stopped before layout.switch

    result = _guard(mode, layout.root)

    assert result.returncode == 0
    assert "never switched over" in result.stderr
    assert layout.target() == "slots/a"
    assert files.trial() is None
    outcome = files.outcome()
    assert outcome is not None
    assert (outcome.state, outcome.version, outcome.job_id) == (UpdateState.FAILED, "0.2.0", "job-42")
    assert outcome.reason == "interrupted before switching to the new agent"
    assert sorted(os.listdir(layout.root)) == ["current", "last-update.env", "slots"]


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("previous", "/etc"),
        ("previous", "../x"),
        ("previous", "slots/../../etc"),
        ("previous", ""),
        ("previous", "$(touch pwned)"),
        ("previous", "slots/a pwned"),
        ("slot", "/opt/outpost/slots/b"),
        ("boots", "x"),
        ("boots", "-1"),
        ("boots", "$(touch pwned)"),
        ("max_boots", "3a"),
        ("max_boots", ""),
        ("deadline", "tomorrow"),
    ],
)
@pytest.mark.parametrize("mode", ["start", "check"])
def test_a_trial_naming_something_unsafe_is_left_alone(layout: SlotLayout, mode: str, key: str, value: str) -> None:
    files = _on_trial(layout, dataclasses.replace(TRIAL, boots=3, deadline_s=LONG_AGO))  # due for a rollback
    lines = files.trial_path.read_text(encoding="utf-8").splitlines()
    files.trial_path.write_text(
        "".join(f"{key}={value}\n" if line.startswith(f"{key}=") else f"{line}\n" for line in lines),
        encoding="utf-8",
    )
    before = _snapshot(layout.root)

    result = _guard(mode, layout.root)

    assert result.returncode == 0
    assert "left alone" in result.stderr
    assert _snapshot(layout.root) == before
    assert not (layout.root / "pwned").exists()


@pytest.mark.parametrize("mode", ["start", "check"])
def test_an_agent_stopped_between_its_own_rollback_and_the_end_of_the_trial_keeps_its_reason(
    layout: SlotLayout, mode: str
) -> None:
    files = _on_trial(layout)
    reason = "the new agent 0.2.0 failed its health gate: no heartbeat reached the broker"
    assert files.outcome() is None
    rolled_back = UpdateReport(
        job_id="job-42", kind=ReleaseKind.AGENT, version="0.2.0", state=UpdateState.ROLLED_BACK,
        reason=reason, changed_ms=1_700_000_000_000,
    )  # fmt: skip
    files.record(rolled_back)  # what the agent does first, then the switch back; then power is cut
    layout.switch(TRIAL.previous)

    result = _guard(mode, layout.root)

    assert result.returncode == 0
    assert files.trial() is None
    assert files.outcome() == rolled_back
    assert layout.target() == "slots/a"


def test_a_trial_file_without_a_boots_line_is_counted_all_the_same(layout: SlotLayout) -> None:
    files = _on_trial(layout, dataclasses.replace(TRIAL, max_boots=1))
    text = files.trial_path.read_text()
    files.trial_path.write_text("".join(line + "\n" for line in text.splitlines() if not line.startswith("boots=")))

    assert _guard("start", layout.root).returncode == 0
    counted = files.trial()
    assert counted is not None
    assert counted.boots == 1
    assert _guard("start", layout.root).returncode == 0
    assert layout.target() == "slots/a"
    outcome = files.outcome()
    assert outcome is not None
    assert outcome.state is UpdateState.ROLLED_BACK


def test_an_agent_stopped_after_recording_its_success_is_not_rolled_back(layout: SlotLayout) -> None:
    files = _on_trial(layout, dataclasses.replace(TRIAL, boots=3))
    succeeded = UpdateReport(
        job_id="job-42", kind=ReleaseKind.AGENT, version="0.2.0", state=UpdateState.SUCCEEDED,
        changed_ms=1_700_000_000_000,
    )  # fmt: skip
    files.record(succeeded)  # the agent's finish wrote the outcome; power was cut before the trial went

    assert _guard("start", layout.root).returncode == 0

    assert files.trial() is None
    assert files.outcome() == succeeded
    assert layout.target() == "slots/b"


def test_links_the_agent_plants_in_the_root_are_never_written_through(layout: SlotLayout, tmp_path: Path) -> None:
    victim = tmp_path / "system-file"
    victim.write_text("precious")
    for name in ("last-update.env.guard", ".current.guard", "trial.env.guard", ".guard.AAAAAA"):
        (layout.root / name).symlink_to(victim)
    files = _on_trial(layout, dataclasses.replace(TRIAL, max_boots=0))

    assert _guard("start", layout.root).returncode == 0  # rolls back, writing the outcome and the link

    assert victim.read_text() == "precious"
    assert layout.target() == "slots/a"
    outcome = files.outcome()
    assert outcome is not None
    assert outcome.state is UpdateState.ROLLED_BACK
    assert not list(layout.root.glob(".guard.*/"))  # its scratch directory is gone
