"""The fleet processes' garbage-collector settings."""

import gc
from collections.abc import Iterator

import pytest

from fleet.gc_tuning import OLDER_THRESHOLDS, YOUNG_THRESHOLD, tune_for_throughput


@pytest.fixture
def restored_gc() -> Iterator[None]:
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


@pytest.mark.usefixtures("restored_gc")
def test_tuning_freezes_what_start_up_built_and_collects_the_young_generation_rarely() -> None:
    built_at_start: list[list[int]] = [[1]]  # a container the collector tracks
    assert any(o is built_at_start for o in gc.get_objects())

    tune_for_throughput()

    assert gc.get_threshold() == (YOUNG_THRESHOLD, *OLDER_THRESHOLDS)
    assert gc.get_freeze_count() > 0
    assert not any(o is built_at_start for o in gc.get_objects()), "frozen: never scanned again"
