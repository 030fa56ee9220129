"""What API callers send to command a gateway, and what they see of a command."""

from typing import Annotated, Any, Self

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from fleet.db.schema import CommandRow, CommandState
from protocol.messages import COMMAND_ARGS, CommandName, Evidence

Reason = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=256)]


class CommandRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: CommandName
    args: Evidence = Field(
        default_factory=dict,
        description="list_snapshots: device_id, before_ts (paging); fetch_snapshot: snapshot_id.",
    )
    reason: Reason | None = Field(default=None, description="Why; required for fetch_snapshot (audited).")
    timeout_s: float | None = Field(
        default=None,
        ge=1,
        le=3600,
        description="Deadline for the answer; unset: the fleet's commands.default_timeout_s.",
    )
    wait: bool = Field(
        default=False, description="Answer once the outcome is known or the deadline passed (200), not at once (202)."
    )

    @model_validator(mode="after")
    def _takes_these_args(self) -> Self:
        """Refused here rather than by the gateway after a round trip (it checks again)."""
        unknown = sorted(set(self.args) - COMMAND_ARGS[self.name])
        if unknown:
            raise ValueError(f"{self.name} takes no argument {', '.join(unknown)}")
        return self

    @model_validator(mode="after")
    def _not_the_fleet_s_own(self) -> Self:
        if self.name is CommandName.INSTALL_CERTIFICATE:
            raise ValueError("install_certificate is sent by the fleet's certificate renewal only")
        return self

    @model_validator(mode="after")
    def _snapshot_fetch_is_justified(self) -> Self:
        """A frame leaves a gateway only for a named snapshot and a stated reason (the gateway checks it too)."""
        if self.name is CommandName.FETCH_SNAPSHOT:
            if self.reason is None:
                raise ValueError("fetch_snapshot needs a reason: it is audited")
            if not isinstance(self.args.get("snapshot_id"), str):
                raise ValueError("fetch_snapshot needs args.snapshot_id (see list_snapshots)")
        return self


class AttachmentPublic(BaseModel):
    model_config = ConfigDict(frozen=True)

    bytes: int
    content_type: str
    url: str = Field(description="Where to fetch it (needs the diagnose permission; every view is audited).")


class CommandPublic(BaseModel):
    model_config = ConfigDict(frozen=True)

    request_id: str
    gateway_id: str
    village_id: str
    name: CommandName
    args: dict[str, Any]
    requested_by: str = Field(description="The name of the API token that sent it.")
    reason: str | None
    created_ms: int
    deadline_ms: int
    state: CommandState
    sent_ms: int | None = Field(description="When the broker took it.")
    result: dict[str, Any] | None
    error: str | None
    responded_ms: int | None = Field(description="When the fleet received the answer.")
    answered_late: bool = Field(
        description="The answer came after the deadline: result and error are the gateway's, the state stays timed_out."
    )
    attachment: AttachmentPublic | None

    @classmethod
    def of(cls, row: CommandRow) -> "CommandPublic":
        attachment = (
            AttachmentPublic(
                bytes=row.attachment_bytes,
                content_type=row.attachment_content_type or "application/octet-stream",
                url=f"/commands/{row.request_id}/attachment",
            )
            if row.attachment_bytes is not None
            else None
        )
        return cls(
            request_id=row.request_id,
            gateway_id=row.gateway_id,
            village_id=row.village_id,
            name=CommandName(row.name),
            args=row.args,
            requested_by=row.requested_by,
            reason=row.reason,
            created_ms=row.created_ms,
            deadline_ms=row.deadline_ms,
            state=CommandState(row.state),
            sent_ms=row.sent_ms,
            result=row.result,
            error=row.error,
            responded_ms=row.responded_ms,
            answered_late=row.answered_late,
            attachment=attachment,
        )
