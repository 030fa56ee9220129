"""``outpost fleet gateways health GATEWAY``: a gateway's health over time, from the fleet's time-series store.

One row per heartbeat, or with ``--step`` the mean of each window: CPU, memory, disk, temperature, the uplink's
round trip, the store-and-forward buffer, messages dropped and adapters not running. Mounted on the gateways
group by :mod:`fleet.cli.app`.
"""

from datetime import datetime, tzinfo
from typing import Annotated, Any, Final

import typer

from fleet.cli.admin import GatewayId
from fleet.cli.client import DEFAULT_FLEET_URL, CaFile, FleetUrl, Token, connect
from fleet.cli.formats import (
    DURATION_HELP,
    INSTANT_HELP,
    AsJson,
    TimeZone,
    duration,
    local_zone,
    parse_instant_ms,
    print_json,
    table,
    when,
)
from fleet.timeseries.history import MAX_SAMPLES
from protocol.clock import utc_now_ms
from protocol.durations import format_duration_ms

_COLUMNS: Final = ("time", "cpu_%", "memory_%", "disk_%", "temp_c", "rtt_ms", "buffer", "dropped", "adapters_down")
_FIELDS: Final = (
    ("cpu_%", "cpu_percent"),
    ("memory_%", "memory_percent"),
    ("disk_%", "disk_percent"),
    ("temp_c", "temperature_c"),
    ("rtt_ms", "uplink_rtt_ms"),
    ("buffer", "buffer_depth"),
    ("dropped", "dropped_total"),
    ("adapters_down", "adapters_not_running"),
)


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:.1f}".removesuffix(".0")


def _row(sample: dict[str, Any], tz: tzinfo | None) -> dict[str, str]:
    return {"time": when(sample["ts_ms"], tz)} | {column: _number(sample[field]) for column, field in _FIELDS}


def health(
    gateway_id: GatewayId,
    since: Annotated[
        str | None, typer.Option(metavar="WHEN", help=f"From (default: an hour before --until): {INSTANT_HELP}.")
    ] = None,
    until: Annotated[str | None, typer.Option(metavar="WHEN", help=f"Until (default: now): {INSTANT_HELP}.")] = None,
    step: Annotated[
        int | None,
        typer.Option(
            parser=duration(at_least_ms=1000),
            metavar="DURATION",
            help=f"One row per window this long, its means (default: every heartbeat). {DURATION_HELP}",
        ),
    ] = None,
    limit: Annotated[
        int, typer.Option(min=1, max=MAX_SAMPLES, help="Without --step: at most this many rows, oldest first.")
    ] = 1000,
    fleet: FleetUrl = DEFAULT_FLEET_URL,
    token: Token = "",
    ca_file: CaFile = None,
    tz: TimeZone = None,
    as_json: AsJson = False,
) -> None:
    """A gateway's health over time, oldest first: CPU, memory and disk (%), temperature (°C), the uplink's round
    trip (ms), messages buffered, dropped, and adapters not running.

    The last day in hourly means: outpost fleet gateways health GATEWAY --since 1d --step 1h"""
    now_ms = utc_now_ms()
    params: dict[str, Any] = {"limit": limit}
    if since is not None:
        params["since"] = str(parse_instant_ms(since, tz, now_ms, option="--since"))
    if until is not None:
        params["until"] = str(parse_instant_ms(until, tz, now_ms, option="--until"))
    if step is not None:
        params["step"] = str(step)
    api = connect(fleet, token, ca_file)
    history = api.call("GET", f"/gateways/{gateway_id}/health", params=params)
    if as_json:
        print_json(history)
        return
    span = f"{when(history['since_ms'], tz)} to {when(history['until_ms'], tz)}"
    every = f", means over {format_duration_ms(history['step_ms'])}" if history["step_ms"] else ""
    typer.echo(f"{gateway_id}: {span}{every} ({history['store']} store)", err=True)
    samples = history["samples"]
    table([_row(sample, tz) for sample in samples], _COLUMNS, empty="no health samples in that time")
    if history["truncated"]:
        after = datetime.fromtimestamp((samples[-1]["ts_ms"] + 1) / 1000, tz or local_zone())
        typer.echo(f"more samples follow: ask again with --since {after.isoformat(timespec='milliseconds')}", err=True)
