"""The command rows: each state change is one conditional UPDATE, so racing writers cannot undo each other.

States (:class:`~fleet.db.schema.CommandState`)::

    pending ──PUBACK──▶ sent ──answer by the deadline──▶ succeeded | failed
       │                 │
       │                 └──deadline passed──▶ timed_out (an answer after it is kept, the state stays)
       └──broker did not take it──▶ undeliverable (an answer may still come: the broker may have taken it)

A command is recorded together with its audit entry; a snapshot attachment is kept with its size and
content type (at most :data:`~protocol.messages.MAX_ATTACHMENT_BYTES`), and every view of it is audited.
"""

import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import undefer

from fleet.access.audit import Change, record
from fleet.access.roles import Actor
from fleet.db.engine import database_errors
from fleet.db.schema import CommandRow, CommandState
from fleet.errors import NotFoundError
from protocol.messages import MAX_ATTACHMENT_BYTES, CommandName, CommandResponse, EvidenceValue

logger = logging.getLogger(__name__)

OPEN: Final = (CommandState.PENDING, CommandState.SENT)
"""States a command is still waiting in: the deadline sweeper ends them."""
ANSWERABLE: Final = (*OPEN, CommandState.UNDELIVERABLE)
"""States an answer may still move: an undeliverable command may have reached the gateway after all."""
FINAL: Final = frozenset(
    {CommandState.SUCCEEDED, CommandState.FAILED, CommandState.TIMED_OUT, CommandState.UNDELIVERABLE}
)
"""States after which a caller waiting for the outcome has it."""
JPEG: Final = "image/jpeg"
_JPEG_MAGIC: Final = b"\xff\xd8\xff"
_ERROR_MAX: Final = 512


class ResponseOutcome(StrEnum):
    """What an answer from a gateway did to its command."""

    ANSWERED = "answered"  # by the deadline: succeeded or failed
    LATE = "late"  # after the deadline: kept, the command stays timed_out
    DUPLICATE = "duplicate"  # the command had its answer already: ignored
    UNKNOWN = "unknown"  # no command with this request id
    WRONG_GATEWAY = "wrong_gateway"  # the command went to another gateway: ignored


@dataclass(frozen=True, slots=True)
class NewCommand:
    gateway_id: str
    village_id: str
    name: CommandName
    args: dict[str, EvidenceValue]
    reason: str | None
    timeout_s: float
    argument: bytes | None = None
    """The command's attachment (install_certificate: the certificate), sent with it and kept for a re-publish."""


