"""Inbound messages ingest could not process: kept in the ``ingest_dead_letters`` table, counted, then acknowledged.

A message ends here when the contract refuses it (the decoder's reason: ``invalid_payload``, ``oversize``, …),
when handling it failed in a way retrying cannot cure (``failed``: a refusal by the database, an overflow,
any exception nobody expected), when transient failures went on past the hold bound while the database
itself took the dead letter (``kept_failing``), or when what it caused was not stored within the bound
(``not_stored_in_time``). Ingest acknowledges it to the broker only once its dead letter is stored, so it is
never lost unseen, and never holds back the messages behind it for long.

Rows are keyed by the SHA-256 of topic and payload: a message that comes back (a retained one after each
restart, a gateway repeating itself) adds to its row's ``count`` instead of a new row, and is recognised
(:meth:`DeadLetters.known`) so that it is given up on at once the next time. A source sending many
different bad messages (a flood, a broken firmware) gets its own rows for the first
:data:`DISTINCT_PER_SOURCE` of them in a minute, then one row per source, channel and reason counts the
rest, so a flood costs the database a few rows per batch, not one per message; a message folded so is
acknowledged at once (its count is written with the next batch), so a flood never waits on the database.

Dead letters are written by one task in batches (:meth:`DeadLetters.run`), each a single statement; the
table keeps the ``kept`` most recently seen rows.
"""

import asyncio
import hashlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from fleet.db.engine import database_errors
from fleet.db.schema import IngestDeadLetterRow
from fleet.db.upsert import insert_or_add
from fleet.errors import FleetError, TransientError
from fleet.ingest.dead_letter_sources import Source, SourceTally
from fleet.settings import IngestSettings
from protocol.errors import TopicError
from protocol.reconnect import Backoff
from protocol.topics import GatewayTopic

logger = logging.getLogger(__name__)

DISTINCT_PER_SOURCE: Final = 20
"""Distinct dead letters a source (gateway, or an unparseable topic) gets rows of per minute; the rest fold."""
_SOURCE_WINDOW_S: Final = 60.0
_KNOWN_LOADED: Final = 10_000
_PRUNE_EVERY: Final = 50  # batches
_TOPIC_CHARS: Final = 300
_ERROR_CHARS: Final = 512


class DeadLetterReason(StrEnum):
    """Why handling gave up on a message; refusals by the contract use the decoder's reason instead."""

    FAILED = "failed"
    KEPT_FAILING = "kept_failing"
    NOT_STORED_IN_TIME = "not_stored_in_time"


@dataclass(frozen=True, slots=True)
class DeadLetter:
    topic: str
    payload: bytes
    reason: str
    error: str

    @property
    def key(self) -> str:
        digest = hashlib.sha256(self.topic.encode("utf-8", "surrogateescape"))
        digest.update(b"\0")
        digest.update(self.payload)
        return digest.hexdigest()


def describe(error: BaseException) -> str:
    """An exception as one line for a dead letter: its type and message."""
    return f"{type(error).__name__}: {error}"[:_ERROR_CHARS]


@dataclass(slots=True)
class _Row:
    """A batch's update of one row: the newest letter folded into it, and how many messages it counts."""

    letter: DeadLetter
    key: str
    topic: GatewayTopic | None
    count: int
    first_ms: int
    last_ms: int


