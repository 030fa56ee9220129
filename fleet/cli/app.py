"""``outpost fleet``: run the fleet manager and manage its database."""

import asyncio
import signal
from typing import Annotated

import typer
from pydantic import ValidationError

from fleet.cli.admin import gateways, sites, tokens
from fleet.cli.alerts import alerts
from fleet.cli.audit import audit
from fleet.cli.commands import command
from fleet.cli.config import config
from fleet.cli.dead_letters import dead_letters
from fleet.cli.deliveries import deliveries
from fleet.cli.devices import devices
from fleet.cli.enrollment import enrollment
from fleet.cli.health import health
from fleet.cli.jobs import jobs
from fleet.cli.releases import releases
from fleet.errors import FleetError
from fleet.settings import FleetSettings
from protocol.settings_env import settings_problems

app = typer.Typer(
    help="The county-level fleet manager: `run` it (settings from OUTPOST_FLEET_* environment variables), and "
    "manage it through its API with the other commands (OUTPOST_FLEET_URL, OUTPOST_TOKEN, OUTPOST_CA_FILE; "
    "times in OUTPOST_TZ).",
    no_args_is_help=True,
)
gateways.command("health")(health)
app.add_typer(sites, name="sites")
app.add_typer(gateways, name="gateways")
app.add_typer(devices, name="devices")
app.add_typer(tokens, name="tokens")
app.add_typer(enrollment, name="enrollment")  # also adds `gateways revoke|restore`
app.add_typer(config, name="config")
app.add_typer(command, name="command")
app.add_typer(releases, name="releases")
app.add_typer(jobs, name="jobs")
app.add_typer(alerts, name="alerts")
app.add_typer(deliveries, name="deliveries")
app.add_typer(dead_letters, name="dead-letters")
app.add_typer(audit, name="audit")


def _settings() -> FleetSettings:
    try:
        return FleetSettings()
    except ValidationError as exc:
        typer.echo(f"invalid fleet settings:\n{settings_problems(exc, 'OUTPOST_FLEET_')}", err=True)
        raise typer.Exit(2) from exc


@app.command("run")
def run(
    api_port: Annotated[int | None, typer.Option(help="Override the REST API port (OUTPOST_FLEET_API__PORT).")] = None,
) -> None:
    """Ingest every gateway's traffic, track presence, store time series, deliver cases, serve the API."""
    settings = _settings()
    if api_port is not None:
        settings = settings.model_copy(update={"api": settings.api.model_copy(update={"port": api_port})})
    try:
        asyncio.run(_run(settings))
    except FleetError as exc:
        typer.echo(f"stopped: {exc}", err=True)
        raise typer.Exit(3) from exc


@app.command("ingest")
def ingest(
    index: Annotated[int, typer.Option(min=0, help="This worker's number: unique, and the same after a restart.")],
) -> None:
    """Run one more ingest worker beside `fleet run`: it takes a share of the telemetry and events.

    Its MQTT session ({broker.client_id}-TAG-ingest-INDEX, TAG made from the password) persists, so a restarted
    worker resumes what it had not acknowledged. Exits 0 on SIGTERM, 3 if the broker refuses its credentials."""
    from fleet.ingest.worker import run_worker  # noqa: PLC0415 - keeps `--help` fast

    raise typer.Exit(asyncio.run(run_worker(_settings(), index)))


@app.command("migrate")
def migrate() -> None:
    """Bring the fleet database to the newest schema (the service also does this at start)."""
    from fleet.db.engine import create_engine  # noqa: PLC0415 - keeps `--help` fast
    from fleet.db.engine import migrate as apply_migrations  # noqa: PLC0415

    async def _migrate() -> None:
        engine = create_engine(_settings().database_url)
        try:
            await apply_migrations(engine)
        finally:
            await engine.dispose()

    try:
        asyncio.run(_migrate())
    except FleetError as exc:
        typer.echo(f"migration failed: {exc}", err=True)
        raise typer.Exit(1) from exc


async def _run(settings: FleetSettings) -> None:
    from fleet.gc_tuning import tune_for_throughput  # noqa: PLC0415 - keeps `--help` fast
    from fleet.service import FleetService  # noqa: PLC0415

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    service = FleetService(settings)
    tune_for_throughput()
    await service.run(stop)
