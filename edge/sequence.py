"""A per-gateway monotonic sequence number that survives agent restarts.

The counter reserves blocks of numbers on disk (write to a temporary file, fsync, rename), so a
restart resumes above anything already handed out at the cost of skipping part of one block.

Handing out a number never fails: it is on the panic path, before the village centre hears the
alert. When a reservation cannot be written (a full or read-only disk), the counter logs it once,
counts it (``sequence_unpersisted``) and goes on from memory above the last reserved number,
retrying the reservation at most every ``retry_s``; the first one that succeeds reserves above every
number handed out. Numbers handed out from memory are not durable: if the agent restarts before a
reservation succeeds it resumes at the last one on disk and may repeat them (the fleet de-duplicates
by event id, not by sequence number).
"""

import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Final

from edge.errors import EdgeError
from edge.faults import SEQUENCE, SEQUENCE_UNPERSISTED, GatewayFaults

logger = logging.getLogger(__name__)

DEFAULT_BLOCK: Final = 1_000
DEFAULT_RETRY_S: Final = 5.0


class SequenceCounter:
    def __init__(
        self,
        path: Path,
        block: int = DEFAULT_BLOCK,
        *,
        faults: GatewayFaults | None = None,
        retry_s: float = DEFAULT_RETRY_S,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        """Resume from ``path``; raises EdgeError if the file exists but cannot be read or is corrupt."""
        if block <= 0:
            raise ValueError("block must be positive")
        self._path = path
        self._block = block
        self._faults = faults or GatewayFaults()
        self._retry_s = retry_s
        self._monotonic = monotonic
        self._retry_at = float("-inf")
        self._next = self._read_reserved()
        self._reserved = self._next
        logger.debug("sequence resumes at %d from %s", self._next, path)

    def _read_reserved(self) -> int:
        try:
            text = self._path.read_text(encoding="ascii").strip()
        except FileNotFoundError:
            return 0
        except OSError as exc:
            raise EdgeError(f"cannot read sequence file {self._path}: {exc}") from exc
        except UnicodeDecodeError as exc:
            raise EdgeError(f"sequence file {self._path} is corrupt: not ASCII digits") from exc
        if not (text.isascii() and text.isdigit()):
            raise EdgeError(f"sequence file {self._path} is corrupt: {text[:40]!r}")
        return int(text)

    def _reserve(self, upto: int) -> None:
        """Write ``upto`` as the reservation; on failure note it and retry after ``retry_s``."""
        # Blocking, but only once per block: an fsync every `block` messages.
        tmp = self._path.with_suffix(".tmp")
        try:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            with tmp.open("w", encoding="ascii") as handle:
                handle.write(str(upto))
                handle.flush()
                os.fsync(handle.fileno())
            tmp.replace(self._path)
        except OSError as exc:
            self._retry_at = self._monotonic() + self._retry_s
            self._faults.count(SEQUENCE_UNPERSISTED)
            self._faults.failing(
                SEQUENCE,
                f"cannot reserve sequence numbers in {self._path} ({exc}); numbers above {self._reserved} "
                "come from memory and may repeat after a restart",
            )
            return
        self._reserved = upto
        self._faults.recovered(SEQUENCE)

    @property
    def persisted(self) -> bool:
        """Whether every number handed out so far is below the reservation on disk."""
        return self._next <= self._reserved

    def next(self) -> int:
        """The next sequence number, never handed out before by this gateway (unless it came from memory
        while the disk refused the reservation, and the agent restarted since). Never raises."""
        if self._next >= self._reserved and self._monotonic() >= self._retry_at:
            self._reserve(self._next + self._block)
        value = self._next
        self._next += 1
        return value
