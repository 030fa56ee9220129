"""Sends the platform's signed status callbacks to the fleet, retrying until the fleet takes them.

A callback is delivered when the fleet answers 2xx. No answer, a timeout, 5xx, 408 or 429 is
retried with exponential backoff (for ever, or up to ``max_attempts``); any other answer is a
refusal of that callback (unknown case, out of order, bad signature …), recorded and not retried.
Each attempt is signed afresh (new timestamp) with the platform's current secret, and every attempt
and outcome is kept in a :class:`CallbackLog` tests can wait on.
"""

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final

import httpx

from protocol.governance import CaseCallback, encode_case_callback
from protocol.reconnect import Backoff
from protocol.request_signing import Secret, signature_headers

logger = logging.getLogger(__name__)

Clock = Callable[[], int]

RETRIED_STATUSES: Final = frozenset({408, 429})
_ANSWER_KEPT: Final = 300


class DeliveryOutcome(StrEnum):
    DELIVERED = "delivered"  # the fleet answered 2xx
    REFUSED = "refused"  # the fleet answered a 4xx other than 408/429: not retried
    ABANDONED = "abandoned"  # max_attempts reached, or the platform stopped first


@dataclass(frozen=True, slots=True)
class CallbackAttempt:
    callback: CaseCallback
    attempt: int
    status: int | None
    """The fleet's HTTP status; ``None`` when it did not answer (connection refused, timeout)."""
    detail: str
    at_ms: int
    repeat: bool
    """Part of an injected duplicate: the same callback sent again after it was delivered."""


@dataclass(frozen=True, slots=True)
class CallbackDelivery:
    callback: CaseCallback
    outcome: DeliveryOutcome
    attempts: int
    status: int | None
    detail: str
    repeat: bool


@dataclass
class CallbackLog:
    """Every callback attempt and every finished delivery, in order; one event loop writes it."""

    attempts: list[CallbackAttempt] = field(default_factory=list)
    deliveries: list[CallbackDelivery] = field(default_factory=list)
    _changed: asyncio.Event = field(default_factory=asyncio.Event, repr=False)

    def add_attempt(self, attempt: CallbackAttempt) -> None:
        self.attempts.append(attempt)
        self._changed.set()

    def add_delivery(self, delivery: CallbackDelivery) -> None:
        self.deliveries.append(delivery)
        self._changed.set()

    def with_outcome(self, outcome: DeliveryOutcome) -> list[CallbackDelivery]:
        return [d for d in self.deliveries if d.outcome is outcome]

    def for_case(self, case_id: str) -> list[CallbackDelivery]:
        return [d for d in self.deliveries if d.callback.case_id == case_id]

    async def wait_for(self, predicate: Callable[["CallbackLog"], bool]) -> None:
        """Return once ``predicate(self)`` holds, re-checking after every attempt and delivery."""
        while not predicate(self):
            self._changed.clear()
            await self._changed.wait()


class CallbackSender:
    """POSTs callbacks to the fleet's callback URL (settable later: the fleet may start after the platform)."""

    def __init__(
        self,
        log: CallbackLog,
        *,
        secret: Secret | None,
        url: str | None = None,
        timeout_s: float = 5.0,
        backoff: Callable[[], Backoff] = lambda: Backoff(base_s=0.5, cap_s=30.0),
        max_attempts: int | None = None,
        clock: Clock,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if max_attempts is not None and max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self._log = log
        self._secret = secret
        self._backoff = backoff
        self._max_attempts = max_attempts
        self._clock = clock
        self._http = httpx.AsyncClient(timeout=timeout_s, transport=transport)
        self._url: str | None = None
        self._url_known = asyncio.Event()
        if url is not None:
            self.set_url(url)

    @property
    def url(self) -> str | None:
        return self._url

    def set_url(self, url: str) -> None:
        """Where callbacks go from now on (the full URL, e.g. ``http://fleet:8000/api/v1/governance/callbacks``)."""
        httpx.URL(url)  # refuses a malformed URL here rather than at the first callback
        self._url = url
        self._url_known.set()

    async def deliver(
        self, callback: CaseCallback, *, repeat: bool = False, tried: asyncio.Event | None = None
    ) -> CallbackDelivery:
        """Send ``callback`` until the fleet takes or refuses it (or attempts run out); ``tried`` is set once
        the first attempt was answered (or went unanswered)."""
        await self._url_known.wait()
        body = encode_case_callback(callback)
        backoff = self._backoff()
        try:
            return await self._attempts(callback, body, backoff, repeat, tried)
        except asyncio.CancelledError:
            self._log.add_delivery(
                CallbackDelivery(callback, DeliveryOutcome.ABANDONED, 0, None, "the platform stopped", repeat)
            )
            raise

    async def _attempts(
        self, callback: CaseCallback, body: bytes, backoff: Backoff, repeat: bool, tried: asyncio.Event | None
    ) -> CallbackDelivery:
        attempt = 0
        while True:
            attempt += 1
            status, detail = await self._post(callback, body)
            self._log.add_attempt(CallbackAttempt(callback, attempt, status, detail, self._clock(), repeat))
            if tried is not None:
                tried.set()
            outcome = _outcome_of(status)
            if outcome is None and self._max_attempts is not None and attempt >= self._max_attempts:
                outcome = DeliveryOutcome.ABANDONED
            if outcome is not None:
                delivery = CallbackDelivery(callback, outcome, attempt, status, detail, repeat)
                self._log.add_delivery(delivery)
                log = logger.info if outcome is DeliveryOutcome.DELIVERED else logger.warning
                log(
                    "callback %s #%d of %s %s: %s", callback.event, callback.sequence, callback.case_id, outcome, detail
                )
                return delivery
            delay = backoff.next_delay()
            logger.info(
                "callback %s of %s not taken (%s); retrying in %.2f s", callback.event, callback.case_id, detail, delay
            )
            await asyncio.sleep(delay)

    async def _post(self, callback: CaseCallback, body: bytes) -> tuple[int | None, str]:
        assert self._url is not None
        url = httpx.URL(self._url)
        headers = {"Content-Type": "application/json"}
        if self._secret is not None:
            target = url.raw_path.decode("ascii")
            headers |= signature_headers(self._secret, "POST", target, self._clock(), body)
        try:
            response = await self._http.post(url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            return None, f"no answer: {exc!r}"[:_ANSWER_KEPT]
        return response.status_code, f"{response.status_code} {response.text}"[:_ANSWER_KEPT]

    async def close(self) -> None:
        await self._http.aclose()


def _outcome_of(status: int | None) -> DeliveryOutcome | None:
    """The final outcome an answer means, or ``None`` when it is worth retrying."""
    if status is None or status >= 500 or status in RETRIED_STATUSES:
        return None
    if 200 <= status < 300:
        return DeliveryOutcome.DELIVERED
    if 400 <= status < 500:
        return DeliveryOutcome.REFUSED
    return None  # 1xx/3xx: not a 2xx, so not taken
