"""Where the demo writes, made safe for whatever its output is connected to.

The live view and the log lines go through one Rich console, onto stdout (onto stderr with ``--json``,
whose summary goes to stdout). Two things about that output must never reach the event loop:

- a reader that went away (``| head``): Rich answers a broken pipe by raising ``SystemExit`` from the
  write, so from whatever code happened to log, in the middle of an MQTT callback, a task group or the
  stop path. That tore the running stack apart without stopping it: tasks wedged halfway, the loop
  kept running (or waited at exit for threads nobody would close), signals only set an event nobody
  waited on any more, and the brokers were left behind;
- a reader that stops reading (a pager, a terminal on hold): a write blocks once the pipe is full, and a
  blocked write in the event loop's thread stops the duration timer and the signal handlers with it.

So the console writes into an :class:`Outlet`: a queue that a thread of its own writes out. A caller
never blocks and never gets an error; when the reader is gone the outlet falls silent, points the
descriptors that led to it at ``/dev/null`` (Python's own last writes then succeed too) and says which
(:attr:`Outlet.gone_fds`), and the demo stops when its results have nowhere to go, as a well-behaved
Unix tool does on a closed pipe.
"""

import contextlib
import logging
import os
import sys
import threading
from collections import deque
from typing import IO, Final, TextIO, cast

from rich.console import Console

logger = logging.getLogger(__name__)

STDOUT_FD: Final = 1
STDERR_FD: Final = 2
DEFAULT_LIMIT_BYTES: Final = 1024 * 1024
"""How much output may wait for a reader that is not reading; beyond it, output is dropped (and counted)."""
DRAIN_S: Final = 5.0
"""At the end, how long the last output may take to reach a slow reader before it is given up."""
CLOSED_PIPE_EXIT: Final = 141
"""The exit status of a process that a closed pipe ended (128 + SIGPIPE), as the shell reports for ``yes | head``."""


class Outlet:
    """A text stream onto ``stream``'s descriptor that never blocks its writers and never raises on them.

    Writes are encoded in the caller's thread (so an encoding error is the caller's, as with ``stream``),
    queued, and written by a daemon thread; while the reader does not read, at most ``limit_bytes`` wait,
    the rest is dropped (:attr:`dropped_bytes`). If a write fails (EPIPE from a closed pipe, EIO from a
    terminal that went away), the outlet drops what waits and all that follows, and points each standard
    descriptor onto the same pipe or terminal at ``/dev/null``; :attr:`gone_fds` then holds them.
    """

    def __init__(self, stream: TextIO, *, limit_bytes: int = DEFAULT_LIMIT_BYTES) -> None:
        self._stream = stream  # holds its descriptor open
        self._fd = stream.fileno()
        self.encoding: str = stream.encoding or "utf-8"
        self.errors: str = stream.errors or "strict"
        self._isatty = os.isatty(self._fd)
        self._limit_bytes = limit_bytes
        self._queue: deque[bytes] = deque()
        self._queued_bytes = 0
        self._writing = False
        self._closed = False
        self._gone: frozenset[int] | None = None
        self._condition = threading.Condition()
        self.dropped_bytes = 0
        with contextlib.suppress(OSError):
            stream.flush()  # whatever the stream holds goes out before what comes through here
        self._thread = threading.Thread(target=self._write_out, name=f"outlet-fd{self._fd}", daemon=True)
        self._thread.start()

    @property
    def gone(self) -> bool:
        """Whether the reader went away (then everything written is dropped)."""
        return self._gone is not None

    @property
    def gone_fds(self) -> frozenset[int]:
        """The standard descriptors that led to the reader that went away (empty while it is there)."""
        return self._gone or frozenset()

    # What Rich uses of its file: write, flush, isatty, encoding, fileno.

    def write(self, text: str) -> int:
        data = text.encode(self.encoding, self.errors)
        with self._condition:
            if self._gone is not None or self._closed:
                return len(text)
            if self._queued_bytes + len(data) > self._limit_bytes:
                self.dropped_bytes += len(data)
                return len(text)
            self._queue.append(data)
            self._queued_bytes += len(data)
            self._condition.notify_all()
        return len(text)

    def flush(self) -> None:
        """Never waits: the thread writes everything out as soon as the reader takes it."""

    def isatty(self) -> bool:
        return self._isatty

    def fileno(self) -> int:
        return self._fd

    def drain(self, timeout_s: float = DRAIN_S) -> bool:
        """Wait up to ``timeout_s`` for what is queued to be written; whether it was (or the reader is gone)."""
        with self._condition:
            return self._condition.wait_for(
                lambda: self._gone is not None or (not self._queue and not self._writing), timeout_s
            )

    def close(self, timeout_s: float = DRAIN_S) -> None:
        """Drain (up to ``timeout_s``), then drop anything written later; the thread ends.

        If the reader took nothing meanwhile, the standard descriptors onto it are pointed at /dev/null: a last
        write of Python's own (a message at exit) would block the process's exit on it."""
        drained = self.drain(timeout_s)
        with self._condition:
            self._closed = True
            self._queue.clear()
            self._queued_bytes = 0
            self._condition.notify_all()
        if not drained:
            _redirect_to_devnull(self._fd)

    def _write_out(self) -> None:
        while True:
            with self._condition:
                self._condition.wait_for(lambda: bool(self._queue) or self._closed)
                if not self._queue:
                    return
                data = b"".join(self._queue)
                self._queue.clear()
                self._queued_bytes = 0
                self._writing = True
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(self._fd, view) :]
            except OSError:
                self._went_away()
                return
            finally:
                with self._condition:
                    self._writing = False
                    self._condition.notify_all()

    def _went_away(self) -> None:
        gone = _redirect_to_devnull(self._fd)
        with self._condition:
            self._gone = gone
            self._queue.clear()
            self._queued_bytes = 0
            self._condition.notify_all()


