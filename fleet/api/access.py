"""Routes for API tokens and the audit log (administrators)."""

from typing import Annotated

from fastapi import APIRouter, Path, Query, status
from pydantic import BaseModel, ConfigDict, Field

from fleet.access.roles import Role
from fleet.access.scope import PlaceKind, PlaceScope
from fleet.access.tokens import scope_of
from fleet.api.context import CALLER_RESPONSES, Administrator, ApiContext, Context
from fleet.db.schema import ApiTokenRow, AuditRow
from protocol.identifiers import IDENTIFIER_PATTERN, Identifier

router = APIRouter(tags=["access"], responses=CALLER_RESPONSES)

TokenName = Annotated[str, Path(pattern=IDENTIFIER_PATTERN)]


class TokenScope(BaseModel):
    """The one county, town or village (and everything below it) a token reaches."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: PlaceKind
    id: Identifier


class TokenRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Identifier = Field(description="Who or what uses it, as the audit log will show it (e.g. li-wei).")
    role: Role
    ttl_s: int | None = Field(default=None, ge=60, le=10 * 365 * 86400, description="Expires after; unset: never.")
    scope: TokenScope | None = Field(
        default=None,
        description="Reach only this county, town or village and what stands in it (every route checks); "
        "unset: the whole fleet.",
    )


class TokenPublic(BaseModel):
    model_config = ConfigDict(frozen=True, from_attributes=True)

    id: str
    name: str
    role: Role
    created_ms: int
    expires_ms: int | None
    revoked_ms: int | None
    scope: TokenScope | None

    @classmethod
    def of(cls, row: ApiTokenRow) -> "TokenPublic":
        scope = scope_of(row)
        return cls(
            id=row.id,
            name=row.name,
            role=Role(row.role),
            created_ms=row.created_ms,
            expires_ms=row.expires_ms,
            revoked_ms=row.revoked_ms,
            scope=TokenScope(kind=scope.kind, id=scope.id) if scope is not None else None,
        )


class IssuedTokenPublic(TokenPublic):
    secret: str = Field(description="The bearer token. Shown this once: the fleet keeps only its hash.")


class AuditEntryPublic(BaseModel):
    model_config = ConfigDict(frozen=True, from_attributes=True)

    id: int
    at_ms: int
    actor: str
    role: str
    action: str
    target_type: str
    target_id: str
    before: dict[str, object] | None
    after: dict[str, object] | None

    @classmethod
    def of(cls, row: AuditRow) -> "AuditEntryPublic":
        return cls.model_validate(row)


@router.post(
    "/tokens",
    status_code=status.HTTP_201_CREATED,
    responses={404: {"description": "No such place to scope it to"}, 409: {"description": "Name taken"}},
)
async def create_token(ctx: Context, actor: Administrator, request: TokenRequest) -> IssuedTokenPublic:
    """Issue a token with a role (and a place it is scoped to); its secret is in this response only."""
    scope = await _existing(ctx, request.scope) if request.scope is not None else None
    issued = await ctx.tokens.issue(actor, request.name, request.role, request.ttl_s, scope)
    return IssuedTokenPublic(**TokenPublic.of(issued.row).model_dump(), secret=issued.secret)


async def _existing(ctx: ApiContext, scope: TokenScope) -> PlaceScope:
    """``scope`` as a token's, once the place is known to exist (NotFoundError, a 404, otherwise)."""
    match scope.kind:
        case PlaceKind.COUNTY:
            await ctx.sites.county(scope.id)
        case PlaceKind.TOWN:
            await ctx.sites.town(scope.id)
        case PlaceKind.VILLAGE:
            await ctx.sites.village(scope.id)
    return PlaceScope(scope.kind, scope.id)


@router.get("/tokens")
async def list_tokens(ctx: Context, _: Administrator) -> list[TokenPublic]:
    return [TokenPublic.of(row) for row in await ctx.tokens.tokens()]


@router.delete("/tokens/{name}", responses={404: {"description": "Unknown token"}})
async def revoke_token(ctx: Context, actor: Administrator, name: TokenName) -> TokenPublic:
    """Revoke a token at once; it stays listed, as revoked."""
    return TokenPublic.of(await ctx.tokens.revoke(actor, name))


@router.get("/audit")
async def audit_log(
    ctx: Context,
    _: Administrator,
    actor: Annotated[str | None, Query(max_length=64)] = None,
    target_type: Annotated[str | None, Query(max_length=32)] = None,
    target_id: Annotated[str | None, Query(max_length=160)] = None,
    since_ms: Annotated[int | None, Query(ge=0, lt=2**53)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[AuditEntryPublic]:
    """Every mutating call, newest first: who, what, when, and the record before and after."""
    rows = await ctx.audit.entries(
        actor=actor, target_type=target_type, target_id=target_id, since_ms=since_ms, limit=limit
    )
    return [AuditEntryPublic.of(row) for row in rows]
