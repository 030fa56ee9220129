"""Config push fan-out at the scale of a county: a new desired config to every gateway, until each runs it.

Set-up: the :class:`~bench.fleet_rig.GatewayFleetRig` with every gateway online (``outpost fleet run``
signing with the rig's key, Mosquitto, the simulated gateways holding the public key). Its villages
are placed in one town of one county through the REST API, so that one county layer reaches them all.
Each simulated gateway follows pushed configs with the agent's own code (:mod:`bench.fleet_gateway_config`):
the decoder validates the ``ConfigDesired`` against the strict models, ``edge.config_updates`` checks
the Ed25519 signature (``protocol.config_signing``, bound to the gateway, its village and the
version), applies the config, keeps it on disk and reports ``applied`` with a retained ``ConfigReported``.

A push is ``PUT /config/layers/county/{county}`` as the development admin, setting the county's
``telemetry_interval_s`` to a value it never had, so every gateway gets a new desired version; the
fleet recomputes, signs and publishes them (retained, QoS 1), and records each gateway's report.

``fleet.config_fanout_p50_s`` and ``fleet.config_fanout_p99_s`` (s): each gateway's delay runs from
just before the API call until the instant the fleet recorded that gateway's ``applied`` report for
the new version, i.e. the moment ``GET /config/status`` turns it ``in_sync`` (its ``reported_ms``;
both are this machine's wall clock). That is "until each reports it applied" as an operator sees it,
so it includes the API's transaction, the publisher, the broker both ways, the gateway's check and
apply, and the fleet taking the report. p50 and p99 are nearest-rank over all gateways of one push;
each figure is the median over :attr:`Profile.runs` pushes (after ``warmup`` untimed ones, the first
of which creates every gateway's desired config). Goal: :data:`CONFIG_FANOUT_GOAL_S`.

Baseline (the broker's and the gateways' floor): right after each push, a bare paho client
(:mod:`bench.fleet_bare_publisher`) publishes the very payloads the fleet left retained (the same
signed ``ConfigDesired`` per gateway) again to the same topics, all at once, QoS 1, retained; each
gateway decodes, validates and verifies it as before and, finding the version it runs, reports it
``applied`` again (only keeping the config on disk is skipped: it is the same). Each delay runs from
the first publish until the gateway's report was acknowledged by the broker (the gateway's clock). It
leaves out what only the fleet does: its API transaction, reading, signing and publishing, and
recording the reports. The ratio is the fleet's figure over it.

``fleet.config_fanout_api_s`` (s): how long the PUT itself took (the median of the pushes): the
transaction that writes the layer and every reached gateway's new desired config.

Every stage of each push (published: when the publisher marked the gateway's batch of up to
``configs.batch_size`` acknowledged; received; reported by the gateway; recorded by the fleet) is logged
as p50/p99 from the API call, with the cores each process used, to show what limits it. Sizes are the
presence figures' (:func:`bench.fleet_presence.sizes_for`): 2,000 gateways heartbeating every 5 s
meanwhile, or 200 every second with ``--quick``.

What limits it on the 2-core machine (see ``docs/SCALING.md``): the fleet records each report in a
write transaction of its own, in the one control consumer that also takes every heartbeat, so the
reports queue there (and the heartbeats behind them); the simulated gateways, 1,950 in one Python
process, are the baseline's limit.
"""

import asyncio
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import aiomqtt

from bench.fleet_bare_publisher import publish_retained
from bench.fleet_gateways import VILLAGES, village_id
from bench.fleet_rig import CpuSplit, GatewayFleetRig
from bench.harness import Figure, Profile, median
from bench.percentiles import percentile
from protocol.clock import utc_now_ms
from protocol.messages import ConfigStatus
from protocol.topics import Channel, fleet_filter

logger = logging.getLogger(__name__)

CONFIG_FANOUT_GOAL_S: Final = 5.0
COUNTY: Final = "bench-county"
TOWN: Final = "bench-town"
_TIMEOUT_S: Final = 120.0
_POLL_S: Final = 0.25
_P50: Final = 0.5
_P99: Final = 0.99

Reports = dict[str, list[list[Any]]]
"""A gateway id to the reports it noted: ``[version, status, received_ms, reported_ms]`` each."""
Row = dict[str, Any]
"""One gateway of ``GET /config/status`` (``fleet.configs.schemas.GatewaySync``)."""


@dataclass(frozen=True, slots=True)
class Round:
    """One push and its baseline: per-gateway delays in seconds, and how long the API call took."""

    delays_s: list[float]
    baseline_s: list[float]
    api_s: float


