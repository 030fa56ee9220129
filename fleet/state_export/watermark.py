"""The last alert step written, kept in a small file across restarts, so a restarted fleet neither writes the
steps again nor loses any.

The file names the step by id *and* by its alert and time: a database restored from a backup, or another
database altogether, holds a different step under that id (or none), and the export then starts from the
beginning rather than skip steps it never wrote. Losing the file costs the same, never a step: the points
are written again identically (same series, same timestamps), which the time-series server stores once.
Written atomically (a temporary file renamed over the old one), in a worker thread, off the event loop.
"""

import asyncio
import json
import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Final

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

logger = logging.getLogger(__name__)

DEFAULT_NAME: Final = "outpost-state-export.json"


@dataclass(frozen=True, slots=True)
class Watermark:
    """Every step up to ``transition_id`` is written; ``alert_id`` and ``at_ms`` are that step's."""

    transition_id: int = 0
    alert_id: str | None = None
    at_ms: int | None = None


BEGINNING: Final = Watermark()


def default_watermark_path(database_url: str) -> Path:
    """Next to a SQLite database file (they belong together); in the working directory for any other."""
    try:
        url = make_url(database_url)
    except ArgumentError:
        return Path(DEFAULT_NAME)
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        return Path(url.database).parent / DEFAULT_NAME
    return Path(DEFAULT_NAME)


class WatermarkFile:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._save_failing = False

    async def load(self) -> Watermark:
        """The kept watermark; :data:`BEGINNING` when there is none or it cannot be read (said in the log)."""
        return await asyncio.to_thread(self._load)

    async def save(self, mark: Watermark) -> bool:
        """Keep ``mark``; False (and a warning, once until it works again) when the file cannot be written:
        the export goes on, and a restart before the next success writes some steps again, identically."""
        try:
            await asyncio.to_thread(self._save, mark)
        except OSError as exc:
            if not self._save_failing:
                logger.warning("state export: cannot keep its alert-step watermark in %s: %s", self.path, exc)
            self._save_failing = True
            return False
        if self._save_failing:
            logger.info("state export: alert-step watermark kept in %s again", self.path)
        self._save_failing = False
        return True

    def _load(self) -> Watermark:
        try:
            document = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return BEGINNING
        except (OSError, ValueError) as exc:
            logger.warning(
                "state export: unreadable watermark %s (%s): exporting alert steps from the beginning", self.path, exc
            )
            return BEGINNING
        try:
            mark = Watermark(**document)
        except TypeError:
            mark = BEGINNING
        if not _well_formed(mark):
            logger.warning("state export: watermark %s is not one: exporting alert steps from the beginning", self.path)
            return BEGINNING
        return mark

    def _save(self, mark: Watermark) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_name(self.path.name + ".tmp")
        with temporary.open("w", encoding="utf-8") as file:
            json.dump(asdict(mark), file)
            file.flush()
            os.fsync(file.fileno())
        temporary.replace(self.path)


def _well_formed(mark: Watermark) -> bool:
    return (
        isinstance(mark.transition_id, int)
        and mark.transition_id >= 0
        and (mark.alert_id is None or isinstance(mark.alert_id, str))
        and (mark.at_ms is None or isinstance(mark.at_ms, int))
    )
