"""Log output for every ``outpost`` command: plain lines that a terminal and journald both read well.

On a terminal each line starts with the time. Under systemd, when stderr is the journal's stream
(``JOURNAL_STREAM`` names stderr's device and inode, systemd.exec(5)), journald stamps every line
itself, and each line starts with its syslog priority instead, as sd-daemon(3) describes (``<3>``
for an error), so ``journalctl -p warning`` shows warnings and worse.
"""

import logging
import os
import sys
from collections.abc import Mapping
from typing import Final, TextIO

_QUIET = ("alembic", "httpx", "uvicorn", "amqtt", "transitions", "aiosqlite")
_FORMAT: Final = "%(levelname)s %(name)s: %(message)s"

# sd-daemon(3)'s SD_CRIT, SD_ERR, SD_WARNING, SD_INFO, SD_DEBUG: (the lowest level of each, its priority)
_PRIORITIES: Final = (
    (logging.CRITICAL, 2),
    (logging.ERROR, 3),
    (logging.WARNING, 4),
    (logging.INFO, 6),
)
_DEBUG_PRIORITY: Final = 7


def configure_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    journal = stderr_is_journal(os.environ, sys.stderr)
    handler.setFormatter(JournalFormatter(_FORMAT) if journal else logging.Formatter("%(asctime)s " + _FORMAT))
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)
    for name in _QUIET:
        logging.getLogger(name).setLevel(max(logging.WARNING, logging.getLogger().level))


def stderr_is_journal(environ: Mapping[str, str], stderr: TextIO) -> bool:
    """Whether ``stderr`` is the stream systemd connected to the journal: ``JOURNAL_STREAM`` (``DEVICE:INODE``,
    in decimal) names its file. A child whose stderr was redirected elsewhere inherits the variable, so its
    presence alone says nothing."""
    stream = environ.get("JOURNAL_STREAM")
    if not stream:
        return False
    device, _, inode = stream.partition(":")
    try:
        status = os.fstat(stderr.fileno())
        return (int(device), int(inode)) == (status.st_dev, status.st_ino)
    except (OSError, ValueError):  # no file behind stderr (io.UnsupportedOperation is an OSError), or no number
        return False


def syslog_priority(levelno: int) -> int:
    """The syslog priority of a log level: CRITICAL 2, ERROR 3, WARNING 4, INFO 6, DEBUG (and below) 7."""
    return next((priority for lowest, priority in _PRIORITIES if levelno >= lowest), _DEBUG_PRIORITY)


class JournalFormatter(logging.Formatter):
    """Lines for journald's stream: no time (journald adds it), each line prefixed with the record's priority.

    journald takes every line of the stream as an entry of its own, so the lines of a traceback carry the
    priority too."""

    def format(self, record: logging.LogRecord) -> str:
        prefix = f"<{syslog_priority(record.levelno)}>"
        return "\n".join(prefix + line for line in super().format(record).split("\n"))
