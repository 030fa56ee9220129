"""The HTTP contract between Outpost's governance connector and the upstream command platform.

**Fleet -> platform: open a case.** The fleet POSTs a :class:`CaseRequest` to ``{platform}/api/v1/cases``
with a bearer token and an ``Idempotency-Key`` header (the alert's id); the platform answers with a
:class:`CaseReceipt`: ``201`` for a new case, ``200`` with the same case id when the key was seen before.

**Fleet -> platform: withdraw a case.** When an alert is cancelled (false alarm) or cleared (the
condition went away) the fleet POSTs a :class:`CaseUpdate` to :func:`case_updates_path` (``{platform}
/api/v1/cases/{case_id}/updates``) with its ``update_id`` as the ``Idempotency-Key``; the platform
closes the case (a ``closed`` callback with reason ``withdrawn`` follows) and answers ``200`` with a
:class:`CaseUpdateReceipt` (``duplicate`` for a repeated update id; a case that was already closed
stays closed and answers the same way).

**Platform -> fleet: status callbacks.** The platform POSTs a :data:`CaseCallback` to the fleet's
``{fleet}/api/v1/governance/callbacks`` (:data:`CASE_CALLBACK_PATH`) as the case moves through its
loop: ``dispatched`` (assigned to a grid officer), ``resolved`` (with a note), ``feedback`` (rating
1-5 and a comment), ``closed`` (``completed`` after feedback, or ``withdrawn`` by the fleet). Every
callback has a fresh ``callback_id`` (a retry or a duplicate repeats it: de-duplicate on it) and a
per-case ``sequence`` starting at 1 and rising by one per callback, so the fleet can tell a callback
that arrives ahead of its predecessor. The fleet answers ``2xx`` once it stored the callback, or
recognised its id; the platform retries anything else (no answer, ``5xx``, ``408``, ``429``) with
backoff, and records any other ``4xx`` (unknown case ``404``, out of order ``409``, invalid ``422``,
bad signature ``401``) as refused, without retrying.

**Signing.** Every request in both directions carries the HMAC-SHA256 headers of
:mod:`protocol.request_signing` over method, target, timestamp and body, made with the secret both
sides share (the bearer token stays on fleet -> platform requests). Models are strict, frozen, refuse
unknown fields and carry ``schema_version``; any change of shape bumps it.
"""

import re
from collections.abc import Mapping
from enum import StrEnum
from typing import Annotated, Final, Literal
from uuid import UUID

from pydantic import Field, StringConstraints, TypeAdapter, ValidationError

from protocol.errors import GovernancePayloadError
from protocol.identifiers import DeviceId, EpochMillis, GatewayId, GridId, ShortText, VillageId
from protocol.messages import AlertKind, Evidence, FleetAlertKind, Severity, WireModel

CASES_PATH: Final = "/api/v1/cases"
IDEMPOTENCY_HEADER: Final = "Idempotency-Key"
CASE_CALLBACK_PATH: Final = "/api/v1/governance/callbacks"
"""Where the fleet receives the platform's status callbacks (a path on the fleet's API)."""

CASE_ID_PATTERN: Final = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
"""A case id as the platform issues it; safe as a URL path segment without escaping."""
_CASE_ID_RE: Final = re.compile(CASE_ID_PATTERN)
CaseId = Annotated[str, StringConstraints(pattern=CASE_ID_PATTERN)]
OfficerId = Annotated[str, StringConstraints(min_length=1, max_length=64)]
PersonName = Annotated[str, StringConstraints(min_length=1, max_length=128)]
CallbackSequence = Annotated[int, Field(ge=1, lt=2**31)]


class CaseStatus(StrEnum):
    """The platform's closed loop: received -> dispatched -> resolved -> closed (with feedback)."""

    RECEIVED = "received"
    DISPATCHED = "dispatched"
    RESOLVED = "resolved"
    CLOSED = "closed"


class CaseRequest(WireModel):
    schema_version: Literal[1] = 1
    alert_id: UUID = Field(description="The Outpost alert's id; also sent as the Idempotency-Key header.")
    kind: AlertKind | FleetAlertKind = Field(description="Raised by a gateway (panic, ...) or by the fleet about one.")
    severity: Severity
    village_id: VillageId
    gateway_id: GatewayId
    device_id: DeviceId
    grid_id: GridId | None = None
    raised_at: EpochMillis = Field(description="When the gateway raised the alert (UTC epoch ms).")
    summary: ShortText = ""
    evidence: Evidence = Field(default_factory=dict)


class CaseReceipt(WireModel):
    schema_version: Literal[1] = 1
    case_id: str = Field(min_length=1, max_length=64)
    alert_id: UUID
    status: CaseStatus
    received_at: EpochMillis
    duplicate: bool = False


