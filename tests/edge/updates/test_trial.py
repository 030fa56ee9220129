"""The trial and outcome files: key=value lines the guard reads with a POSIX shell, so nothing that shell could
take for anything but a plain value is ever written, and a damaged file is an UpdateError naming it."""

import dataclasses
import os
from pathlib import Path

import pytest

from edge.errors import UpdateError
from edge.updates.slots import SlotLayout
from edge.updates.trial import Trial, TrialFiles
from protocol.updates import ReleaseKind, UpdateReport, UpdateState

TRIAL = Trial(
    slot="slots/b",
    previous="slots/a",
    version="0.2.0rc1",
    previous_version="0.1.0",
    job_id="job-7",
    deadline_s=1_900_000_000,
    max_boots=2,
    boots=1,
)


@pytest.fixture
def files(tmp_path: Path) -> TrialFiles:
    root = tmp_path / "outpost"
    root.mkdir()
    return TrialFiles(SlotLayout(root))


def _report(state: UpdateState = UpdateState.SUCCEEDED, reason: str | None = None) -> UpdateReport:
    return UpdateReport(
        job_id="job-7", kind=ReleaseKind.AGENT, version="0.2.0rc1", state=state, reason=reason, changed_ms=1_234
    )


def test_no_files_no_trial_and_no_outcome(files: TrialFiles) -> None:
    assert files.trial() is None
    assert files.outcome() is None


def test_a_trial_is_written_as_the_lines_the_guard_reads_and_read_back(files: TrialFiles) -> None:
    files.begin(TRIAL)

    assert files.trial_path.read_text(encoding="utf-8") == (
        "slot=slots/b\nprevious=slots/a\nversion=0.2.0rc1\nprevious_version=0.1.0\njob=job-7\n"
        "deadline=1900000000\nmax_boots=2\nboots=1\n"
    )
    assert files.trial() == TRIAL
    assert sorted(os.listdir(files.layout.root)) == ["trial.env"]  # the staged file was renamed


def test_begin_replaces_a_trial(files: TrialFiles) -> None:
    files.begin(TRIAL)
    files.begin(dataclasses.replace(TRIAL, version="0.3.0", boots=0))

    assert files.trial() == dataclasses.replace(TRIAL, version="0.3.0", boots=0)
    assert sorted(os.listdir(files.layout.root)) == ["trial.env"]


def test_a_trial_file_with_only_what_it_needs_takes_the_defaults(files: TrialFiles) -> None:
    files.trial_path.write_text("slot=slots/a\nprevious=venv\nversion=0.2.0\ndeadline=5\n", encoding="utf-8")

    trial = files.trial()

    assert trial is not None
    assert trial == Trial(
        slot="slots/a", previous="venv", version="0.2.0", previous_version="", job_id="", deadline_s=5
    )
    assert (trial.max_boots, trial.boots) == (3, 0)


def test_finish_records_the_outcome_and_ends_the_trial(files: TrialFiles) -> None:
    files.begin(TRIAL)
    report = _report()

    files.finish(report)

    assert files.trial() is None
    assert not files.trial_path.exists()
    assert files.outcome() == report
    assert sorted(os.listdir(files.layout.root)) == ["last-update.env"]


def test_finish_without_a_trial_still_records(files: TrialFiles) -> None:
    report = _report(UpdateState.ROLLED_BACK, "the new agent 0.2.0rc1 failed its health gate: no heartbeat")

    files.finish(report)

    assert files.outcome() == report


def test_record_keeps_the_trial(files: TrialFiles) -> None:
    files.begin(TRIAL)
    report = UpdateReport(kind=ReleaseKind.AGENT, version="0.2.0", state=UpdateState.FAILED, changed_ms=0)

    files.record(report)

    assert files.trial() == TRIAL
    assert files.outcome() == report  # no job and no reason read back as None


