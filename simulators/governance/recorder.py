"""The platform's case ledger: one case per alert, every raw request kept, duplicates counted.

The ledger is idempotent on the alert id, as the real platform is on the ``Idempotency-Key``
header: a repeated request returns the case opened the first time and only bumps its
``duplicate_requests`` count. Every request is also kept verbatim, in arrival order, so tests can
assert that the fleet raised each case exactly once and retried no more than it should.
"""

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Final
from uuid import UUID

from protocol.clock import utc_now_ms
from protocol.governance import CaseReceipt, CaseRequest, CaseStatus

logger = logging.getLogger(__name__)

Clock = Callable[[], int]
"""Returns the current UTC time in epoch milliseconds."""

CASE_ID_PREFIX: Final = "CASE-"


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

    @property
    def alert_id(self) -> UUID:
        return self.request.alert_id

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

    def receive(self, request: CaseRequest) -> CaseReceipt:
        """Open a case for ``request``'s alert, or count a repeat and return the existing case."""
        with self._lock:
            self._requests.append(request)
            case_id = self._case_for_alert.get(request.alert_id)
            if case_id is None:
                return self._open(request).receipt(duplicate=False)
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
        return case.receipt(duplicate=True)

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
    def duplicate_requests(self) -> int:
        """How many requests repeated an alert that already had a case."""
        with self._lock:
            return len(self._requests) - len(self._cases)

    def __len__(self) -> int:
        with self._lock:
            return len(self._cases)
