"""The alert lifecycle's rules, property-based: no sequence of steps reaches an illegal state."""

import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from fleet.alerts.lifecycle import (
    FINAL_STATES,
    OPEN_STATES,
    TRANSITIONS,
    Step,
    after,
    allowed_steps,
    escalates,
    next_level,
)
from fleet.errors import ConflictError, IllegalTransitionError
from protocol.notifications import AlertLevel, AlertState


@given(st.sampled_from(AlertState), st.sampled_from(Step))
def test_a_step_is_taken_exactly_from_the_states_it_allows_and_refused_from_the_others(
    state: AlertState, step: Step
) -> None:
    allowed_from, target = TRANSITIONS[step]
    if state in allowed_from:
        assert after(state, step) is target
        assert step in allowed_steps(state)
    else:
        with pytest.raises(IllegalTransitionError) as refused:
            after(state, step)
        assert str(step) in str(refused.value)
        assert str(state) in str(refused.value)
        assert step not in allowed_steps(state)


def test_a_refusal_is_a_conflict_the_api_answers_with_409() -> None:
    with pytest.raises(ConflictError, match="cannot acknowledge an alert that is closed"):
        after(AlertState.CLOSED, Step.ACKNOWLEDGE)


def test_final_states_allow_no_step_and_every_open_state_some() -> None:
    assert all(allowed_steps(state) == frozenset() for state in FINAL_STATES)
    assert all(allowed_steps(state) for state in OPEN_STATES)


def test_every_state_is_reachable_from_raised_and_every_open_state_can_still_end() -> None:
    reachable = {AlertState.RAISED}
    frontier = [AlertState.RAISED]
    while frontier:
        for step in allowed_steps(frontier.pop()):
            _, target = TRANSITIONS[step]
            if target not in reachable:
                reachable.add(target)
                frontier.append(target)
    assert reachable == set(AlertState)
    for state in OPEN_STATES:  # no dead end: a final state can be reached from each open one
        seen, frontier = {state}, [state]
        while frontier and not seen & FINAL_STATES:
            for step in allowed_steps(frontier.pop()):
                target = TRANSITIONS[step][1]
                if target not in seen:
                    seen.add(target)
                    frontier.append(target)
        assert seen & FINAL_STATES, state


def test_escalation_goes_village_town_county_then_stops_and_only_while_nobody_took_it_on() -> None:
    assert next_level(AlertLevel.VILLAGE) is AlertLevel.TOWN
    assert next_level(AlertLevel.TOWN) is AlertLevel.COUNTY
    assert next_level(AlertLevel.COUNTY) is None
    assert [state for state in AlertState if escalates(state)] == [AlertState.RAISED]


class AlertLifecycle(RuleBasedStateMachine):
    """Any interleaving of staff actions, platform callbacks, clearing and escalation deadlines."""

    def __init__(self) -> None:
        super().__init__()
        self.state = AlertState.RAISED
        self.level = AlertLevel.VILLAGE
        self.history: list[AlertState] = [AlertState.RAISED]
        self.taken_on = False

    @rule(step=st.sampled_from(Step))
    def take(self, step: Step) -> None:
        try:
            self.state = after(self.state, step)
        except IllegalTransitionError:
            assert step not in allowed_steps(self.history[-1])
            return
        self.history.append(self.state)
        if step in {Step.ACKNOWLEDGE, Step.DISPATCH}:
            self.taken_on = True

    @precondition(lambda self: escalates(self.state))
    @rule()
    def deadline_passes(self) -> None:
        self.level = next_level(self.level) or self.level

    @invariant()
    def nothing_follows_a_final_state(self) -> None:
        for earlier in self.history[:-1]:
            assert earlier not in FINAL_STATES

    @invariant()
    def resolved_or_closed_only_after_someone_took_it_on(self) -> None:
        if self.state in {AlertState.RESOLVED, AlertState.CLOSED}:
            assert self.taken_on

    @invariant()
    def closed_only_after_resolved(self) -> None:
        if self.state is AlertState.CLOSED:
            assert self.history[-2] is AlertState.RESOLVED

    @invariant()
    def cleared_only_before_dispatch(self) -> None:
        if self.state is AlertState.CLEARED:
            assert AlertState.DISPATCHED not in self.history

    @invariant()
    def an_escalated_alert_was_never_taken_on_before_it_escalated(self) -> None:
        if self.level is not AlertLevel.VILLAGE and self.state is AlertState.RAISED:
            assert not self.taken_on


TestAlertLifecycle = AlertLifecycle.TestCase
