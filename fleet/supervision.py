"""Keeping a long-running task alive: restart it with backoff after a failure, stop on a permanent one."""

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Final

from fleet.errors import BrokerRefusedError
from protocol.reconnect import Backoff

logger = logging.getLogger(__name__)

PERMANENT: Final = (BrokerRefusedError,)
_STABLE_RUN_S: Final = 60.0  # a failure after a run this long starts the backoff afresh


async def supervise(name: str, body: Callable[[], Awaitable[None]]) -> None:
    """Run ``body`` again whenever it fails; a :data:`PERMANENT` failure is logged and raised."""
    backoff = Backoff(base_s=1.0, cap_s=60.0)
    while True:
        started = time.monotonic()
        try:
            await body()
        except PERMANENT:
            logger.critical("%s stopped for good", name, exc_info=True)
            raise
        except Exception:
            if time.monotonic() - started > _STABLE_RUN_S:
                backoff.reset()
            delay = backoff.next_delay()
            logger.exception("%s failed; restarting in %.1f s", name, delay)
            await asyncio.sleep(delay)


async def cancel_and_wait(tasks: list["asyncio.Task[None]"], grace_s: float) -> list[BaseException | None]:
    """Cancel ``tasks`` and wait for them, at most ``grace_s``: the outcome of each (its exception, None for
    a clean end or a cancellation). A task still running then is logged with where it is stuck, and left
    behind, so that stopping always ends and says why it was slow."""
    for task in tasks:
        task.cancel()
    if tasks:
        await asyncio.wait(tasks, timeout=grace_s)
    outcomes: list[BaseException | None] = []
    for task in tasks:
        if not task.done():
            frames = "; ".join(f"{f.f_code.co_filename}:{f.f_lineno} {f.f_code.co_name}" for f in task.get_stack())
            logger.error(
                "task %s did not stop within %.0f s of its cancellation, at %s", task.get_name(), grace_s, frames
            )
            outcomes.append(None)
        elif task.cancelled():
            outcomes.append(None)
        else:
            outcomes.append(task.exception())
    return outcomes
