"""Press-to-case while the time-series store is down: ``alerts.press_to_case_p99_tsdb_outage_ms``.

:func:`outage_round`: with a group's gateways still sending telemetry and heartbeats, VictoriaMetrics is
stopped (SIGTERM); after ``lead_s`` (the fleet's writer has been failing and holding points meanwhile, the
bulk lane's messages unacknowledged) a round of presses (:func:`bench.alerts_latency.press_round`) runs
with the store still down; then the store is started again and the fleet must catch up (write what it
held, acknowledge the bulk lane) before the next measurement.

The figure is the median over the runs of each outage round's p99. Its baseline is the median p99 of the
same runs' rounds with the store up (the value of ``alerts.press_to_case_p99_ms``): same rig, gateways,
load and state, so the ratio is what the outage costs a press. (The bare subscriber's delays would say what
the transport costs, which the outage does not touch.)

The outage here lasts ``lead_s`` plus one round (~20 s in the full profile): the writer is retrying and the
bulk lane is held, but its buffer (``timeseries.buffer_points``, 500,000 points, ~100 s of this load) does
not fill; the fault test holds the store down for 3 minutes, past that bound.
"""

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import Final

from bench.alerts_latency import PressRound, press_round
from bench.alerts_rig import AlertsRig, GatewayGroup
from bench.harness import Figure, median

logger = logging.getLogger(__name__)

TSDB_OUTAGE_GOAL_MS: Final = 100.0
_CATCH_UP_TIMEOUT_S: Final = 300.0


async def outage_round(
    rig: AlertsRig, group: GatewayGroup, presses: int, spacing_ms: float, lead_s: float
) -> PressRound:
    """Stop the store, wait ``lead_s``, press a round, start the store, wait for the fleet to catch up."""
    await rig.stop_store()
    stopped = time.monotonic()
    try:
        await asyncio.sleep(lead_s)
        pressed = await press_round(rig, group, presses, spacing_ms, "press round with the time-series store down")
        bulk = await rig.lane("bulk")
    finally:
        await rig.start_store()
    logger.info(
        "time-series store down %.1f s; at its end the bulk lane held %d messages unacknowledged (oldest %s s)",
        time.monotonic() - stopped, bulk["unacked"], bulk["oldest_unacked_s"],
    )  # fmt: skip
    started = time.monotonic()
    await rig.caught_up(timeout_s=_CATCH_UP_TIMEOUT_S)
    logger.info("the fleet caught up %.1f s after the store came back", time.monotonic() - started)
    return pressed


def outage_figure(outages: Sequence[PressRound], store_up: Sequence[PressRound]) -> Figure:
    """p99 per outage round, median over them; baseline: the median p99 of the rounds with the store up."""
    return Figure.measured(
        "alerts.press_to_case_p99_tsdb_outage_ms",
        median([each.p99() for each in outages]),
        "ms",
        better="lower",
        runs=len(outages),
        goal=TSDB_OUTAGE_GOAL_MS,
        baseline=median([each.p99() for each in store_up]),
    )
