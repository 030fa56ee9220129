"""The camera adapter on real local sources: generated video files (MJPG in AVI), a local HTTP
snapshot server, and addresses nothing answers. Frame ``i`` of a generated file is a flat image of
brightness ``20 * i``, so the sink can tell which frame it was given.
"""

import asyncio
import base64
import itertools
import os
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.adapters.base import DeviceStatus, Measured, Observation
from edge.adapters.camera import CameraAdapter, CaptureOpener, open_capture
from edge.adapters.camera_source import Frame, FrameSource
from protocol.gateway_config import DeviceKind, DeviceSpec, DriverKind
from simulators.scenes import flat_frame, write_clip
from tests.edge.helpers import Collector, FakeClock

LIVENESS_S = 10.0
NOW_MS = 5_000
SIZE = (64, 48)  # width, height
BRIGHTNESS_STEP = 20


class CameraCollector(Collector):
    """Also sorts what a camera emitted."""

    def statuses(self) -> list[DeviceStatus]:
        return [o for o in self.observations if isinstance(o, DeviceStatus)]

    def brightness(self) -> list[float]:
        return [o.value for o in self.observations if isinstance(o, Measured)]


class BrightnessSink:
    """A frame sink reporting each frame's mean brightness; records when (monotonic) and in which thread."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self.threads: set[str] = set()
        self.shapes: set[tuple[int, ...]] = set()

    def __call__(self, frame: Frame, ts: int) -> list[Observation]:
        self.times.append(time.monotonic())
        self.threads.add(threading.current_thread().name)
        self.shapes.add(frame.shape)
        return [Measured("cam-1", "brightness", round(float(frame.mean())), ts)]


class TrackedSource:
    """Wraps a real source to see whether it is released."""

    def __init__(self, inner: FrameSource) -> None:
        self._inner = inner
        self.released = False

    @property
    def live(self) -> bool:
        return self._inner.live

    @property
    def stream_fps(self) -> float | None:
        return self._inner.stream_fps

    def grab(self) -> None:
        self._inner.grab()

    def retrieve(self) -> Frame:
        return self._inner.retrieve()

    def release(self) -> None:
        self.released = True
        self._inner.release()


class TrackingOpener:
    """The real opener, counting attempts and keeping what it opened."""

    def __init__(self) -> None:
        self.attempts = 0
        self.opened: list[TrackedSource] = []

    def __call__(self, source: str, timeout_s: float) -> FrameSource:
        self.attempts += 1
        tracked = TrackedSource(open_capture(source, timeout_s))
        self.opened.append(tracked)
        return tracked


def write_video(path: Path, frames: int) -> Path:
    """An MJPG AVI whose frame ``i`` is flat grey of brightness ``20 * i``; written elsewhere, then moved in."""
    staging = path.parent / "staging"
    staging.mkdir(exist_ok=True)
    partial = write_clip(staging / path.name, (flat_frame(SIZE, BRIGHTNESS_STEP * index) for index in range(frames)))
    os.replace(partial, path)
    return path


def camera_spec(source: str, **params: float) -> DeviceSpec:
    values: dict[str, float | str] = {"source": source, "backoff_min_s": 0.01, "backoff_max_s": 0.05}
    values.update(params)
    return DeviceSpec(kind=DeviceKind.CHECKPOINT_CAMERA, id="cam-1", driver=DriverKind.CAMERA, params=values)


def camera(
    source: str,
    *,
    sink: BrightnessSink | None = None,
    opener: CaptureOpener = open_capture,
    clock: Callable[[], int] | None = None,
    **params: float,
) -> CameraAdapter:
    return CameraAdapter(
        camera_spec(source, **params),
        clock or FakeClock(NOW_MS),
        frame_sink=sink or BrightnessSink(),
        opener=opener,
        file_sources=True,  # generated video files stand for cameras here
    )


@asynccontextmanager
async def running(adapter: CameraAdapter, emit: Callable[[Observation], None]) -> AsyncIterator[None]:
    task = asyncio.create_task(adapter.run(emit))
    try:
        yield
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


def close_to(values: list[float], expected: list[int]) -> bool:
    return len(values) == len(expected) and all(abs(v - e) <= 3 for v, e in zip(values, expected, strict=True))


async def test_frames_from_a_file_reach_the_sink_in_order_at_the_configured_rate(tmp_path: Path) -> None:
    video = write_video(tmp_path / "gate.avi", frames=10)
    sink = BrightnessSink()
    fps = 20.0
    adapter = camera(str(video), sink=sink, fps=fps)
    collector = CameraCollector()

    async with running(adapter, collector):
        await collector.wait_until(lambda _: len(collector.brightness()) >= 6)

    assert collector.observations[0] == DeviceStatus("cam-1", 5_000, online=True, reason="receiving frames")
    assert close_to(collector.brightness()[:6], [0, 20, 40, 60, 80, 100])
    assert all(isinstance(o, Measured) and o.ts == 5_000 for o in collector.observations[1:])
    assert sink.shapes == {(SIZE[1], SIZE[0], 3)}
    assert sink.threads == {"camera-cam-1"}  # never on the event loop's thread
    intervals = np.diff(sink.times[:6])
    assert all(interval >= 0.9 / fps for interval in intervals)  # paced, not read as fast as possible


async def test_a_file_is_rewound_at_its_end_without_going_offline(tmp_path: Path) -> None:
    video = write_video(tmp_path / "short.avi", frames=3)
    adapter = camera(str(video), fps=30.0)
    collector = CameraCollector()

    async with running(adapter, collector):
        await collector.wait_until(lambda _: len(collector.brightness()) >= 7)

    assert close_to(collector.brightness()[:7], [0, 20, 40, 0, 20, 40, 0])
    assert [s.online for s in collector.statuses()] == [True]


async def test_a_missing_file_is_reported_offline_once_and_online_when_it_appears(tmp_path: Path) -> None:
    path = tmp_path / "late.avi"
    opener = TrackingOpener()
    adapter = camera(str(path), opener=opener, fps=30.0)
    collector = CameraCollector()

    async with running(adapter, collector):
        await collector.wait_until(lambda _: len(collector.statuses()) >= 1)
        attempts = opener.attempts
        async with asyncio.timeout(LIVENESS_S):
            while opener.attempts < attempts + 3:  # noqa: ASYNC110 - it keeps retrying (in its thread) ...
                await asyncio.sleep(0.01)
        assert len(collector.statuses()) == 1  # ... without repeating itself
        write_video(path, frames=3)
        await collector.wait_until(lambda _: len(collector.brightness()) >= 2)

    offline, online = collector.statuses()
    assert offline.online is False
    assert offline.reason == f"cannot open {path}"
    assert online == DeviceStatus("cam-1", 5_000, online=True, reason="receiving frames")


async def test_a_source_that_drops_goes_offline_and_back_online(tmp_path: Path) -> None:
    path = write_video(tmp_path / "flaky.avi", frames=3)
    adapter = camera(str(path), fps=30.0)
    collector = CameraCollector()

    async with running(adapter, collector):
        await collector.wait_until(lambda _: len(collector.brightness()) >= 1)
        path.unlink()  # at its end the file cannot be reopened
        await collector.wait_until(lambda _: len(collector.statuses()) >= 2)
        write_video(path, frames=3)
        await collector.wait_until(lambda _: len(collector.statuses()) >= 3)

    assert [(s.online, s.reason) for s in collector.statuses()] == [
        (True, "receiving frames"),
        (False, f"cannot open {path}"),
        (True, "receiving frames"),
    ]


async def test_stream_credentials_stay_out_of_the_offline_reason() -> None:
    # Nothing listens on the discard port: FFmpeg's connection is refused at once.
    adapter = camera("rtsp://viewer:s3cret@127.0.0.1:9/stream?token=abc", read_timeout_s=1.0)
    collector = CameraCollector()

    async with running(adapter, collector):
        await collector.wait_until(lambda _: len(collector.statuses()) >= 1)

    (status,) = collector.statuses()
    assert status.online is False
    assert status.reason.startswith("connection to 127.0.0.1:9 refused: nothing listens on that port")
    assert "s3cret" not in status.reason
    assert "token" not in status.reason


MJPEG_FPS = 10.0
MJPEG_BOUNDARY = "outpostframe"


class SnapshotServer:
    """A local HTTP camera: /snapshot.jpg is public, /private.jpg needs basic auth; /stream.mjpg is an MJPEG
    stream at :data:`MJPEG_FPS` (/private.mjpg with basic auth, /bare.mjpg with parts that have no
    Content-Length, /stalls.mjpg sends 5 frames and then nothing with the connection open); the rest is 404.
    MJPEG part ``i`` is flat grey of brightness ``20 * (i % 10)``."""

    def __init__(self) -> None:
        ok, jpeg = cv2.imencode(".jpg", flat_frame(SIZE, 120))
        assert ok
        self.jpeg = jpeg.tobytes()
        self.parts = [cv2.imencode(".jpg", flat_frame(SIZE, BRIGHTNESS_STEP * i))[1].tobytes() for i in range(10)]
        self.credentials = "Basic " + base64.b64encode(b"viewer:s3cret").decode("ascii")
        self.closing = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path.endswith(".mjpg"):
                    self.stream()
                    return
                public = self.path == "/snapshot.jpg"
                private = self.path == "/private.jpg"
                if private and self.headers.get("Authorization") != server.credentials:
                    self.send_error(401)
                elif public or private:
                    self.send_response(200)
                    self.send_header("Content-Type", "image/jpeg")
                    self.send_header("Content-Length", str(len(server.jpeg)))
                    self.end_headers()
                    self.wfile.write(server.jpeg)
                else:
                    self.send_error(404)

            def stream(self) -> None:
                if self.path not in ("/stream.mjpg", "/private.mjpg", "/bare.mjpg", "/stalls.mjpg"):
                    self.send_error(404)
                    return
                if self.path == "/private.mjpg" and self.headers.get("Authorization") != server.credentials:
                    self.send_error(401)
                    return
                self.send_response(200)
                self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={MJPEG_BOUNDARY}")
                self.end_headers()
                index = 0
                try:
                    while not server.closing.is_set():
                        if self.path == "/stalls.mjpg" and index >= 5:
                            server.closing.wait()
                            return
                        part = server.parts[index % len(server.parts)]
                        length = b"" if self.path == "/bare.mjpg" else b"Content-Length: %d\r\n" % len(part)
                        self.wfile.write(
                            b"--%s\r\nContent-Type: image/jpeg\r\n%s\r\n" % (MJPEG_BOUNDARY.encode(), length)
                        )
                        self.wfile.write(part + b"\r\n")
                        self.wfile.flush()
                        index += 1
                        server.closing.wait(1 / MJPEG_FPS)
                except OSError:  # the camera adapter hung up
                    return

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)


@pytest.fixture
def snapshot_server() -> Iterator[SnapshotServer]:
    server = SnapshotServer()
    server.thread.start()
    yield server
    server.closing.set()
    server.httpd.shutdown()
    server.httpd.server_close()
    server.thread.join()


async def test_snapshots_are_fetched_and_decoded(snapshot_server: SnapshotServer) -> None:
    sink = BrightnessSink()
    adapter = camera(f"{snapshot_server.url}/snapshot.jpg", sink=sink, fps=20.0)
    collector = CameraCollector()

    async with running(adapter, collector):
        await collector.wait_until(lambda _: len(collector.brightness()) >= 3)

    assert close_to(collector.brightness()[:3], [120, 120, 120])
    assert sink.shapes == {(SIZE[1], SIZE[0], 3)}


async def test_snapshot_credentials_in_the_url_are_sent_as_basic_auth(snapshot_server: SnapshotServer) -> None:
    url = snapshot_server.url.replace("http://", "http://viewer:s3cret@")
    adapter = camera(f"{url}/private.jpg", fps=20.0)
    collector = CameraCollector()

    async with running(adapter, collector):
        await collector.wait_until(lambda _: len(collector.brightness()) >= 1)

    assert [s.online for s in collector.statuses()] == [True]


async def test_a_failing_snapshot_url_is_offline_with_a_reason_free_of_secrets(
    snapshot_server: SnapshotServer,
) -> None:
    url = snapshot_server.url.replace("http://", "http://viewer:s3cret@")
    adapter = camera(f"{url}/missing.jpg?password=hunter2")
    collector = CameraCollector()

    async with running(adapter, collector):
        await collector.wait_until(lambda _: len(collector.statuses()) >= 1)

    (status,) = collector.statuses()
    assert status.online is False
    assert status.reason == f"{snapshot_server.url}/missing.jpg?... answered HTTP 404: no such path on the camera"


@pytest.mark.parametrize("path", ["/stream.mjpg", "/bare.mjpg"])
async def test_an_mjpeg_stream_is_read_part_by_part_at_the_configured_rate(
    snapshot_server: SnapshotServer, path: str
) -> None:
    sink = BrightnessSink()
    adapter = camera(f"{snapshot_server.url}{path}", sink=sink, fps=5.0)
    collector = CameraCollector()

    async with running(adapter, collector):
        await collector.wait_until(lambda _: len(collector.brightness()) >= 8)

    seen = collector.brightness()[:8]
    steps = [(later - earlier) % 200 for earlier, later in itertools.pairwise(seen)]
    assert all(step in (20, 40, 60) for step in steps), f"every other part of a 10 fps stream at fps 5: {seen}"
    assert [s.online for s in collector.statuses()] == [True]
    health = adapter.health()
    assert health.frames >= 8
    assert health.reason is None


async def test_mjpeg_credentials_are_sent_and_wrong_ones_told_apart(snapshot_server: SnapshotServer) -> None:
    good = snapshot_server.url.replace("http://", "http://viewer:s3cret@")
    bad = snapshot_server.url.replace("http://", "http://viewer:wrong@")
    collector, refused = CameraCollector(), CameraCollector()
    async with running(camera(f"{good}/private.mjpg", fps=5.0), collector):
        await collector.wait_until(lambda _: len(collector.brightness()) >= 2)
    async with running(camera(f"{bad}/private.mjpg", fps=5.0), refused):
        await refused.wait_until(lambda _: len(refused.statuses()) >= 1)
    async with running(camera(f"{snapshot_server.url}/private.mjpg", fps=5.0), anonymous := CameraCollector()):
        await anonymous.wait_until(lambda _: len(anonymous.statuses()) >= 1)

    assert refused.statuses()[0].reason.endswith("answered HTTP 401: wrong user or password")
    assert anonymous.statuses()[0].reason.endswith("answered HTTP 401: it needs a user and password")
    assert "wrong" not in refused.statuses()[0].reason.split("answered")[0], "no credentials in the reason"


async def test_an_http_camera_nobody_listens_on_is_refused_in_words() -> None:
    with socket.socket() as probe:  # a port that was free a moment ago: nothing listens on it
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    collector = CameraCollector()
    async with running(camera(f"http://127.0.0.1:{port}/stream.mjpg"), collector):
        await collector.wait_until(lambda _: len(collector.statuses()) >= 1)

    assert collector.statuses()[0].reason.startswith(f"http://127.0.0.1:{port}/stream.mjpg: connection refused")


async def test_an_mjpeg_stream_that_stalls_open_is_offline_within_the_read_timeout(
    snapshot_server: SnapshotServer,
) -> None:
    collector = CameraCollector()
    async with running(camera(f"{snapshot_server.url}/stalls.mjpg", fps=10.0, read_timeout_s=0.5), collector):
        await collector.wait_until(lambda _: any(not s.online for s in collector.statuses()))

    online, offline = collector.statuses()[:2]
    assert (online.online, offline.online) == (True, False)
    assert "froze" in offline.reason or "timed out" in offline.reason


async def test_cancelling_run_stops_the_thread_and_releases_the_source(tmp_path: Path) -> None:
    video = write_video(tmp_path / "gate.avi", frames=10)
    opener = TrackingOpener()
    adapter = camera(str(video), opener=opener, fps=30.0)
    collector = CameraCollector()

    async with running(adapter, collector):
        await collector.wait_until(lambda _: len(collector.brightness()) >= 2)
        thread = adapter.thread
        assert thread is not None
        assert thread.is_alive()

    assert not thread.is_alive()
    assert opener.opened
    assert all(source.released for source in opener.opened)
    settled = len(collector.observations)
    await asyncio.sleep(0.05)
    assert len(collector.observations) == settled  # nothing arrives after run() ended


async def test_a_failing_frame_sink_fails_run_and_stops_the_thread(tmp_path: Path) -> None:
    video = write_video(tmp_path / "gate.avi", frames=3)

    def broken_sink(frame: Frame, ts: int) -> list[Observation]:
        raise ArithmeticError("detector bug")

    adapter = CameraAdapter(camera_spec(str(video)), FakeClock(NOW_MS), frame_sink=broken_sink, file_sources=True)

    with pytest.raises(ArithmeticError, match="detector bug"):
        await asyncio.wait_for(adapter.run(CameraCollector()), LIVENESS_S)

    assert adapter.thread is not None
    assert not adapter.thread.is_alive()


def test_a_camera_s_ffmpeg_options_do_not_outlive_its_opening(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """FFmpeg's options (protocol whitelist, RTSP over TCP) go through the environment: they must not stay there
    for the next camera, or for a child process (which would inherit a file-only whitelist)."""
    monkeypatch.delenv("OPENCV_FFMPEG_CAPTURE_OPTIONS", raising=False)
    source = open_capture(str(write_video(tmp_path / "clip.avi", 3)), 2.0)
    source.release()

    assert "OPENCV_FFMPEG_CAPTURE_OPTIONS" not in os.environ