async def config_fanout_figures(rig: GatewayFleetRig, profile: Profile) -> list[Figure]:
    """Push new configs to every gateway of ``rig`` (see the module docstring); three figures."""
    await _place_villages(rig)
    pushes = 0
    for _ in range(max(1, profile.warmup)):
        pushes += 1
        await _push(rig, pushes)
    rounds = []
    for _ in range(profile.runs):
        pushes += 1
        api_s, delays = await _push(rig, pushes)
        rounds.append(Round(delays, await _bare_republish(rig), api_s))
    return _figures(rounds)


def _figures(rounds: Sequence[Round]) -> list[Figure]:
    figures = []
    for fraction, name in ((_P50, "fleet.config_fanout_p50_s"), (_P99, "fleet.config_fanout_p99_s")):
        value = median([percentile(each.delays_s, fraction) for each in rounds])
        baseline = median([percentile(each.baseline_s, fraction) for each in rounds])
        figures.append(
            Figure.measured(
                name, value, "s", better="lower", runs=len(rounds), goal=CONFIG_FANOUT_GOAL_S, baseline=baseline
            )
        )
    api_s = median([each.api_s for each in rounds])
    figures.append(Figure.measured("fleet.config_fanout_api_s", api_s, "s", better="lower", runs=len(rounds)))
    return figures


async def _place_villages(rig: GatewayFleetRig) -> None:
    """One county, one town, and every village the gateways registered placed in it."""
    await _post(rig, "/counties", {"id": COUNTY, "name": "Bench county"})
    await _post(rig, "/towns", {"id": TOWN, "county_id": COUNTY, "name": "Bench town"})
    for index in range(min(VILLAGES, rig.sizes.gateways)):
        village = village_id(index)
        await _post(rig, "/villages", {"id": village, "town_id": TOWN, "name": village})


async def _post(rig: GatewayFleetRig, path: str, body: Mapping[str, object]) -> None:
    response = await rig.api.post(path, json=body)
    if response.is_error:
        raise RuntimeError(f"POST {path} answered {response.status_code}: {response.text}")


async def _push(rig: GatewayFleetRig, push: int) -> tuple[float, list[float]]:
    """Push number ``push``: the API call's duration and each gateway's delay until the fleet had it in sync."""
    gateways = rig.sizes.gateways
    overrides = {"heartbeat_interval_s": rig.sizes.interval_s, "telemetry_interval_s": float(push)}
    cpu = CpuSplit(rig.pids())
    cpu.start()
    start_ms = utc_now_ms()
    started = time.perf_counter()
    response = await rig.api.put(f"/config/layers/county/{COUNTY}", json=overrides)
    api_s = time.perf_counter() - started
    if response.is_error:
        raise RuntimeError(f"the county layer was refused ({response.status_code}): {response.text}")
    change = response.json()
    if change["gateways"] != gateways or change["changed"] != gateways:
        raise RuntimeError(f"the county layer reached {change}, expected every one of {gateways} gateways changed")
    reports = await _gateway_reports(rig, since_ms=start_ms)
    rows = await _fleet_rows(rig, lambda row: row["status"] == "in_sync", "in sync", reports)
    logger.info("cores used by push %d: %s", push, cpu.cores())
    for row in rows:
        applied = [report for report in reports[row["gateway_id"]] if report[1] == ConfigStatus.APPLIED.value]
        if not applied or applied[-1][0] != row["desired_version"]:
            raise RuntimeError(f"gateway {row['gateway_id']} reported {reports[row['gateway_id']]}, fleet has {row}")
    delays = [(row["reported_ms"] - start_ms) / 1000 for row in rows]
    logger.info(
        "push %d to %d gateways, from the API call (p50/p99, s): API %.3f, published %s, received %s, "
        "reported by the gateway %s, recorded by the fleet %s",
        push, gateways, api_s,
        _spread([row["published_ms"] for row in rows], start_ms),
        _spread([report[-1][2] for report in reports.values()], start_ms),
        _spread([report[-1][3] for report in reports.values()], start_ms),
        _spread([row["reported_ms"] for row in rows], start_ms),
    )  # fmt: skip
    return api_s, delays


