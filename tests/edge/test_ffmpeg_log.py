"""FFmpeg's and OpenCV's own stderr lines become log records at proper levels, without credentials.

The line classifier, the scrubber and the repeat filter are tested as functions. The router replaces
file descriptor 2, which pytest captures itself, so it is tested in child processes: OpenCV failing to
open real RTSP URLs (a closed port, the real RTSP server with a wrong password) with the router
installed, and what goes on to the original stderr.
"""

import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from edge.adapters.ffmpeg_log import (
    LOGGER_NAME,
    NativeMessage,
    Origin,
    RepeatFilter,
    parse_line,
    scrub,
)
from simulators.infra.ports import free_port
from simulators.infra.rtsp import Credentials
from simulators.video_clips import Clip, entrance_clip
from tests.rtsp_server import RtspServerFactory, require_rtsp_server

REPO = Path(__file__).resolve().parents[2]
CHILD_TIMEOUT_S = 60.0

# --- lines -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "component", "text", "level"),
    [
        (
            "[rtsp @ 0x556ba64a0f40] method DESCRIBE failed: 401 (Unauthorized)\n",
            "rtsp",
            "method DESCRIBE failed: 401 (Unauthorized)",
            logging.WARNING,
        ),
        (
            "[rtsp @ 0x561665f77000] method DESCRIBE failed: 404 (Not Found)",
            "rtsp",
            "method DESCRIBE failed: 404 (Not Found)",
            logging.WARNING,
        ),
        (
            "[tcp @ 0x558e7fc99840] Connection to tcp://127.0.0.1:9?timeout=0 failed: Connection refused",
            "tcp",
            "Connection to tcp://127.0.0.1:9?... failed: Connection refused",
            logging.WARNING,
        ),
        (
            "[tcp @ 0x5560232248c0] Failed to resolve hostname cam.invalid: Name or service not known",
            "tcp",
            "Failed to resolve hostname cam.invalid: Name or service not known",
            logging.WARNING,
        ),
        (
            "[h264 @ 0x7f3c1c0] error while decoding MB 12 3, bytestream -5",
            "h264",
            "error while decoding MB 12 3, bytestream -5",
            logging.WARNING,
        ),
        (
            "[mov,mp4,m4a,3gp,3g2,mj2 @ 0x1] [h264 @ 0x2] Invalid NAL unit size",
            "h264",
            "Invalid NAL unit size",
            logging.WARNING,
        ),
        (
            "[rtsp @ 0x1234] Opening 'rtsp://admin:hunter2@cam/ch1?token=abc' for reading",
            "rtsp",
            "Opening 'rtsp://cam/ch1?...' for reading",
            logging.DEBUG,
        ),
        ("[rtsp @ (nil)] SDP:", "rtsp", "SDP:", logging.DEBUG),
    ],
)
def test_ffmpeg_lines(line: str, component: str, text: str, level: int) -> None:
    assert parse_line(line) == NativeMessage(Origin.FFMPEG, component, text, level)


@pytest.mark.parametrize(
    ("line", "text", "level"),
    [
        (  # on every failed open, though the backend is fine: not a warning
            "[ WARN:0@0.013] global cap.cpp:212 open VIDEOIO(FFMPEG): backend is generally available but can't be"
            " used to capture by name",
            "cap.cpp:212 open VIDEOIO(FFMPEG): backend is generally available but can't be used to capture by name",
            logging.DEBUG,
        ),
        (
            "[ WARN:0@2.019] global cap_ffmpeg_impl.hpp:435 _opencv_ffmpeg_interrupt_callback Stream timeout"
            " triggered after 2009.737244 ms",
            "cap_ffmpeg_impl.hpp:435 _opencv_ffmpeg_interrupt_callback Stream timeout triggered after 2009.737244 ms",
            logging.DEBUG,
        ),
        (
            "[ WARN:1@3.5] global cap_ffmpeg_impl.hpp:1234 open Could not find decoder for codec_id=167",
            "cap_ffmpeg_impl.hpp:1234 open Could not find decoder for codec_id=167",
            logging.WARNING,
        ),
        (
            "[ERROR:0@0.1] global persistence.cpp:505 open Can't open file",
            "persistence.cpp:505 open Can't open file",
            logging.WARNING,
        ),
        (
            "[ INFO:0@0.2] global plugin_loader.impl.hpp:67 init Loaded",
            "plugin_loader.impl.hpp:67 init Loaded",
            logging.DEBUG,
        ),
    ],
)
def test_opencv_lines(line: str, text: str, level: int) -> None:
    assert parse_line(line) == NativeMessage(Origin.OPENCV, "opencv", text, level)


