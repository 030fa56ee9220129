"""``outpost gateway``: run the agent on a village gateway."""

import asyncio
import logging
import signal
from functools import partial
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError

from edge.errors import (
    EdgeError,
    EnrollmentRefusedError,
    FleetUnreachableError,
    RestartRequestedError,
)
from edge.settings import EdgeSettings
from protocol.gateway_config import DriverKind
from protocol.settings_env import settings_problems

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
            help="TOML settings file; OUTPOST_EDGE_* environment variables override it, key by key.",
        ),
    ] = None,
) -> None:
    """Connect to the broker and run the gateway's devices, local rules and uplink until stopped.

    Exit codes: 2 for invalid settings, 75 when the fleet asked for a restart, 1 when nothing can run
    (the settings' devices cannot be built, the local broker refuses the gateway). A refused uplink is
    not among them: the agent runs on and retries (see docs/ARCHITECTURE.md, "Running the gateway")."""
    try:
        settings = EdgeSettings.load(config)
    except ValidationError as exc:
        typer.echo(
            f"invalid gateway settings {_given(config)}:\n{_problems(exc)}",
            err=True,
        )
        raise typer.Exit(2) from exc
    except EdgeError as exc:
        typer.echo(f"invalid gateway settings: {exc}", err=True)
        raise typer.Exit(2) from exc
    from edge.adapters import ffmpeg_log  # noqa: PLC0415 - OpenCV: keeps `--help` fast

    ffmpeg_log.install()  # FFmpeg's and OpenCV's own messages into the agent's log, credentials scrubbed
    try:
        asyncio.run(_run(settings))
    except RestartRequestedError as exc:
        typer.echo(f"restarting: {exc}", err=True)
        raise typer.Exit(RESTART_EXIT_CODE) from exc
    except EdgeError as exc:
        typer.echo(f"stopped: {exc}", err=True)
        raise typer.Exit(1) from exc


@app.command("village-broker")
def village_broker(
    config: Annotated[
        Path,
        typer.Option("--config", "-c", exists=True, dir_okay=False, help="The gateway's TOML settings file."),
    ],
    directory: Annotated[Path, typer.Option(help="Where to write logins.json, passwd, acl and outpost.conf.")] = Path(
        "/etc/mosquitto/outpost"
    ),
    port: Annotated[int, typer.Option(min=1, max=65535, help="The village broker's port.")] = 1883,
    show: Annotated[
        str | None, typer.Option(help="Print this login's password (a node id, outpost-gateway or outpost-centre).")
    ] = None,
) -> None:
    """Give the village broker a login for the gateway, the village centre and every sensor node in the settings,
    and ACLs that keep each to its own topics (see edge/village_broker.py). Include outpost.conf from the village's
    Mosquitto (include_dir), reload it, then set local_broker.username/password to the gateway's login and flash
    each node with its own (outpost firmware flash --broker-user NODE)."""
    from edge.village_broker import VillageLogins, write_broker_files  # noqa: PLC0415 - keeps `--help` fast

    try:
        settings = EdgeSettings.load(config)
        nodes = [device.id for device in settings.devices if device.driver is DriverKind.NODE]
        logins = VillageLogins.kept_for(directory, nodes)
        write_broker_files(directory, logins, port)
    except ValidationError as exc:
        typer.echo(
            f"cannot set up the village broker: invalid gateway settings {_given(config)}:\n{_problems(exc)}",
            err=True,
        )
        raise typer.Exit(2) from exc
    except EdgeError as exc:
        typer.echo(f"cannot set up the village broker: {exc}", err=True)
        raise typer.Exit(2) from exc
    if show is not None:
        password = logins.passwords().get(show)
        if password is None:
            typer.echo(f"no login {show!r}: the logins are {', '.join(sorted(logins.passwords()))}", err=True)
            raise typer.Exit(2)
        typer.echo(password)
        return
    typer.echo(f"wrote {directory}: logins for outpost-gateway, outpost-centre and {len(nodes)} nodes", err=True)


def _problems(exc: ValidationError) -> str:
    return settings_problems(exc, "OUTPOST_EDGE_", "the --config file")


def _given(config: Path | None) -> str:
    return f"in {config}" if config is not None else "(no --config file given)"