class DeadLetters:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        clock: Callable[[], int],
        *,
        payload_bytes: int = 2048,
        kept: int = 10_000,
        sources: SourceTally | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.sources = sources or SourceTally(monotonic=monotonic)
        """Who sent the dead letters (each is noted as it arrives, before it is stored)."""
        self._sessions = sessions
        self._clock = clock
        self._payload_bytes = payload_bytes
        self._kept = kept
        self._monotonic = monotonic
        self._rows: dict[str, _Row] = {}  # the next batch: one update per key
        self._completions: list[asyncio.Future[None]] = []  # of the letters in it that wait to be stored
        self._arrived = asyncio.Event()
        self._backoff = Backoff(base_s=0.1, cap_s=5.0)
        self._known: set[str] = set()
        self._sources: dict[str, set[str]] = {}
        self._window_started = monotonic()
        self._batches = 0
        self.recorded = 0  # messages dead-lettered (stored) since start
        self.lost = 0  # dead letters the database refused for good (their messages were acknowledged anyway)
        self.last_recorded_at: float | None = None  # monotonic time of the newest stored dead letter
        self.by_reason: dict[str, int] = {}

    @classmethod
    def from_settings(
        cls,
        settings: IngestSettings,
        sessions: async_sessionmaker[AsyncSession],
        clock: Callable[[], int],
        *,
        on_flood: Callable[[Source, int], None] | None = None,
    ) -> "DeadLetters":
        """``on_flood``: told when a source reaches ``quarantine_after`` dead letters in its window."""
        sources = SourceTally(
            flood_after=settings.quarantine_after if on_flood is not None else 0,
            flood_window_s=settings.quarantine_window_s,
            on_flood=on_flood or (lambda source, count: None),
        )
        return cls(
            sessions,
            clock,
            payload_bytes=settings.dead_letter_payload_bytes,
            kept=settings.dead_letters_kept,
            sources=sources,
        )

    @property
    def waiting(self) -> int:
        """Messages dead-lettered and not stored yet."""
        return sum(row.count for row in self._rows.values())

    async def load(self) -> None:
        """Remember the keys of the most recent dead letters, so a message that failed before is given up on
        at once when it comes back (a retained message after a restart)."""
        query = select(IngestDeadLetterRow.key).order_by(IngestDeadLetterRow.last_ms.desc()).limit(_KNOWN_LOADED)
        with database_errors("load the ingest dead letters"):
            async with self._sessions() as session:
                self._known = set((await session.scalars(query)).all())

    def known(self, letter: DeadLetter) -> bool:
        """Whether this very message (topic and payload) was dead-lettered before."""
        return letter.key in self._known

    def add(self, letter: DeadLetter) -> "asyncio.Future[None] | None":
        """Queue ``letter`` for the next batch. The future completes once it is stored (or refused for good by
        the database); None when it was folded into its source's flood row: counted there, and its message may
        be acknowledged at once (a flood must not wait on the database, nor hold its lane)."""
        flood = self._fold(letter)
        self._arrived.set()
        if flood:
            return None
        completion: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._completions.append(completion)
        return completion

    async def store_now(self, letter: DeadLetter) -> None:
        """Store ``letter`` in a transaction of its own; raises TransientError while the database is away."""
        topic = _parse(letter.topic)
        now_ms = self._clock()
        await self._store([_Row(letter, letter.key, topic, 1, now_ms, now_ms)])
        if topic is not None:
            self.sources.note(Source(topic.village_id, topic.gateway_id, topic.channel))

    async def run(self) -> None:
        """Store what arrived, batch after batch, until cancelled."""
        while True:
            await self._arrived.wait()
            self._arrived.clear()
            while self._rows:
                rows, self._rows = list(self._rows.values()), {}
                completions, self._completions = self._completions, []
                await self._store_until_done(rows, completions)

    async def _store_until_done(self, rows: list[_Row], completions: list["asyncio.Future[None]"]) -> None:
        try:
            while True:
                try:
                    await self._store(rows)
                    break
                except FleetError as exc:
                    if isinstance(exc, TransientError):
                        await self._wait_to_retry(rows, exc)
                        continue
                    # refused for good: keeping the messages unacknowledged cannot help
                    self.lost += sum(row.count for row in rows)
                    logger.error("%d dead letters refused by the database: %s", len(rows), describe(exc))
                    break
                except Exception as exc:  # nobody expected it: hold the messages (the broker keeps them), retry
                    logger.exception("storing dead letters failed unexpectedly")
                    await self._wait_to_retry(rows, exc)
        finally:
            self._backoff.reset()
            for completion in completions:
                if not completion.done():
                    completion.set_result(None)

    async def _wait_to_retry(self, rows: Sequence[_Row], error: Exception) -> None:
        delay = self._backoff.next_delay()
        count = sum(row.count for row in rows)
        logger.warning("%d dead letters wait to be stored (%s); retrying in %.1f s", count, describe(error), delay)
        await asyncio.sleep(delay)

    async def _store(self, rows: Sequence[_Row]) -> None:
        with database_errors(f"store {len(rows)} dead letters"):
            async with self._sessions.begin() as session:
                await insert_or_add(
                    session,
                    IngestDeadLetterRow,
                    [self._values(row) for row in rows],
                    key="key",
                    added=("count",),
                    replaced=("topic", "error", "payload", "payload_bytes", "last_ms"),
                )
                self._batches += 1
                if self._batches % _PRUNE_EVERY == 0:
                    await self._prune(session)
        self.last_recorded_at = self._monotonic()
        for row in rows:
            self.recorded += row.count
            self.by_reason[row.letter.reason] = self.by_reason.get(row.letter.reason, 0) + row.count
            self._known.add(row.key)
            logger.warning(
                "dead-lettered %d message(s) on %s (%s): %s",
                row.count,
                row.letter.topic[:200],
                row.letter.reason,
                row.letter.error[:200],
            )

    def _fold(self, letter: DeadLetter) -> bool:
        """Add ``letter`` to the next batch's row of its key, a source past its share of distinct letters
        folding into its flood row; whether it did."""
        now = self._monotonic()
        if now - self._window_started >= _SOURCE_WINDOW_S:
            self._sources.clear()
            self._window_started = now
        topic = _parse(letter.topic)
        if topic is not None:
            self.sources.note(Source(topic.village_id, topic.gateway_id, topic.channel))
        key = letter.key
        source = topic.gateway_id if topic is not None else "-"
        seen = self._sources.setdefault(source, set())
        flood = key not in self._known and key not in seen and len(seen) >= DISTINCT_PER_SOURCE
        if flood:
            channel = topic.channel.value if topic is not None else "-"
            key = f"flood/{source}/{channel}/{letter.reason}"
        else:
            seen.add(key)
        now_ms = self._clock()
        row = self._rows.get(key)
        if row is None:
            self._rows[key] = _Row(letter, key, topic, 1, now_ms, now_ms)
        else:
            row.letter, row.count, row.last_ms = letter, row.count + 1, now_ms
        return flood

    def _values(self, row: _Row) -> dict[str, Any]:
        letter, topic = row.letter, row.topic
        return {
            "key": row.key,
            "topic": letter.topic[:_TOPIC_CHARS],
            "channel": topic.channel.value if topic is not None else None,
            "village_id": topic.village_id if topic is not None else None,
            "gateway_id": topic.gateway_id if topic is not None else None,
            "reason": letter.reason,
            "error": letter.error[:_ERROR_CHARS],
            "payload": letter.payload[: self._payload_bytes].decode("utf-8", "backslashreplace"),
            "payload_bytes": len(letter.payload),
            "count": row.count,
            "first_ms": row.first_ms,
            "last_ms": row.last_ms,
        }

    async def _prune(self, session: AsyncSession) -> None:
        """Keep the ``kept`` most recently seen rows."""
        cutoff = (
            select(IngestDeadLetterRow.last_ms)
            .order_by(IngestDeadLetterRow.last_ms.desc())
            .offset(self._kept)
            .limit(1)
            .scalar_subquery()
        )
        await session.execute(delete(IngestDeadLetterRow).where(IngestDeadLetterRow.last_ms <= cutoff))

    # --- reading, for the API --------------------------------------------------------------------

    async def list(
        self, *, gateway_id: str | None = None, reason: str | None = None, limit: int = 100
    ) -> list[IngestDeadLetterRow]:
        """The most recently seen dead letters first."""
        query = select(IngestDeadLetterRow).order_by(IngestDeadLetterRow.last_ms.desc(), IngestDeadLetterRow.id.desc())
        if gateway_id is not None:
            query = query.where(IngestDeadLetterRow.gateway_id == gateway_id)
        if reason is not None:
            query = query.where(IngestDeadLetterRow.reason == reason)
        with database_errors("list the ingest dead letters"):
            async with self._sessions() as session:
                return list((await session.scalars(query.limit(limit))).all())

    async def totals(self) -> dict[str, tuple[int, int, int]]:
        """Per reason: rows, messages, and the newest ``last_ms``."""
        query = select(
            IngestDeadLetterRow.reason,
            func.count(),
            func.sum(IngestDeadLetterRow.count),
            func.max(IngestDeadLetterRow.last_ms),
        ).group_by(IngestDeadLetterRow.reason)
        with database_errors("count the ingest dead letters"):
            async with self._sessions() as session:
                return {
                    reason: (int(rows), int(messages or 0), int(last or 0))
                    for reason, rows, messages, last in await session.execute(query)
                }


def _parse(topic: str) -> GatewayTopic | None:
    try:
        return GatewayTopic.parse(topic)
    except TopicError:
        return None
