"""The people-facing notification contract: a strict, versioned AlertNotification, and a village notify topic
that no gateway topic or fleet subscription can be mistaken for."""

import json
import uuid
from typing import Any

import pytest
from aiomqtt import Topic
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from protocol.errors import TopicError
from protocol.identifiers import IDENTIFIER_PATTERN
from protocol.messages import AlertKind, FleetAlertKind, Severity
from protocol.notifications import AlertLevel, AlertNotification, AlertState, AlertStep
from protocol.schema import schema_documents
from protocol.topics import (
    Channel,
    GatewayTopic,
    fleet_publish_filters,
    gateway_filters,
    uplink_filters,
    village_notify_filter,
    village_notify_topic,
)

identifiers = st.from_regex(IDENTIFIER_PATTERN, fullmatch=True)


def notification(**changes: Any) -> AlertNotification:
    fields: dict[str, Any] = {
        "notification_id": uuid.UUID("00000000-0000-4000-8000-0000000000aa"),
        "step": AlertStep.CANCEL,
        "alert_id": uuid.UUID("00000000-0000-4000-8000-000000000001"),
        "kind": AlertKind.PANIC,
        "severity": Severity.CRITICAL,
        "state": AlertState.CANCELLED,
        "level": AlertLevel.TOWN,
        "village_id": "lakeside",
        "gateway_id": "gw-01",
        "device_id": "panic-1",
        "grid_id": "grid-7",
        "summary": "panic button panic-1 pressed",
        "reason": "a pupil pressed it for fun",
        "raised_at": 1_700_000_000_000,
        "occurred_at": 1_700_000_090_000,
        "occurrences": 2,
        "case_id": "CASE-000042",
        "assignee": None,
        "evidence": {"held_ms": 800},
    }
    fields.update(changes)
    return AlertNotification(**fields)


def test_a_notification_survives_the_wire_with_its_schema_version() -> None:
    sent = notification()

    body = sent.model_dump_json()

    assert AlertNotification.model_validate_json(body) == sent
    assert json.loads(body)["schema_version"] == 1
    assert json.loads(body)["step"] == "cancel"


def test_a_fleet_raised_alert_is_notified_with_its_own_kind() -> None:
    sent = notification(kind=FleetAlertKind.GATEWAY_OFFLINE, device_id="gateway", grid_id=None, evidence={})

    assert AlertNotification.model_validate_json(sent.model_dump_json()).kind is FleetAlertKind.GATEWAY_OFFLINE


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("schema_version", 2),
        ("step", "snooze"),
        ("state", "forgotten"),
        ("level", "province"),
        ("occurrences", 0),
        ("occurrences", "3"),
        ("village_id", "Lake Side"),
        ("reason", "x" * 257),
        ("unexpected", True),
    ],
)
def test_a_notification_that_breaks_the_contract_is_refused(field: str, value: object) -> None:
    body = json.loads(notification().model_dump_json())
    body[field] = value

    with pytest.raises(ValidationError):
        AlertNotification.model_validate_json(json.dumps(body))


def test_every_step_an_alert_takes_has_a_name_on_the_wire() -> None:
    assert {step.value for step in AlertStep} == {
        "raise",
        "escalate",
        "acknowledge",
        "dispatch",
        "resolve",
        "clear",
        "cancel",
        "close",
    }


def test_the_schema_pins_the_version_and_forbids_extra_fields() -> None:
    document = json.loads(schema_documents()["AlertNotification.schema.json"])

    assert document["properties"]["schema_version"]["const"] == 1
    assert document["additionalProperties"] is False
    assert "notification_id" in document["required"]


def test_the_village_notify_topic_names_the_village_under_the_outpost_namespace() -> None:
    assert village_notify_topic("lakeside") == "outpost/v1/_notify/lakeside"
    assert village_notify_filter("lakeside") == "outpost/v1/_notify/lakeside"
    assert village_notify_filter() == "outpost/v1/_notify/+"


@pytest.mark.parametrize("village_id", ["", "Lakeside", "lake/side", "+", "#", "_notify", "x" * 65])
def test_a_village_notify_topic_refuses_what_is_not_an_identifier(village_id: str) -> None:
    with pytest.raises(TopicError):
        village_notify_topic(village_id)
    with pytest.raises(TopicError):
        village_notify_filter(village_id)


@given(village_id=identifiers)
def test_a_village_notify_topic_is_never_a_gateway_topic(village_id: str) -> None:
    topic = village_notify_topic(village_id)

    with pytest.raises(TopicError):
        GatewayTopic.parse(topic)


@given(village_id=identifiers, gateway_id=identifiers)
def test_no_gateway_or_fleet_subscription_receives_village_notifications(village_id: str, gateway_id: str) -> None:
    topic = Topic(village_notify_topic(village_id))
    subscriptions = [*uplink_filters(), *fleet_publish_filters(), *gateway_filters(village_id, gateway_id)]

    assert not [pattern for pattern in subscriptions if topic.matches(pattern)]


@given(village_id=identifiers, gateway_id=identifiers, channel=st.sampled_from(Channel))
def test_village_centres_subscribing_to_notifications_receive_no_gateway_traffic(
    village_id: str, gateway_id: str, channel: Channel
) -> None:
    gateway_traffic = Topic(str(GatewayTopic(village_id, gateway_id, channel)))

    assert not gateway_traffic.matches(village_notify_filter(village_id))
    assert not gateway_traffic.matches(village_notify_filter())
    assert Topic(village_notify_topic(village_id)).matches(village_notify_filter())
