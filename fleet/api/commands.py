"""Routes for commands to gateways: send one (and optionally wait for its answer), list them, read one,
and view a fetched snapshot.

Sending and viewing an attachment need the diagnose permission (technicians, admins); reading commands
needs read. Every command sent is audited (``command.send``), and so is every view of an attachment
(``snapshot.view``): a frame leaves a gateway, and is seen at the fleet, only on purpose.
"""

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Query, Response, status

from fleet.api.context import CALLER_RESPONSES, Context, Diagnostician, IdPath, Reader
from fleet.commands.schemas import CommandPublic, CommandRequest
from fleet.commands.store import FINAL, NewCommand
from fleet.db.schema import CommandState
from fleet.errors import NotFoundError

router = APIRouter(tags=["commands"], responses=CALLER_RESPONSES)

_UNKNOWN_COMMAND: dict[int | str, dict[str, Any]] = {404: {"description": "No such command"}}


@router.post(
    "/gateways/{gateway_id}/commands",
    status_code=status.HTTP_202_ACCEPTED,
    responses={
        200: {"model": CommandPublic, "description": "wait=true: the outcome (succeeded, failed, timed_out, …)"},
        202: {"description": "Sent (or undeliverable); the outcome is not known yet"},
        404: {"description": "No such gateway"},
    },
)
async def send_command(
    ctx: Context, actor: Diagnostician, gateway_id: IdPath, request: CommandRequest, response: Response
) -> CommandPublic:
    """Send a command to a gateway, audited with who sent it and why. The broker queues it for a gateway that is
    offline; the gateway refuses it once it is older than ``timeout_s``, and the fleet times it out then."""
    gateway = await ctx.registry.gateway(gateway_id)
    if gateway is None:
        raise NotFoundError(f"no gateway {gateway_id!r}")
    dispatcher = ctx.commands
    timeout_s = request.timeout_s if request.timeout_s is not None else dispatcher.settings.default_timeout_s
    command = NewCommand(gateway_id, gateway.village_id, request.name, dict(request.args), request.reason, timeout_s)
    row = await dispatcher.send(actor, command)
    if request.wait:
        row = await dispatcher.outcome(row.request_id, dispatcher.settings.max_wait_s)
        if CommandState(row.state) in FINAL:
            response.status_code = status.HTTP_200_OK
    return CommandPublic.of(row)


@router.get("/gateways/{gateway_id}/commands")
async def list_commands(
    ctx: Context,
    _: Reader,
    gateway_id: IdPath,
    state: CommandState | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> list[CommandPublic]:
    """A gateway's commands, newest first (kept after the gateway is removed)."""
    return [CommandPublic.of(row) for row in await ctx.commands.store.list(gateway_id, state=state, limit=limit)]


@router.get("/commands/{request_id}", responses=_UNKNOWN_COMMAND)
async def get_command(ctx: Context, _: Reader, request_id: UUID) -> CommandPublic:
    row = await ctx.commands.store.get(str(request_id))
    if row is None:
        raise NotFoundError(f"no command {request_id}")
    return CommandPublic.of(row)


@router.get(
    "/commands/{request_id}/attachment",
    response_class=Response,
    responses={
        200: {
            "content": {"image/jpeg": {}, "application/octet-stream": {}},
            "description": "The attachment, e.g. a fetched snapshot's JPEG",
        },
        404: {"description": "No such command, or it has no attachment"},
    },
)
async def get_attachment(ctx: Context, actor: Diagnostician, request_id: UUID) -> Response:
    """A command's attachment (a fetched snapshot). Every view is audited as ``snapshot.view``."""
    row, content = await ctx.commands.store.view_attachment(actor, str(request_id))
    return Response(
        content,
        media_type=row.attachment_content_type,
        headers={
            "Cache-Control": "no-store",
            "X-Content-Type-Options": "nosniff",
            "Content-Disposition": f'inline; filename="{row.request_id}.jpg"'
            if row.attachment_content_type == "image/jpeg"
            else f'attachment; filename="{row.request_id}.bin"',
        },
    )
