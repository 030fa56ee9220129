"""Log lines under journald carry their syslog priority (``journalctl -p warning`` works) and no time; on a
terminal, or when stderr is not the journal's stream, they start with the time."""

import io
import logging
import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

import pytest

from outpost_cli.logs import JournalFormatter, configure_logging, stderr_is_journal, syslog_priority

logger = logging.getLogger(__name__)


@pytest.fixture
def stderr_file(tmp_path: Path) -> Iterator[TextIO]:
    with (tmp_path / "stderr").open("w+", encoding="utf-8") as stream:
        yield stream


def journal_stream(stream: TextIO) -> str:
    """``JOURNAL_STREAM`` as systemd sets it for a process whose stderr is ``stream``."""
    status = os.fstat(stream.fileno())
    return f"{status.st_dev}:{status.st_ino}"


@pytest.fixture
def restored_logging() -> Iterator[None]:
    """configure_logging changes the root logger: put it back afterwards."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_stderr_is_the_journal_when_journal_stream_names_its_device_and_inode(stderr_file: TextIO) -> None:
    assert stderr_is_journal({"JOURNAL_STREAM": journal_stream(stderr_file)}, stderr_file)


def test_stderr_is_not_the_journal_when_journal_stream_names_another_file(stderr_file: TextIO, tmp_path: Path) -> None:
    # A child of a journald-logged service whose stderr was redirected inherits the variable.
    with (tmp_path / "other").open("w", encoding="utf-8") as other:
        assert not stderr_is_journal({"JOURNAL_STREAM": journal_stream(other)}, stderr_file)


@pytest.mark.parametrize("value", [None, "", "garbage", "12:", ":34", "1:2:3"])
def test_stderr_is_not_the_journal_without_a_usable_journal_stream(stderr_file: TextIO, value: str | None) -> None:
    environ = {} if value is None else {"JOURNAL_STREAM": value}
    assert not stderr_is_journal(environ, stderr_file)


def test_a_stderr_without_a_file_is_not_the_journal() -> None:
    assert not stderr_is_journal({"JOURNAL_STREAM": "1:2"}, io.StringIO())


@pytest.mark.parametrize(
    ("level", "priority"),
    [
        (logging.CRITICAL, 2),
        (logging.ERROR, 3),
        (logging.WARNING, 4),
        (logging.INFO, 6),
        (logging.DEBUG, 7),
        (logging.NOTSET, 7),
        (logging.ERROR + 5, 3),
    ],
)
def test_each_level_has_its_sd_daemon_priority(level: int, priority: int) -> None:
    assert syslog_priority(level) == priority


def test_a_journal_line_starts_with_its_priority_and_has_no_time() -> None:
    record = logging.LogRecord("edge.uplink", logging.WARNING, __file__, 1, "broker %s refused", ("b",), None)

    assert JournalFormatter("%(levelname)s %(name)s: %(message)s").format(record) == (
        "<4>WARNING edge.uplink: broker b refused"
    )


def test_every_line_of_a_traceback_carries_the_priority() -> None:
    try:
        raise RuntimeError("disk gone")
    except RuntimeError:
        record = logging.LogRecord("edge.buffer", logging.ERROR, __file__, 1, "store failed", (), sys.exc_info())

    lines = JournalFormatter("%(message)s").format(record).split("\n")

    assert len(lines) > 2
    assert all(line.startswith("<3>") for line in lines), lines
    assert lines[-1] == "<3>RuntimeError: disk gone"


@pytest.mark.usefixtures("restored_logging")
def test_under_journald_each_logged_line_carries_its_priority(
    stderr_file: TextIO, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "stderr", stderr_file)
    monkeypatch.setenv("JOURNAL_STREAM", journal_stream(stderr_file))

    configure_logging("debug")
    logger.debug("polling")
    logger.info("started")
    logger.warning("battery low")
    logger.error("siren failed")
    logger.critical("nothing runs")

    stderr_file.seek(0)
    assert stderr_file.read().splitlines() == [
        f"<7>DEBUG {__name__}: polling",
        f"<6>INFO {__name__}: started",
        f"<4>WARNING {__name__}: battery low",
        f"<3>ERROR {__name__}: siren failed",
        f"<2>CRITICAL {__name__}: nothing runs",
    ]


@pytest.mark.usefixtures("restored_logging")
def test_when_stderr_is_not_the_journal_lines_start_with_the_time(
    stderr_file: TextIO, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "stderr", stderr_file)
    with (tmp_path / "elsewhere").open("w", encoding="utf-8") as elsewhere:
        monkeypatch.setenv("JOURNAL_STREAM", journal_stream(elsewhere))  # inherited, but stderr was redirected

    configure_logging("info")
    logger.warning("battery low")

    stderr_file.seek(0)
    assert re.fullmatch(
        rf"\d{{4}}-\d\d-\d\d \d\d:\d\d:\d\d,\d{{3}} WARNING {__name__}: battery low\n", stderr_file.read()
    )
