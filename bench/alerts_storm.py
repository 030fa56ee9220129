"""An alert storm: a county-wide power cut takes every gateway of a group offline at once.

:func:`storm`: the process holding the group's gateways (all online, each sending telemetry every
``telemetry_s`` and heartbeats every ``heartbeat_s``) is killed, so every connection drops without a
DISCONNECT and Mosquitto publishes every gateway's Last Will. The fleet marks each gateway offline
(``lost``); its gateway watch (``fleet/alerts/gateway_watch.py``) raises a ``gateway_offline`` alert once
the gateway has been silent ``offline_after_missed_heartbeats`` heartbeat intervals since it was last
heard (the rig sets 1, the least the rules allow: telemetry keeps each gateway heard until the cut, so each
alert falls due ``heartbeat_s - telemetry_s`` to ``heartbeat_s`` after the cut), opening every alert then
due in one transaction; the governance delivery worker opens each one's case on the platform.

- ``alerts.storm_drain_s`` (s, goal :data:`STORM_DRAIN_GOAL_S`): from the power cut until the platform
  received the last of the group's cases. The hold-off above is inside it (4 to 5 s with the full and quick
  sizes); the fleet's own share is the rest, logged per stage (marked offline, raised, case received).
- ``alerts.storm_alerts_per_s`` (alerts/s): the group's cases over the time from the first of its alerts
  raised (``received_at_ms`` of the stored alert) until the last case received. Baseline: the same number
  of cases opened one by one on the same platform by the fleet's own governance client in a process of its
  own (:mod:`bench.alerts_bare_cases`), right after each storm: the delivery worker's floor, without MQTT,
  presence, the alert and outbox transactions and the outbox queries.
- ``alerts.storm_duplicate_cases`` (goal 0): over every storm and the rejoin below, cases beyond one per
  gateway (the platform opens one case per alert id): what a person at the platform would see twice. A
  gateway left without its case after :data:`_TIMEOUT_S` fails the group loudly instead (a lost case).
- ``alerts.storm_repeated_requests`` (no goal): over every storm, ``POST /cases`` beyond one per alert id:
  delivery is at least once, so a request whose answer was lost is sent again with the same idempotency
  key and the platform answers with the case it opened; counted, as each costs a request.

Correlation (:func:`rejoin_and_cut`): after the last storm a tenth of its gateways come back (a new
process, same ids, newer sequence numbers) and lose power again while their alerts are still open (the
clear hold-off, 60 s, has not passed). Each second loss must count on the open alert (a repeat) and open
no case: the repeats are counted in the fleet's database, and any new case counts as a duplicate.
"""

import asyncio
import json
import logging
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from bench.alerts_rig import AlertsRig, CaseArrival, GatewayGroup
from bench.fleet_gateways import gateway_id
from bench.fleet_rig import CpuSplit
from bench.harness import Figure, median
from bench.percentiles import percentile
from protocol.governance import CASES_PATH
from protocol.messages import FleetAlertKind

logger = logging.getLogger(__name__)

STORM_DRAIN_GOAL_S: Final = 5.0
_OFFLINE: Final = FleetAlertKind.GATEWAY_OFFLINE.value
_TIMEOUT_S: Final = 120.0
_SETTLE_S: Final = 1.0
"""After the last expected case, how long to listen for repeats before counting."""
_POLL_S: Final = 0.1


@dataclass(frozen=True, slots=True)
class Storm:
    """One power cut: how long its cases took, the rate, and the bare client's rate right after."""

    drain_s: float
    alerts_per_s: float
    bare_per_s: float
    duplicates: int
    repeats: int


def _ids(group: GatewayGroup) -> set[str]:
    return {gateway_id(index) for index in range(group.first, group.first + group.count)}


def _offline_cases(rig: AlertsRig, gateways: set[str]) -> list[CaseArrival]:
    return [each for each in rig.case_arrivals() if each.kind == _OFFLINE and each.gateway_id in gateways]


def duplicates_among(arrivals: Sequence[CaseArrival]) -> int:
    """Cases beyond one per gateway: alerts (each its own case at the platform) beyond one per gateway."""
    return len({each.alert_id for each in arrivals}) - len({each.gateway_id for each in arrivals})


def repeats_among(arrivals: Sequence[CaseArrival]) -> int:
    """Requests beyond one per alert id: the same case asked for again (a retry after a lost answer), which the
    platform answers with the case it opened."""
    return len(arrivals) - len({each.alert_id for each in arrivals})


async def _requests_reach(rig: AlertsRig, count: int, what: str) -> None:
    """Wait until the platform received ``count`` case requests in all (a cheap look: no parsing)."""
    deadline = time.monotonic() + _TIMEOUT_S
    while (received := len(rig.platform.requests.matching("POST", CASES_PATH))) < count:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what}: {count - received} cases never reached the platform within {_TIMEOUT_S} s")
        await asyncio.sleep(_POLL_S)