async def _bare_republish(rig: GatewayFleetRig) -> list[float]:
    """The baseline: the fleet's retained configs published again by a bare client; each gateway's delay
    until its report. Returns once the fleet recorded every report again, so that the next push starts
    on a quiet fleet."""
    payloads = await _retained_configs(rig)
    start_ms = utc_now_ms()
    started = time.perf_counter()
    await asyncio.to_thread(publish_retained, rig.broker.host, rig.broker.port, payloads, _TIMEOUT_S)
    published_s = time.perf_counter() - started
    reports = await _gateway_reports(rig, since_ms=start_ms)
    await _fleet_rows(rig, lambda row: (row["reported_ms"] or 0) >= start_ms, "recorded the reports again", reports)
    logger.info(
        "bare republish to %d gateways (p50/p99 from the first publish, s): all acknowledged in %.3f, "
        "received %s, reported by the gateway %s",
        len(payloads), published_s,
        _spread([report[-1][2] for report in reports.values()], start_ms),
        _spread([report[-1][3] for report in reports.values()], start_ms),
    )  # fmt: skip
    return [(report[-1][3] - start_ms) / 1000 for report in reports.values()]


async def _retained_configs(rig: GatewayFleetRig) -> list[tuple[str, bytes]]:
    """Every gateway's retained ``config/desired`` as the broker holds it (topic, payload)."""
    found: dict[str, bytes] = {}
    async with aiomqtt.Client(rig.broker.host, rig.broker.port, identifier="bench-config-reader") as client:
        await client.subscribe(fleet_filter(Channel.CONFIG_DESIRED), qos=1)
        async with asyncio.timeout(_TIMEOUT_S):
            async for message in client.messages:
                if isinstance(message.payload, bytes):
                    found[str(message.topic)] = message.payload
                if len(found) == rig.sizes.gateways:
                    break
    return sorted(found.items())


async def _gateway_reports(rig: GatewayFleetRig, since_ms: int) -> Reports:
    """Wait until every gateway noted a report sent after ``since_ms``; what each one noted, in order.
    Asked of the gateways' processes, not the fleet, so that waiting puts no load on the fleet."""
    deadline = time.monotonic() + _TIMEOUT_S
    reports: Reports = {}
    while True:
        for gateway, noted in (await rig.config_reports()).items():
            reports.setdefault(gateway, []).extend(noted)
        done = [gateway for gateway, noted in reports.items() if noted and noted[-1][3] >= since_ms]
        if len(done) == rig.sizes.gateways:
            rejected = {gateway: noted[-1] for gateway, noted in reports.items() if noted[-1][1] != "applied"}
            if rejected:
                raise RuntimeError(f"{len(rejected)} gateways rejected the config, e.g. {list(rejected.items())[:3]}")
            return reports
        if time.monotonic() > deadline:
            raise RuntimeError(f"{len(done)} of {rig.sizes.gateways} gateways reported after {_TIMEOUT_S} s")
        await asyncio.sleep(_POLL_S)


async def _fleet_rows(rig: GatewayFleetRig, ready: Callable[[Row], bool], what: str, reports: Reports) -> list[Row]:
    """Wait until ``ready(row)`` holds for every gateway's row of ``GET /config/status``; the rows.

    A status report of 2,000 gateways costs the fleet tens of milliseconds, the very process being
    timed, so it is not polled: the fleet takes reports in about the order the gateways sent them, so
    this polls the one gateway whose report came last (``GET /gateways/{id}/config``, a few small
    queries) until it is ready, then reads the whole report once, and repeats with any still not ready."""
    deadline = time.monotonic() + _TIMEOUT_S
    watched = max(reports, key=lambda gateway: reports[gateway][-1][3])
    while True:
        while not ready(await _fleet_sync(rig, watched)):
            if time.monotonic() > deadline:
                raise RuntimeError(f"gateway {watched} not {what} after {_TIMEOUT_S} s")
            await asyncio.sleep(_POLL_S)
        response = await rig.api.get("/config/status", params={"county": COUNTY})
        response.raise_for_status()
        rows: list[Row] = response.json()["gateways"]
        waiting = [row for row in rows if not ready(row)]
        if len(rows) != rig.sizes.gateways:
            raise RuntimeError(f"the county holds {len(rows)} gateways, not {rig.sizes.gateways}")
        if not waiting:
            return rows
        watched = waiting[-1]["gateway_id"]


async def _fleet_sync(rig: GatewayFleetRig, gateway: str) -> Row:
    response = await rig.api.get(f"/gateways/{gateway}/config")
    response.raise_for_status()
    sync: Row = response.json()["sync"]
    return sync


def _spread(times_ms: Sequence[int | None], start_ms: int) -> str:
    delays = [(each - start_ms) / 1000 for each in times_ms if each is not None]
    if not delays:
        return "-"
    return f"{percentile(delays, _P50):.3f}/{percentile(delays, _P99):.3f}"
