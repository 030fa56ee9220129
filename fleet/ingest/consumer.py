"""One ingest lane's consumer: takes uplink messages from its session and acknowledges each once it is done.

For each message, in receive order: decode against the contract, de-duplicate by event id, route, then
acknowledge it to the broker only when everything it caused is stored (its alert row committed, its config
report recorded, on the bulk lane its time-series points written). A message that cannot be processed is
dead-lettered (:mod:`fleet.ingest.dead_letters`) and acknowledged once its dead letter is stored:

- refused by the contract, or failing in a way retrying cannot cure (a refusal by the database, an
  overflow, any exception nobody expected): at once;
- failing transiently (the database did not answer): retried with backoff, holding the lane so nothing
  behind it overtakes it, for at most ``hold_bound_s``; after that, and at once for a message dead-lettered
  before (a retained one coming back after a restart), it is dead-lettered if the database takes the dead
  letter, and held on otherwise (the database is away for everyone: the broker keeps the message);
- on the alerts and control lanes, routed but not stored within ``hold_bound_s`` (a stuck recorder): dead-
  lettered. The bulk lane's messages wait for the time-series store instead, however long it is away: that
  is its back-pressure, and no other lane waits for it.

A message that came with the retain flag on a channel that is not retained by contract (an alert, a heartbeat:
a gateway published it retained, broken or abusing its login) is handled as any other, counted by channel
(:attr:`IngestConsumer.retained`, ``/healthz``) and logged. Its retained copy stays on the broker; over MQTT 5
ingest's subscriptions never take it again (:mod:`fleet.ingest.subscriptions`); over MQTT 3.1.1 every
subscription does, and the event id makes it a repeat (an alert is stored once, keyed by it).

Back-pressure (bulk lane): when the writer's buffer is at its bound, the consumer stops taking messages until
there is room. Unacknowledged messages hold the session's Receive Maximum, so the broker stops sending and
keeps the rest queued: nothing is dropped. The lag (messages received and not acked, the oldest one's age,
points buffered) is in ``/healthz`` and logged while it lasts.
"""

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Callable

from fleet.errors import TransientError
from fleet.ingest.dead_letters import DeadLetter, DeadLetterReason, DeadLetters, describe
from fleet.ingest.router import Completion, IngestRouter
from fleet.ingest.subscriptions import Lane
from fleet.mqtt.ingest_session import IngestSession, Received
from fleet.timeseries.writer import BatchingWriter
from protocol.codec import Decoder, Inbound, Rejection
from protocol.reconnect import Backoff

logger = logging.getLogger(__name__)

_LAGGING_AFTER_S = 5.0
_LOG_RETAINED_FIRST_N = 10
_LOG_RETAINED_EVERY_N = 1000
_HOLD_CHECK_S = 0.5
BEHIND_AFTER_S = 1.0
"""A message received this long ago and not yet handled: the consumer is behind (:meth:`IngestConsumer.behind`)."""


class _GaveUp(Exception):
    """The message was dead-lettered while its handling was retried."""


