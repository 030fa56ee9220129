"""Press-to-case while one gateway floods invalid messages on its alert topic.

:func:`flood_round`: ``mosquitto_pub`` in a process of its own (:class:`simulators.flood.Flood`, client id
``gw-flood``, QoS 1, ``outpost/v1/village-00/gw-flood/alert``) is fed lines of invalid JSON as fast as it and
the broker take them. After ``lead_s`` (the flood in full swing) a round of presses runs; the flood stops
once the last press was published (the broker acknowledged it), so every press has flood messages queued
ahead of it from ``lead_s`` on; then the round's cases are awaited, and the fleet must dead-letter and
acknowledge all of the flood before the next measurement.

- ``alerts.press_to_case_p99_flood_ms`` (goal :data:`FLOOD_GOAL_MS`): each flood round's p99, median over
  the runs. Baseline: the median p99 of the same runs' rounds without a flood (the value of
  ``alerts.press_to_case_p99_ms``), so the ratio is what the flood costs a press.
- ``alerts.flood_published_per_s``: messages ``mosquitto_pub`` published per second (the broker acknowledged
  each: what it took), from its start until it exited.
- ``alerts.flood_dead_lettered_per_s``: flood messages the fleet's alerts lane dead-lettered per second over
  the time the flood was fed (its ``dead_lettered`` counter in ``/healthz``). Baseline: the published rate;
  a ratio under 1 means the broker queued the rest for the fleet's alerts session, and a press published
  meanwhile waits behind that queue (what limits the p99 then). Each ``/healthz`` look is one request on the
  fleet's loop, two per round.
"""

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from bench.alerts_latency import PressRound, arrivals
from bench.alerts_rig import AlertsRig, GatewayGroup
from bench.fleet_gateways import village_id
from bench.fleet_rig import CpuSplit
from bench.harness import Figure, median
from protocol.topics import Channel
from simulators.flood import Flood

logger = logging.getLogger(__name__)

FLOOD_GOAL_MS: Final = 100.0
FLOOD_GATEWAY: Final = "gw-flood"
_DRAIN_TIMEOUT_S: Final = 300.0
_POLL_S: Final = 0.5


@dataclass(frozen=True, slots=True)
class FloodRound:
    presses: PressRound
    published_per_s: float
    dead_lettered_per_s: float


async def _dead_lettered(rig: AlertsRig) -> int:
    return int((await rig.lane("alerts"))["dead_lettered"])


async def flood_round(
    rig: AlertsRig, group: GatewayGroup, presses: int, spacing_ms: float, lead_s: float
) -> FloodRound:
    """Flood, press a round meanwhile, stop the flood, wait until the fleet dead-lettered all of it."""
    before = await _dead_lettered(rig)
    flood = Flood(rig.broker, FLOOD_GATEWAY, Channel.ALERT, village_id=village_id(0))
    cpu = CpuSplit(rig.pids())
    cpu.start()
    started = time.monotonic()
    async with flood:
        await asyncio.sleep(lead_s)
        published, bare_published = await group.press(group.next_round(), presses, spacing_ms)
        during = await _dead_lettered(rig) - before
        flooded_s = time.monotonic() - started
    stopped = time.monotonic()
    dead_lettered_per_s = during / flooded_s
    logger.info(
        "flood: %d messages published in %.1f s (%.0f/s), %d dead-lettered meanwhile (%.0f/s); cores: %s",
        flood.acknowledged, flooded_s, flood.published_per_s, during, dead_lettered_per_s, cpu.cores(),
    )  # fmt: skip
    pressed = await arrivals(rig, published, bare_published, "press round during a flood", _DRAIN_TIMEOUT_S)
    deadline = stopped + _DRAIN_TIMEOUT_S
    while (done := await _dead_lettered(rig) - before) < flood.acknowledged:
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"the fleet dead-lettered {done} of {flood.acknowledged} flood messages in {_DRAIN_TIMEOUT_S} s"
            )
        await asyncio.sleep(_POLL_S)
    logger.info("the fleet dead-lettered the flood's last message %.1f s after it ended", time.monotonic() - stopped)
    await rig.caught_up(timeout_s=_DRAIN_TIMEOUT_S)
    return FloodRound(pressed, flood.published_per_s, dead_lettered_per_s)


def flood_figures(floods: Sequence[FloodRound], quiet: Sequence[PressRound]) -> list[Figure]:
    """See the module docstring; ``quiet``: the same runs' press rounds without a flood (the baseline)."""
    runs = len(floods)
    published = median([each.published_per_s for each in floods])
    return [
        Figure.measured(
            "alerts.press_to_case_p99_flood_ms",
            median([each.presses.p99() for each in floods]),
            "ms",
            better="lower",
            runs=runs,
            goal=FLOOD_GOAL_MS,
            baseline=median([each.p99() for each in quiet]),
        ),
        Figure.measured("alerts.flood_published_per_s", published, "messages/s", better="higher", runs=runs),
        Figure.measured(
            "alerts.flood_dead_lettered_per_s",
            median([each.dead_lettered_per_s for each in floods]),
            "messages/s",
            better="higher",
            runs=runs,
            baseline=published,
        ),
    ]
