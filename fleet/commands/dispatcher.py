"""Sends commands to gateways and follows each to its outcome.

:meth:`CommandDispatcher.send` records the command (with its audit entry), publishes it at QoS 1 through
the :class:`~fleet.mqtt.downlink.Downlink` and marks it ``sent`` once the broker acknowledged it, or
``undeliverable`` with the reason when the broker did not take it within ``commands.publish_timeout_s``
(nor before the deadline).

Offline gateways: a gateway keeps a persistent MQTT session, so the broker queues a command published
while it is away and delivers it when it reconnects. The gateway refuses, as expired, a command older
than its ``timeout_s`` (the fleet's ``deadline - created``), so a command runs late only if it still
can be answered by its deadline; the fleet marks it ``timed_out`` at the deadline whatever happens.

Answers come from the ingest router (:meth:`on_response`), matched by request id and gateway; an
answer after the deadline is kept but the command stays ``timed_out`` (``answered_late``); answers to
unknown request ids, to another gateway's command and repeats are counted, logged and ignored.

Nothing lives only in memory: the deadline sweeper (:meth:`run`) reads deadlines from the database, so
after a fleet restart a command past its deadline becomes ``timed_out`` at the first sweep, and one
still ``pending`` (recorded, publication unconfirmed) with its deadline ahead is published again with
the same request id and event id (the gateway answers a request once per run).
"""

import asyncio
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from fleet.access.roles import Actor
from fleet.commands.store import FINAL, CommandStore, NewCommand, ResponseOutcome
from fleet.commands.waiters import Waiters
from fleet.configs.signing import ConfigSigner
from fleet.db.schema import CommandRow, CommandState
from fleet.errors import DownlinkUnavailableError, NotFoundError
from fleet.mqtt.downlink import Downlink
from fleet.settings import CommandSettings
from protocol.messages import Command, CommandName, CommandResponse

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class ResponseCounts:
    """Answers that did not decide a command, since the process started."""

    late: int = 0
    duplicate: int = 0
    unknown: int = 0
    wrong_gateway: int = 0


def command_message(row: CommandRow, signer: ConfigSigner) -> Command:
    """The signed wire message of a recorded command; the same message every time it is built (a re-publish
    after a restart is the same message: event id = request id, ``ts`` = when it was recorded, ``seq`` = its row
    id; Ed25519 signatures are deterministic)."""
    request_id = uuid.UUID(row.request_id)
    command = Command(
        gateway_id=row.gateway_id,
        seq=row.id,
        event_id=request_id,
        ts=row.created_ms,
        request_id=request_id,
        name=CommandName(row.name),
        args=row.args,
        requested_by=row.requested_by,
        reason=row.reason,
        timeout_s=(row.deadline_ms - row.created_ms) / 1000,
        attachment=row.argument,
    )
    return signer.signed_command(command)


