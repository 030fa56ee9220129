"""The gateway's memory of the commands it accepted, kept on disk until they expire, so that a command replayed
(by the broker's QoS 1, a fleet re-publish after its restart, or anyone who recorded it) runs at most once,
across restarts of the agent too.

Each accepted request id is appended with the time until which it must be remembered (the command's expiry,
``ts + timeout_s``, plus :data:`CLOCK_MARGIN_MS` for a gateway clock that steps back) to a JSON-lines file,
fsynced before the command runs. At start the file is read back, expired ids dropped and the file rewritten;
it is rewritten again whenever it holds twice as many lines as live ids. At most :data:`MAX_REMEMBERED`
unexpired ids are kept: past that, new commands are refused (a flood of valid commands is the fleet's
mistake or a stolen key, and forgetting would let a replay run).

The file's methods block (disk and fsync): call them on a worker thread.
"""

import json
import logging
import os
from pathlib import Path
from typing import Final
from uuid import UUID

from edge.durable_file import replace_durably
from edge.errors import EdgeError

logger = logging.getLogger(__name__)

COMMAND_MEMORY_NAME: Final = "commands-accepted.jsonl"
"""The memory's file in the gateway's state directory."""
MAX_REMEMBERED: Final = 10_000
CLOCK_MARGIN_MS: Final = 3_600_000


class CommandMemoryError(EdgeError):
    """The memory of accepted commands cannot be written, or is full: the command must not run."""


class CommandMemory:
    def __init__(self, path: Path, *, max_remembered: int = MAX_REMEMBERED) -> None:
        self.path = path
        self._max = max_remembered
        self._until: dict[UUID, int] = {}
        self._lines = 0

    def load(self, now_ms: int) -> None:
        """Read the file back (a damaged line is skipped and logged), forget what expired, and rewrite it."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            text = ""
        except OSError as exc:
            raise CommandMemoryError(f"cannot read the commands answered {self.path}: {exc}") from exc
        damaged = 0
        for line in text.splitlines():
            try:
                record = json.loads(line)
                self._until[UUID(record["id"])] = int(record["until_ms"])
            except (ValueError, KeyError, TypeError):
                damaged += 1
        if damaged:
            logger.warning("%d damaged lines in %s skipped (a power cut while writing)", damaged, self.path)
        self._forget_expired(now_ms)
        self._rewrite()

    def remember(self, request_id: UUID, until_ms: int, now_ms: int) -> bool:
        """Note ``request_id`` as accepted until ``until_ms``; False if it was accepted before (do not run it).

        Raises :class:`CommandMemoryError` when it cannot be kept (disk, or :data:`MAX_REMEMBERED`)."""
        if request_id in self._until:
            return False
        self._forget_expired(now_ms)
        if len(self._until) >= self._max:
            raise CommandMemoryError(f"{len(self._until)} unexpired commands remembered already; refusing more")
        until_ms += CLOCK_MARGIN_MS
        self._append(_line(request_id, until_ms))
        self._until[request_id] = until_ms
        if self._lines > 2 * len(self._until) + 100:
            self._rewrite()
        return True

    def __len__(self) -> int:
        return len(self._until)

    def _forget_expired(self, now_ms: int) -> None:
        for request_id in [r for r, until in self._until.items() if until < now_ms]:
            del self._until[request_id]

    def _append(self, line: str) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, line.encode("utf-8"))
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            raise CommandMemoryError(f"cannot write the commands answered {self.path}: {exc}") from exc
        self._lines += 1

    def _rewrite(self) -> None:
        """The live ids only, written to a new file that replaces the old one whole."""
        lines = "".join(_line(request_id, until_ms) for request_id, until_ms in self._until.items())
        try:
            replace_durably(self.path, lines)
        except OSError as exc:
            raise CommandMemoryError(f"cannot rewrite the commands answered {self.path}: {exc}") from exc
        self._lines = len(self._until)


def _line(request_id: UUID, until_ms: int) -> str:
    return json.dumps({"id": str(request_id), "until_ms": until_ms}, separators=(",", ":")) + "\n"
