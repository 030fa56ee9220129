"""A standalone ingest worker: one more member of the share group for the bulk channels.

Run several (``outpost fleet ingest --index N``, one index per worker, stable across
restarts) beside ``fleet run``, which owns the database schema, presence, the control channels and
case delivery. A worker subscribes to the bulk channels (telemetry, event) through the shared
subscription, writes their points in batches and notes last-seen times in the registry in batches.
Its MQTT client id is ``{broker.client_id}-{tag}-ingest-{index}`` (:func:`fleet.mqtt.client.session_prefix`):
a restarted worker resumes its own persistent session and receives whatever the broker kept for it (what it
had not acknowledged, and its share of what arrived while it was away).

Exit codes: 0 after SIGTERM/SIGINT, 3 when the broker refuses the worker's credentials.
"""

import asyncio
import logging
import signal
from collections.abc import Callable

from fleet.alerts.rules.layers import base_rules
from fleet.alerts.rules.model import same_rules_everywhere
from fleet.alerts.store import AlertStore
from fleet.db.engine import create_engine, session_factory
from fleet.enrollment.broker import DynsecProvisioner
from fleet.errors import BrokerRefusedError, FleetError, TransientError
from fleet.gateways.registry import Registry
from fleet.gc_tuning import tune_for_throughput
from fleet.ingest.dead_letters import DeadLetters
from fleet.ingest.lanes import IngestLanes
from fleet.ingest.quarantine import Quarantine
from fleet.ingest.router import IngestRouter
from fleet.ingest.status import ingest_status
from fleet.ingest.subscriptions import Lane, worker_client_id
from fleet.mqtt.client import session_prefix
from fleet.settings import FleetSettings
from fleet.supervision import supervise
from fleet.timeseries.factory import writer_for
from protocol.clock import utc_now_ms

logger = logging.getLogger(__name__)

EXIT_REFUSED = 3
_STATUS_LOG_INTERVAL_S = 60.0


class IngestWorker:
    def __init__(self, settings: FleetSettings, index: int, *, clock: Callable[[], int] = utc_now_ms) -> None:
        if index < 0:
            raise ValueError("a worker index is 0 or more")
        self.settings = settings
        self._engine = create_engine(settings.database_url)
        sessions = session_factory(self._engine)
        # No Registry.load(): that marks every gateway offline, which only the presence owner may do.
        # A worker registers (idempotently) each gateway the first time it hears from it.
        self.registry = Registry(sessions, clock)
        self.writer = writer_for(settings.timeseries)
        # Alerts are control traffic, taken by `fleet run`; a device event may end an alert's condition.
        alerts = AlertStore(
            sessions,
            clock,
            same_rules_everywhere(base_rules(settings.alerts.rules)),
        )
        self.router = IngestRouter(self.registry, None, self.writer, alerts, lambda: None, clock)
        # Only `fleet run` ends quarantines left by an earlier process: a worker starting would end live ones.
        self.quarantine = Quarantine(
            DynsecProvisioner.from_settings(settings), duration_s=settings.ingest.quarantine_s, release_leftovers=False
        )
        self.dead_letters = DeadLetters.from_settings(
            settings.ingest,
            sessions,
            clock,
            on_flood=self.quarantine.flooding if settings.ingest.quarantine_after else None,
        )
        client_id = worker_client_id(session_prefix(settings.broker), index)
        self.ingest = IngestLanes.from_settings(
            settings, {Lane.BULK: client_id}, self.router, self.writer, self.dead_letters
        )
        self.consumer = self.ingest[Lane.BULK]
        self.session = self.consumer.session

    async def run(self, stop: asyncio.Event) -> None:
        """Run until ``stop`` is set; raise BrokerRefusedError on a refused login."""
        if self.settings.ingest.share_group is None:
            logger.warning("ingest.share_group is unset: this worker receives every bulk message, not a share")
        try:
            await self.dead_letters.load()
        except TransientError as exc:  # an optimisation: a known poison would only be retried once more
            logger.warning("known dead letters not loaded (%s): a retained poison is retried before given up", exc)
        tasks = [
            asyncio.create_task(supervise("ingest", self.consumer.run), name="ingest"),
            asyncio.create_task(supervise("dead-letters", self.dead_letters.run), name="dead-letters"),
            asyncio.create_task(supervise("quarantine", self.quarantine.run), name="quarantine"),
            asyncio.create_task(supervise("timeseries-writer", self.writer.run), name="timeseries-writer"),
            asyncio.create_task(self._flush_registry(), name="registry-flusher"),
            asyncio.create_task(self._log_status(), name="status"),
        ]
        stopper = asyncio.create_task(stop.wait(), name="stop")
        try:
            await asyncio.wait([*tasks, stopper], return_when=asyncio.FIRST_COMPLETED)
            if stop.is_set():
                await self.consumer.drain(self.settings.ingest.drain_timeout_s)
        finally:
            for task in [*tasks, stopper]:
                task.cancel()
            results = await asyncio.gather(*tasks, stopper, return_exceptions=True)
            await self._close()
        for result in results:
            if isinstance(result, FleetError):
                raise result

    async def _flush_registry(self) -> None:
        while True:
            await asyncio.sleep(self.settings.registry_flush_interval_s)
            try:
                await self.registry.flush()
            except TransientError as exc:
                logger.warning("registry flush postponed: %s", exc)

    async def _log_status(self) -> None:
        while True:
            await asyncio.sleep(_STATUS_LOG_INTERVAL_S)
            status = ingest_status(self.ingest, self.router, self.writer, self.dead_letters)
            logger.info("ingest %s: %s", self.session.client_id, status.model_dump_json())

    async def _close(self) -> None:
        for what, last_write in (("time series", self.writer.flush), ("registry", self.registry.flush)):
            try:
                await last_write()
            except FleetError as exc:
                logger.error("could not write the last %s updates before stopping: %s", what, exc)
        await self.writer.sink.close()
        await self._engine.dispose()
        status = ingest_status(self.ingest, self.router, self.writer, self.dead_letters)
        logger.info("ingest worker %s stopped: %s", self.session.client_id, status.model_dump_json())


async def run_worker(settings: FleetSettings, index: int) -> int:
    """Run one worker until SIGTERM/SIGINT; the process exit code."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    worker = IngestWorker(settings, index)
    tune_for_throughput()
    try:
        await worker.run(stop)
    except BrokerRefusedError:  # logged where it stopped the worker
        return EXIT_REFUSED
    return 0
