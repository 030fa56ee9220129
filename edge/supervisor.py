"""Keep a long-running coroutine alive: log its failures and restart it with backoff."""

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from edge.errors import EdgeError
from protocol.reconnect import Backoff

logger = logging.getLogger(__name__)

STABLE_RUN_S = 60.0
"""A failure after a run this long starts the backoff afresh."""


async def supervise(
    name: str,
    body: Callable[[], Awaitable[None]],
    *,
    on_failure: Callable[[BaseException], None] | None = None,
    on_start: Callable[[], None] | None = None,
) -> None:
    """Run ``body`` until cancelled; whenever it fails (or returns), log it, tell ``on_failure`` and restart it."""
    backoff = Backoff(base_s=1.0, cap_s=60.0)
    while True:
        started = time.monotonic()
        if on_start is not None:
            on_start()
        try:
            await body()
        except Exception as exc:
            failure: Exception = exc
        else:  # a body that returns is as broken as one that raises, and must not spin the loop
            failure = EdgeError(f"{name} returned unexpectedly")
        if time.monotonic() - started > STABLE_RUN_S:
            backoff.reset()
        delay = backoff.next_delay()
        if on_failure is not None:
            on_failure(failure)
        if isinstance(failure, EdgeError):  # ours: the message says what is wrong, a traceback only hides it
            logger.error("%s failed: %s; restarting in %.1f s", name, failure, delay)
        else:
            logger.error("%s failed; restarting in %.1f s", name, delay, exc_info=failure)
        await asyncio.sleep(delay)