@app.command("unit")
def unit(
    config: Annotated[
        Path, typer.Option("--config", "-c", help="The settings file the agent runs on (written as an absolute path).")
    ] = Path("/etc/outpost/gateway.toml"),
    executable: Annotated[
        Path | None,
        typer.Option(
            help="The outpost command the unit runs. Default: this installation's own, the outpost beside the "
            "Python running this command (its virtual environment's bin).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Print the systemd unit for the agent (Type=notify, watchdog, restart on failure), running this installation.

    Install it with: outpost gateway unit > /etc/systemd/system/outpost-gateway.service
    """
    from edge.enrollment.systemd import DEFAULT_STATE_DIR, unit_text  # noqa: PLC0415 - keeps `--help` fast

    typer.echo(unit_text(config, DEFAULT_STATE_DIR, executable), nl=False)


@app.command("enroll")
def enroll(
    fleet: Annotated[str | None, typer.Option(help="The fleet's URL, https://… (or give --code).")] = None,
    token: Annotated[
        str | None, typer.Option(help="The enrollment token, oet_… (or give --code).", show_default=False)
    ] = None,
    code: Annotated[
        str | None,
        typer.Option(help="The enrollment code (outpost-enroll:1?fleet=…&token=…), e.g. from the QR code."),
    ] = None,
    fleet_ca: Annotated[
        Path | None,
        typer.Option(exists=True, dir_okay=False, help="PEM CA that signed the fleet's certificate (a private CA)."),
    ] = None,
    insecure_http: Annotated[
        bool, typer.Option("--insecure-http", help="Allow a plain http:// fleet URL (development only).")
    ] = False,
    config_dir: Annotated[Path, typer.Option(help="Where the settings, key and CA files go.")] = Path("/etc/outpost"),
    state_dir: Annotated[Path, typer.Option(help="The agent's buffer and state.")] = Path("/var/lib/outpost"),
    group: Annotated[
        str | None,
        typer.Option(
            help="The agent's group, which may read the settings ('' for none). Default: outpost, if it exists."
        ),
    ] = None,
    systemd: Annotated[bool, typer.Option("--systemd/--no-systemd", help="Install the agent's systemd unit.")] = True,
    systemd_dir: Annotated[Path, typer.Option(help="Where to install the unit.")] = Path("/etc/systemd/system"),
    start: Annotated[bool, typer.Option("--start", help="Enable and (re)start the agent if systemd runs.")] = False,
) -> None:
    """Enroll this gateway with the fleet: make its key pair, receive its id, broker credentials, CA and initial
    config, write them (secrets 0600) and install the systemd unit. Enrolling again replaces the credentials
    (the previous files are kept in a backup directory)."""
    import socket  # noqa: PLC0415 - keeps `--help` fast

    from edge.enrollment.enroll import EnrollOptions, enroll_gateway  # noqa: PLC0415
    from protocol.enrollment import parse_enrollment_code  # noqa: PLC0415
    from protocol.errors import EnrollmentCodeError  # noqa: PLC0415

    if code is not None:
        if fleet is not None or token is not None:
            typer.echo("give either --code or --fleet and --token", err=True)
            raise typer.Exit(2)
        try:
            parsed = parse_enrollment_code(code)
        except EnrollmentCodeError as exc:
            typer.echo(f"invalid --code: {exc}", err=True)
            raise typer.Exit(2) from exc
        fleet, token = parsed.fleet_url, parsed.token
    if fleet is None or token is None:
        typer.echo("give --code, or --fleet and --token", err=True)
        raise typer.Exit(2)
    options = EnrollOptions(
        fleet_url=fleet,
        token=token,
        hostname=socket.gethostname(),
        config_dir=config_dir,
        state_dir=state_dir,
        fleet_ca=fleet_ca,
        allow_http=insecure_http,
        group=group,
        systemd_dir=systemd_dir if systemd else None,
        start=start,
    )
    try:
        result = enroll_gateway(options)
    except EnrollmentRefusedError as exc:
        typer.echo(f"refused: {exc}", err=True)
        raise typer.Exit(1) from exc
    except FleetUnreachableError as exc:
        typer.echo(f"failed: {exc}", err=True)
        raise typer.Exit(3) from exc
    except EdgeError as exc:
        typer.echo(f"failed: {exc}", err=True)
        raise typer.Exit(1) from exc
    action = "re-enrolled (its previous credentials no longer work)" if result.replaced else "enrolled"
    typer.echo(f"{action} as gateway {result.gateway_id} of village {result.village_id} (key {result.key_id})")
    typer.echo(f"settings: {result.settings_file}{'' if result.production else ' (development)'}")
    if result.backup_dir is not None:
        typer.echo(f"previous files: {result.backup_dir}")
    if result.unit_file is not None:
        typer.echo(f"systemd unit: {result.unit_file}{' (started)' if result.started else ''}")
    for notice in result.notices:
        typer.echo(f"note: {notice}", err=True)
    for warning in result.warnings:
        typer.secho(f"WARNING: {warning}", err=True, fg=typer.colors.RED, bold=True)


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
    build = partial(
        build_devices,
        clock=utc_now_ms,
        node_bus=local_bus,
        snapshots=snapshots,
        file_sources=settings.environment == "development",
    )
    agent = GatewayAgent(settings, build, local_bus=local_bus, snapshots=snapshots)
    await agent.run(stop)
