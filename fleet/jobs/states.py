"""Where a job and each of its gateways stand, and how a gateway's update report moves its target."""

from enum import StrEnum
from typing import Final

from protocol.updates import UpdateState


class JobState(StrEnum):
    RUNNING = "running"
    PAUSED = "paused"  # nothing new is sent; what was sent goes on
    DONE = "done"  # every gateway finished: succeeded, failed, rolled back or skipped
    ABORTED = "aborted"  # the abort policy stopped it (gateways it updated may be reverting)
    CANCELLED = "cancelled"  # staff stopped it

    @property
    def open(self) -> bool:
        return self in (JobState.RUNNING, JobState.PAUSED)


class TargetState(StrEnum):
    QUEUED = "queued"  # not sent yet: its wave has not opened, or the gateway is offline or in an alarm
    SENT = "sent"  # the command went out; no word from the gateway yet
    DEFERRED = "deferred"  # the gateway waits for its siren or critical alert to end
    DOWNLOADING = "downloading"
    VERIFYING = "verifying"
    INSTALLING = "installing"
    HEALTH_CHECK = "health_check"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    ROLLED_BACK = "rolled_back"  # the gateway's new agent failed its health gate and it went back by itself
    SKIPPED = "skipped"  # never sent: offline until the deadline, the job aborted or cancelled
    REVERTING = "reverting"  # the job aborted: the gateway is being put back on its earlier version
    REVERTED = "reverted"
    REVERT_FAILED = "revert_failed"


FINAL: Final = frozenset(
    {
        TargetState.SUCCEEDED,
        TargetState.FAILED,
        TargetState.ROLLED_BACK,
        TargetState.SKIPPED,
        TargetState.REVERTED,
        TargetState.REVERT_FAILED,
    }
)
FAILURES: Final = frozenset({TargetState.FAILED, TargetState.ROLLED_BACK})
BUSY: Final = frozenset(
    {
        TargetState.SENT,
        TargetState.DEFERRED,
        TargetState.DOWNLOADING,
        TargetState.VERIFYING,
        TargetState.INSTALLING,
        TargetState.HEALTH_CHECK,
        TargetState.REVERTING,
    }
)

_FROM_REPORT: Final = {
    UpdateState.DEFERRED: TargetState.DEFERRED,
    UpdateState.DOWNLOADING: TargetState.DOWNLOADING,
    UpdateState.VERIFYING: TargetState.VERIFYING,
    UpdateState.INSTALLING: TargetState.INSTALLING,
    UpdateState.HEALTH_CHECK: TargetState.HEALTH_CHECK,
    UpdateState.SUCCEEDED: TargetState.SUCCEEDED,
    UpdateState.FAILED: TargetState.FAILED,
    UpdateState.ROLLED_BACK: TargetState.ROLLED_BACK,
}


def from_report(state: UpdateState, *, reverting: bool) -> TargetState:
    """The target's state for a gateway's update report; while reverting, its outcome is the revert's."""
    if reverting:
        if state is UpdateState.SUCCEEDED:
            return TargetState.REVERTED
        if state.final:
            return TargetState.REVERT_FAILED
        return TargetState.REVERTING
    return _FROM_REPORT[state]
