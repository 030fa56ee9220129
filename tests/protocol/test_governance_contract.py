"""The governance contract's callback and update models: strict, versioned, one shape per event."""

import json
import uuid
from typing import Any

import pytest
from pydantic import ValidationError

from protocol.errors import GovernancePayloadError
from protocol.governance import (
    CASE_CALLBACK_PATH,
    STATUS_AFTER,
    Assignee,
    CaseCallback,
    CaseClosed,
    CaseDispatched,
    CaseEvent,
    CaseFeedback,
    CaseResolved,
    CaseStatus,
    CaseUpdate,
    CaseUpdateKind,
    CaseUpdateReceipt,
    CloseReason,
    case_path,
    case_updates_path,
    decode_case_callback,
    encode_case_callback,
)

ALERT_ID = uuid.UUID("00000000-0000-4000-8000-000000000001")


def common(sequence: int = 1) -> dict[str, Any]:
    return {
        "callback_id": uuid.uuid4(),
        "case_id": "CASE-000001",
        "alert_id": ALERT_ID,
        "sequence": sequence,
        "sent_at": 1_700_000_000_000,
    }


EXAMPLES: list[CaseCallback] = [
    CaseDispatched(
        assignee=Assignee(officer_id="lakeside-grid-7-officer", name="Li Wei", grid_id="grid-7"), **common(1)
    ),
    CaseResolved(note="attended, false alarm by a pupil", **common(2)),
    CaseFeedback(rating=4, comment="quick", **common(3)),
    CaseClosed(reason=CloseReason.COMPLETED, **common(4)),
]


@pytest.mark.parametrize("callback", EXAMPLES, ids=lambda c: str(c.event))
def test_every_callback_survives_the_wire(callback: CaseCallback) -> None:
    body = encode_case_callback(callback)

    assert decode_case_callback(body) == callback
    assert json.loads(body)["event"] == callback.event
    assert json.loads(body)["schema_version"] == 1


def test_each_event_has_a_status_the_case_is_in_after_it() -> None:
    assert set(STATUS_AFTER) == set(CaseEvent)
    assert STATUS_AFTER[CaseEvent.CLOSED] is CaseStatus.CLOSED


def mutated(callback: CaseCallback, **changes: Any) -> bytes:
    body = json.loads(encode_case_callback(callback))
    body.update(changes)
    return json.dumps(body).encode()


@pytest.mark.parametrize(
    ("callback", "changes", "complaint"),
    [
        (EXAMPLES[0], {"priority": "high"}, "priority"),
        (EXAMPLES[0], {"event": "resolved"}, "note"),
        (EXAMPLES[1], {"event": "teleported"}, "event"),
        (EXAMPLES[2], {"rating": 0}, "rating"),
        (EXAMPLES[2], {"rating": 6}, "rating"),
        (EXAMPLES[2], {"rating": "5"}, "rating"),
        (EXAMPLES[3], {"sequence": 0}, "sequence"),
        (EXAMPLES[3], {"schema_version": 2}, "schema_version"),
        (EXAMPLES[3], {"case_id": "../admin"}, "case_id"),
        (EXAMPLES[3], {"reason": "bored"}, "reason"),
        (EXAMPLES[3], {"callback_id": "not-a-uuid"}, "callback_id"),
    ],
)
def test_callbacks_that_do_not_fit_are_refused_naming_the_field(
    callback: CaseCallback, changes: dict[str, Any], complaint: str
) -> None:
    with pytest.raises(GovernancePayloadError, match=complaint):
        decode_case_callback(mutated(callback, **changes))


@pytest.mark.parametrize("body", [b"", b"{", b"[]", b'{"event": "closed"}'])
def test_malformed_callbacks_are_refused(body: bytes) -> None:
    with pytest.raises(GovernancePayloadError, match="invalid case callback"):
        decode_case_callback(body)


def test_a_case_update_is_strict_and_round_trips() -> None:
    update = CaseUpdate(
        update_id=uuid.uuid4(),
        case_id="CASE-000001",
        alert_id=ALERT_ID,
        kind=CaseUpdateKind.CANCELLED,
        reason="false alarm: a pupil pressed it",
        at=1_700_000_000_000,
    )

    assert CaseUpdate.model_validate_json(update.model_dump_json()) == update
    with pytest.raises(ValidationError):
        CaseUpdate.model_validate_json(update.model_dump_json().replace('"cancelled"', '"forgotten"'))
    receipt = CaseUpdateReceipt(update_id=update.update_id, case_id=update.case_id, status=CaseStatus.CLOSED)
    assert CaseUpdateReceipt.model_validate_json(receipt.model_dump_json()) == receipt


def test_paths_are_built_from_valid_case_ids_only() -> None:
    assert CASE_CALLBACK_PATH == "/api/v1/governance/callbacks"
    assert case_path("CASE-000001") == "/api/v1/cases/CASE-000001"
    assert case_updates_path("CASE-000001") == "/api/v1/cases/CASE-000001/updates"
    for bad in ["", "../x", "a/b", "a b", "-leading", "x" * 65]:
        with pytest.raises(GovernancePayloadError):
            case_updates_path(bad)