@pytest.mark.parametrize(
    "line",
    [
        "Traceback (most recent call last):",
        '  File "/usr/lib/python3/x.py", line 3, in <module>',
        "WARNING edge.adapters.ffmpeg: rtsp: method DESCRIBE failed: 401 (Unauthorized)",
        "rtsp: method DESCRIBE failed: 401 (Unauthorized)",  # a rendered record, as "%(message)s" logs it
        "[not ffmpeg] text",
        "",
    ],
)
def test_other_lines_are_not_native(line: str) -> None:
    assert parse_line(line) is None


def test_a_rendered_record_is_never_parsed_again() -> None:
    for line in ("[rtsp @ 0x1] method DESCRIBE failed: 401 (Unauthorized)", "[ WARN:0@0.1] global x.cpp:1 f text"):
        message = parse_line(line)
        assert message is not None
        assert parse_line(message.render()) is None


@pytest.mark.parametrize(
    ("text", "scrubbed"),
    [
        ("rtsp://admin:hunter2@192.0.2.1:554/ch1", "rtsp://192.0.2.1:554/ch1"),
        ("rtsp://admin@192.0.2.1/ch1", "rtsp://192.0.2.1/ch1"),
        ("rtsp://admin:p@ss@cam/ch1", "rtsp://cam/ch1"),  # an unencoded @ in the password
        ("'http://u:p@cam/snap.jpg?user=admin&pwd=x'", "'http://cam/snap.jpg?...'"),
        ("tcp://127.0.0.1:9?timeout=0 failed", "tcp://127.0.0.1:9?... failed"),
        ("login password=hunter2 user=admin", "login password=*** user=***"),
        ('Password: "two words"', "Password: ***"),
        ("Authorization: Basic dmlld2VyOnMzY3JldA==", "Authorization: ***"),
        ('Authorization: Digest username="viewer", response="abc"', "Authorization: ***"),
        ("sent Basic dmlld2VyOnMzY3JldA== to the camera", "sent Basic *** to the camera"),
        ("nothing to hide: 401 (Unauthorized)", "nothing to hide: 401 (Unauthorized)"),
    ],
)
def test_scrub(text: str, scrubbed: str) -> None:
    assert scrub(text) == scrubbed
    assert scrub(scrubbed) == scrubbed


def warning(text: str, component: str = "rtsp") -> NativeMessage:
    return NativeMessage(Origin.FFMPEG, component, text, logging.WARNING)


def test_repeats_within_the_window_drop_to_debug() -> None:
    repeats = RepeatFilter(window_s=600.0)
    refused = warning("Connection to tcp://192.0.2.1:554?... failed: Connection refused", "tcp")
    assert repeats.level(refused, 0.0) == logging.WARNING
    assert repeats.level(refused, 300.0) == logging.DEBUG
    assert repeats.level(refused, 600.0) == logging.WARNING  # a reminder after the window
    # Numbers outside URLs (counts, timings) do not make a message new; another camera's address does.
    assert repeats.level(warning("error while decoding MB 12 3", "h264"), 0.0) == logging.WARNING
    assert repeats.level(warning("error while decoding MB 40 7", "h264"), 1.0) == logging.DEBUG
    other = warning("Connection to tcp://192.0.2.2:554?... failed: Connection refused", "tcp")
    assert repeats.level(other, 601.0) == logging.WARNING
    debug = NativeMessage(Origin.FFMPEG, "rtsp", "SDP:", logging.DEBUG)
    assert repeats.level(debug, 0.0) == repeats.level(debug, 1.0) == logging.DEBUG


