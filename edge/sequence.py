"""A per-gateway monotonic sequence number that survives agent restarts.

The counter reserves blocks of numbers on disk (write to a temporary file, fsync, rename), so a
restart resumes above anything already handed out at the cost of skipping part of one block.
"""

import logging
import os
from pathlib import Path
from typing import Final

from edge.errors import EdgeError

logger = logging.getLogger(__name__)

DEFAULT_BLOCK: Final = 1_000


class SequenceCounter:
    def __init__(self, path: Path, block: int = DEFAULT_BLOCK) -> None:
        if block <= 0:
            raise ValueError("block must be positive")
        self._path = path
        self._block = block
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
            raise EdgeError(f"cannot reserve sequence numbers in {self._path}: {exc}") from exc
        self._reserved = upto

    def next(self) -> int:
        """The next sequence number, never handed out before by this gateway."""
        if self._next >= self._reserved:
            self._reserve(self._next + self._block)
        value = self._next
        self._next += 1
        return value
