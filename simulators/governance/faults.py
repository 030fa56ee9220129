"""Faults the reference platform can be told to inject, at runtime, from tests or its admin endpoint.

Request faults apply to the platform's API (``/api/…``), first matching rule first, each for the
next ``count`` requests, for ``for_s`` seconds, or until cleared:

- ``fail``: answer ``status`` (500 by default) instead of handling the request;
- ``hang``: never answer, until the client gives up (disconnects) or the faults are cleared;
- ``delay``: answer ``delay_s`` late.

With ``after_processing`` the platform handles the request first (a case is opened) and only then
fails, hangs or delays its answer: the lost-answer case where a retry must not open a second case.

Callback faults apply to the next ``count`` callbacks the case loop sends: ``duplicate`` sends a
delivered callback a second time (same ``callback_id``); ``reorder`` holds a callback back and sends
it right after the one that follows it, so the fleet sees ``sequence`` n+1 before n.
"""

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from http import HTTPStatus
from typing import Final

from starlette.types import ASGIApp, Message, Receive, Scope, Send

logger = logging.getLogger(__name__)

FAULTY_PREFIX: Final = "/api/"


class RequestFaultKind(StrEnum):
    FAIL = "fail"
    HANG = "hang"
    DELAY = "delay"


class CallbackFaultKind(StrEnum):
    DUPLICATE = "duplicate"
    REORDER = "reorder"


@dataclass(slots=True)
class RequestFault:
    """One rule: what to do to the requests it still applies to."""

    kind: RequestFaultKind
    status: int = HTTPStatus.INTERNAL_SERVER_ERROR
    delay_s: float = 0.0
    after_processing: bool = False
    remaining: int | None = None
    """Requests it still applies to; ``None``: any number (until ``until`` or until cleared)."""
    until: float | None = None
    """Monotonic deadline; ``None``: no time limit."""
    applied: int = 0

    def active(self, now: float) -> bool:
        return (self.remaining is None or self.remaining > 0) and (self.until is None or now < self.until)


