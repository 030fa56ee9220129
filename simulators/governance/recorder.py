"""The platform's case ledger: one case per alert, every accepted request kept, duplicates counted,
and each case's way through the loop (dispatched, resolved, rated, closed) with the callbacks it made.

The ledger is idempotent on the alert id, as the real platform is on the ``Idempotency-Key``
header: a repeated request returns the case opened the first time and only bumps its
``duplicate_requests`` count. Every request is also kept verbatim, in arrival order, so tests can
assert that the fleet raised each case exactly once and retried no more than it should. Case updates
(withdrawals) are idempotent on their ``update_id`` the same way.

The ledger is also where a case's callbacks are made: each step of the loop checks the transition is
legal and numbers the callback (``sequence``), so the order is the ledger's, whatever sends them.
"""

import logging
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Final, TypedDict
from uuid import UUID

from protocol.clock import utc_now_ms
from protocol.governance import (
    Assignee,
    CaseCallback,
    CaseClosed,
    CaseDispatched,
    CaseFeedback,
    CaseReceipt,
    CaseRequest,
    CaseResolved,
    CaseStatus,
    CaseUpdate,
    CaseUpdateReceipt,
    CloseReason,
)

logger = logging.getLogger(__name__)

Clock = Callable[[], int]
"""Returns the current UTC time in epoch milliseconds."""

CASE_ID_PREFIX: Final = "CASE-"


class _CallbackFields(TypedDict):
    """What every callback carries besides its event's own fields."""

    callback_id: UUID
    case_id: str
    alert_id: UUID
    sequence: int
    sent_at: int


class UnknownCaseError(LookupError):
    """No case has this id."""


class CaseTransitionError(ValueError):
    """The step does not follow from the case's status (e.g. resolving a case nobody was dispatched to)."""


class CaseUpdateMismatchError(ValueError):
    """A case update names a different alert than the case, or reuses an update id for another case."""


def format_case_id(number: int) -> str:
    """The platform's id for its ``number``-th case (1-based): ``CASE-000001``."""
    if number < 1:
        raise ValueError("case numbers start at 1")
    return f"{CASE_ID_PREFIX}{number:06d}"


@dataclass(frozen=True, slots=True)
class RecordedCase:
    """A case as the platform holds it: the first request for an alert and what happened since."""

    case_id: str
    request: CaseRequest
    received_at_ms: int
    duplicate_requests: int = 0
    status: CaseStatus = CaseStatus.RECEIVED
    events: tuple[CaseCallback, ...] = ()
    """Every callback the case made, in sequence order (whether or not it reached the fleet)."""
    updates: tuple[CaseUpdate, ...] = ()
    """Every distinct update (withdrawal) the fleet sent, first one first."""

    @property
    def alert_id(self) -> UUID:
        return self.request.alert_id

    @property
    def assignee(self) -> Assignee | None:
        return next((e.assignee for e in self.events if isinstance(e, CaseDispatched)), None)

    @property
    def resolution_note(self) -> str | None:
        return next((e.note for e in self.events if isinstance(e, CaseResolved)), None)

    @property
    def feedback(self) -> CaseFeedback | None:
        return next((e for e in self.events if isinstance(e, CaseFeedback)), None)

    @property
    def close_reason(self) -> CloseReason | None:
        return next((e.reason for e in self.events if isinstance(e, CaseClosed)), None)

    def receipt(self, *, duplicate: bool) -> CaseReceipt:
        """The platform's answer for this case; ``duplicate`` marks a repeated request."""
        return CaseReceipt(
            case_id=self.case_id,
            alert_id=self.alert_id,
            status=self.status,
            received_at=self.received_at_ms,
            duplicate=duplicate,
        )


