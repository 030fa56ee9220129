"""The dashboards' colour rules name what the fleet writes."""

from dashboards import look
from fleet.jobs.states import FAILURES, TargetState


def test_job_state_colours_name_the_fleets_target_states_failures_in_red_success_in_green() -> None:
    assert set(look.JOB_STATE_COLOURS) <= {state.value for state in TargetState}
    assert look.JOB_STATE_COLOURS[TargetState.SUCCEEDED] == look.OK
    bad = {state.value for state in FAILURES} | {TargetState.REVERT_FAILED.value}
    assert {state for state, colour in look.JOB_STATE_COLOURS.items() if colour == look.ACT_NOW} == bad
