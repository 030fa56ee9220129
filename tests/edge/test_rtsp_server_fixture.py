"""The RTSP server fixture against OpenCV's FFmpeg client, as the camera adapter opens streams: frames
over RTP/TCP, a login that is checked, a frozen server stalling reads, and restarts on the same port."""

import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from simulators.infra.rtsp import TCP_CAPTURE_OPTIONS, Credentials, Mount, describe
from simulators.scenes import HEIGHT, WIDTH, Frame
from simulators.video_clips import Clip, EntranceScene, entrance_scene
from tests.rtsp_server import RtspServerFactory, require_rtsp_server

FPS = 25  # FFmpeg reads ~20 frames while it opens a stream: it takes 1.1 s at 25 fps (2.8 s at 10 fps)
OPEN_TIMEOUT_MS = 10_000
READ_TIMEOUT_MS = 1_000
SAME_FRAME = 20.0
"""The most :func:`difference` between a decoded frame and the frame rendered for it (H.264 is lossy: ~10)."""


def one_walker(speed_px_s: float) -> EntranceScene:
    """One walker crossing from the first frame to the last, so that a frame tells where in the clip it is."""
    return entrance_scene(count_in=1, fps=FPS, speed_px_s=speed_px_s, lead_in_s=0.0, gap_s=0.0, tail_s=0.0)


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> Path:
    require_rtsp_server()
    return tmp_path_factory.mktemp("clips")


@pytest.fixture(scope="module")
def brisk() -> EntranceScene:
    return one_walker(480.0)  # 40 frames, 1.6 s


@pytest.fixture(scope="module")
def brisk_clip(clips: Path, brisk: EntranceScene) -> Clip:
    return brisk.encode(clips / "brisk.mp4")


@pytest.fixture(scope="module")
def stroll() -> EntranceScene:
    return one_walker(160.0)  # 119 frames, 4.8 s


@pytest.fixture(scope="module")
def stroll_clip(clips: Path, stroll: EntranceScene) -> Clip:
    return stroll.encode(clips / "stroll.mp4")


@pytest.fixture(autouse=True)
def rtp_over_tcp(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENCV_FFMPEG_CAPTURE_OPTIONS", TCP_CAPTURE_OPTIONS)


class Capture:
    """``cv2.VideoCapture`` on the FFmpeg backend with the camera adapter's kind of timeouts."""

    def __init__(self, url: str, read_timeout_ms: int = READ_TIMEOUT_MS) -> None:
        timeouts = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, OPEN_TIMEOUT_MS, cv2.CAP_PROP_READ_TIMEOUT_MSEC, read_timeout_ms]
        self.capture = cv2.VideoCapture(url, cv2.CAP_FFMPEG, timeouts)

    @property
    def opened(self) -> bool:
        return bool(self.capture.isOpened())

    def read(self) -> Frame | None:
        ok, frame = self.capture.read()
        return np.asarray(frame, dtype=np.uint8) if ok and frame is not None else None

    def frames(self) -> Iterator[Frame]:
        """Frames until a read fails."""
        while (frame := self.read()) is not None:
            yield frame

    def release(self) -> None:
        self.capture.release()


def difference(a: Frame, b: Frame) -> float:
    """The largest grey-level difference of two frames averaged over 9 x 9 px: coding noise averages out, a
    walker out of place does not (one frame apart, the brisk walker makes 80 and more)."""
    grey = cv2.absdiff(cv2.cvtColor(a, cv2.COLOR_BGR2GRAY), cv2.cvtColor(b, cv2.COLOR_BGR2GRAY))
    return float(cv2.blur(grey, (9, 9)).max())


def opens_and_reads(url: str) -> bool:
    capture = Capture(url)
    try:
        return capture.opened and capture.read() is not None
    finally:
        capture.release()


def test_a_client_reads_the_clip_over_rtp_on_tcp_frame_for_frame(
    rtsp_server: RtspServerFactory, brisk_clip: Clip, brisk: EntranceScene, monkeypatch: pytest.MonkeyPatch
) -> None:
    clip, scene = brisk_clip, brisk
    # tcp_only: a client asking for UDP would be refused, so the frames came over the RTSP connection.
    server = rtsp_server([Mount("/cam1", clip.path, playback="once")], tcp_only=True)
    assert server.url() == f"rtsp://127.0.0.1:{server.port}/cam1"
    capture = Capture(server.url())
    try:
        assert capture.opened
        frames = list(capture.frames())  # "once": the stream ends after the clip's last frame
    finally:
        capture.release()

    assert len(frames) == clip.frames
    assert {frame.shape for frame in frames} == {(HEIGHT, WIDTH, 3)}
    assert all(difference(frame, scene.frame(index)) < SAME_FRAME for index, frame in enumerate(frames))
    # ... and frames tell apart (at both ends the walker is out of sight):
    assert all(difference(frames[index], scene.frame(index + 1)) > SAME_FRAME for index in range(1, clip.frames - 2))
    monkeypatch.setenv("OPENCV_FFMPEG_CAPTURE_OPTIONS", "rtsp_transport;udp")
    assert not opens_and_reads(server.url())  # 461 Unsupported Transport: the frames did come over TCP


