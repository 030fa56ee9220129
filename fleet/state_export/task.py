"""The state export's periodic task: every ``interval_s`` the gauges, then every alert step not yet written.

The points go through the fleet's batching writer like the gateways' and each round waits until they
are written before the next (and before the alert-step watermark moves), so the export never holds more
than one round in the writer's buffer, and only after there was room: while the time-series server is
away ingest's back-pressure is not made worse, and the gauges of the rounds meanwhile are not written (a
gap in their history, not a flood after it). Database trouble (a :class:`~fleet.errors.TransientError`)
postpones a round with backoff; anything else fails the task, which the service restarts.
"""

import asyncio
import logging
from collections.abc import Callable, Sequence

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from fleet.api.schemas import HealthReport
from fleet.errors import TransientError
from fleet.settings import FleetSettings
from fleet.state_export.alert_steps import AlertSteps
from fleet.state_export.cooperative import rendered
from fleet.state_export.gauges import GaugeReader
from fleet.state_export.watermark import Watermark, WatermarkFile, default_watermark_path
from fleet.timeseries.points import Point
from fleet.timeseries.writer import BatchingWriter
from protocol.reconnect import Backoff

logger = logging.getLogger(__name__)


class StateExport:
    def __init__(
        self,
        gauges: GaugeReader,
        steps: AlertSteps,
        watermark: WatermarkFile,
        writer: BatchingWriter,
        clock: Callable[[], int],
        interval_s: float,
        *,
        backoff: Backoff | None = None,
    ) -> None:
        self._gauges = gauges
        self._steps = steps
        self._watermark = watermark
        self._writer = writer
        self._clock = clock
        self._interval_s = interval_s
        self._settled: Watermark | None = None  # read from the file (and checked) by the first round
        self._backoff = backoff or Backoff(base_s=1.0, cap_s=60.0)
        self.rounds = 0
        self.gauge_points = 0
        self.step_points = 0

    @classmethod
    def from_settings(
        cls,
        settings: FleetSettings,
        sessions: async_sessionmaker[AsyncSession],
        writer: BatchingWriter,
        health: Callable[[], HealthReport],
        clock: Callable[[], int],
    ) -> "StateExport":
        export = settings.state_export
        instance = export.instance or settings.broker.client_id
        path = export.watermark_file or default_watermark_path(settings.database_url)
        return cls(
            GaugeReader(sessions, health, instance),
            AlertSteps(sessions, clock),
            WatermarkFile(path),
            writer,
            clock,
            export.interval_s,
        )

    @property
    def settled(self) -> Watermark | None:
        """The last alert step known written (None before the first round read the kept one)."""
        return self._settled

    async def run(self) -> None:
        while True:
            try:
                await self.export_once()
            except TransientError as exc:
                delay = self._backoff.next_delay()
                logger.warning("state export postponed %.1f s: %s", delay, exc)
                await asyncio.sleep(delay)
                continue
            self._backoff.reset()
            await asyncio.sleep(self._interval_s)

    async def export_once(self) -> None:
        """One round: the gauges now, then every alert step after the watermark, in batches, each written
        before the watermark is kept past it."""
        if self._settled is None:
            self._settled = await self._steps.verify(await self._watermark.load())
        gauges = await self._gauges.read(self._clock())
        await self._write(gauges)
        self.gauge_points += len(gauges)
        after_id = self._settled.transition_id
        while True:
            batch = await self._steps.read(self._settled, after_id)
            await self._write(batch.points)
            self.step_points += len(batch.points)
            if batch.settled != self._settled:
                self._settled = batch.settled
                await self._watermark.save(batch.settled)
            after_id = batch.last_id
            if not batch.more:
                break
        self.rounds += 1

    async def _write(self, points: Sequence[Point]) -> None:
        """Hand ``points`` to the writer once it has room, and wait until they are stored."""
        if not points:
            return
        chunk = await rendered(points)
        await self._writer.wait_for_room()
        ticket = self._writer.add(chunk)
        if ticket is not None:
            await asyncio.shield(ticket)  # a stop cancels this wait, never the writer's ticket
