"""An update on trial, and how the last one ended: two small files the agent and the guard both read.

Both are ``key=value`` lines, so the guard (``outpost-update-guard``, a POSIX shell script run by systemd
before each start and by a timer, never from a slot) reads them without Python, whatever broke in the new
agent. ``trial.env`` exists from just before ``current`` is switched to the new slot until the new agent passes
its health gate (the agent removes it: ``succeeded``) or fails it, crashes at every start, or outlives its
deadline (the agent or the guard points ``current`` back at the previous slot: ``rolled_back``). Each is written
to a temporary file, synced and renamed, so a power cut leaves the old file or the new one.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from edge.durable_file import replace_durably, sync_directory
from edge.errors import UpdateError
from edge.updates.slots import SlotLayout
from protocol.updates import ReleaseKind, UpdateReport, UpdateState

TRIAL_FILE: Final = "trial.env"
OUTCOME_FILE: Final = "last-update.env"
PUBLIC_MODE: Final = 0o644
"""Both files are read by the guard (root) and by the agent; neither holds a secret."""
_SAFE_VALUE: Final = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._+!/-")


@dataclass(frozen=True, slots=True)
class Trial:
    slot: str
    """The new slot's link target (``slots/b``)."""
    previous: str
    """What ``current`` pointed at before (``slots/a``, or ``venv`` for an installation from before slots)."""
    version: str
    previous_version: str
    job_id: str
    deadline_s: int
    """When the health gate must have passed, UTC epoch seconds (the guard compares ``date +%s``)."""
    max_boots: int = 3
    boots: int = 0

    def fields(self) -> dict[str, str]:
        return {
            "slot": self.slot,
            "previous": self.previous,
            "version": self.version,
            "previous_version": self.previous_version,
            "job": self.job_id,
            "deadline": str(self.deadline_s),
            "max_boots": str(self.max_boots),
            "boots": str(self.boots),
        }


class TrialFiles:
    def __init__(self, layout: SlotLayout) -> None:
        self.layout = layout

    @property
    def trial_path(self) -> Path:
        return self.layout.root / TRIAL_FILE

    @property
    def outcome_path(self) -> Path:
        return self.layout.root / OUTCOME_FILE

    def trial(self) -> Trial | None:
        values = _read(self.trial_path)
        if values is None:
            return None
        try:
            return Trial(
                slot=values["slot"],
                previous=values["previous"],
                version=values["version"],
                previous_version=values.get("previous_version", ""),
                job_id=values.get("job", ""),
                deadline_s=int(values["deadline"]),
                max_boots=int(values.get("max_boots", "3")),
                boots=int(values.get("boots", "0")),
            )
        except (KeyError, ValueError) as exc:
            raise UpdateError(f"{self.trial_path} is damaged ({exc}): remove it to end the trial") from exc

    def begin(self, trial: Trial) -> None:
        _write(self.trial_path, trial.fields())

    def finish(self, report: UpdateReport) -> None:
        """Record how the update ended and end the trial (the outcome first: a power cut between the two leaves
        a trial the guard or the agent ends again, never an update without its outcome)."""
        self.record(report)
        self.trial_path.unlink(missing_ok=True)
        sync_directory(self.layout.root)

    def record(self, report: UpdateReport) -> None:
        fields = {
            "kind": report.kind.value,
            "version": report.version,
            "state": report.state.value,
            "job": report.job_id or "",
            "at_ms": str(report.changed_ms),
            "reason": _one_line(report.reason or ""),
        }
        _write(self.outcome_path, fields)

    def outcome(self) -> UpdateReport | None:
        """How the last update ended (as the agent or the guard wrote it); None if none is recorded."""
        values = _read(self.outcome_path)
        if values is None:
            return None
        try:
            return UpdateReport(
                job_id=values.get("job") or None,
                kind=ReleaseKind(values.get("kind", ReleaseKind.AGENT.value)),
                version=values["version"],
                state=UpdateState(values["state"]),
                reason=values.get("reason") or None,
                changed_ms=int(values["at_ms"]),
            )
        except (KeyError, ValueError) as exc:
            raise UpdateError(f"{self.outcome_path} is damaged ({exc})") from exc


def _read(path: Path) -> dict[str, str] | None:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise UpdateError(f"cannot read {path}: {exc}") from exc
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


def _write(path: Path, fields: Mapping[str, str]) -> None:
    for key, value in fields.items():
        if key != "reason" and not set(value) <= _SAFE_VALUE:
            raise UpdateError(f"{key}={value!r} cannot be written to {path.name} (the guard reads it as shell)")
    replace_durably(path, "".join(f"{key}={value}\n" for key, value in fields.items()), PUBLIC_MODE)


def _one_line(text: str) -> str:
    return " ".join(text.split())[:240]
