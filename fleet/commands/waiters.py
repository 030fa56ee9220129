"""In-process waiters: an API call that asked to wait is woken when its command's outcome is stored.

Only the ``fleet run`` process takes command responses (a control channel), and the API runs in it,
so a future per waiting call is enough; the outcome itself is always read back from the database.
"""

import asyncio
from collections.abc import Iterable


class Waiters:
    def __init__(self) -> None:
        self._futures: dict[str, set[asyncio.Future[None]]] = {}

    def add(self, request_id: str) -> "asyncio.Future[None]":
        """A future completed by the next :meth:`wake` of ``request_id``; give it back with :meth:`discard`."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._futures.setdefault(request_id, set()).add(future)
        return future

    def discard(self, request_id: str, future: "asyncio.Future[None]") -> None:
        futures = self._futures.get(request_id)
        if futures is not None:
            futures.discard(future)
            if not futures:
                del self._futures[request_id]

    def wake(self, request_ids: Iterable[str]) -> None:
        for request_id in request_ids:
            for future in self._futures.pop(request_id, ()):
                if not future.done():
                    future.set_result(None)

    def __len__(self) -> int:
        return sum(len(futures) for futures in self._futures.values())
