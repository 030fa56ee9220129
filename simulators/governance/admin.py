"""The simulator's own admin endpoints (under ``/_sim``, bearer token, never signed, never faulted).

They let a test or an engineer with curl drive the platform at runtime: arm and clear faults, point
the callbacks at the fleet once it listens, and read what the platform received and sent. They are
not part of the governance contract; a real platform has nothing like them.
"""

from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import Final

from fastapi import APIRouter, Depends, Response
from pydantic import BaseModel, ConfigDict, Field

from protocol.governance import CaseCallback
from simulators.governance.callbacks import CallbackLog, DeliveryOutcome
from simulators.governance.case_loop import CaseLoop
from simulators.governance.faults import CallbackFaultKind, Faults, RequestFaultKind
from simulators.governance.request_log import RequestLog

ADMIN_PREFIX: Final = "/_sim"


class _Order(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class RequestFaultOrder(_Order):
    """Arm a request fault; without ``count`` or ``for_s`` it lasts until cleared."""

    kind: RequestFaultKind
    count: int | None = Field(default=None, ge=1)
    for_s: float | None = Field(default=None, gt=0)
    status: int = Field(default=500, ge=400, le=599, description="For fail: the status to answer.")
    delay_s: float = Field(default=0.0, ge=0, description="For delay: how late to answer.")
    after_processing: bool = False


class CallbackFaultOrder(_Order):
    kind: CallbackFaultKind
    count: int = Field(default=1, ge=1)


class CallbackUrl(_Order):
    url: str = Field(min_length=1, max_length=2048)


class RequestFaultView(BaseModel):
    kind: RequestFaultKind
    status: int
    delay_s: float
    after_processing: bool
    remaining: int | None
    applied: int


class FaultState(BaseModel):
    request_faults: list[RequestFaultView]
    callback_faults: dict[CallbackFaultKind, int]
    injected: dict[str, int]
    hanging: int


class RequestView(BaseModel):
    number: int
    method: str
    target: str
    headers: list[tuple[str, str]]
    body: str
    received_at_ms: int
    status: int | None
    error: str | None


class DeliveryView(BaseModel):
    callback: CaseCallback
    outcome: DeliveryOutcome
    attempts: int
    status: int | None
    detail: str
    repeat: bool


def _state(faults: Faults) -> FaultState:
    return FaultState(
        request_faults=[
            RequestFaultView(
                kind=rule.kind,
                status=rule.status,
                delay_s=rule.delay_s,
                after_processing=rule.after_processing,
                remaining=rule.remaining,
                applied=rule.applied,
            )
            for rule in faults.request_faults
        ],
        callback_faults=faults.callback_faults,
        injected=dict(faults.injected),
        hanging=faults.hanging,
    )


def admin_router(
    require_bearer: Callable[..., Awaitable[None]],
    *,
    faults: Faults | None,
    request_log: RequestLog | None,
    case_loop: CaseLoop | None,
    callbacks: CallbackLog | None,
) -> APIRouter:
    router = APIRouter(prefix=ADMIN_PREFIX, tags=["simulator"], dependencies=[Depends(require_bearer)])

    if faults is not None:
        armed = faults

        @router.get("/faults")
        async def fault_state() -> FaultState:
            """The faults armed now and how often each was injected."""
            return _state(armed)

        @router.post("/faults/requests", status_code=HTTPStatus.CREATED)
        async def arm_request_fault(order: RequestFaultOrder) -> FaultState:
            if order.kind is RequestFaultKind.FAIL:
                armed.fail(order.count, for_s=order.for_s, status=order.status, after_processing=order.after_processing)
            elif order.kind is RequestFaultKind.HANG:
                armed.hang(order.count, for_s=order.for_s, after_processing=order.after_processing)
            else:
                armed.delay(order.delay_s, order.count, for_s=order.for_s, after_processing=order.after_processing)
            return _state(armed)

        @router.post("/faults/callbacks", status_code=HTTPStatus.CREATED)
        async def arm_callback_fault(order: CallbackFaultOrder) -> FaultState:
            if order.kind is CallbackFaultKind.DUPLICATE:
                armed.duplicate_callbacks(order.count)
            else:
                armed.reorder_callbacks(order.count)
            return _state(armed)

        @router.delete("/faults")
        async def clear_faults() -> FaultState:
            """Disarm everything and answer every hanging request."""
            armed.clear()
            return _state(armed)

    if case_loop is not None:
        loop = case_loop

        @router.put("/callback-url", status_code=HTTPStatus.NO_CONTENT)
        async def set_callback_url(body: CallbackUrl) -> Response:
            """Where the case loop sends its callbacks (the fleet's full callback URL)."""
            loop.sender.set_url(body.url)
            return Response(status_code=HTTPStatus.NO_CONTENT)

    if request_log is not None:
        log = request_log

        @router.get("/requests")
        async def received_requests() -> list[RequestView]:
            """Every request the API received, as received (bodies as text), with its answer."""
            return [
                RequestView(
                    number=entry.number,
                    method=entry.method,
                    target=entry.target,
                    headers=list(entry.headers),
                    body=entry.body.decode("utf-8", errors="replace"),
                    received_at_ms=entry.received_at_ms,
                    status=entry.status,
                    error=entry.error,
                )
                for entry in log.entries
            ]

    if callbacks is not None:
        sent = callbacks

        @router.get("/callbacks")
        async def callback_deliveries() -> list[DeliveryView]:
            """Every finished callback delivery: delivered, refused or abandoned."""
            return [
                DeliveryView(
                    callback=d.callback,
                    outcome=d.outcome,
                    attempts=d.attempts,
                    status=d.status,
                    detail=d.detail,
                    repeat=d.repeat,
                )
                for d in sent.deliveries
            ]

    return router