class IngestConsumer:
    def __init__(
        self,
        session: IngestSession,
        decoder: Decoder,
        router: IngestRouter,
        writer: BatchingWriter,
        dead_letters: DeadLetters,
        *,
        lane: Lane = Lane.BULK,
        hold_bound_s: float = 30.0,
        lag_log_interval_s: float = 10.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.session = session
        self.decoder = decoder
        self.lane = lane
        self._router = router
        self._writer = writer
        self._dead_letters = dead_letters
        self._hold_bound_s = hold_bound_s
        self._lag_log_interval_s = lag_log_interval_s
        self._monotonic = monotonic
        self._intake = asyncio.Event()  # cleared by drain(): take no more messages
        self._intake.set()
        self.received = 0
        self.handler_errors = 0
        self.dead_lettered = 0
        self.retained: Counter[str] = Counter()  # by channel: came retained where the contract retains nothing
        self.stalls = 0
        self._stall_backoff = Backoff(base_s=0.1, cap_s=10.0)  # messages are handled one at a time
        self.paused = False  # not taking messages: the time-series buffer is at its bound
        self.pauses = 0
        self._storing: dict[Received, float] = {}  # routed, waiting to be stored: since when (monotonic)
        self._burying: set[Received] = set()  # waiting for their dead letter to be stored
        self._settled = asyncio.Event()

    @property
    def connected(self) -> asyncio.Event:
        return self.session.connected

    @property
    def unacked(self) -> int:
        return self.session.unacked

    @property
    def waiting(self) -> int:
        """Messages taken and not yet settled: their storage or their dead letter is awaited."""
        return len(self._storing) + len(self._burying)

    def oldest_unacked_age_s(self) -> float | None:
        return self.session.oldest_unacked_age_s()

    def oldest_unacked_topic(self) -> str | None:
        oldest = self.session.oldest_unacked()
        return None if oldest is None else oldest.topic

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
        watchers = [asyncio.create_task(self._report_lag())]
        if self.lane is not Lane.BULK:
            watchers.append(asyncio.create_task(self._bound_holds()))
        try:
            async for message in self.session.messages():
                await self._take(message)
        finally:
            for watcher in watchers:
                watcher.cancel()
            await asyncio.gather(*watchers, return_exceptions=True)

    async def _take(self, message: Received) -> None:
        if self.lane is Lane.BULK and self._writer.full:
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
            self._bury(message, decoded.reason.value, decoded.detail)
            return
        if message.retain and not decoded.topic.channel.retained:
            self._note_retained(decoded)
        try:
            completion = await self._route(message, decoded)
        except _GaveUp:
            return
        except Exception as exc:  # refused for good, or nobody expected it: retrying cannot help
            self.handler_errors += 1
            logger.exception("handling %s failed; dead-lettering it", message.topic[:200])
            self._bury(message, DeadLetterReason.FAILED, describe(exc))
            return
        if completion is None:
            self.session.ack(message)
            return
        self._storing[message] = self._monotonic()
        completion.add_done_callback(lambda done: self._stored(message, done))

    def _note_retained(self, decoded: Inbound) -> None:
        channel = decoded.topic.channel.value
        self.retained[channel] += 1
        count = self.retained.total()
        if count <= _LOG_RETAINED_FIRST_N or count % _LOG_RETAINED_EVERY_N == 0:
            logger.warning(
                "message on %s came retained, but the contract never retains %s: gateway %s published it retained "
                "(handled as any other; %d such messages so far)",
                str(decoded.topic)[:200],
                channel,
                decoded.message.gateway_id,
                count,
            )

    async def _route(self, message: Received, decoded: Inbound) -> Completion | None:
        """Route ``decoded``, retrying transient failures; raise _GaveUp once it is dead-lettered instead."""
        started = self._monotonic()
        self._stall_backoff.reset()  # each message's stall starts at the short delays
        while True:
            try:
                return await self._router.handle(decoded, retained=message.retain)
            except TransientError as exc:
                # Hold the lane (and so the broker's delivery) until storage answers again: the message is not
                # dropped and later ones wait their turn, for a bounded time.
                self.stalls += 1
                letter = DeadLetter(message.topic, message.payload, DeadLetterReason.KEPT_FAILING, describe(exc))
                if self._monotonic() - started >= self._hold_bound_s or self._dead_letters.known(letter):
                    with contextlib.suppress(TransientError):  # the database is away too: hold on
                        await self._dead_letters.store_now(letter)
                        self.dead_lettered += 1
                        self.session.ack(message)
                        raise _GaveUp from exc
                delay = self._stall_backoff.next_delay()
                logger.warning("handling %s stalled (%s); retrying in %.1f s", message.topic[:200], exc, delay)
                await asyncio.sleep(delay)

    def _stored(self, message: Received, completion: Completion) -> None:
        if self._storing.pop(message, None) is None:
            return  # dead-lettered meanwhile for being held too long
        self._settled.set()
        if completion.cancelled():
            return
        error = completion.exception()
        if error is None:
            self.session.ack(message)
        else:
            self.handler_errors += 1
            logger.error("storing what %s caused failed (%s); dead-lettering it", message.topic[:200], describe(error))
            self._bury(message, DeadLetterReason.FAILED, describe(error))

    def _bury(self, message: Received, reason: str, error: str) -> None:
        """Dead-letter ``message``; it is acknowledged once its dead letter is stored (at once if it only counts
        on its source's flood row)."""
        self.dead_lettered += 1
        stored = self._dead_letters.add(DeadLetter(message.topic, message.payload, reason, error))
        if stored is None:  # folded into its source's flood row: counted, nothing to wait for
            self.session.ack(message)
            return
        self._burying.add(message)
        stored.add_done_callback(lambda done: self._buried(message, done))

    def _buried(self, message: Received, stored: "asyncio.Future[None]") -> None:
        self._burying.discard(message)
        self._settled.set()
        if not stored.cancelled():
            self.session.ack(message)

    async def _bound_holds(self) -> None:
        """Dead-letter a message whose storage takes longer than the hold bound (alerts and control lanes)."""
        while True:
            await asyncio.sleep(_HOLD_CHECK_S)
            now = self._monotonic()
            overdue = [(m, now - since) for m, since in self._storing.items() if now - since >= self._hold_bound_s]
            for message, held_s in overdue:
                if message.acked:
                    continue
                del self._storing[message]
                logger.error("%s held back its lane for %.1f s; dead-lettering it", message.topic[:200], held_s)
                self._bury(message, DeadLetterReason.NOT_STORED_IN_TIME, f"not stored within {self._hold_bound_s:g} s")

    async def drain(self, timeout_s: float) -> None:
        """Take no more messages and wait (at most ``timeout_s``) until those taken are stored and acked.

        Whatever is left unacknowledged stays in the broker's session and is delivered again."""
        self._intake.clear()
        if self.connected.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout_s):  # not wait_for: see fleet.alerts.timers
                    while self.waiting:
                        self._settled.clear()
                        await self._settled.wait()
        if self.unacked:
            logger.info(
                "ingest %s stopping with %d messages unacknowledged: the broker keeps them", self.lane, self.unacked
            )

    async def _report_lag(self) -> None:
        while True:
            await asyncio.sleep(self._lag_log_interval_s)
            age = self.oldest_unacked_age_s()
            if self.paused or (age is not None and age > _LAGGING_AFTER_S):
                logger.warning(
                    "ingest %s lag: %d messages unacknowledged, oldest %.1f s; %d points buffered%s",
                    self.lane,
                    self.unacked,
                    age or 0.0,
                    self._writer.buffered,
                    " (paused)" if self.paused else "",
                )