def test_a_wrong_or_missing_login_is_refused(rtsp_server: RtspServerFactory, brisk_clip: Clip) -> None:
    clip = brisk_clip
    login = Credentials("viewer", "s3cret:/@")  # characters a URL must escape
    server = rtsp_server({"/cam1": clip.path}, credentials=login)
    wrong = Credentials("viewer", "guess")

    assert describe(server.host, server.port, "/cam1", login) == 200
    assert describe(server.host, server.port, "/cam1", wrong) == 401
    assert describe(server.host, server.port, "/cam1") == 401
    assert describe(server.host, server.port, "/nowhere", login) == 404
    assert not opens_and_reads(server.url(credentials=wrong))
    assert not opens_and_reads(server.url(credentials=None))
    assert opens_and_reads(server.url())


def test_a_frozen_server_stalls_reads_until_it_is_thawed(rtsp_server: RtspServerFactory, brisk_clip: Clip) -> None:
    clip = brisk_clip
    server = rtsp_server({"/cam1": clip.path})
    read_timeout_s = 0.5
    capture = Capture(server.url(), read_timeout_ms=round(read_timeout_s * 1000))
    try:
        assert capture.opened
        assert capture.read() is not None
        server.freeze()
        assert server.frozen
        # What FFmpeg already buffered still comes at once (the ~20 frames it probed when opening); then
        # each read waits for the read timeout, and a few of them still get frames the decoder held.
        stalled_for = 0.0
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            began = time.monotonic()
            frame = capture.read()
            stalled_for = time.monotonic() - began
            if frame is None:
                break
        assert frame is None
        assert stalled_for >= 0.8 * read_timeout_s
    finally:
        capture.release()
    server.thaw()
    assert not server.frozen
    assert opens_and_reads(server.url())


def test_stop_kill_and_restart_keep_the_port(rtsp_server: RtspServerFactory, brisk_clip: Clip) -> None:
    clip = brisk_clip
    server = rtsp_server({"/cam1": clip.path})
    port = server.port
    capture = Capture(server.url())
    try:
        assert capture.read() is not None
        server.stop()
        assert not server.running
        list(capture.frames())  # what FFmpeg buffered may still come, then reads fail ...
        assert capture.read() is None  # ... for good
    finally:
        capture.release()
    with pytest.raises(ConnectionRefusedError):
        describe(server.host, port, "/cam1")

    server.start()
    assert server.port == port
    assert opens_and_reads(server.url())
    server.kill()
    assert not opens_and_reads(server.url())
    server.restart()  # from killed: a start
    assert server.port == port
    server.restart()  # from running: a stop and a start
    assert server.port == port
    assert opens_and_reads(server.url())


def test_a_live_mount_starts_at_the_keyframe_before_the_clips_current_position(
    rtsp_server: RtspServerFactory, stroll_clip: Clip, stroll: EntranceScene
) -> None:
    clip, scene = stroll_clip, stroll
    server = rtsp_server([Mount("/live", clip.path, playback="live")])
    time.sleep(max(0.0, server.live_since + 1.2 - time.monotonic()))  # past the clip's second keyframe
    opening = time.monotonic() - server.live_since
    capture = Capture(server.url("/live"))
    try:
        opened = time.monotonic() - server.live_since
        first = capture.read()
    finally:
        capture.release()

    assert first is not None
    keyframes = range(0, clip.frames, clip.keyframe_interval)
    shown = min(keyframes, key=lambda index: difference(first, scene.frame(index)))
    assert difference(first, scene.frame(shown)) < SAME_FRAME
    # The session began while the client was opening it: at the keyframe before the position then.
    positions = range(int(opening * clip.fps), int(opened * clip.fps) + 1)
    expected = {position % clip.frames // clip.keyframe_interval * clip.keyframe_interval for position in positions}
    assert shown in expected
    assert shown > 0
