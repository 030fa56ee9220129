"""FFmpeg's and OpenCV's own messages in the agent's log: at proper levels, once, and without credentials.

OpenCV's FFmpeg backend leaves FFmpeg's default log callback in place at ``AV_LOG_ERROR``, so FFmpeg
writes its errors straight to the process's stderr (file descriptor 2) from C, as
``[rtsp @ 0x55d0c8e0] method DESCRIBE failed: 401 (Unauthorized)``; and OpenCV itself adds a warning
to every failed open (``[ WARN:0@0.013] global cap.cpp:212 open VIDEOIO(FFMPEG): backend is generally
available but can't be used to capture by name``) that reads as if the backend were broken. Neither
reaches Python's logging. :func:`install` fixes both:

* it sets OpenCV's own log level to ERROR (``cv2.utils.logging.setLogLevel``, which takes effect
  at once; the ``OPENCV_LOG_LEVEL`` environment variable works only if set before ``cv2`` is
  imported), so failed opens and read timeouts print no OpenCV warnings;
* it replaces file descriptor 2 with a pipe read by a daemon thread (:class:`StderrRouter`): each
  FFmpeg or OpenCV line becomes a record of the logger ``edge.adapters.ffmpeg``, credentials scrubbed
  (:func:`scrub`), at the level :func:`parse_line` gives it (errors and failures WARNING, the rest
  DEBUG), and a message repeated within ``repeat_window_s`` (a camera failing the same way on every
  retry) drops to DEBUG. Every other line (Python's tracebacks, other libraries) goes on to the
  original stderr as it was, except that credentials are scrubbed from it too.

FFmpeg's log level is left as OpenCV sets it (errors only). ``OPENCV_FFMPEG_LOGLEVEL`` (or
``OPENCV_FFMPEG_DEBUG``) is honoured by this OpenCV, but it swaps FFmpeg's callback for OpenCV's own,
which prints ``[OPENCV:FFMPEG:16] ...`` lines to *stdout* without the component name: those lines are
not routed. The records are logged by a second daemon thread, so that a logging handler writing to
stderr (into the pipe) never blocks the thread that drains it. Linux only (``select`` on a pipe).
"""

import atexit
import contextlib
import enum
import faulthandler
import logging
import os
import queue
import re
import select
import sys
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Final

import cv2

LOGGER_NAME: Final = "edge.adapters.ffmpeg"
logger = logging.getLogger(LOGGER_NAME)

REPEAT_WINDOW_S: Final = 600.0
"""A message logged again within this many seconds is logged at DEBUG."""
LINE_LIMIT_BYTES: Final = 8 * 1024
"""A longer line is handled in pieces of this size."""
_PARTIAL_FLUSH_S: Final = 0.25
"""A line without its newline for this long is handled as it is (a prompt, a crash's last words)."""
_QUEUE_LIMIT: Final = 1_000
_REPEAT_MEMORY: Final = 512
_JOIN_TIMEOUT_S: Final = 2.0
_ENV_SENDING_TO_STDOUT: Final = ("OPENCV_FFMPEG_LOGLEVEL", "OPENCV_FFMPEG_DEBUG")

# "[rtsp @ 0x55d0c8e0] text", and a nested context: "[mov,mp4,m4a @ 0x1] [h264 @ 0x2] text".
_FFMPEG_LINE: Final = re.compile(
    r"(?:\[[^\s@\]]+ @ (?:0x[0-9A-Fa-f]+|\(nil\))\] )*\[(?P<component>[^\s@\]]+) @ (?:0x[0-9A-Fa-f]+|\(nil\))\] ?"
    r"(?P<text>.*)"
)
# "[ WARN:0@0.013] global cap.cpp:212 open VIDEOIO(FFMPEG): ..." (tag, file:line, function, text).
_OPENCV_LINE: Final = re.compile(
    r"\[\s*(?P<level>FATAL|ERROR|WARN|INFO|DEBUG|VERBOSE)\s*:[^\]]*\]\s*(?:global\s+)?(?P<text>.*)"
)
_OPENCV_LEVELS: Final = {
    "FATAL": logging.ERROR,
    "ERROR": logging.WARNING,
    "WARN": logging.WARNING,
    "INFO": logging.DEBUG,
    "DEBUG": logging.DEBUG,
    "VERBOSE": logging.DEBUG,
}
_OPENCV_NOISE: Final = (
    "can't be used to capture by name",  # every failed open: the backend is fine, the stream is not
    "Stream timeout triggered",  # every read timeout: the camera adapter reports the camera as offline
)
_PROBLEM: Final = re.compile(
    r"error|fail|refused|timed? ?out|unauthori[sz]ed|forbidden|not found|invalid|unsupported|could not|"
    r"cannot|can't|unable|no such|denied|reset by peer|broken pipe|unreachable|no route",
    re.IGNORECASE,
)

