"""Matching the plugin's answers to the commands awaiting them, by their ``correlationData``.

Every administrator subscribed to the response topic receives every answer, so ids are unique per
control session (a random prefix) and answers to ids this session is not awaiting are ignored.
"""

import asyncio
import itertools
import logging
import uuid
from collections.abc import Iterable

from fleet.broker_access.responses import CommandResponse

logger = logging.getLogger(__name__)


class PendingResponses:
    """The futures of the commands sent and not yet answered, keyed by correlation id."""

    def __init__(self, prefix: str | None = None) -> None:
        self._prefix = prefix if prefix is not None else uuid.uuid4().hex
        self._counter = itertools.count(1)
        self._pending: dict[str, asyncio.Future[CommandResponse]] = {}
        self._failure: BaseException | None = None

    def __len__(self) -> int:
        return len(self._pending)

    def expect(self, count: int) -> dict[str, "asyncio.Future[CommandResponse]"]:
        """New correlation ids, in order, each with the future its answer will complete.

        Raises the exception given to :meth:`fail_all` once the session has failed.
        """
        if self._failure is not None:
            raise self._failure
        loop = asyncio.get_running_loop()
        futures = {f"{self._prefix}-{next(self._counter)}": loop.create_future() for _ in range(count)}
        self._pending.update(futures)
        return futures

    def resolve(self, responses: Iterable[CommandResponse]) -> int:
        """Complete the futures these answers are for; return how many were ours."""
        resolved = 0
        for response in responses:
            future = self._pending.pop(response.correlation_data, None) if response.correlation_data else None
            if future is None:
                if response.correlation_data is None and response.error is not None:
                    # The plugin could not read a whole message (bad JSON): nothing says whose it was.
                    logger.warning("the broker refused a control message: %s", response.error)
                continue
            if not future.done():
                future.set_result(response)
                resolved += 1
        return resolved

    def discard(self, correlation_ids: Iterable[str]) -> None:
        """Stop awaiting these ids (their caller gave up); a late answer is then ignored."""
        for correlation_id in correlation_ids:
            future = self._pending.pop(correlation_id, None)
            if future is not None and not future.done():
                future.cancel()

    def fail_all(self, exc: BaseException) -> None:
        """Fail every awaited answer, and every later :meth:`expect`, with ``exc`` (the session is over)."""
        self._failure = exc
        pending, self._pending = self._pending, {}
        for future in pending.values():
            if not future.done():
                future.set_exception(exc)
