"""What every route reaches through FastAPI's dependency injection: the fleet's stores and the caller."""

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Path, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from fleet.access.audit import AuditLog
from fleet.access.places import PlaceIndex, Places
from fleet.access.roles import Actor, Permission
from fleet.access.scope import Place, covers
from fleet.access.tokens import TokenStore
from fleet.alerts.callbacks import CaseCallbacks
from fleet.alerts.handling import AlertHandling
from fleet.alerts.outbox_queue import OutboxQueue
from fleet.alerts.rules.book import RuleBook
from fleet.alerts.store import AlertStore
from fleet.api.schemas import HealthReport
from fleet.commands.dispatcher import CommandDispatcher
from fleet.configs.push import ConfigPush
from fleet.enrollment.service import EnrollmentService
from fleet.errors import NotAuthenticatedError, PermissionDeniedError
from fleet.gateways.registry import Registry
from fleet.ingest.dead_letters import DeadLetters
from fleet.jobs.engine import JobEngine
from fleet.releases.store import ReleaseStore
from fleet.sites.inventory import GatewayInventory
from fleet.sites.store import SiteStore
from fleet.timeseries.history import HealthHistory
from protocol.identifiers import IDENTIFIER_PATTERN
from protocol.request_signing import RequestVerifier


@dataclass(frozen=True, slots=True)
class ApiContext:
    registry: Registry
    alerts: AlertStore
    handling: AlertHandling
    callbacks: CaseCallbacks
    outbox: OutboxQueue
    callback_verifier: RequestVerifier
    health: Callable[[], HealthReport]
    sites: SiteStore
    inventory: GatewayInventory
    tokens: TokenStore
    audit: AuditLog
    health_history: HealthHistory
    enrollment: EnrollmentService
    configs: ConfigPush
    commands: CommandDispatcher
    rules: RuleBook
    dead_letters: DeadLetters
    places: Places
    releases: ReleaseStore
    jobs: JobEngine
    clock: Callable[[], int]


def _context(request: Request) -> ApiContext:
    context: ApiContext = request.app.state.context
    return context


Context = Annotated[ApiContext, Depends(_context)]

CALLER_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"description": "No valid token"},
    403: {"description": "Role"},
}
"""What every route that needs a token may answer besides its own outcomes."""

IdPath = Annotated[str, Path(pattern=IDENTIFIER_PATTERN)]

T = TypeVar("T")

_bearer = HTTPBearer(auto_error=False, description="An Outpost API token: `Authorization: Bearer opt_…`")


class Allowed:
    """A dependency giving the calling :class:`Actor`, if its token is valid, its role has ``permission`` and its
    scope reaches what the request names (the county, town, village, gateway, alert, command, enrollment token or
    layer in its path or query parameters). ``fleet_wide``: the route acts on the whole fleet, so a scoped token
    may not call it at all. A route that lists or creates things filters or checks by the actor's scope itself."""

    def __init__(self, permission: Permission, *, fleet_wide: bool = False) -> None:
        self.permission = permission
        self.fleet_wide = fleet_wide

    async def __call__(
        self,
        request: Request,
        context: Context,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
    ) -> Actor:
        if credentials is None:
            raise NotAuthenticatedError("send an API token: Authorization: Bearer <token>")
        actor = await context.tokens.authenticate(credentials.credentials)
        if not actor.may(self.permission):
            raise PermissionDeniedError(f"role {actor.role.value} may not {self.permission.value.replace('_', ' ')}")
        if actor.scope is not None:
            if self.fleet_wide:
                raise PermissionDeniedError(f"a token scoped to {actor.scope} may not act on the whole fleet")
            await _require_in_scope(context.places, actor, {**request.query_params, **request.path_params})
        return actor


async def _require_in_scope(places: Places, actor: Actor, named: dict[str, Any]) -> None:
    """Refuse (403) when a path or query parameter names something outside the actor's scope (a filter to another
    village is refused too); a name that does not exist passes (the route answers 404)."""
    resolvers: dict[str, Callable[[str], Awaitable[Place | None]]] = {
        "county_id": places.of_county,
        "town_id": places.of_town,
        "village_id": places.of_village,
        "gateway_id": places.of_gateway,
        "alert_id": places.of_alert,
        "request_id": places.of_command,
        "token_id": places.of_enrollment_token,
    }
    found = [await resolve(named[name]) for name, resolve in resolvers.items() if isinstance(named.get(name), str)]
    if isinstance(named.get("scope"), str) and isinstance(named.get("scope_id"), str):
        found.append(await places.of_layer(named["scope"], named["scope_id"]))
    for place in found:
        require_place(actor, place, "what the request names")


async def in_scope(
    context: ApiContext, actor: Actor, rows: Sequence[T], place_of: Callable[[PlaceIndex, T], Place]
) -> list[T]:
    """The ``rows`` of a listing that the actor's scope reaches (all of them for an unscoped token)."""
    if actor.scope is None:
        return list(rows)
    index = await context.places.index()
    return [row for row in rows if covers(actor.scope, place_of(index, row))]


def require_place(actor: Actor, place: Place | None, what: str) -> None:
    """For a route that creates or moves something into ``place`` (named in its body): refuse (403) when the
    actor's scope does not reach it."""
    if actor.scope is not None and place is not None and not covers(actor.scope, place):
        raise PermissionDeniedError(f"{what} is outside the scope of this token ({actor.scope})")


Reader = Annotated[Actor, Depends(Allowed(Permission.READ))]
Provisioner = Annotated[Actor, Depends(Allowed(Permission.PROVISION))]
SiteManager = Annotated[Actor, Depends(Allowed(Permission.MANAGE_SITES))]
Administrator = Annotated[Actor, Depends(Allowed(Permission.ADMINISTER, fleet_wide=True))]
Restorer = Annotated[Actor, Depends(Allowed(Permission.RESTORE_GATEWAYS))]
FleetReader = Annotated[Actor, Depends(Allowed(Permission.READ, fleet_wide=True))]
FleetSiteManager = Annotated[Actor, Depends(Allowed(Permission.MANAGE_SITES, fleet_wide=True))]
AlertHandler = Annotated[Actor, Depends(Allowed(Permission.HANDLE_ALERTS))]
FleetAlertHandler = Annotated[Actor, Depends(Allowed(Permission.HANDLE_ALERTS, fleet_wide=True))]
Diagnostician = Annotated[Actor, Depends(Allowed(Permission.DIAGNOSE))]
