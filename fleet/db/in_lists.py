"""Long ``IN (...)`` lists, cut into pieces one statement can carry."""

from collections.abc import Iterator, Sequence
from typing import Final, TypeVar

IN_LIST_SIZE: Final = 1_000
"""Values per statement's ``IN (...)`` lists: well inside every driver's limit on bound parameters."""

_Value = TypeVar("_Value")


def in_chunks(values: Sequence[_Value], size: int = IN_LIST_SIZE) -> Iterator[Sequence[_Value]]:
    """``values`` in order, ``size`` at a time."""
    for start in range(0, len(values), size):
        yield values[start : start + size]
