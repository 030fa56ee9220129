"""An alert's lifecycle as a state machine: which step may follow which, and where escalation goes next.

Pure rules, no I/O: the store applies them in the transaction that records the step (who, when, why),
and the API answers a refused step with 409 naming the states it is allowed from.

The main path is raised → acknowledged → dispatched → resolved → closed (:data:`TRANSITIONS` has every
step), with two ways out before the work is done: cleared (the condition went away) and cancelled (a
false alarm, with its reason).

- ``dispatch`` comes from the platform (its case is accepted and assigned); it may arrive before anyone
  in Outpost acknowledged the alert, and counts as taking it on.
- ``resolve`` needs someone to have taken the alert on (acknowledged or dispatched).
- ``clear`` (the camera is back, the door closed) ends an alert nobody is acting on yet; once an officer
  is dispatched the case runs its course and the clearing is only noted.
- ``closed``, ``cleared`` and ``cancelled`` are final.

The states and levels are the contract's (:mod:`protocol.notifications`): notifications carry them.

Escalation moves an alert nobody acknowledged up the hierarchy, village → town → county, one level per
missed deadline; it changes the alert's level, not its state.
"""

from collections.abc import Mapping
from enum import StrEnum
from typing import Final

from fleet.errors import IllegalTransitionError
from protocol.notifications import AlertLevel, AlertState


class Step(StrEnum):
    ACKNOWLEDGE = "acknowledge"
    DISPATCH = "dispatch"
    RESOLVE = "resolve"
    CLOSE = "close"
    CLEAR = "clear"
    CANCEL = "cancel"


FINAL_STATES: Final = frozenset({AlertState.CLOSED, AlertState.CLEARED, AlertState.CANCELLED})
OPEN_STATES: Final = frozenset(AlertState) - FINAL_STATES

TRANSITIONS: Final[Mapping[Step, tuple[frozenset[AlertState], AlertState]]] = {
    Step.ACKNOWLEDGE: (frozenset({AlertState.RAISED}), AlertState.ACKNOWLEDGED),
    Step.DISPATCH: (frozenset({AlertState.RAISED, AlertState.ACKNOWLEDGED}), AlertState.DISPATCHED),
    Step.RESOLVE: (frozenset({AlertState.ACKNOWLEDGED, AlertState.DISPATCHED}), AlertState.RESOLVED),
    Step.CLOSE: (frozenset({AlertState.RESOLVED}), AlertState.CLOSED),
    Step.CLEAR: (frozenset({AlertState.RAISED, AlertState.ACKNOWLEDGED}), AlertState.CLEARED),
    Step.CANCEL: (
        frozenset({AlertState.RAISED, AlertState.ACKNOWLEDGED, AlertState.DISPATCHED}),
        AlertState.CANCELLED,
    ),
}
"""Each step: the states it may be taken from, and the state it leads to."""

_NEXT_LEVEL: Final[Mapping[AlertLevel, AlertLevel]] = {
    AlertLevel.VILLAGE: AlertLevel.TOWN,
    AlertLevel.TOWN: AlertLevel.COUNTY,
}


def after(state: AlertState, step: Step) -> AlertState:
    """The state ``step`` leads to from ``state``; :class:`IllegalTransitionError` if it may not be taken."""
    allowed_from, target = TRANSITIONS[step]
    if state not in allowed_from:
        allowed = ", ".join(sorted(allowed_from))
        raise IllegalTransitionError(f"cannot {step} an alert that is {state} (only one that is {allowed})")
    return target


def allowed_steps(state: AlertState) -> frozenset[Step]:
    """The steps that may be taken from ``state`` (none from a final state)."""
    return frozenset(step for step, (allowed_from, _) in TRANSITIONS.items() if state in allowed_from)


def escalates(state: AlertState) -> bool:
    """Whether an alert in ``state`` escalates when its deadline passes: only while nobody took it on."""
    return state is AlertState.RAISED


def next_level(level: AlertLevel) -> AlertLevel | None:
    """Where an unacknowledged alert goes when its deadline at ``level`` passes; None at the county."""
    return _NEXT_LEVEL.get(level)
