"""The REST API: gateways, alerts and the service's own health. OpenAPI at ``/docs``."""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, FastAPI, HTTPException, Path, Query, Request

from fleet import FLEET_VERSION
from fleet.alerts.store import AlertStore
from fleet.api.schemas import AlertPublic, GatewayPublic, HealthReport
from fleet.db.schema import DeliveryState
from fleet.registry import Registry
from protocol.identifiers import IDENTIFIER_PATTERN


@dataclass(frozen=True, slots=True)
class ApiContext:
    registry: Registry
    alerts: AlertStore
    health: Callable[[], HealthReport]


def _context(request: Request) -> ApiContext:
    context: ApiContext = request.app.state.context
    return context


Context = Annotated[ApiContext, Depends(_context)]
GatewayIdPath = Annotated[str, Path(pattern=IDENTIFIER_PATTERN)]
AlertIdPath = Annotated[str, Path(min_length=36, max_length=36)]


def create_app(context: ApiContext) -> FastAPI:
    app = FastAPI(
        title="Outpost fleet manager",
        version=FLEET_VERSION,
        description="Gateways, their presence and health, and the alerts they raised.",
    )
    app.state.context = context

    @app.get("/healthz", tags=["service"])
    async def healthz(ctx: Context) -> HealthReport:
        """The fleet service's own health: broker connection, ingest counters, time-series and delivery state."""
        return ctx.health()

    @app.get("/gateways", tags=["gateways"])
    async def list_gateways(
        ctx: Context,
        village_id: Annotated[str | None, Query(pattern=IDENTIFIER_PATTERN)] = None,
    ) -> list[GatewayPublic]:
        """Every registered gateway (optionally of one village) with presence and last health."""
        return [GatewayPublic.of(row) for row in await ctx.registry.gateways(village_id)]

    @app.get("/gateways/{gateway_id}", tags=["gateways"], responses={404: {"description": "Unknown gateway"}})
    async def get_gateway(ctx: Context, gateway_id: GatewayIdPath) -> GatewayPublic:
        row = await ctx.registry.gateway(gateway_id)
        if row is None:
            raise HTTPException(status_code=404, detail=f"no gateway {gateway_id!r}")
        return GatewayPublic.of(row)

    @app.get("/alerts", tags=["alerts"])
    async def list_alerts(
        ctx: Context,
        village_id: Annotated[str | None, Query(pattern=IDENTIFIER_PATTERN)] = None,
        delivery_state: DeliveryState | None = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> list[AlertPublic]:
        """Alerts, newest first, with the state of their case on the governance platform."""
        rows = await ctx.alerts.list(village_id=village_id, state=delivery_state, limit=limit)
        return [AlertPublic.of(row) for row in rows]

    @app.get("/alerts/{alert_id}", tags=["alerts"], responses={404: {"description": "Unknown alert"}})
    async def get_alert(ctx: Context, alert_id: AlertIdPath) -> AlertPublic:
        row = await ctx.alerts.get(alert_id)
        if row is None:
            raise HTTPException(status_code=404, detail=f"no alert {alert_id!r}")
        return AlertPublic.of(row)

    return app