_SCHEME: Final = r"\b[A-Za-z][A-Za-z0-9+.-]*://"
_USERINFO: Final = re.compile(rf"(?P<scheme>{_SCHEME})[^\s/?#'\"<>]*@")
_URL_QUERY: Final = re.compile(rf"(?P<url>{_SCHEME}[^\s?#'\"<>]*)\?[^\s'\"<>]*")
_SECRET_PARAM: Final = re.compile(
    r"\b(?P<name>password|passwd|pwd|pass|secret|token|access_token|auth|api_?key|user|username|sig|signature)"
    r"(?P<sep>\s*[=:]\s*)(?P<value>\"[^\"]*\"|'[^']*'|[^\s&,;'\"]+)",
    re.IGNORECASE,
)
_AUTH_HEADER: Final = re.compile(r"(?P<name>(?:Proxy-)?Authorization\s*:\s*).*", re.IGNORECASE)
_AUTH_TOKEN: Final = re.compile(r"\b(?P<scheme>Basic|Bearer|Digest)\s+[A-Za-z0-9+/=._~-]{8,}")
_URL: Final = re.compile(rf"{_SCHEME}\S+")
_NUMBER: Final = re.compile(r"\d+")


class Origin(enum.StrEnum):
    FFMPEG = "ffmpeg"
    OPENCV = "opencv"


@dataclass(frozen=True, slots=True)
class NativeMessage:
    """One line FFmpeg or OpenCV wrote to stderr, scrubbed and with the level it is logged at."""

    origin: Origin
    component: str
    """FFmpeg's context (``rtsp``, ``tcp``, ``h264`` ...), or ``opencv``."""
    text: str
    level: int

    @property
    def key(self) -> str:
        """What makes repeats of a message the same: numbers outside URLs (addresses, counts) do not count."""
        parts = _URL.split(self.text)
        urls = _URL.findall(self.text)
        masked = [_NUMBER.sub("#", part) for part in parts]
        text = "".join(part + url for part, url in zip(masked, [*urls, ""], strict=True))
        return f"{self.origin}/{self.component}/{text}"

    def render(self) -> str:
        """The text logged: ``rtsp: method DESCRIBE failed: 401 (Unauthorized)``.

        It never starts like an FFmpeg or OpenCV line, so a log handler writing to stderr (into the
        pipe) is not routed twice.
        """
        return f"{self.component}: {self.text}"


def scrub(text: str) -> str:
    """``text`` without credentials: logins in URLs, query strings, ``password=``-like values, auth headers."""
    text = _USERINFO.sub(r"\g<scheme>", text)
    text = _URL_QUERY.sub(r"\g<url>?...", text)
    text = _AUTH_HEADER.sub(r"\g<name>***", text)
    text = _AUTH_TOKEN.sub(r"\g<scheme> ***", text)
    return _SECRET_PARAM.sub(r"\g<name>\g<sep>***", text)


def parse_line(line: str) -> NativeMessage | None:
    """The FFmpeg or OpenCV message in a line of stderr (scrubbed, with its level), or None for other lines."""
    line = line.rstrip("\r\n")
    match = _FFMPEG_LINE.fullmatch(line)
    if match is not None:
        text = scrub(match.group("text").strip())
        level = logging.WARNING if _PROBLEM.search(text) else logging.DEBUG
        return NativeMessage(Origin.FFMPEG, match.group("component"), text, level)
    match = _OPENCV_LINE.fullmatch(line)
    if match is not None:
        text = scrub(match.group("text").strip())
        level = _OPENCV_LEVELS[match.group("level")]
        if any(noise in text for noise in _OPENCV_NOISE):
            level = logging.DEBUG
        return NativeMessage(Origin.OPENCV, "opencv", text, level)
    return None