def test_the_repeat_filter_forgets_the_oldest() -> None:
    repeats = RepeatFilter(window_s=600.0, capacity=2)
    first, second, third = warning("first failed"), warning("second failed"), warning("third failed")
    for message in (first, second, third):
        assert repeats.level(message, 0.0) == logging.WARNING
    assert repeats.level(first, 1.0) == logging.WARNING  # forgotten: logged again
    assert repeats.level(third, 1.0) == logging.DEBUG


# --- the router, in child processes ----------------------------------------------------------------

PRELUDE = f"""
import logging, os, sys
logging.basicConfig(level=logging.DEBUG, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
import cv2
from edge.adapters import ffmpeg_log
assert ffmpeg_log.LOGGER_NAME == {LOGGER_NAME!r}
"""


def run_child(body: str, **env: str) -> subprocess.CompletedProcess[str]:
    script = PRELUDE + textwrap.dedent(body)
    environment = {**os.environ, "PYTHONPATH": str(REPO), **env}
    environment.pop("OPENCV_FFMPEG_LOGLEVEL", None)
    environment.pop("OPENCV_LOG_LEVEL", None)
    return subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=CHILD_TIMEOUT_S,
        cwd=REPO,
        env=environment,
        check=False,
    )


def test_without_the_router_opencv_warns_on_every_failed_open() -> None:
    """The problem: FFmpeg's raw line and OpenCV's misleading warning, on stderr, for every attempt."""
    port = free_port()
    child = run_child(
        f"""
        for _ in range(2):
            cv2.VideoCapture("rtsp://user:secret@127.0.0.1:{port}/x", cv2.CAP_FFMPEG)
        """
    )
    assert child.returncode == 0, child.stderr
    assert child.stderr.count("can't be used to capture by name") == 2
    assert child.stderr.count(f"Connection to tcp://127.0.0.1:{port}?timeout=0 failed: Connection refused") == 2


def test_a_failing_open_is_logged_scrubbed_once_and_other_lines_pass() -> None:
    port = free_port()
    child = run_child(
        f"""
        ffmpeg_log.install()
        for _ in range(3):
            capture = cv2.VideoCapture("rtsp://user:secret@127.0.0.1:{port}/x?token=abc", cv2.CAP_FFMPEG)
            assert not capture.isOpened()
        os.write(2, b"[rtsp @ 0x1234] Opening 'rtsp://user:secret@cam/x?token=abc' for reading\\n")
        print("a python line for rtsp://user:secret@cam/x", file=sys.stderr)
        print("stdout is left alone")
        1 / 0
        """
    )
    assert child.returncode == 1
    refused = f"edge.adapters.ffmpeg: tcp: Connection to tcp://127.0.0.1:{port}?... failed: Connection refused"
    lines = child.stderr.splitlines()
    assert lines.count(f"WARNING {refused}") == 1  # the first time
    assert lines.count(f"DEBUG {refused}") == 2  # the retries
    assert "DEBUG edge.adapters.ffmpeg: rtsp: Opening 'rtsp://cam/x?...' for reading" in lines
    assert "a python line for rtsp://cam/x" in lines
    assert "can't be used to capture by name" not in child.stderr  # OpenCV's own warning is quiet
    assert " @ 0x" not in child.stderr  # no raw FFmpeg line left
    assert "Traceback (most recent call last):" in lines
    assert "ZeroDivisionError: division by zero" in lines  # drained at exit (records may come after it)
    assert child.stdout == "stdout is left alone\n"
    assert "secret" not in child.stderr + child.stdout
    assert "token" not in child.stderr + child.stdout


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Clip:
    require_rtsp_server()
    return entrance_clip(tmp_path_factory.mktemp("clips") / "gate.mp4", count_in=1, fps=10)


