"""``outpost gateway``: run the agent on a village gateway."""

import asyncio
import logging
import signal
from functools import partial
from importlib.resources import files
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError

from edge.errors import EdgeError, RestartRequestedError, UplinkRefusedError
from edge.settings import EdgeSettings

logger = logging.getLogger(__name__)

RESTART_EXIT_CODE = 75
"""EX_TEMPFAIL: the fleet asked for a restart; systemd's Restart= starts the agent again."""

app = typer.Typer(help="Run the gateway agent on a village gateway.", no_args_is_help=True)


@app.command("run")
def run(
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            "-c",
            exists=True,
            dir_okay=False,
            help="TOML settings file; OUTPOST_EDGE_* environment variables fill what it leaves out.",
        ),
    ] = None,
) -> None:
    """Connect to the broker and run the gateway's devices, local rules and uplink until stopped."""
    try:
        settings = EdgeSettings.load(config)
    except (ValidationError, EdgeError) as exc:
        typer.echo(f"invalid gateway settings:\n{exc}", err=True)
        raise typer.Exit(2) from exc
    try:
        asyncio.run(_run(settings))
    except UplinkRefusedError as exc:
        typer.echo(f"stopped: {exc}", err=True)
        raise typer.Exit(3) from exc
    except RestartRequestedError as exc:
        typer.echo(f"restarting: {exc}", err=True)
        raise typer.Exit(RESTART_EXIT_CODE) from exc
    except EdgeError as exc:
        typer.echo(f"stopped: {exc}", err=True)
        raise typer.Exit(1) from exc


@app.command("unit")
def unit() -> None:
    """Print the systemd unit for the agent (Type=notify, watchdog, restart on failure).

    Install it with: outpost gateway unit > /etc/systemd/system/outpost-gateway.service
    """
    typer.echo(files("edge").joinpath("systemd/outpost-gateway.service").read_text(encoding="utf-8"), nl=False)


async def _run(settings: EdgeSettings) -> None:
    from edge.adapters.registry import build_devices  # noqa: PLC0415 - keeps `--help` fast
    from edge.agent import GatewayAgent  # noqa: PLC0415
    from edge.local_bus import LocalBus  # noqa: PLC0415
    from edge.snapshots import SnapshotStore  # noqa: PLC0415
    from protocol.clock import utc_now_ms  # noqa: PLC0415

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    local_bus = (
        LocalBus(settings.local_broker, settings.village_id, settings.gateway_id, utc_now_ms)
        if settings.local_broker is not None
        else None
    )
    snapshots = SnapshotStore(settings.state_dir / "snapshots", settings.config.snapshots, utc_now_ms)
    build = partial(build_devices, clock=utc_now_ms, node_bus=local_bus, snapshots=snapshots)
    agent = GatewayAgent(settings, build, local_bus=local_bus, snapshots=snapshots)
    await agent.run(stop)
