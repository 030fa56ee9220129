"""The MQTT consumer: takes uplink messages from its session and acknowledges each once it is durable.

For each message, in receive order: decode against the contract (a rejection is counted and acked at
once: retrying cannot help), de-duplicate by event id, route, then acknowledge it to the broker only
when everything it caused is stored (its time-series points written by the batching writer, its alert
row committed). Storage that is briefly unavailable (a :class:`~fleet.errors.TransientError` while
routing) holds the loop and retries the message, so nothing behind it overtakes it. A message whose
handling fails for good is logged, counted and acked (it would fail the same way again).

Back-pressure: when the writer's buffer is at its bound, the consumer stops taking messages until
there is room. Unacknowledged messages hold the session's Receive Maximum, so the broker stops
sending and keeps the rest queued: nothing is dropped. The lag (messages received and not acked, the
oldest one's age, points buffered) is in ``/healthz`` and logged while it lasts.
"""

import asyncio
import contextlib
import logging

from fleet.errors import TransientError
from fleet.ingest.mqtt_session import IngestSession, Received
from fleet.ingest.router import IngestRouter
from fleet.ingest.subscriptions import ingest_filters
from fleet.settings import FleetSettings
from fleet.timeseries.writer import BatchingWriter
from protocol.codec import Decoder, Rejection
from protocol.reconnect import Backoff

logger = logging.getLogger(__name__)

_LAGGING_AFTER_S = 5.0
BEHIND_AFTER_S = 1.0
"""A message received this long ago and not yet handled: the consumer is behind (:meth:`IngestConsumer.behind`)."""


class IngestConsumer:
    def __init__(
        self,
        session: IngestSession,
        decoder: Decoder,
        router: IngestRouter,
        writer: BatchingWriter,
        *,
        lag_log_interval_s: float = 10.0,
    ) -> None:
        self.session = session
        self.decoder = decoder
        self._router = router
        self._writer = writer
        self._lag_log_interval_s = lag_log_interval_s
        self._intake = asyncio.Event()  # cleared by drain(): take no more messages
        self._intake.set()
        self.received = 0
        self.handler_errors = 0
        self.stalls = 0
        self._stall_backoff = Backoff(base_s=0.1, cap_s=10.0)  # messages are handled one at a time
        self.paused = False  # not taking messages: the time-series buffer is at its bound
        self.pauses = 0
        self.waiting = 0  # taken and routed, waiting for their points to be stored
        self._all_stored = asyncio.Event()

    @classmethod
    def from_settings(
        cls,
        settings: FleetSettings,
        client_id: str,
        router: IngestRouter,
        writer: BatchingWriter,
        *,
        control: bool,
        bulk: bool,
    ) -> "IngestConsumer":
        """A consumer on its own persistent session ``client_id``, taking the control and/or bulk channels."""
        ingest = settings.ingest
        session = IngestSession(
            settings.broker,
            client_id,
            ingest_filters(ingest.share_group, control=control, bulk=bulk),
            receive_maximum=ingest.receive_maximum,
            session_expiry_s=ingest.session_expiry_s,
        )
        decoder = Decoder(settings.max_payload_bytes)
        return cls(session, decoder, router, writer, lag_log_interval_s=ingest.lag_log_interval_s)

    @property
    def connected(self) -> asyncio.Event:
        return self.session.connected

    @property
    def unacked(self) -> int:
        return self.session.unacked

    def oldest_unacked_age_s(self) -> float | None:
        return self.session.oldest_unacked_age_s()

    def behind(self) -> bool:
        """Whether messages wait that this consumer has not handled yet: taking none (the time-series
        buffer is full), holding received ones for over :data:`BEHIND_AFTER_S`, or holding as many
        unacknowledged as the broker may send (it keeps the rest). Heartbeats may be among them, so the
        presence sweep does not judge a gateway's silence meanwhile."""
        if self.paused or self.session.saturated:
            return True
        age = self.session.oldest_undelivered_age_s()
        return age is not None and age > BEHIND_AFTER_S

    async def run(self) -> None:
        reporter = asyncio.create_task(self._report_lag())
        try:
            async for message in self.session.messages():
                await self._take(message)
        finally:
            reporter.cancel()
            await asyncio.gather(reporter, return_exceptions=True)

    async def _take(self, message: Received) -> None:
        if self._writer.full:
            await self._wait_for_room()
        await self._intake.wait()
        await self._process(message)

    async def _wait_for_room(self) -> None:
        self.paused = True
        self.pauses += 1
        logger.warning(
            "ingest paused: %d time-series points buffered (bound %d); %d messages wait unacknowledged",
            self._writer.buffered,
            self._writer.bound,
            self.unacked,
        )
        try:
            await self._writer.wait_for_room()
        finally:
            self.paused = False
        logger.info("ingest resumed: %d points buffered", self._writer.buffered)

    async def _process(self, message: Received) -> None:
        self.received += 1
        decoded = self.decoder.decode(message.topic, message.payload)
        if isinstance(decoded, Rejection):
            self.session.ack(message)
            return
        self._stall_backoff.reset()  # each message's stall starts at the short delays
        while True:
            try:
                completion = await self._router.handle(decoded)
                break
            except TransientError as exc:
                # Hold the loop (and so the broker's delivery) until storage answers again:
                # the message is not dropped and later ones wait their turn.
                self.stalls += 1
                delay = self._stall_backoff.next_delay()
                logger.warning("handling %s stalled (%s); retrying in %.1f s", message.topic[:200], exc, delay)
                await asyncio.sleep(delay)
            except Exception:
                self.handler_errors += 1
                logger.exception("handling %s failed; message dropped", message.topic[:200])
                self.session.ack(message)
                return
        if completion is None:
            self.session.ack(message)
        else:
            self.waiting += 1
            completion.add_done_callback(lambda done: self._stored(message, done))

    def _stored(self, message: Received, completion: "asyncio.Future[None]") -> None:
        self.waiting -= 1
        if self.waiting == 0:
            self._all_stored.set()
        if not completion.cancelled():
            self.session.ack(message)

    async def drain(self, timeout_s: float) -> None:
        """Take no more messages and wait (at most ``timeout_s``) until those taken are stored and acked.

        Whatever is left unacknowledged stays in the broker's session and is delivered again."""
        self._intake.clear()
        if self.waiting and self.connected.is_set():
            self._all_stored.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout_s):  # not wait_for: see fleet.alerts.timers
                    await self._all_stored.wait()
        if self.unacked:
            logger.info("ingest stopping with %d messages unacknowledged: the broker keeps them", self.unacked)

    async def _report_lag(self) -> None:
        while True:
            await asyncio.sleep(self._lag_log_interval_s)
            age = self.oldest_unacked_age_s()
            if self.paused or (age is not None and age > _LAGGING_AFTER_S):
                logger.warning(
                    "ingest lag: %d messages unacknowledged, oldest %.1f s; %d points buffered%s",
                    self.unacked,
                    age or 0.0,
                    self._writer.buffered,
                    " (paused)" if self.paused else "",
                )
