"""The REST API: the site hierarchy, gateways and devices, presence and health, alerts, tokens and the audit log.

Every route but ``/healthz`` needs a bearer token whose role allows it (see :mod:`fleet.access.roles`).
Refusals from the fleet's stores become HTTP answers here, in one place. OpenAPI at ``/docs``.
"""

from typing import Annotated, Final

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi_offline import FastAPIOffline

from fleet import FLEET_VERSION
from fleet.api import (
    access,
    alert_rules,
    alerts,
    commands,
    deliveries,
    enrollment,
    governance,
    ingest,
    inventory,
    jobs,
    releases,
    sites,
)
from fleet.api.configs import router as configs_router
from fleet.api.context import CALLER_RESPONSES, ApiContext, Context, IdPath, Reader, in_scope
from fleet.api.health import router as health_router
from fleet.api.limits import RequestGuard, RequestLimits, validation_refused
from fleet.api.schemas import GatewayPublic, HealthReport
from fleet.errors import (
    AccessError,
    ConflictError,
    DataIntegrityError,
    InvalidRequestError,
    NotAuthenticatedError,
    NotFoundError,
    RegistryError,
    TransientError,
)
from protocol.enrollment import ENROLL_PATH
from protocol.governance import CASE_CALLBACK_PATH
from protocol.identifiers import IDENTIFIER_PATTERN

_UNKNOWN = {"description": "No such gateway"}

PUBLIC_POST_PATHS: Final = (ENROLL_PATH, CASE_CALLBACK_PATH)
"""The routes that take a body from callers without an API token (they prove themselves in it)."""

_STATUS: dict[type[RegistryError], int] = {
    NotAuthenticatedError: 401,
    AccessError: 403,
    NotFoundError: 404,
    ConflictError: 409,
    InvalidRequestError: 422,
}


def _refused(_request: Request, exc: Exception) -> JSONResponse:
    status = next((code for kind, code in _STATUS.items() if isinstance(exc, kind)), 400)
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse({"detail": str(exc)}, status_code=status, headers=headers)


def _clashed(_request: Request, exc: Exception) -> JSONResponse:
    """The database refused a write as inconsistent: another call changed the same records meanwhile."""
    return JSONResponse({"detail": f"conflicting change, try again: {exc}"}, status_code=409)


def _unavailable(_request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse({"detail": f"try again shortly: {exc}"}, status_code=503, headers={"Retry-After": "5"})


DOCS_ASSETS_PATH: Final = "/docs-assets"


def create_app(context: ApiContext, limits: RequestLimits | None = None) -> FastAPI:
    # The documentation page with its scripts, styles and icons served by the fleet itself (FastAPI's own loads
    # them from a CDN: blank on a county LAN without internet). No /redoc: it fetches its logo from a CDN.
    app = FastAPIOffline(
        static_url=DOCS_ASSETS_PATH,
        redoc_url=None,
        title="Outpost fleet manager",
        version=FLEET_VERSION,
        description=(
            "The county's sites (county → town → village → grid), its gateways and their devices, presence, "
            "health and alerts. Send an API token as `Authorization: Bearer …`; its role decides what it may do."
        ),
        responses={
            400: {"description": "The request body is not well-formed"},
            413: {"description": "The request body is over this route's cap"},
        },
    )
    app.state.context = context
    app.add_middleware(
        RequestGuard,
        public_paths=PUBLIC_POST_PATHS,
        import_paths=[sites.IMPORT_PATH],
        upload_prefixes=[releases.PREFIX],
        limits=limits or RequestLimits(),
    )
    app.add_exception_handler(RequestValidationError, validation_refused)
    app.add_exception_handler(RegistryError, _refused)
    app.add_exception_handler(TransientError, _unavailable)
    app.add_exception_handler(DataIntegrityError, _clashed)
    app.include_router(sites.router)
    app.include_router(inventory.router)
    app.include_router(access.router)
    app.include_router(health_router)
    app.include_router(enrollment.router)
    app.include_router(configs_router)
    app.include_router(commands.router)
    app.include_router(releases.router)
    app.include_router(jobs.router)
    app.include_router(alerts.router)
    app.include_router(deliveries.router)
    # --- alert rules ---
    app.include_router(alert_rules.router)
    app.include_router(governance.router)
    app.include_router(ingest.router)

    @app.get("/healthz", tags=["service"])
    async def healthz(ctx: Context) -> HealthReport:
        """The fleet service's own health (no token needed): broker connection, ingest, time series, delivery."""
        return ctx.health()

    @app.get("/gateways", tags=["gateways"], responses=CALLER_RESPONSES)
    async def list_gateways(
        ctx: Context,
        actor: Reader,
        village_id: Annotated[str | None, Query(pattern=IDENTIFIER_PATTERN)] = None,
    ) -> list[GatewayPublic]:
        """Every registered gateway (optionally of one village; of its scope, for a scoped token) with presence and
        last health."""
        rows = await ctx.registry.gateways(village_id)
        return [
            GatewayPublic.of(row)
            for row in await in_scope(ctx, actor, rows, lambda at, row: at.of_village(row.village_id))
        ]

    @app.get(
        "/gateways/{gateway_id}",
        tags=["gateways"],
        responses={**CALLER_RESPONSES, 404: _UNKNOWN},
    )
    async def get_gateway(ctx: Context, _: Reader, gateway_id: IdPath) -> GatewayPublic:
        row = await ctx.registry.gateway(gateway_id)
        if row is None:
            raise NotFoundError(f"no gateway {gateway_id!r}")
        return GatewayPublic.of(row)

    return app
