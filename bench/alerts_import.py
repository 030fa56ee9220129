"""Press-to-case while a county's site list is imported: ``alerts.press_to_case_max_import_ms``.

:func:`import_round`: a site list (:func:`bench.site_sheet.county_sheet`, a county of its own each run, so
every import creates the same number of sites: 1,100 villages and 6,600 grids in the full profile) is
posted to ``POST /sites/import`` with the admin token, and meanwhile the group's gateways press buttons in
bursts of ``presses`` (one every ``spacing_ms``), burst after burst without waiting for their cases, until
the import has answered; the burst running then is finished. Every case must arrive, once.

- ``alerts.press_to_case_max_import_ms`` (goal :data:`IMPORT_GOAL_MS`): the worst press-to-case of each
  import's presses, median over the runs. Baseline: the median of the worst press of each round without an
  import in the same runs (same rig, load and state), so the ratio is what the import costs the worst press.
- ``alerts.site_import_s``: the import's own duration, from the request to the answer, median over the runs.
"""

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from bench.alerts_latency import PressRound, arrivals
from bench.alerts_rig import AlertsRig, GatewayGroup
from bench.fleet_rig import CpuSplit
from bench.harness import Figure, median

logger = logging.getLogger(__name__)

IMPORT_GOAL_MS: Final = 1_000.0


@dataclass(frozen=True, slots=True)
class ImportRound:
    presses: PressRound
    import_s: float


async def _timed_import(rig: AlertsRig, sheet: str) -> tuple[float, dict[str, Any]]:
    started = time.perf_counter()
    report = await rig.import_sites(sheet)
    return time.perf_counter() - started, report


async def import_round(rig: AlertsRig, group: GatewayGroup, sheet: str, presses: int, spacing_ms: float) -> ImportRound:
    """Import ``sheet`` while pressing; see the module docstring."""
    cpu = CpuSplit(rig.pids())
    cpu.start()
    importing = asyncio.create_task(_timed_import(rig, sheet))
    published: dict[str, float] = {}
    bare_published: dict[str, float] = {}
    bursts = 0
    try:
        while bursts == 0 or not importing.done():
            fleet, bare = await group.press(group.next_round(), presses, spacing_ms)
            published |= fleet
            bare_published |= bare
            bursts += 1
        import_s, report = await importing
    finally:
        if not importing.done():
            importing.cancel()
            await asyncio.gather(importing, return_exceptions=True)
    logger.info(
        "site import of %d rows took %.2f s (villages %s, grids %s); %d bursts of presses meanwhile; cores: %s",
        report["rows"], import_s, report["villages"], report["grids"], bursts, cpu.cores(),
    )  # fmt: skip
    pressed = await arrivals(rig, published, bare_published, "presses during a site import")
    return ImportRound(pressed, import_s)


def import_figures(imports: Sequence[ImportRound], quiet: Sequence[PressRound]) -> list[Figure]:
    """See the module docstring; ``quiet``: the same runs' press rounds without an import (the baseline)."""
    runs = len(imports)
    return [
        Figure.measured(
            "alerts.press_to_case_max_import_ms",
            median([each.presses.worst() for each in imports]),
            "ms",
            better="lower",
            runs=runs,
            goal=IMPORT_GOAL_MS,
            baseline=median([each.worst() for each in quiet]),
        ),
        Figure.measured(
            "alerts.site_import_s", median([each.import_s for each in imports]), "s", better="lower", runs=runs
        ),
    ]
