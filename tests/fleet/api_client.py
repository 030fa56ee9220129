"""The fleet's REST API in-process (ASGI) on a real database, for tests that act as its callers."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from fleet.access.audit import AuditLog
from fleet.access.places import Places
from fleet.access.tokens import TokenStore
from fleet.alerts.callbacks import CaseCallbacks
from fleet.alerts.handling import AlertHandling
from fleet.alerts.outbox_queue import OutboxQueue
from fleet.alerts.rules.book import RuleBook
from fleet.alerts.store import AlertStore
from fleet.api.app import create_app
from fleet.api.context import ApiContext
from fleet.api.schemas import AlertDeliveryStatus, HealthReport, IngestStatus, TimeSeriesStatus
from fleet.gateways.registry import Registry
from fleet.ingest.dead_letters import DeadLetters
from fleet.jobs.engine import JobEngine
from fleet.jobs.store import JobStore
from fleet.sites.inventory import GatewayInventory
from fleet.sites.store import SiteStore
from fleet.timeseries.history_sql import SqlHealthHistory
from protocol.request_signing import RequestVerifier
from tests.fleet.alert_parts import CASES
from tests.fleet.commands.parts import unconnected_commands
from tests.fleet.configs.parts import config_push
from tests.fleet.enrollment.parts import development_enrollment
from tests.fleet.helpers import FakeClock, default_escalation
from tests.fleet.releases.parts import release_store

ADMIN_TOKEN = "test-bootstrap-admin"
CALLBACK_SECRET = "test-callback-signing-secret"
"""Alerts open and withdraw cases through the outbox, as with a governance platform configured (not running)."""


def api_context(sessions: async_sessionmaker[AsyncSession], clock: FakeClock) -> ApiContext:
    def no_health() -> HealthReport:
        """A fleet whose ingest and delivery are not running: these tests exercise the API alone."""
        return HealthReport(
            status="degraded",
            gateways_online=0,
            ingest=IngestStatus(connected=False, received=0, rejected={}, duplicates=0, stalls=0, handler_errors=0),
            timeseries=TimeSeriesStatus(
                sink="none", healthy=False, written_points=0, buffered_points=0, dropped_points=0, rejected_points=0
            ),
            alerts=AlertDeliveryStatus(raised=0, delivered=0, dead=0, blocked="not running"),
        )

    releases = release_store(sessions, clock)
    commands = unconnected_commands(sessions, clock)
    return ApiContext(
        registry=Registry(sessions, clock),
        alerts=AlertStore(sessions, clock, default_escalation(), outbox=CASES),
        handling=AlertHandling(sessions, clock, outbox=CASES),
        callbacks=CaseCallbacks(sessions, clock, outbox=CASES),
        outbox=OutboxQueue(sessions),
        callback_verifier=RequestVerifier([CALLBACK_SECRET]),
        health=no_health,
        sites=SiteStore(sessions, clock),
        inventory=GatewayInventory(sessions, clock),
        tokens=TokenStore(sessions, clock, ADMIN_TOKEN),
        audit=AuditLog(sessions),
        health_history=SqlHealthHistory(Path("/nonexistent/timeseries.db")),  # nothing written: no samples
        enrollment=development_enrollment(sessions, clock),
        configs=config_push(sessions, clock),
        commands=commands,
        clock=clock,
        rules=RuleBook(sessions, clock),
        dead_letters=DeadLetters(sessions, clock),
        places=Places(sessions),
        releases=releases,
        jobs=JobEngine(JobStore(sessions, clock), sessions, commands, releases, clock),
    )


@asynccontextmanager
async def api_client(context: ApiContext, token: str | None = ADMIN_TOKEN) -> AsyncIterator[httpx.AsyncClient]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    transport = httpx.ASGITransport(app=create_app(context))
    async with httpx.AsyncClient(transport=transport, base_url="http://fleet", headers=headers) as client:
        yield client