class CommandDispatcher:
    def __init__(
        self,
        store: CommandStore,
        downlink: Downlink,
        clock: Callable[[], int],
        settings: CommandSettings,
        signer: ConfigSigner,
    ) -> None:
        self.store = store
        self._signer = signer
        self.settings = settings
        self._downlink = downlink
        self._clock = clock
        self._waiters = Waiters()
        self._publishing: set[str] = set()
        self._background: set[asyncio.Task[None]] = set()
        self.responses = ResponseCounts()

    async def send(self, actor: Actor, command: NewCommand) -> CommandRow:
        """Record ``command`` and publish it; the row as it stands afterwards (``sent`` or ``undeliverable``).

        The publication runs on if the caller is cancelled (an HTTP client gone), so no command is left
        pending because someone stopped listening."""
        row = await self.store.record(actor, command)
        publication = asyncio.create_task(self._publish(row), name=f"command-{row.request_id}")
        self._background.add(publication)
        publication.add_done_callback(self._background.discard)
        await asyncio.shield(publication)
        return await self._row(row.request_id)

    async def outcome(self, request_id: str, max_wait_s: float) -> CommandRow:
        """The command once its outcome is known, its deadline passed, or ``max_wait_s`` went by (then still open)."""
        loop = asyncio.get_running_loop()
        give_up = loop.time() + max_wait_s
        woken = self._waiters.add(request_id)  # before reading the row: an answer stored meanwhile still wakes it
        try:
            row = await self._row(request_id)
            while CommandState(row.state) not in FINAL:
                if self._clock() >= row.deadline_ms:  # do not wait for the sweeper to say so
                    self._waiters.wake(await self.store.expire(self._clock(), request_id))
                    return await self._row(request_id)
                wait_s = min((row.deadline_ms - self._clock()) / 1000, give_up - loop.time())
                if wait_s <= 0:
                    break
                await asyncio.wait({woken}, timeout=wait_s)  # a timer may fire a little early: the loop checks again
                if woken.done():
                    self._waiters.discard(request_id, woken)
                    woken = self._waiters.add(request_id)
                row = await self._row(request_id)
            return row
        finally:
            self._waiters.discard(request_id, woken)

    async def on_response(self, village_id: str, response: CommandResponse) -> None:
        """The ingest router's hook for ``command/response``: returns once the answer is stored."""
        outcome = await self.store.record_response(response)
        request_id = str(response.request_id)
        match outcome:
            case ResponseOutcome.ANSWERED:
                logger.info(
                    "command %s answered by %s/%s: %s", request_id, village_id, response.gateway_id,
                    "ok" if response.ok else response.error,
                )  # fmt: skip
            case ResponseOutcome.LATE:
                self.responses.late += 1
                logger.warning("command %s answered by %s after its deadline: kept, timed out", request_id,
                               response.gateway_id)  # fmt: skip
            case ResponseOutcome.DUPLICATE:
                self.responses.duplicate += 1
                logger.debug("command %s answered again by %s: ignored", request_id, response.gateway_id)
            case ResponseOutcome.UNKNOWN:
                self.responses.unknown += 1
                logger.warning("an answer from %s/%s to unknown command %s: ignored (%d so far)", village_id,
                               response.gateway_id, request_id, self.responses.unknown)  # fmt: skip
            case ResponseOutcome.WRONG_GATEWAY:
                self.responses.wrong_gateway += 1
                logger.warning("%s/%s answered command %s, sent to another gateway: ignored", village_id,
                               response.gateway_id, request_id)  # fmt: skip
        if outcome in (ResponseOutcome.ANSWERED, ResponseOutcome.LATE):
            self._waiters.wake([request_id])

    async def run(self) -> None:
        """Publish again what a stopped fleet left pending, then expire commands at their deadlines, until cancelled."""
        await self.resume()
        while True:
            await self.sweep()
            await asyncio.sleep(self.settings.sweep_interval_s)

    async def resume(self) -> None:
        """Publish the commands recorded but not confirmed published whose deadline is still ahead."""
        rows = [row for row in await self.store.resumable(self._clock()) if row.request_id not in self._publishing]
        if rows:
            logger.info("publishing %d commands left pending again", len(rows))
        for row in rows:
            await self._publish(row)

    async def sweep(self) -> list[str]:
        """Mark the open commands whose deadline has come timed_out; their request ids."""
        expired = await self.store.expire(self._clock())
        if expired:
            logger.info("%d commands timed out: %s", len(expired), ", ".join(expired[:10]))
            self._waiters.wake(expired)
        return expired

    async def _publish(self, row: CommandRow) -> None:
        self._publishing.add(row.request_id)
        try:
            remaining_s = (row.deadline_ms - self._clock()) / 1000
            if remaining_s <= 0:
                return  # the sweeper times it out
            timeout_s = min(self.settings.publish_timeout_s, remaining_s)
            try:
                await self._downlink.publish(row.village_id, command_message(row, self._signer), timeout_s=timeout_s)
            except DownlinkUnavailableError as exc:
                logger.warning("command %s to %s is undeliverable: %s", row.request_id, row.gateway_id, exc)
                if await self.store.mark_undeliverable(row.request_id, str(exc)):
                    self._waiters.wake([row.request_id])
                return
            await self.store.mark_sent(row.request_id, self._clock())
        finally:
            self._publishing.discard(row.request_id)

    async def _row(self, request_id: str) -> CommandRow:
        row = await self.store.get(request_id)
        if row is None:
            raise NotFoundError(f"no command {request_id}")
        return row