class CaseLedger:
    """Every case the platform received, in order; safe to share between threads."""

    def __init__(self, clock: Clock = utc_now_ms) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._cases: dict[str, RecordedCase] = {}
        self._case_for_alert: dict[UUID, str] = {}
        self._requests: list[CaseRequest] = []
        self._update_receipts: dict[UUID, CaseUpdateReceipt] = {}
        self._update_requests: list[CaseUpdate] = []

    def receive(self, request: CaseRequest) -> CaseReceipt:
        """Open a case for ``request``'s alert, or count a repeat and return the existing case."""
        case, new = self.open(request)
        return case.receipt(duplicate=not new)

    def open(self, request: CaseRequest) -> tuple[RecordedCase, bool]:
        """The case for ``request``'s alert and whether it is new (a repeat only counts as a duplicate)."""
        with self._lock:
            self._requests.append(request)
            case_id = self._case_for_alert.get(request.alert_id)
            if case_id is None:
                return self._open(request), True
            case = self._cases[case_id]
            case = replace(case, duplicate_requests=case.duplicate_requests + 1)
            self._cases[case_id] = case
        if request != case.request:
            logger.warning(
                "alert %s was sent again with a different body; %s keeps the first one",
                request.alert_id,
                case_id,
            )
        logger.info(
            "duplicate request for alert %s -> %s (%d duplicates)",
            request.alert_id,
            case_id,
            case.duplicate_requests,
        )
        return case, False

    def _open(self, request: CaseRequest) -> RecordedCase:
        case = RecordedCase(format_case_id(len(self._cases) + 1), request, self._clock())
        self._cases[case.case_id] = case
        self._case_for_alert[request.alert_id] = case.case_id
        logger.info(
            "opened %s for %s alert %s from gateway %s",
            case.case_id,
            request.kind,
            request.alert_id,
            request.gateway_id,
        )
        return case

    # --- the loop: each step checks its transition and makes the numbered callback ---------------

    def dispatch(self, case_id: str, assignee: Assignee) -> CaseDispatched:
        """Assign a received case to an officer."""
        with self._lock:
            case = self._in_status(case_id, CaseStatus.RECEIVED, "dispatch")
            event = CaseDispatched(assignee=assignee, **self._callback_fields(case))
            self._record(case, event, CaseStatus.DISPATCHED)
        return event

    def resolve(self, case_id: str, note: str) -> CaseResolved:
        """The officer resolved a dispatched case."""
        with self._lock:
            case = self._in_status(case_id, CaseStatus.DISPATCHED, "resolve")
            event = CaseResolved(note=note, **self._callback_fields(case))
            self._record(case, event, CaseStatus.RESOLVED)
        return event

    def rate(self, case_id: str, rating: int, comment: str) -> CaseFeedback:
        """The reporter or a supervisor rated a resolved case (once)."""
        with self._lock:
            case = self._in_status(case_id, CaseStatus.RESOLVED, "rate")
            if case.feedback is not None:
                raise CaseTransitionError(f"{case_id} was already rated")
            event = CaseFeedback(rating=rating, comment=comment, **self._callback_fields(case))
            self._record(case, event, CaseStatus.RESOLVED)
        return event

    def close(self, case_id: str, reason: CloseReason) -> CaseClosed:
        """Close a case: ``completed`` once resolved, ``withdrawn`` from any open status."""
        with self._lock:
            case = self._get(case_id)
            if case.status is CaseStatus.CLOSED:
                raise CaseTransitionError(f"{case_id} is already closed")
            if reason is CloseReason.COMPLETED and case.status is not CaseStatus.RESOLVED:
                raise CaseTransitionError(f"{case_id} cannot be completed while {case.status}")
            event = CaseClosed(reason=reason, **self._callback_fields(case))
            self._record(case, event, CaseStatus.CLOSED)
        return event

    def update(self, update: CaseUpdate) -> tuple[CaseUpdateReceipt, CaseClosed | None]:
        """Apply the fleet's withdrawal: close the case unless it is closed; idempotent on ``update_id``.

        Returns the receipt and, when this update closed the case, the ``closed`` callback to send.
        """
        with self._lock:
            self._update_requests.append(update)
            seen = self._update_receipts.get(update.update_id)
            if seen is not None:
                if seen.case_id != update.case_id:
                    raise CaseUpdateMismatchError(f"update {update.update_id} was already used for {seen.case_id}")
                return seen.model_copy(update={"duplicate": True}), None
            case = self._get(update.case_id)
            if case.alert_id != update.alert_id:
                raise CaseUpdateMismatchError(
                    f"{case.case_id} is the case of alert {case.alert_id}, not {update.alert_id}"
                )
            case = replace(case, updates=(*case.updates, update))
            self._cases[case.case_id] = case
            closed: CaseClosed | None = None
            if case.status is not CaseStatus.CLOSED:
                closed = CaseClosed(reason=CloseReason.WITHDRAWN, **self._callback_fields(case))
                self._record(case, closed, CaseStatus.CLOSED)
            receipt = CaseUpdateReceipt(update_id=update.update_id, case_id=case.case_id, status=CaseStatus.CLOSED)
            self._update_receipts[update.update_id] = receipt
        logger.info("%s %s by the fleet: %s", case.case_id, update.kind, update.reason or "no reason given")
        return receipt, closed

    def _get(self, case_id: str) -> RecordedCase:
        case = self._cases.get(case_id)
        if case is None:
            raise UnknownCaseError(f"no case {case_id[:64]!r}")
        return case

    def _in_status(self, case_id: str, status: CaseStatus, step: str) -> RecordedCase:
        case = self._get(case_id)
        if case.status is not status:
            raise CaseTransitionError(f"cannot {step} {case_id} while it is {case.status}")
        return case

    def _callback_fields(self, case: RecordedCase) -> "_CallbackFields":
        return _CallbackFields(
            callback_id=uuid.uuid4(),
            case_id=case.case_id,
            alert_id=case.alert_id,
            sequence=len(case.events) + 1,
            sent_at=self._clock(),
        )

    def _record(self, case: RecordedCase, event: CaseCallback, status: CaseStatus) -> None:
        current = self._cases[case.case_id]
        self._cases[case.case_id] = replace(current, status=status, events=(*current.events, event))
        logger.info("%s %s (callback %d)", case.case_id, event.event, event.sequence)

    # --- reading ----------------------------------------------------------------------------------

    def get(self, case_id: str) -> RecordedCase | None:
        """The case with ``case_id``, or ``None`` if the platform never opened it."""
        with self._lock:
            return self._cases.get(case_id)

    def for_alert(self, alert_id: UUID) -> RecordedCase | None:
        """The case opened for ``alert_id``, or ``None``."""
        with self._lock:
            case_id = self._case_for_alert.get(alert_id)
            return None if case_id is None else self._cases[case_id]

    @property
    def cases(self) -> list[RecordedCase]:
        """Every case, in the order it was opened (a snapshot)."""
        with self._lock:
            return list(self._cases.values())

    @property
    def requests(self) -> list[CaseRequest]:
        """Every request received, duplicates included, in arrival order (a snapshot)."""
        with self._lock:
            return list(self._requests)

    @property
    def update_requests(self) -> list[CaseUpdate]:
        """Every case update received, repeats included, in arrival order (a snapshot)."""
        with self._lock:
            return list(self._update_requests)

    @property
    def duplicate_requests(self) -> int:
        """How many requests repeated an alert that already had a case."""
        with self._lock:
            return len(self._requests) - len(self._cases)

    def __len__(self) -> int:
        with self._lock:
            return len(self._cases)
