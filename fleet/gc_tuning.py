"""Garbage-collector settings for the fleet's long-running processes (``fleet run``, ``fleet ingest``).

Ingest holds every message it took until the store has its points: up to the Receive Maximum (10,000 by
default) decoded batches of tens of points each, several hundred thousand live objects that the cyclic
garbage collector tracks. With CPython's default thresholds (700, 10, 10) a young collection runs every
700 allocations, and the older generations' collections scan everything alive: decoding a telemetry
batch measured twice as slow with 10,000 messages held as with none. Almost nothing ingest allocates
forms reference cycles (reference counting frees it), so collecting rarely loses no memory worth having.

:func:`tune_for_throughput` first freezes what start-up built (modules, settings, the application's
objects: never garbage, never scanned again), then makes young collections rarer.
"""

import gc
import logging
from typing import Final

logger = logging.getLogger(__name__)

YOUNG_THRESHOLD: Final = 50_000
"""Allocations (minus deallocations) of tracked objects between young collections (CPython: 700)."""
OLDER_THRESHOLDS: Final = (20, 100)
"""Young collections per middle one, middle ones per full one (CPython: 10, 10)."""


def tune_for_throughput() -> None:
    """Freeze the objects alive now and raise the collection thresholds; call once start-up is done."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_THRESHOLD, *OLDER_THRESHOLDS)
    logger.debug("garbage collector: %d objects frozen, thresholds %s", gc.get_freeze_count(), gc.get_threshold())
