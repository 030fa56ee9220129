"""The governance platform as a channel: a raised alert opens a case, a cancelled or cleared one withdraws it.

The case's idempotency key is its alert id (the platform answers a repeat with the case it opened); a
withdrawal's is its outbox key, sent as the :class:`~protocol.governance.CaseUpdate`'s ``update_id``.
"""

from collections.abc import Callable
from typing import Final, TypeVar
from uuid import UUID

from fleet.alerts.channels.base import Delivery
from fleet.alerts.lifecycle import Step
from fleet.alerts.outbox import Action, Route, case_route
from fleet.alerts.record import AlertRecord
from fleet.errors import GovernanceRejectedError, NothingToSendError
from fleet.governance.client import GovernanceClient
from protocol.governance import CaseRequest, CaseUpdate, CaseUpdateKind

GOVERNANCE_CHANNEL: Final = "governance"

_Source = TypeVar("_Source")
_Message = TypeVar("_Message")


def case_for(alert: AlertRecord) -> CaseRequest:
    return CaseRequest(
        alert_id=alert.id,
        kind=alert.kind,
        severity=alert.severity,
        village_id=alert.village_id,
        gateway_id=alert.gateway_id,
        device_id=alert.device_id,
        grid_id=alert.grid_id,
        raised_at=alert.raised_at_ms,
        summary=alert.summary,
        evidence=alert.evidence,
    )


def withdrawal_for(delivery: Delivery) -> CaseUpdate:
    alert = delivery.alert
    if alert.case_id is None:
        raise NothingToSendError(f"alert {alert.id} has no case to withdraw: its opening never got through")
    return CaseUpdate(
        update_id=UUID(delivery.key),
        case_id=alert.case_id,
        alert_id=alert.id,
        kind=CaseUpdateKind.CANCELLED if delivery.step == Step.CANCEL else CaseUpdateKind.CLEARED,
        reason=(delivery.reason or "")[:256],
        at=delivery.queued_at_ms,
    )


def _built(build: Callable[[_Source], _Message], source: _Source) -> _Message:
    """The message ``build`` makes of ``source``; a stored alert the contract cannot carry (a kind, a case id
    or evidence it refuses) is a refusal of this message, a dead letter, never a worker stuck on it."""
    try:
        return build(source)
    except ValueError as exc:  # pydantic's ValidationError: evidence, a case id
        raise GovernanceRejectedError(f"cannot be sent to the governance platform: {exc}"[:300]) from exc


class GovernanceChannel:
    def __init__(self, client: GovernanceClient) -> None:
        self._client = client

    @property
    def name(self) -> str:
        return GOVERNANCE_CHANNEL

    @property
    def route(self) -> Route:
        return case_route(GOVERNANCE_CHANNEL)

    async def deliver(self, delivery: Delivery) -> str | None:
        if delivery.action is Action.OPEN_CASE:
            return (await self._client.open_case(_built(case_for, delivery.alert))).case_id
        if delivery.action is Action.WITHDRAW_CASE:
            receipt = await self._client.withdraw_case(_built(withdrawal_for, delivery))
            return receipt.status
        raise NothingToSendError(f"the governance platform takes no {delivery.action} messages")

    async def close(self) -> None:
        await self._client.close()
