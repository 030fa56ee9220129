"""Press-to-case latency: a gateway publishes a panic alert, the governance platform receives its case.

One round (:func:`press_round`): the gateways of a :class:`~bench.alerts_rig.GatewayGroup`, all sending
telemetry and heartbeats meanwhile, press :attr:`~bench.alerts.AlertSizes.presses` panic buttons one after
another, one every :attr:`~bench.alerts.AlertSizes.press_spacing_ms`, each by the next gateway in turn
(each press a condition of its own, so correlation never folds one into another). Each delay runs from
the instant just before the gateway published the alert (QoS 1, on its own connection) until the
platform's request log noted the ``POST /cases`` carrying that alert id (both this machine's wall clock;
the platform notes whole milliseconds, so both ends are floored to them): the broker, ``fleet run``
taking and decoding it, the alert and its outbox row written in one transaction before the message is
acknowledged, the governance delivery worker woken, its outbox query, signing and the HTTP request.

Baseline, in the same rounds: every press is also published, half a spacing later, as a new alert on the
village centre's topic of the same broker, and a bare paho subscriber (:mod:`bench.alerts_bare_receiver`)
notes its arrival (to the microsecond): the same gateway, connection, broker and load, without the fleet,
its database and the HTTP hop. The ratio says how much the fleet's path costs over the transport it cannot do without.
"""

import asyncio
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from bench.alerts_rig import AlertsRig, GatewayGroup
from bench.fleet_rig import CpuSplit
from bench.harness import Figure, median
from bench.percentiles import percentile

logger = logging.getLogger(__name__)

PRESS_TO_CASE_GOAL_MS: Final = 25.0
P50: Final = 0.5
P99: Final = 0.99
TIMEOUT_S: Final = 60.0
_POLL_S: Final = 0.1


@dataclass(frozen=True, slots=True)
class PressRound:
    """One round's delays in ms: press to case, and press to the bare subscriber."""

    to_case_ms: list[float]
    bare_ms: list[float]

    def p99(self) -> float:
        return percentile(self.to_case_ms, P99)

    def worst(self) -> float:
        return max(self.to_case_ms)


async def press_round(rig: AlertsRig, group: GatewayGroup, presses: int, spacing_ms: float, what: str) -> PressRound:
    """Press ``presses`` buttons (see the module docstring), then wait for their cases; every case must arrive,
    once. ``what`` names the round in the log."""
    cpu = CpuSplit(rig.pids())
    cpu.start()
    published, bare_published = await group.press(group.next_round(), presses, spacing_ms)
    pressed = await arrivals(rig, published, bare_published, what)
    logger.info("cores used during %s: %s", what, cpu.cores())
    return pressed


async def arrivals(
    rig: AlertsRig,
    published: dict[str, float],
    bare_published: dict[str, float],
    what: str,
    timeout_s: float = TIMEOUT_S,
) -> PressRound:
    """The delays of presses published at ``published`` (to the fleet) and ``bare_published`` (to the bare
    subscriber), UTC epoch ms by event id; waits until every case and every bare copy arrived."""
    arrived = await _cases_arrived(rig, set(published), timeout_s)
    bare_arrived = await rig.bare_arrivals(list(bare_published), timeout_s)
    # The platform notes whole milliseconds (floored), so the publish instant is floored alike.
    to_case = [float(arrived[alert_id] - math.floor(published[alert_id])) for alert_id in published]
    bare = [bare_arrived[event_id] - bare_published[event_id] for event_id in bare_published]
    logger.info(
        "%s, %d presses: press to case p50 %.0f / p99 %.0f / max %.0f ms; bare p50 %.0f / p99 %.0f ms",
        what, len(to_case), percentile(to_case, P50), percentile(to_case, P99), max(to_case),
        percentile(bare, P50), percentile(bare, P99),
    )  # fmt: skip
    return PressRound(to_case, bare)


async def _cases_arrived(rig: AlertsRig, alert_ids: set[str], timeout_s: float) -> dict[str, int]:
    """When the platform first received a case for each of ``alert_ids``; waits for every one of them.
    Looks only after the presses are over: the platform shares this process, so looking meanwhile would
    delay what it measures."""
    deadline = time.monotonic() + timeout_s
    while True:
        arrived: dict[str, int] = {}
        requests: dict[str, int] = {}
        for arrival in rig.case_arrivals():
            if arrival.alert_id in alert_ids:
                arrived.setdefault(arrival.alert_id, arrival.received_ms)
                requests[arrival.alert_id] = requests.get(arrival.alert_id, 0) + 1
        if len(arrived) == len(alert_ids):
            repeated = {alert_id: count for alert_id, count in requests.items() if count > 1}
            if repeated:
                logger.warning("%d press alerts were sent to the platform more than once", len(repeated))
            return arrived
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {len(arrived)} of {len(alert_ids)} pressed alerts reached the platform")
        await asyncio.sleep(_POLL_S)


def latency_figures(rounds: Sequence[PressRound]) -> list[Figure]:
    """p50 and p99 (nearest rank) of each round; each figure the median over the rounds."""
    figures = []
    for fraction, name in ((P50, "alerts.press_to_case_p50_ms"), (P99, "alerts.press_to_case_p99_ms")):
        value = median([percentile(each.to_case_ms, fraction) for each in rounds])
        baseline = median([percentile(each.bare_ms, fraction) for each in rounds])
        figures.append(
            Figure.measured(
                name,
                value,
                "ms",
                better="lower",
                runs=len(rounds),
                goal=PRESS_TO_CASE_GOAL_MS,
                baseline=baseline,
            )
        )
    return figures
