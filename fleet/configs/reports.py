"""Gateways' config reports, recorded in batches off the ingest loop.

A config push reaches every gateway at once, and every gateway answers within a second or two: 2,000
reports, each a write transaction when recorded one by one (about 2.3 ms on SQLite, ~440 a second), in the
one consumer that also takes every heartbeat. The reports queued there, the heartbeats behind them waited
past their timeout and gateways were marked offline. So the router hands each report to
:meth:`ReportRecorder.add`, which returns at once with a completion; :meth:`ReportRecorder.run` stores
whatever has arrived in one transaction (at most ``max_batch``) and completes those reports, and only
then is each acknowledged to the broker: nothing is lost if the fleet stops in between. While the
database does not answer, the batch is kept and retried with backoff (the broker keeps what is not
acknowledged). A batch the database refuses for good is logged and counted and its reports are
acknowledged all the same: they would be refused again, and an unacknowledged message would hold back the
acknowledgement of every message after it.
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence

from fleet.errors import TransientError
from protocol.messages import ConfigReported
from protocol.reconnect import Backoff

logger = logging.getLogger(__name__)

StoreReports = Callable[[Sequence[ConfigReported]], Awaitable[None]]
"""Stores a batch of reports in one transaction (:meth:`fleet.configs.push.ConfigPush.record_reports`)."""


class ReportRecorder:
    def __init__(self, store: StoreReports, *, max_batch: int = 500, backoff: Backoff | None = None) -> None:
        self._store = store
        self._max_batch = max_batch
        self._backoff = backoff or Backoff(base_s=0.1, cap_s=5.0)
        self._waiting: list[tuple[ConfigReported, asyncio.Future[None]]] = []
        self._arrived = asyncio.Event()
        self.recorded = 0
        self.batches = 0
        self.refused = 0

    def add(self, village_id: str, report: ConfigReported) -> "asyncio.Future[None]":
        """Queue ``report``; the future completes once it is stored (the router's ``on_config_reported``)."""
        del village_id  # the gateway's row is keyed by its id alone
        completion: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append((report, completion))
        self._arrived.set()
        return completion

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    async def run(self) -> None:
        """Store what arrived, batch after batch, until cancelled."""
        while True:
            await self._arrived.wait()
            self._arrived.clear()
            while self._waiting:
                batch, self._waiting = self._waiting[: self._max_batch], self._waiting[self._max_batch :]
                await self._store_until_done(batch)

    async def _store_until_done(self, batch: list[tuple[ConfigReported, "asyncio.Future[None]"]]) -> None:
        batch = [(report, completion) for report, completion in batch if not completion.done()]
        try:
            await self._store_retrying([report for report, _ in batch])
        except Exception as exc:  # refused for good (or nobody expected it): find which reports it was
            logger.error("a batch of %d config reports was refused (%s); storing them one by one", len(batch), exc)
            await self._store_one_by_one(batch)
        else:
            self.recorded += len(batch)
            self.batches += 1
            for _, completion in batch:
                if not completion.done():
                    completion.set_result(None)

    async def _store_retrying(self, reports: list[ConfigReported]) -> None:
        """Store ``reports`` in one transaction, waiting while the database is away; raise a refusal."""
        while True:
            try:
                await self._store(reports)
            except TransientError as exc:
                delay = self._backoff.next_delay()
                logger.warning("%d config reports wait to be stored (%s); retrying in %.1f s", len(reports), exc, delay)
                await asyncio.sleep(delay)
            else:
                self._backoff.reset()
                return

    async def _store_one_by_one(self, batch: list[tuple[ConfigReported, "asyncio.Future[None]"]]) -> None:
        """Store each report alone: the ones refused fail their completion (ingest dead-letters their message),
        the others are stored. Every completion is settled whatever happens."""
        try:
            for report, completion in batch:
                try:
                    await self._store_retrying([report])
                except Exception as exc:
                    self.refused += 1
                    if not completion.done():
                        completion.set_exception(exc)
                else:
                    self.recorded += 1
                    if not completion.done():
                        completion.set_result(None)
        finally:
            for _, completion in batch:
                if not completion.done():
                    completion.cancel()  # stopping: the message stays unacknowledged, the broker sends it again
