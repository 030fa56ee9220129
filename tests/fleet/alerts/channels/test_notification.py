"""A notify message becomes the AlertNotification people are sent: the step it follows, the alert as it is
now; one that cannot be expressed is refused for good, and a message that is not a notification is skipped."""

import uuid

import pytest

from fleet.alerts.channels.notification import notification_for
from fleet.alerts.history import ESCALATE, RAISE
from fleet.alerts.lifecycle import Step
from fleet.alerts.outbox import Action
from fleet.errors import ChannelRejectedError, NothingToSendError
from protocol import notifications
from protocol.messages import AlertKind, FleetAlertKind, Severity
from protocol.notifications import AlertLevel, AlertState
from tests.fleet.alerts.channels.deliveries import ALERT_ID, alert_row, delivery
from tests.fleet.helpers import RAISED_MS


def test_a_cancellation_tells_the_step_its_reason_and_where_the_alert_stands() -> None:
    key = str(uuid.uuid4())
    alert = alert_row(state="cancelled", level="town", occurrences=3, case_id="CASE-000042")

    sent = notification_for(delivery("cancel", reason="a pupil pressed it", key=key, alert=alert))

    assert sent.notification_id == uuid.UUID(key)
    assert (sent.step, sent.state, sent.level) == (
        notifications.AlertStep.CANCEL,
        notifications.AlertState.CANCELLED,
        notifications.AlertLevel.TOWN,
    )
    assert (sent.alert_id, sent.kind, sent.severity) == (uuid.UUID(ALERT_ID), AlertKind.PANIC, Severity.CRITICAL)
    assert (sent.village_id, sent.gateway_id, sent.device_id, sent.grid_id) == (
        "lakeside",
        "gw-01",
        "panic-1",
        "grid-7",
    )
    assert (sent.reason, sent.occurrences, sent.case_id, sent.assignee) == (
        "a pupil pressed it",
        3,
        "CASE-000042",
        None,
    )
    assert (sent.raised_at, sent.occurred_at) == (RAISED_MS, RAISED_MS + 5)
    assert sent.evidence == {"held_ms": 800}


def test_a_fleet_raised_alert_is_notified_with_its_kind() -> None:
    alert = alert_row(kind="gateway_offline", device_id="gateway", grid_id=None, evidence={}, severity="major")

    sent = notification_for(delivery(alert=alert))

    assert (sent.kind, sent.grid_id) == (FleetAlertKind.GATEWAY_OFFLINE, None)


def test_a_long_reason_and_assignee_are_cut_to_the_contracts_limit() -> None:
    sent = notification_for(delivery("dispatch", reason="r" * 512, alert=alert_row(assignee="a" * 300)))

    assert (len(sent.reason or ""), len(sent.assignee or "")) == (256, 256)


def test_an_alert_whose_evidence_breaks_the_contract_is_refused_for_good() -> None:
    alert = alert_row(evidence={"Not A Metric": 1})

    with pytest.raises(ChannelRejectedError, match="does not fit an AlertNotification"):
        notification_for(delivery(alert=alert))


@pytest.mark.parametrize("action", [Action.OPEN_CASE, Action.WITHDRAW_CASE])
def test_a_message_about_a_case_is_nothing_to_send_to_people(action: Action) -> None:
    with pytest.raises(NothingToSendError):
        notification_for(delivery(action=action))


def test_the_wire_names_every_step_state_and_level_the_fleet_has() -> None:
    fleet_steps = {RAISE, ESCALATE, *(step.value for step in Step)}

    assert {step.value for step in notifications.AlertStep} == fleet_steps
    assert {state.value for state in notifications.AlertState} == {state.value for state in AlertState}
    assert {level.value for level in notifications.AlertLevel} == {level.value for level in AlertLevel}