def test_a_wrong_password_on_the_real_server_is_logged_as_401(rtsp_server: RtspServerFactory, clip: Clip) -> None:
    server = rtsp_server({"/cam1": clip.path}, credentials=Credentials("viewer", "s3cret"))
    url = server.url("/cam1", credentials=Credentials("viewer", "wrong-secret"))
    child = run_child(
        f"""
        ffmpeg_log.install()
        assert not cv2.VideoCapture({url!r}, cv2.CAP_FFMPEG).isOpened()
        assert not cv2.VideoCapture({url.replace("/cam1", "/cam2")!r}, cv2.CAP_FFMPEG).isOpened()
        """
    )
    assert child.returncode == 0, child.stderr
    lines = child.stderr.splitlines()
    assert "WARNING edge.adapters.ffmpeg: rtsp: method DESCRIBE failed: 401 (Unauthorized)" in lines
    assert "can't be used to capture by name" not in child.stderr
    assert "secret" not in child.stderr


def test_install_is_once_per_process_and_uninstall_restores_stderr() -> None:
    child = run_child(
        """
        before = os.fstat(2)
        level = cv2.utils.logging.getLogLevel()
        router = ffmpeg_log.install()
        assert router is not None and router.running
        assert ffmpeg_log.install() is router and ffmpeg_log.installed() is router
        assert os.fstat(2).st_ino != before.st_ino
        assert cv2.utils.logging.getLogLevel() == cv2.utils.logging.LOG_LEVEL_ERROR
        os.write(2, b"[rtsp @ 0x1] method DESCRIBE failed: 404 (Not Found)\\n")
        ffmpeg_log.uninstall()
        ffmpeg_log.uninstall()  # twice is fine
        after = os.fstat(2)
        assert (after.st_dev, after.st_ino) == (before.st_dev, before.st_ino)
        assert cv2.utils.logging.getLogLevel() == level and not router.running
        assert ffmpeg_log.installed() is None
        os.write(2, b"[rtsp @ 0x2] raw again\\n")
        again = ffmpeg_log.install(quiet=False)
        assert again is not None and again is not router
        assert cv2.utils.logging.getLogLevel() == level
        os.write(2, b"[rtsp @ 0x3] routed again\\n")
        """
    )
    assert child.returncode == 0, child.stderr
    lines = child.stderr.splitlines()
    assert lines == [
        "WARNING edge.adapters.ffmpeg: rtsp: method DESCRIBE failed: 404 (Not Found)",
        "[rtsp @ 0x2] raw again",
        "DEBUG edge.adapters.ffmpeg: rtsp: routed again",  # and drained at exit
    ]


def test_without_capture_only_opencv_is_quiet() -> None:
    port = free_port()
    child = run_child(
        f"""
        assert ffmpeg_log.install(capture_stderr=False) is None
        cv2.VideoCapture("rtsp://127.0.0.1:{port}/x", cv2.CAP_FFMPEG)
        """
    )
    assert child.returncode == 0, child.stderr
    assert "can't be used to capture by name" not in child.stderr
    assert f"] Connection to tcp://127.0.0.1:{port}?timeout=0 failed" in child.stderr  # FFmpeg's raw line


def test_records_logged_to_stderr_as_bare_messages_do_not_loop() -> None:
    child = run_child(
        """
        logging.getLogger().handlers[0].setFormatter(logging.Formatter("%(message)s"))
        ffmpeg_log.install()
        os.write(2, b"[rtsp @ 0x1] method DESCRIBE failed: 401 (Unauthorized)\\n")
        """
    )
    assert child.returncode == 0, child.stderr
    assert child.stderr.splitlines() == ["rtsp: method DESCRIBE failed: 401 (Unauthorized)"]


def test_a_flood_of_lines_neither_blocks_nor_is_miscounted() -> None:
    """Logging writes into the pipe it drains: a flood must not deadlock; what cannot be logged is counted."""
    child = run_child(
        """
        import re
        ffmpeg_log.install()
        for index in range(20_000):
            os.write(2, f"[h264 @ 0x{index:x}] frame {index} failed\\n".encode())
        ffmpeg_log.uninstall()
        """
    )
    assert child.returncode == 0, child.stderr
    lines = child.stderr.splitlines()
    logged = sum(1 for line in lines if "edge.adapters.ffmpeg: h264: frame" in line)
    dropped = sum(int(line.split()[3]) for line in lines if "messages (logging could not keep up)" in line)
    assert logged + dropped == 20_000
    assert logged >= 1_000