class RepeatFilter:
    """Lowers a message to DEBUG when it was logged at a higher level less than ``window_s`` ago."""

    def __init__(self, window_s: float = REPEAT_WINDOW_S, capacity: int = _REPEAT_MEMORY) -> None:
        self._window_s = window_s
        self._capacity = capacity
        self._logged: OrderedDict[str, float] = OrderedDict()

    def level(self, message: NativeMessage, now: float) -> int:
        if message.level <= logging.DEBUG:
            return message.level
        key = message.key
        last = self._logged.get(key)
        if last is not None and now - last < self._window_s:
            return logging.DEBUG
        self._logged[key] = now
        self._logged.move_to_end(key)
        while len(self._logged) > self._capacity:
            self._logged.popitem(last=False)
        return message.level


def quiet_opencv() -> int:
    """Set OpenCV's own log level to ERROR (no warning on each failed open); returns the level it had."""
    previous: int = cv2.utils.logging.getLogLevel()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
    return previous


class StderrRouter:
    """Routes what is written to file descriptor 2 (see the module docstring); :meth:`start` once, :meth:`stop`."""

    def __init__(self, *, target: logging.Logger | None = None, repeat_window_s: float = REPEAT_WINDOW_S) -> None:
        self._logger = target or logger
        self._repeats = RepeatFilter(repeat_window_s)
        self._records: queue.Queue[tuple[int, str] | None] = queue.Queue(_QUEUE_LIMIT)
        self._dropped = 0
        self._dropped_lock = threading.Lock()
        self._original: int | None = None
        self._reader: threading.Thread | None = None
        self._writer: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._original is not None

    def start(self) -> None:
        if self._original is not None:
            raise RuntimeError("the stderr router is already running")
        _flush_stderr()
        original = os.dup(2)
        read_fd, write_fd = os.pipe()
        try:
            out_fd = os.dup(original)
            os.dup2(write_fd, 2)
        except OSError:
            for fd in (original, read_fd):
                os.close(fd)
            raise
        finally:
            os.close(write_fd)
        self._original = original
        if faulthandler.is_enabled():
            faulthandler.enable(file=original)  # a crash report must not wait in the pipe
        self._writer = threading.Thread(target=self._write_records, name="ffmpeg-log-writer", daemon=True)
        self._reader = threading.Thread(
            target=self._pump, args=(read_fd, out_fd), name="ffmpeg-log-reader", daemon=True
        )
        self._writer.start()
        self._reader.start()

    def stop(self, timeout_s: float = _JOIN_TIMEOUT_S) -> None:
        """Put the original stderr back and wait (up to ``timeout_s``) for the lines still in the pipe.

        A child process that inherited the pipe as its stderr keeps the reader going until it exits.
        """
        original, self._original = self._original, None
        if original is None:
            return
        _flush_stderr()
        os.dup2(original, 2)  # closes the pipe's last write end (unless a child holds one): the reader sees EOF
        if faulthandler.is_enabled():
            faulthandler.enable(file=2)
        os.close(original)
        for thread in (self._reader, self._writer):
            if thread is not None:
                thread.join(timeout_s)

    # --- the threads -------------------------------------------------------------------------------

    def _pump(self, read_fd: int, out_fd: int) -> None:
        pending = b""
        try:
            while True:
                if pending:
                    ready, _, _ = select.select([read_fd], [], [], _PARTIAL_FLUSH_S)
                    if not ready:
                        self._line(pending, out_fd)
                        pending = b""
                        continue
                chunk = os.read(read_fd, 65_536)
                if not chunk:
                    break
                *lines, pending = (pending + chunk).split(b"\n")
                for line in lines:
                    self._line(line + b"\n", out_fd)
                while len(pending) > LINE_LIMIT_BYTES:
                    self._line(pending[:LINE_LIMIT_BYTES], out_fd)
                    pending = pending[LINE_LIMIT_BYTES:]
        except OSError:
            pass  # the pipe broke: nothing more comes
        finally:
            if pending:
                self._line(pending, out_fd)
            self._records.put(None)
            for fd in (read_fd, out_fd):
                with contextlib.suppress(OSError):
                    os.close(fd)

    def _line(self, raw: bytes, out_fd: int) -> None:
        """Log an FFmpeg or OpenCV line; pass any other line on to the original stderr (scrubbed)."""
        try:
            text = raw.decode("utf-8", errors="surrogateescape")
            message = parse_line(text)
            if message is None:
                scrubbed = scrub(text)
                if scrubbed != text:
                    raw = scrubbed.encode("utf-8", errors="surrogateescape")
                _write_all(out_fd, raw)
                return
            level = self._repeats.level(message, time.monotonic())
            if not self._logger.isEnabledFor(level):
                return
            try:
                self._records.put_nowait((level, message.render()))
            except queue.Full:
                with self._dropped_lock:
                    self._dropped += 1
        except Exception:  # never lose a line over a bug here
            _write_all(out_fd, raw)

    def _write_records(self) -> None:
        while True:
            record = self._records.get()
            with self._dropped_lock:
                dropped, self._dropped = self._dropped, 0
            if dropped:
                self._logger.warning("dropped %d FFmpeg/OpenCV messages (logging could not keep up)", dropped)
            if record is None:
                return
            level, text = record
            self._logger.log(level, "%s", text)  # a failing handler reports itself (Handler.handleError)


