"""Log output for every ``outpost`` command: plain lines that a terminal and journald both read well."""

import logging
import os
import sys

_QUIET = ("alembic", "httpx", "uvicorn", "amqtt", "transitions", "aiosqlite")


def configure_logging(level: str) -> None:
    # journald stamps every line itself; a terminal wants the time.
    fmt = "%(levelname)s %(name)s: %(message)s"
    if "JOURNAL_STREAM" not in os.environ:
        fmt = "%(asctime)s " + fmt
    logging.basicConfig(level=level.upper(), format=fmt, stream=sys.stderr, force=True)
    for name in _QUIET:
        logging.getLogger(name).setLevel(max(logging.WARNING, logging.getLogger().level))