def _redirect_to_devnull(fd: int) -> frozenset[int]:
    """Point ``fd``, and each standard descriptor onto the same file (one pipe, one terminal), at /dev/null."""
    try:
        broken = os.fstat(fd)
    except OSError:
        return frozenset({fd})
    same = {fd}
    for std in (STDOUT_FD, STDERR_FD):
        with contextlib.suppress(OSError):
            info = os.fstat(std)
            if (info.st_dev, info.st_ino) == (broken.st_dev, broken.st_ino):
                same.add(std)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        for target in same:
            os.dup2(devnull, target)
    finally:
        os.close(devnull)
    return frozenset(same)


class DemoConsole(Console):
    """The demo's Rich console: it writes into an :class:`Outlet`, which never reports a broken pipe to it; should
    anything still do so (a stream without a descriptor, as under a test runner), it falls silent rather than
    raising ``SystemExit`` as Rich does."""

    def on_broken_pipe(self) -> None:
        self.quiet = True


class DemoOutput:
    """The demo's console (onto stdout, or stderr when ``view_on_stderr``) and its result (stdout)."""

    def __init__(self, *, view_on_stderr: bool) -> None:
        stream = sys.stderr if view_on_stderr else sys.stdout
        try:
            self.outlet: Outlet | None = Outlet(stream)
        except (OSError, ValueError):  # no descriptor (a test runner's stream): write to it as it is
            self.outlet = None
        # Rich types its file as IO[str]; it uses only write, flush, isatty, fileno and encoding, which an Outlet has.
        self.console = DemoConsole(file=cast(IO[str], self.outlet) if self.outlet is not None else stream)
        self._stdout_gone = False

    @property
    def results_gone(self) -> bool:
        """Whether stdout's reader went away: the run's results have nowhere to go."""
        return self._stdout_gone or (self.outlet is not None and STDOUT_FD in self.outlet.gone_fds)

    def print_result(self, text: str) -> bool:
        """Write ``text`` and a newline to stdout; False if its reader is gone (stdout then points at /dev/null)."""
        if self.results_gone:
            return False
        try:
            sys.stdout.write(text + "\n")
            sys.stdout.flush()
        except OSError:  # BrokenPipeError: the reader went away
            self._stdout_gone = True
            _redirect_to_devnull(STDOUT_FD)
            with contextlib.suppress(OSError, ValueError):
                # What stayed in the buffer now goes to /dev/null, not at exit onto the closed pipe.
                sys.stdout.flush()
            return False
        return True

    def close(self) -> None:
        """Let the last of the view and the log lines out (waiting a little for a slow reader)."""
        if self.outlet is not None:
            self.outlet.close()


def log_through_root(*names: str) -> None:
    """Hand the records of the loggers ``names`` to the root logger's handlers (the demo's console) rather than to
    streams of their own: uvicorn gives its loggers a handler onto ``sys.stderr``, whose writes would block or fail
    outside the :class:`Outlet`."""
    for name in names:
        named = logging.getLogger(name)
        for handler in list(named.handlers):
            named.removeHandler(handler)
        named.propagate = True
