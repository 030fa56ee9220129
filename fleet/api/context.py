"""What every route reaches through FastAPI's dependency injection: the fleet's stores and the caller."""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Path, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from fleet.access.audit import AuditLog
from fleet.access.roles import Actor, Permission
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
from fleet.ingest.dead_letters import DeadLetters
from fleet.registry import Registry
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

_bearer = HTTPBearer(auto_error=False, description="An Outpost API token: `Authorization: Bearer opt_…`")


def allowed(permission: Permission) -> Callable[..., object]:
    """A dependency giving the calling :class:`Actor`, if its token is valid and its role has ``permission``."""

    async def caller(
        context: Context, credentials: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)]
    ) -> Actor:
        if credentials is None:
            raise NotAuthenticatedError("send an API token: Authorization: Bearer <token>")
        actor = await context.tokens.authenticate(credentials.credentials)
        if not actor.may(permission):
            raise PermissionDeniedError(f"role {actor.role.value} may not {permission.value.replace('_', ' ')}")
        return actor

    return caller


Reader = Annotated[Actor, Depends(allowed(Permission.READ))]
Provisioner = Annotated[Actor, Depends(allowed(Permission.PROVISION))]
SiteManager = Annotated[Actor, Depends(allowed(Permission.MANAGE_SITES))]
Administrator = Annotated[Actor, Depends(allowed(Permission.ADMINISTER))]
Restorer = Annotated[Actor, Depends(allowed(Permission.RESTORE_GATEWAYS))]
