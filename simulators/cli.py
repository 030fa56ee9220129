"""``outpost demo`` and ``outpost sim``: run simulated villages without hardware."""

import asyncio
import logging
from enum import StrEnum
from typing import Annotated

import typer
from rich.console import Console

from fleet.errors import FleetError
from fleet.settings import DEVELOPMENT_GOVERNANCE_TOKEN
from simulators.infra.errors import InfraError

app = typer.Typer(
    help="Simulators for engineers: a reference governance platform without hardware.", no_args_is_help=True
)


class BrokerChoice(StrEnum):
    AUTO = "auto"
    MOSQUITTO = "mosquitto"
    EMBEDDED = "embedded"


def _log_above_the_view(console: Console) -> None:
    """Send log lines through the live view's console so they scroll above it instead of tearing it."""
    from rich.logging import RichHandler  # noqa: PLC0415

    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    root.addHandler(RichHandler(console=console, show_path=False, rich_tracebacks=True))
    logging.captureWarnings(True)  # warnings too: written straight to stderr, they would bypass the console


def demo(
    villages: Annotated[int, typer.Option(min=1, max=500, help="How many villages (one gateway each).")] = 3,
    duration: Annotated[
        float | None, typer.Option(min=1, help="Stop after this many seconds (default: run until Ctrl-C).")
    ] = None,
    broker: Annotated[
        BrokerChoice, typer.Option(help="MQTT broker: Mosquitto if installed (auto), or the in-process one.")
    ] = BrokerChoice.AUTO,
    press_every: Annotated[float, typer.Option(min=0.1, help="Seconds between simulated panic presses.")] = 3.0,
    node_villages: Annotated[
        int,
        typer.Option(
            min=0,
            help="How many villages also run MicroPython sensor nodes (the real firmware on simulated pins: "
            "a panic button, a door contact, a PIR) on a local broker of their own.",
        ),
    ] = 3,
    fault_every: Annotated[
        float,
        typer.Option(min=0, help="Seconds between node faults: Wi-Fi lost, battery low, power cut (0: none)."),
    ] = 20.0,
    api_port: Annotated[int, typer.Option(min=0, max=65535, help="Fleet API port (0: any free port).")] = 0,
    json_summary: Annotated[
        bool, typer.Option("--json", help="When the run ends, print one JSON summary to stdout (view on stderr).")
    ] = False,
) -> None:
    """Run a simulated county end to end: broker, fleet, governance platform, village gateways and sensor nodes.

    Each simulated press travels (node → village broker →) gateway → MQTT → fleet → platform as a case.
    Nodes lose Wi-Fi, sag their batteries and lose power now and then; the view shows it all.

    Ctrl-C (or SIGTERM, SIGHUP) stops it once the last presses are cases (a few seconds); a second one skips the wait.
    When the reader of its output goes away (a pipe into head, say), it stops and exits with status 141.
    """
    from simulators.demo.output import CLOSED_PIPE_EXIT, DemoOutput  # noqa: PLC0415 - keeps `--help` fast
    from simulators.demo.runner import run_demo  # noqa: PLC0415

    output = DemoOutput(view_on_stderr=json_summary)
    console = output.console
    _log_above_the_view(console)
    try:
        try:
            summary = asyncio.run(
                run_demo(
                    villages=villages,
                    duration_s=duration,
                    broker_kind=broker.value,
                    press_every_s=press_every,
                    node_villages=node_villages,
                    fault_every_s=fault_every,
                    api_port=api_port,
                    console=console,
                    output_gone=lambda: output.results_gone,
                )
            )
        except (FleetError, InfraError) as exc:
            console.print(f"[red]demo stopped:[/] {exc}")
            raise typer.Exit(1) from exc
        if json_summary:
            output.print_result(summary.model_dump_json())
        else:
            p2c = summary.press_to_case
            console.print(
                f"[bold]{summary.cases_delivered}[/] cases from {summary.panic_presses} presses "
                f"({summary.node_presses} on sensor nodes; {summary.presses_on_open_alerts} counted on an alert still "
                f"open) and {sum(summary.node_faults.values())} node faults; "
                f"press → case p50 {p2c.p50_ms} ms, max {p2c.max_ms} ms; "
                f"{summary.telemetry_points_stored} points stored; "
                f"{summary.gateways_seen_online}/{summary.villages} gateways seen online."
            )
    finally:
        output.close()
    if output.results_gone:  # the reader of stdout went away: end quietly, as a closed pipe ends a Unix tool
        raise typer.Exit(CLOSED_PIPE_EXIT)


@app.command("platform")
def platform(
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on (127.0.0.1).")] = 8090,
    token: Annotated[
        str, typer.Option(envvar="OUTPOST_PLATFORM_TOKEN", help="Bearer token the fleet must present.")
    ] = DEVELOPMENT_GOVERNANCE_TOKEN,
) -> None:
    """Run the reference governance platform: it opens a case for every alert the fleet raises.

    Point the fleet at it with OUTPOST_FLEET_GOVERNANCE__URL=http://127.0.0.1:PORT and the same token.
    """
    from simulators.runners import run_platform  # noqa: PLC0415 - keeps `--help` fast

    try:
        asyncio.run(run_platform(port, token))
    except FleetError as exc:
        typer.echo(f"platform stopped: {exc}", err=True)
        raise typer.Exit(1) from exc


@app.command("county")
def county(
    broker_host: Annotated[str, typer.Option(help="The fleet's MQTT broker.")] = "127.0.0.1",
    broker_port: Annotated[int, typer.Option(min=1, max=65535)] = 1883,
    villages: Annotated[int, typer.Option(min=1, max=2000, help="How many villages (one gateway each).")] = 3,
    press_every: Annotated[
        float, typer.Option(min=0, help="Seconds between simulated panic presses (0: never).")
    ] = 10.0,
    state_dir: Annotated[
        str, typer.Option(help="Where the simulated gateways keep their state.")
    ] = "outpost-sim-state",
) -> None:
    """Run simulated village gateways (the real agent, simulated devices) against a running broker."""
    from simulators.runners import run_county  # noqa: PLC0415 - keeps `--help` fast

    asyncio.run(run_county(broker_host, broker_port, villages, press_every, state_dir))