@pytest.mark.parametrize(
    ("key", "trial"),
    [
        ("version", dataclasses.replace(TRIAL, version="0.2.0\nslot=/etc")),
        ("version", dataclasses.replace(TRIAL, version="$(reboot)")),
        ("version", dataclasses.replace(TRIAL, version="0.2.0 beta")),
        ("version", dataclasses.replace(TRIAL, version="`id`")),
        ("version", dataclasses.replace(TRIAL, version="0.2;rm")),
        ("previous_version", dataclasses.replace(TRIAL, previous_version="0.1'0")),
        ("slot", dataclasses.replace(TRIAL, slot="slots/b c")),
        ("previous", dataclasses.replace(TRIAL, previous='slots/"a"')),
        ("job", dataclasses.replace(TRIAL, job_id="job$HOME")),
        ("job", dataclasses.replace(TRIAL, job_id="job\\n")),
    ],
)
def test_begin_refuses_a_value_the_shell_could_misread(files: TrialFiles, key: str, trial: Trial) -> None:
    with pytest.raises(UpdateError, match=f"^{key}=") as raised:
        files.begin(trial)

    assert "trial.env" in str(raised.value)
    assert os.listdir(files.layout.root) == []


def test_a_refused_trial_leaves_the_one_on_disk(files: TrialFiles) -> None:
    files.begin(TRIAL)

    with pytest.raises(UpdateError):
        files.begin(dataclasses.replace(TRIAL, version="$(reboot)"))

    assert files.trial() == TRIAL


def test_the_reason_is_squeezed_to_one_line(files: TrialFiles) -> None:
    reason = "it failed:\n  slot=/etc\r\n\tdevices failing: $(reboot)  \n"

    files.record(_report(UpdateState.ROLLED_BACK, reason))

    outcome = files.outcome()
    assert outcome is not None
    assert outcome.reason == "it failed: slot=/etc devices failing: $(reboot)"
    lines = files.outcome_path.read_text(encoding="utf-8").splitlines()
    assert [line.split("=", 1)[0] for line in lines] == ["kind", "version", "state", "job", "at_ms", "reason"]


def test_a_long_reason_is_cut(files: TrialFiles) -> None:
    files.record(_report(UpdateState.FAILED, "x" * 256))

    outcome = files.outcome()
    assert outcome is not None
    assert outcome.reason == "x" * 240


@pytest.mark.parametrize(
    "text",
    [
        "",
        "slot=slots/b\nprevious=slots/a\nversion=0.2.0\n",  # no deadline
        "previous=slots/a\nversion=0.2.0\ndeadline=5\n",  # no slot
        "slot=slots/b\nprevious=slots/a\nversion=0.2.0\ndeadline=soon\n",
        "slot=slots/b\nprevious=slots/a\nversion=0.2.0\ndeadline=5\nboots=two\n",
        "slot=slots/b\nprevious=slots/a\nversion=0.2.0\ndeadline=5\nmax_boots=\n",
        "slot slots/b\nprevious slots/a\nversion 0.2.0\ndeadline 5\n",
    ],
)
def test_a_damaged_trial_file_is_an_update_error_naming_it(files: TrialFiles, text: str) -> None:
    files.trial_path.write_text(text, encoding="utf-8")

    with pytest.raises(UpdateError, match="is damaged") as raised:
        files.trial()

    assert str(files.trial_path) in str(raised.value)


def test_an_unreadable_trial_file_is_an_update_error_naming_it(files: TrialFiles) -> None:
    files.trial_path.write_bytes(b"slot=slots/\xff\n")

    with pytest.raises(UpdateError, match="cannot read") as raised:
        files.trial()

    assert str(files.trial_path) in str(raised.value)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "kind=agent\nversion=0.2.0\nstate=rolled_back\njob=\nreason=\n",  # no at_ms
        "kind=agent\nversion=0.2.0\nstate=exploded\njob=\nat_ms=1000\nreason=\n",
        "kind=os\nversion=0.2.0\nstate=failed\njob=\nat_ms=1000\nreason=\n",
        "kind=agent\nversion=0.2 beta\nstate=failed\njob=\nat_ms=1000\nreason=\n",
        "kind=agent\nversion=0.2.0\nstate=failed\njob=Job 7\nat_ms=1000\nreason=\n",
        "kind=agent\nversion=0.2.0\nstate=failed\njob=\nat_ms=yesterday\nreason=\n",
    ],
)
def test_a_damaged_outcome_file_is_an_update_error_naming_it(files: TrialFiles, text: str) -> None:
    files.outcome_path.write_text(text, encoding="utf-8")

    with pytest.raises(UpdateError, match="is damaged") as raised:
        files.outcome()

    assert str(files.outcome_path) in str(raised.value)
