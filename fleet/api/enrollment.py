"""Routes for enrolling gateways: enrollment tokens (technicians, admins), the gateway's own ``POST /enroll``
(authenticated by the enrollment token in its body, no API token), and revoking or restoring a gateway."""

import asyncio
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Query, status
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field

from fleet.api.context import CALLER_RESPONSES, Context, IdPath, Provisioner, Restorer, in_scope, require_place
from fleet.db.schema import EnrollmentTokenRow, GatewayRow
from protocol.config_signing import load_public_key
from protocol.enrollment import ENROLL_PATH, EnrollmentGrant, EnrollmentRequest, enrollment_code
from protocol.errors import SigningKeyError
from protocol.identifiers import Identifier

router = APIRouter(tags=["enrollment"])

_UNAVAILABLE: dict[int | str, dict[str, Any]] = {
    503: {"description": "The fleet cannot provision broker credentials now (nothing was changed)"}
}
_NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "Unknown village, gateway or token"}}
_CONFLICT: dict[int | str, dict[str, Any]] = {409: {"description": "The gateway stands in another village"}}


class EnrollmentTokenRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    village_id: Identifier = Field(description="The village the gateway will stand in.")
    gateway_id: Identifier | None = Field(
        default=None,
        description="Enroll this gateway id: a new one, or an existing gateway again (re-enrollment, replaced "
        "hardware: same id and history, new key and credentials). Unset: the fleet names a new gateway.",
    )
    ttl_s: int | None = Field(
        default=None, ge=60, le=7 * 86400, description="Valid for this long; unset: the fleet's default (30 min)."
    )


class EnrollmentTokenPublic(BaseModel):
    model_config = ConfigDict(frozen=True, from_attributes=True)

    id: str
    village_id: str
    gateway_id: str | None
    created_by: str
    created_ms: int
    expires_ms: int
    used_ms: int | None
    enrolled_gateway_id: str | None
    revoked_ms: int | None

    @classmethod
    def of(cls, row: EnrollmentTokenRow) -> "EnrollmentTokenPublic":
        return cls.model_validate(row)


class IssuedEnrollmentTokenPublic(EnrollmentTokenPublic):
    secret: str = Field(description="The enrollment token (`oet_…`). Shown this once: the fleet keeps only its hash.")
    code: str | None = Field(
        description="The enrollment code for `outpost gateway enroll --code` or a QR code, when the fleet knows "
        "its public URL (enrollment.public_url)."
    )


class GatewayEnrollmentPublic(BaseModel):
    """A gateway's enrollment state."""

    model_config = ConfigDict(frozen=True, from_attributes=True)

    id: str
    village_id: str
    enrolled_ms: int | None
    enrolled_hostname: str | None
    public_key_sha256: str | None
    revoked_ms: int | None
    tls_cert_not_after_ms: int | None = Field(
        description="When the TLS client certificate the fleet's gateway CA issued it last expires (renewed "
        "automatically within enrollment.gateway_cert_renew_days); null: none issued."
    )

    @classmethod
    def of(cls, row: GatewayRow) -> "GatewayEnrollmentPublic":
        return cls.model_validate(row)


@router.post(
    "/enrollment-tokens",
    status_code=status.HTTP_201_CREATED,
    responses={**CALLER_RESPONSES, **_NOT_FOUND, **_CONFLICT, **_UNAVAILABLE},
)
async def create_enrollment_token(
    ctx: Context, actor: Provisioner, request: EnrollmentTokenRequest
) -> IssuedEnrollmentTokenPublic:
    """Issue a single-use enrollment token for a village (and optionally a gateway id); its secret is in this
    response only."""
    require_place(actor, await ctx.places.of_village(request.village_id), f"village {request.village_id}")
    issued = await ctx.enrollment.issue_token(actor, request.village_id, request.gateway_id, request.ttl_s)
    public_url = ctx.enrollment.public_url
    return IssuedEnrollmentTokenPublic(
        **EnrollmentTokenPublic.of(issued.row).model_dump(),
        secret=issued.secret,
        code=enrollment_code(public_url, issued.secret) if public_url else None,
    )


@router.get("/enrollment-tokens", responses=CALLER_RESPONSES)
async def list_enrollment_tokens(
    ctx: Context,
    actor: Provisioner,
    include_inactive: Annotated[bool, Query(description="Also used, expired and revoked tokens.")] = False,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[EnrollmentTokenPublic]:
    """Enrollment tokens, newest first (never their secrets; of its scope, for a scoped token)."""
    rows = await ctx.enrollment.tokens.tokens(include_inactive=include_inactive, limit=limit)
    return [
        EnrollmentTokenPublic.of(row)
        for row in await in_scope(ctx, actor, rows, lambda at, row: at.of_village(row.village_id))
    ]


@router.delete("/enrollment-tokens/{token_id}", responses={**CALLER_RESPONSES, **_NOT_FOUND})
async def revoke_enrollment_token(ctx: Context, actor: Provisioner, token_id: uuid.UUID) -> EnrollmentTokenPublic:
    """Make an unused enrollment token unusable at once; it stays listed."""
    return EnrollmentTokenPublic.of(await ctx.enrollment.tokens.revoke(actor, str(token_id)))


@router.post(
    ENROLL_PATH,
    responses={
        401: {"description": "The enrollment token is unknown, used, expired or revoked"},
        429: {"description": "Too many calls from this address: retry after Retry-After seconds"},
        409: {"description": "The gateway or its key is in the way (the detail says how)"},
        **_UNAVAILABLE,
    },
)
async def enroll(ctx: Context, request: EnrollmentRequest) -> EnrollmentGrant:
    """A gateway enrolls with its enrollment token and public key (no API token): it receives its id, its
    broker credentials and CA, the fleet's config-signing key and its initial config. A token works once."""
    try:  # on a worker thread: anyone may call this, and the event loop carries every panic alert
        await asyncio.to_thread(load_public_key, request.public_key_pem)
    except SigningKeyError as exc:
        error = {"loc": ("body", "public_key_pem"), "msg": f"Value error, {exc}", "type": "value_error"}
        raise RequestValidationError([error]) from None
    return await ctx.enrollment.enroll(request)


_GATEWAY_RESPONSES = {**CALLER_RESPONSES, **_NOT_FOUND, **_UNAVAILABLE, 409: {"description": "Not a gateway's login"}}


@router.post("/gateways/{gateway_id}/revoke", tags=["gateways"], responses=_GATEWAY_RESPONSES)
async def revoke_gateway(ctx: Context, actor: Provisioner, gateway_id: IdPath) -> GatewayEnrollmentPublic:
    """Refuse the gateway's broker logins and close its session until it is restored or enrolled again."""
    return GatewayEnrollmentPublic.of(await ctx.enrollment.revoke_gateway(actor, gateway_id))


@router.post("/gateways/{gateway_id}/restore", tags=["gateways"], responses=_GATEWAY_RESPONSES)
async def restore_gateway(ctx: Context, actor: Restorer, gateway_id: IdPath) -> GatewayEnrollmentPublic:
    """Accept a revoked gateway's broker logins again, with the credentials it had (admins only: a revoked gateway
    may be a stolen one)."""
    return GatewayEnrollmentPublic.of(await ctx.enrollment.restore_gateway(actor, gateway_id))