class Faults:
    """The faults currently armed; used from the platform's event loop only."""

    def __init__(self, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._monotonic = monotonic
        self._rules: list[RequestFault] = []
        self._callback_faults: Counter[CallbackFaultKind] = Counter()
        self._release = asyncio.Event()
        self.injected: Counter[str] = Counter()
        """How often each fault was applied: ``fail``, ``hang``, ``delay``, ``duplicate``, ``reorder``."""
        self.hanging = 0
        """Requests held unanswered right now."""

    # --- arming ---------------------------------------------------------------------------------

    def fail(
        self,
        count: int | None = None,
        *,
        for_s: float | None = None,
        status: int = HTTPStatus.INTERNAL_SERVER_ERROR,
        after_processing: bool = False,
    ) -> RequestFault:
        """Answer ``status`` to the next ``count`` requests / for ``for_s`` seconds / until cleared."""
        if not 400 <= status <= 599:
            raise ValueError(f"an injected failure answers 4xx or 5xx, not {status}")
        return self._arm(
            RequestFault(RequestFaultKind.FAIL, status=status, after_processing=after_processing), count, for_s
        )

    def hang(
        self, count: int | None = None, *, for_s: float | None = None, after_processing: bool = False
    ) -> RequestFault:
        """Leave requests unanswered until the client disconnects or :meth:`clear` / :meth:`release_hung`."""
        return self._arm(RequestFault(RequestFaultKind.HANG, after_processing=after_processing), count, for_s)

    def delay(
        self, delay_s: float, count: int | None = None, *, for_s: float | None = None, after_processing: bool = False
    ) -> RequestFault:
        """Answer ``delay_s`` seconds late."""
        if delay_s < 0:
            raise ValueError("a delay cannot be negative")
        rule = RequestFault(RequestFaultKind.DELAY, delay_s=delay_s, after_processing=after_processing)
        return self._arm(rule, count, for_s)

    def _arm(self, rule: RequestFault, count: int | None, for_s: float | None) -> RequestFault:
        if count is not None and count < 1:
            raise ValueError("a fault applies to at least one request")
        if for_s is not None and for_s <= 0:
            raise ValueError("a fault window must be positive")
        rule.remaining = count
        rule.until = None if for_s is None else self._monotonic() + for_s
        self._rules.append(rule)
        logger.info("armed %s fault (count %s, for %s s)", rule.kind, count, for_s)
        return rule

    def duplicate_callbacks(self, count: int = 1) -> None:
        """Send each of the next ``count`` delivered callbacks twice."""
        self._arm_callbacks(CallbackFaultKind.DUPLICATE, count)

    def reorder_callbacks(self, count: int = 1) -> None:
        """Hold each of the next ``count`` callbacks back until the one after it was sent."""
        self._arm_callbacks(CallbackFaultKind.REORDER, count)

    def _arm_callbacks(self, kind: CallbackFaultKind, count: int) -> None:
        if count < 1:
            raise ValueError("a callback fault applies to at least one callback")
        self._callback_faults[kind] += count

    def clear(self) -> None:
        """Disarm every fault and answer every hanging request."""
        self._rules.clear()
        self._callback_faults.clear()
        self.release_hung()

    def release_hung(self) -> None:
        """Answer every request held by a ``hang`` fault (503) and end every ``delay``, leaving the rules armed."""
        self._release.set()
        self._release = asyncio.Event()

    # --- reading and applying --------------------------------------------------------------------

    @property
    def request_faults(self) -> list[RequestFault]:
        """The rules still armed, in the order they apply."""
        now = self._monotonic()
        self._rules = [rule for rule in self._rules if rule.active(now)]
        return list(self._rules)

    @property
    def callback_faults(self) -> dict[CallbackFaultKind, int]:
        return {kind: count for kind, count in self._callback_faults.items() if count > 0}

    def next_request_fault(self) -> RequestFault | None:
        """The rule the next request meets (counted as applied), or ``None``."""
        for rule in self.request_faults:
            if rule.remaining is not None:
                rule.remaining -= 1
            rule.applied += 1
            self.injected[rule.kind] += 1
            return rule
        return None

    def take_callback_fault(self, kind: CallbackFaultKind) -> bool:
        """Whether the callback at hand gets ``kind`` (consuming one)."""
        if self._callback_faults[kind] <= 0:
            return False
        self._callback_faults[kind] -= 1
        self.injected[kind] += 1
        return True

    async def pause(self, delay_s: float) -> None:
        """Sleep ``delay_s`` for a ``delay`` fault, cut short by :meth:`clear` / :meth:`release_hung`."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._release.wait(), delay_s)

    async def hold(self, receive: Receive) -> bool:
        """Keep a request waiting; ``True`` when released, ``False`` when its client went away."""
        release = self._release
        self.hanging += 1
        released = asyncio.ensure_future(release.wait())
        gone = asyncio.ensure_future(_client_disconnected(receive))
        try:
            await asyncio.wait({released, gone}, return_when=asyncio.FIRST_COMPLETED)
            return released.done()
        finally:
            self.hanging -= 1
            for task in (released, gone):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task


async def _client_disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def _discard(message: Message) -> None:
    pass


def _error(status: int, error: str, detail: str) -> tuple[Message, Message]:
    body = f'{{"error": "{error}", "detail": "{detail}"}}'.encode()
    return (
        {"type": "http.response.start", "status": status, "headers": [(b"content-type", b"application/json")]},
        {"type": "http.response.body", "body": body},
    )


class InjectFaults:
    """ASGI wrapper that applies the armed request faults to the platform's API routes."""

    def __init__(self, app: ASGIApp, faults: Faults, prefix: str = FAULTY_PREFIX) -> None:
        self._app = app
        self._faults = faults
        self._prefix = prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        fault = None
        if scope["type"] == "http" and scope["path"].startswith(self._prefix):
            fault = self._faults.next_request_fault()
        if fault is None:
            await self._app(scope, receive, send)
            return
        logger.info("injecting %s into %s %s", fault.kind, scope["method"], scope["path"])
        if fault.kind is RequestFaultKind.DELAY:
            await self._delay(fault, scope, receive, send)
            return
        if fault.after_processing:
            await self._app(scope, receive, _discard)
        if fault.kind is RequestFaultKind.HANG:
            if not await self._faults.hold(receive):
                return  # the client gave up; nobody to answer
            messages = _error(HTTPStatus.SERVICE_UNAVAILABLE, "released", "the hanging request was released")
        else:
            messages = _error(fault.status, "injected_fault", f"the platform was told to answer {fault.status}")
        for message in messages:
            await send(message)

    async def _delay(self, fault: RequestFault, scope: Scope, receive: Receive, send: Send) -> None:
        if not fault.after_processing:
            await self._faults.pause(fault.delay_s)
            await self._app(scope, receive, send)
            return
        answer: list[Message] = []

        async def keep(message: Message) -> None:
            answer.append(message)

        await self._app(scope, receive, keep)
        await self._faults.pause(fault.delay_s)
        for message in answer:
            await send(message)