async def storm(rig: AlertsRig, group: GatewayGroup) -> Storm:
    """Cut the power of every gateway of ``group``; see the module docstring."""
    gateways = _ids(group)
    before = len(rig.platform.requests.matching("POST", CASES_PATH))
    cpu = CpuSplit({name: pid for name, pid in rig.pids().items() if name != "gateways"})  # about to be killed
    cpu.start()
    cut_ms = await rig.power_cut(group)
    await _requests_reach(rig, before + group.count, f"power cut of {group.count} gateways")
    logger.info("cores used until the storm's last case: %s", cpu.cores())
    await asyncio.sleep(_SETTLE_S)
    arrivals = _offline_cases(rig, gateways)
    first_arrival: dict[str, CaseArrival] = {}
    for arrival in arrivals:
        first_arrival.setdefault(arrival.gateway_id, arrival)
    lost = gateways - set(first_arrival)
    if lost:
        raise RuntimeError(f"{len(lost)} gateways lost power and got no case, e.g. {sorted(lost)[:5]}")
    refused = [each for each in arrivals if each.status not in {200, 201}]
    if refused:
        raise RuntimeError(f"the platform refused {len(refused)} storm cases, e.g. {refused[:3]}")
    last_case_ms = max(each.received_ms for each in first_arrival.values())
    alerts = [row for row in await rig.alerts_of_kind(_OFFLINE) if row.gateway_id in gateways]
    raised = sorted(row.received_at_ms for row in alerts)
    changed = await rig.presence_changed_ms()
    offline = [float(changed[gateway] - cut_ms) for gateway in gateways]
    cases = sorted(each.received_ms - cut_ms for each in first_arrival.values())
    logger.info(
        "storm of %d gateways, from the cut (ms): marked offline p50 %.0f / max %.0f; alerts raised %d to %d; "
        "cases received %d to %d",
        group.count, percentile(offline, 0.5), max(offline),
        raised[0] - cut_ms, raised[-1] - cut_ms, cases[0], cases[-1],
    )  # fmt: skip
    duplicates, repeats = duplicates_among(arrivals), repeats_among(arrivals)
    if duplicates or repeats:
        again = [each for each in arrivals if first_arrival[each.gateway_id] is not each]
        logger.warning("storm: %d duplicate cases, %d repeated requests: %s", duplicates, repeats, again[:5])
        for line in _delivery_trouble(rig):
            logger.warning("fleet run said: %s", line)
    bare_per_s = await bare_case_rate(rig, group.count)
    return Storm(
        drain_s=(last_case_ms - cut_ms) / 1000,
        alerts_per_s=len(first_arrival) / ((last_case_ms - raised[0]) / 1000),
        bare_per_s=bare_per_s,
        duplicates=duplicates,
        repeats=repeats,
    )


def _delivery_trouble(rig: AlertsRig, most: int = 5) -> list[str]:
    """What ``fleet run`` logged about deliveries that failed or paused (why a case was asked for again)."""
    output = rig.fleet.output() if rig.fleet is not None else ""
    return [line for line in output.splitlines() if "not delivered" in line or "delivery paused" in line][:most]


async def bare_case_rate(rig: AlertsRig, count: int) -> float:
    """Cases/s the fleet's governance client alone opens on the platform (:mod:`bench.alerts_bare_cases`)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.alerts_bare_cases", rig.platform.url, str(count), stdout=asyncio.subprocess.PIPE
    )
    stdout, _ = await asyncio.wait_for(process.communicate(), _TIMEOUT_S)
    if process.returncode != 0:
        raise RuntimeError(f"the bare case client exited with {process.returncode}")
    seconds = float(json.loads(stdout)["seconds"])
    logger.info("bare client: %d cases in %.2f s", count, seconds)
    return count / seconds


async def rejoin_and_cut(rig: AlertsRig, group: GatewayGroup, count: int) -> int:
    """``count`` gateways of ``group`` (whose storm is over) come back and lose power again while their alerts
    are open; each must count as a repeat. Returns the duplicate cases the platform holds for them: a second
    case for a gateway (0 when correlation held)."""
    rejoined = await rig.start_gateways(group.first, count)
    gateways = _ids(rejoined)
    alert_ids = [row.id for row in await rig.alerts_of_kind(_OFFLINE) if row.gateway_id in gateways]
    requests_before = len(_offline_cases(rig, gateways))  # their storm's cases
    repeats_before = await rig.repeats_of(alert_ids)
    await rig.power_cut(rejoined)
    deadline = time.monotonic() + _TIMEOUT_S
    while (repeats := await rig.repeats_of(alert_ids)) < repeats_before + count:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{repeats - repeats_before} of {count} gateways offline again were counted as repeats")
        await asyncio.sleep(_POLL_S * 5)
    await asyncio.sleep(_SETTLE_S)
    arrivals = _offline_cases(rig, gateways)
    new_requests = len(arrivals) - requests_before
    logger.info(
        "%d gateways back and offline again: %d repeats counted on %d open alerts, %d new case requests",
        count, repeats - repeats_before, len(alert_ids), new_requests,
    )  # fmt: skip
    return duplicates_among(arrivals)


def storm_figures(storms: Sequence[Storm], rejoin_duplicates: int) -> list[Figure]:
    runs = len(storms)
    duplicates = sum(each.duplicates for each in storms) + rejoin_duplicates
    return [
        Figure.measured(
            "alerts.storm_drain_s",
            median([each.drain_s for each in storms]),
            "s",
            better="lower",
            runs=runs,
            goal=STORM_DRAIN_GOAL_S,
        ),
        Figure.measured(
            "alerts.storm_alerts_per_s",
            median([each.alerts_per_s for each in storms]),
            "alerts/s",
            better="higher",
            runs=runs,
            baseline=median([each.bare_per_s for each in storms]),
        ),
        Figure.measured(
            "alerts.storm_duplicate_cases", float(duplicates), "cases", better="lower", runs=runs, goal=0.0
        ),
        Figure.measured(
            "alerts.storm_repeated_requests",
            float(sum(each.repeats for each in storms)),
            "requests",
            better="lower",
            runs=runs,
        ),
    ]
