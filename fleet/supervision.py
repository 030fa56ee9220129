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