class CommandStore:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], clock: Callable[[], int]) -> None:
        self._sessions = sessions
        self._clock = clock

    async def record(self, actor: Actor, command: NewCommand) -> CommandRow:
        """Record a new command as pending, with its audit entry (who, what, which gateway, why)."""
        now = self._clock()
        request_id = str(uuid.uuid4())
        row = CommandRow(
            request_id=request_id,
            gateway_id=command.gateway_id,
            village_id=command.village_id,
            name=command.name.value,
            args=dict(command.args),
            requested_by=actor.name,
            reason=command.reason,
            argument=command.argument,
            created_ms=now,
            deadline_ms=now + round(command.timeout_s * 1000),
            state=CommandState.PENDING,
            answered_late=False,
        )
        audited = {
            "request_id": request_id,
            "gateway_id": command.gateway_id,
            "village_id": command.village_id,
            "name": command.name.value,
            "args": dict(command.args),
            "reason": command.reason,
            "timeout_s": command.timeout_s,
            "argument_bytes": len(command.argument) if command.argument is not None else None,
        }
        with database_errors(f"record command {command.name} for {command.gateway_id}"):
            async with self._sessions.begin() as session:
                session.add(row)
                await session.flush()
                record(session, actor, Change("command.send", "command", _target(row), None, audited), now)
        logger.info(
            "%s sends %s to %s (request %s, reason %r)", actor.name, command.name, command.gateway_id, request_id,
            command.reason,
        )  # fmt: skip
        return row

    async def mark_sent(self, request_id: str, at_ms: int) -> bool:
        """pending → sent, once the broker took the command; False if an answer or the deadline came first."""
        return await self._move(request_id, (CommandState.PENDING,), {"state": CommandState.SENT, "sent_ms": at_ms})

    async def mark_undeliverable(self, request_id: str, error: str) -> bool:
        """pending → undeliverable, with the reason the broker did not take it."""
        values = {"state": CommandState.UNDELIVERABLE, "error": error[:_ERROR_MAX]}
        return await self._move(request_id, (CommandState.PENDING,), values)

    async def _move(self, request_id: str, states: Sequence[CommandState], values: dict[str, Any]) -> bool:
        statement = (
            update(CommandRow)
            .where(CommandRow.request_id == request_id, CommandRow.state.in_(states))
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        with database_errors(f"update command {request_id}"):
            async with self._sessions.begin() as session:
                moved = await session.execute(statement)
        return bool(moved.rowcount)  # type: ignore[attr-defined]  # an UPDATE's CursorResult

    async def record_response(self, response: CommandResponse) -> ResponseOutcome:
        """Apply a gateway's answer to its command: by the deadline it decides the state; after it, it is kept
        and the state stays (or becomes) timed_out with ``answered_late``; a second answer is ignored."""
        now = self._clock()
        request_id = str(response.request_id)
        mine = (CommandRow.request_id == request_id, CommandRow.gateway_id == response.gateway_id)
        answer = _answer_columns(response, now)
        in_time = (
            update(CommandRow)
            .where(*mine, CommandRow.state.in_(ANSWERABLE), CommandRow.deadline_ms >= now)
            .values(state=CommandState.SUCCEEDED if response.ok else CommandState.FAILED, **answer)
            .execution_options(synchronize_session=False)
        )
        late = (
            update(CommandRow)
            .where(
                *mine,
                CommandRow.responded_ms.is_(None),
                CommandRow.state.in_((*ANSWERABLE, CommandState.TIMED_OUT)),
                CommandRow.deadline_ms < now,
            )
            .values(state=CommandState.TIMED_OUT, answered_late=True, **answer)
            .execution_options(synchronize_session=False)
        )
        with database_errors(f"record the answer to command {request_id}"):
            async with self._sessions.begin() as session:
                if (await session.execute(in_time)).rowcount:  # type: ignore[attr-defined]
                    return ResponseOutcome.ANSWERED
                if (await session.execute(late)).rowcount:  # type: ignore[attr-defined]
                    return ResponseOutcome.LATE
                gateway_id = await session.scalar(
                    select(CommandRow.gateway_id).where(CommandRow.request_id == request_id)
                )
        if gateway_id is None:
            return ResponseOutcome.UNKNOWN
        if gateway_id != response.gateway_id:
            return ResponseOutcome.WRONG_GATEWAY
        return ResponseOutcome.DUPLICATE

    async def expire(self, now_ms: int, request_id: str | None = None) -> list[str]:
        """Mark every open command whose deadline has come (or just ``request_id``) timed_out; their request ids."""
        statement = (
            update(CommandRow)
            .where(CommandRow.state.in_(OPEN), CommandRow.deadline_ms <= now_ms)
            .values(state=CommandState.TIMED_OUT)
            .returning(CommandRow.request_id)
            .execution_options(synchronize_session=False)
        )
        if request_id is not None:
            statement = statement.where(CommandRow.request_id == request_id)
        with database_errors("expire commands past their deadline"):
            async with self._sessions.begin() as session:
                return list((await session.scalars(statement)).all())

    async def resumable(self, now_ms: int) -> list[CommandRow]:
        """Commands recorded but not known to be published (a fleet stopped in between) whose deadline is ahead."""
        query = (
            select(CommandRow)
            .where(CommandRow.state == CommandState.PENDING, CommandRow.deadline_ms > now_ms)
            .order_by(CommandRow.id)
            .options(undefer(CommandRow.argument))
        )
        with database_errors("find commands to publish again"):
            async with self._sessions() as session:
                return list((await session.scalars(query)).all())

    async def get(self, request_id: str) -> CommandRow | None:
        with database_errors(f"read command {request_id}"):
            async with self._sessions() as session:
                return await session.scalar(select(CommandRow).where(CommandRow.request_id == request_id))

    async def list(self, gateway_id: str, *, state: CommandState | None = None, limit: int = 50) -> list[CommandRow]:
        """A gateway's commands, newest first."""
        query = select(CommandRow).where(CommandRow.gateway_id == gateway_id).order_by(CommandRow.id.desc())
        if state is not None:
            query = query.where(CommandRow.state == state)
        with database_errors(f"list the commands of {gateway_id}"):
            async with self._sessions() as session:
                return list((await session.scalars(query.limit(limit))).all())

    async def view_attachment(self, actor: Actor, request_id: str) -> tuple[CommandRow, bytes]:
        """A command's attachment, for ``actor``: the view is audited in the same transaction (``snapshot.view``)."""
        now = self._clock()
        query = select(CommandRow).options(undefer(CommandRow.attachment)).where(CommandRow.request_id == request_id)
        with database_errors(f"read the attachment of command {request_id}"):
            async with self._sessions.begin() as session:
                row = await session.scalar(query)
                if row is None:
                    raise NotFoundError(f"no command {request_id}")
                if row.attachment is None:
                    raise NotFoundError(f"command {request_id} has no attachment")
                result = row.result or {}
                viewed = {
                    "request_id": request_id,
                    "gateway_id": row.gateway_id,
                    "snapshot_id": result.get("snapshot_id"),
                    "device_id": result.get("device_id"),
                    "bytes": row.attachment_bytes,
                    "content_type": row.attachment_content_type,
                }
                record(session, actor, Change("snapshot.view", "command", _target(row), None, viewed), now)
        logger.info("%s viewed the attachment of command %s (%s)", actor.name, request_id, row.gateway_id)
        return row, row.attachment


def _target(row: CommandRow) -> str:
    """The audit log's target id of a command: gateway and request, so one gateway's commands filter together."""
    return f"{row.gateway_id}/{row.request_id}"


def _answer_columns(response: CommandResponse, now: int) -> dict[str, Any]:
    columns: dict[str, Any] = {
        "result": dict(response.result),
        "error": response.error[:_ERROR_MAX] if response.error is not None else None,
        "responded_ms": now,
    }
    attachment = response.attachment
    if attachment is not None and len(attachment) > MAX_ATTACHMENT_BYTES:  # the decoder refuses these already
        logger.error("the attachment of %s is %d bytes: not kept", response.request_id, len(attachment))
        attachment = None
    if attachment is not None:
        columns |= {
            "attachment": attachment,
            "attachment_bytes": len(attachment),
            "attachment_content_type": JPEG if attachment.startswith(_JPEG_MAGIC) else "application/octet-stream",
        }
    return columns