def _write_all(fd: int, data: bytes) -> None:
    with contextlib.suppress(OSError):  # the original stderr is gone: nowhere to write
        while data:
            written = os.write(fd, data)
            data = data[written:]


def _flush_stderr() -> None:
    for stream in (sys.stderr, sys.__stderr__):
        if stream is not None:
            with contextlib.suppress(Exception):
                stream.flush()


# --- once per process ------------------------------------------------------------------------------

_lock = threading.Lock()
_router: StderrRouter | None = None
_opencv_level: int | None = None
_atexit_registered = False


def install(
    *, capture_stderr: bool = True, quiet: bool = True, repeat_window_s: float = REPEAT_WINDOW_S
) -> StderrRouter | None:
    """Quiet OpenCV's own warnings (``quiet``) and route stderr into logging (``capture_stderr``); idempotent.

    Returns the process's router (None without ``capture_stderr``); a second call changes nothing and
    returns the same one. :func:`uninstall` undoes it (at exit too, so no line is left in the pipe).
    Call it once at start-up, before cameras open. Under pytest, whose capture owns file descriptor 2,
    install it in a child process (as ``tests/edge/test_ffmpeg_log.py`` does) or uninstall it after the test.
    """
    global _router, _opencv_level, _atexit_registered  # noqa: PLW0603 - one router per process
    with _lock:
        if quiet and _opencv_level is None:
            _opencv_level = quiet_opencv()
        if capture_stderr and _router is None:
            for name in _ENV_SENDING_TO_STDOUT:
                if os.environ.get(name):
                    logger.info("%s is set: OpenCV prints FFmpeg's messages to stdout, where they are not routed", name)
            router = StderrRouter(repeat_window_s=repeat_window_s)
            try:
                router.start()
            except OSError as exc:  # no file descriptor 2 (a daemon started without one)
                logger.warning("cannot route FFmpeg's messages from stderr into the log: %s", exc)
            else:
                _router = router
        if not _atexit_registered:
            atexit.register(uninstall)
            _atexit_registered = True
        return _router


def uninstall() -> None:
    """Undo :func:`install`: the original stderr back (the pipe drained) and OpenCV's log level as it was."""
    global _router, _opencv_level
    with _lock:
        router, _router = _router, None
        level, _opencv_level = _opencv_level, None
    if router is not None:
        router.stop()
    if level is not None:
        cv2.utils.logging.setLogLevel(level)


def installed() -> StderrRouter | None:
    """The process's running router, if :func:`install` started one."""
    return _router