def case_path(case_id: str) -> str:
    """``/api/v1/cases/{case_id}``; refuses an id that is not a :data:`CaseId`."""
    if not _CASE_ID_RE.fullmatch(case_id):
        raise GovernancePayloadError(f"not a case id: {case_id[:80]!r}")
    return f"{CASES_PATH}/{case_id}"


def case_updates_path(case_id: str) -> str:
    """``/api/v1/cases/{case_id}/updates``, where the fleet POSTs a :class:`CaseUpdate`."""
    return f"{case_path(case_id)}/updates"


# --- fleet -> platform: withdrawing a case -------------------------------------------------------


class CaseUpdateKind(StrEnum):
    CANCELLED = "cancelled"  # command staff called it a false alarm
    CLEARED = "cleared"  # the condition went away (camera back, gateway online again)


class CaseUpdate(WireModel):
    """The fleet withdraws a case: its alert was cancelled or cleared. Idempotent by ``update_id``."""

    schema_version: Literal[1] = 1
    update_id: UUID = Field(description="Unique per update; also sent as the Idempotency-Key header.")
    case_id: CaseId
    alert_id: UUID
    kind: CaseUpdateKind
    reason: ShortText = ""
    at: EpochMillis = Field(description="When the alert was cancelled or cleared in Outpost (UTC epoch ms).")


class CaseUpdateReceipt(WireModel):
    schema_version: Literal[1] = 1
    update_id: UUID
    case_id: CaseId
    status: CaseStatus = Field(description="The case's status after the update (closed).")
    duplicate: bool = False


# --- platform -> fleet: status callbacks -----------------------------------------------------------


class CaseEvent(StrEnum):
    DISPATCHED = "dispatched"
    RESOLVED = "resolved"
    FEEDBACK = "feedback"
    CLOSED = "closed"


class CloseReason(StrEnum):
    COMPLETED = "completed"  # the loop ran to its end: resolved, rated
    WITHDRAWN = "withdrawn"  # the fleet cancelled or cleared the alert (a CaseUpdate)


class Assignee(WireModel):
    """Who the platform dispatched the case to: a grid officer (or a village duty officer without a grid)."""

    officer_id: OfficerId
    name: PersonName
    grid_id: GridId | None = Field(default=None, description="The officer's grid; None for a village duty officer.")


class _CallbackBase(WireModel):
    schema_version: Literal[1] = 1
    callback_id: UUID = Field(description="Unique per callback; a retried or duplicated callback repeats it.")
    case_id: CaseId
    alert_id: UUID
    sequence: CallbackSequence = Field(description="Per case: 1 for the first callback, one more for each next one.")
    sent_at: EpochMillis = Field(description="When the platform emitted the event (UTC epoch ms).")


class CaseDispatched(_CallbackBase):
    event: Literal[CaseEvent.DISPATCHED] = CaseEvent.DISPATCHED
    assignee: Assignee


class CaseResolved(_CallbackBase):
    event: Literal[CaseEvent.RESOLVED] = CaseEvent.RESOLVED
    note: ShortText = Field(description="The officer's resolution note.")


class CaseFeedback(_CallbackBase):
    event: Literal[CaseEvent.FEEDBACK] = CaseEvent.FEEDBACK
    rating: int = Field(ge=1, le=5, description="1 (poor) to 5 (excellent), from the reporter or a supervisor.")
    comment: ShortText = ""


class CaseClosed(_CallbackBase):
    event: Literal[CaseEvent.CLOSED] = CaseEvent.CLOSED
    reason: CloseReason


CaseCallback = Annotated[CaseDispatched | CaseResolved | CaseFeedback | CaseClosed, Field(discriminator="event")]
"""One status callback; ``event`` tells which."""

CASE_CALLBACK: Final[TypeAdapter[CaseCallback]] = TypeAdapter(CaseCallback)

STATUS_AFTER: Final[Mapping[CaseEvent, CaseStatus]] = {
    CaseEvent.DISPATCHED: CaseStatus.DISPATCHED,
    CaseEvent.RESOLVED: CaseStatus.RESOLVED,
    CaseEvent.FEEDBACK: CaseStatus.RESOLVED,
    CaseEvent.CLOSED: CaseStatus.CLOSED,
}
"""The case's status on the platform once an event happened (feedback comes on a resolved case)."""


def decode_case_callback(body: bytes | str) -> CaseCallback:
    """Parse a callback body strictly; raise :class:`~protocol.errors.GovernancePayloadError` saying why."""
    try:
        return CASE_CALLBACK.validate_json(body)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, error['loc'])) or 'body'}: {error['msg']}" for error in exc.errors()[:5]
        )
        raise GovernancePayloadError(f"invalid case callback: {problems}") from None


def encode_case_callback(callback: CaseCallback) -> bytes:
    """The JSON body the platform sends (the bytes it signs)."""
    return CASE_CALLBACK.dump_json(callback)
