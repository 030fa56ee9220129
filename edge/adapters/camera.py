"""A checkpoint camera read through OpenCV: an RTSP (or other) stream, an HTTP snapshot URL or a video file.

One worker thread per camera opens the source, reads frames at ``fps`` and hands each frame, with
the clock at the moment it was read, to the frame sink (the detection pipeline), in that thread.
Only the observations the sink returns cross to the event loop; frames never leave the gateway.

* ``http://`` and ``https://`` sources are snapshot URLs (one JPEG fetched per frame) or MJPEG streams,
  as the camera answers (:mod:`edge.adapters.http_camera`).
* Other URLs (``rtsp://`` ...) are live streams: every frame is grabbed, so the decoder's buffer never
  goes stale, and ``fps`` of them a second are decoded and handed on, on an even grid
  (:mod:`edge.adapters.frame_pacing`); every frame of a stream slower than that.
* Anything else is a video file, played at ``fps`` and rewound at its end (a demo and test source).

When the source cannot be opened or stops delivering frames the adapter emits
``DeviceStatus(online=False)`` once, retries with exponential backoff, and emits
``DeviceStatus(online=True)`` with the first frame after that (and with the very first frame of a run:
a camera's state is unknown until then). A stream that keeps its connection open but sends nothing is
offline once ``read_timeout_s`` passed without a frame (checked twice a second), not after FFmpeg's own
timeouts, which take several times that. Credentials and query strings never appear in reasons or logs.
"""

import asyncio
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Self

import cv2
import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from edge.adapters.base import DeviceStatus, Emit, Observation
from edge.adapters.camera_source import CameraUnavailableError, Frame, FrameSource
from edge.adapters.frame_pacing import FramePacer
from edge.adapters.http_camera import open_http_camera
from edge.adapters.rtsp_probe import ProbeKind, probe_rtsp
from protocol.bounds import MAX_FRAME_RATE
from protocol.camera_sources import FILE_PROTOCOLS, RTSP_PROTOCOLS, camera_source_problem, redact_source
from protocol.gateway_config import DeviceSpec
from protocol.messages import CameraHealth
from protocol.reconnect import Backoff

logger = logging.getLogger(__name__)

FrameSink = Callable[[Frame, int], list[Observation]]
"""Called in the capture thread with each frame and the clock when it was read; returns observations."""

_SNAPSHOT_LIMIT_BYTES = 16 * 1024 * 1024
_REASON_LIMIT = 200  # DeviceStatus reasons become short wire texts
_FREEZE_CHECK_S = 0.5
_CAPTURE_OPTIONS_ENV = "OPENCV_FFMPEG_CAPTURE_OPTIONS"
_RTSP_OVER_TCP = "rtsp_transport;tcp"
"""RTP interleaved in the RTSP connection, as NVRs and firewalls need (FFmpeg would try UDP first)."""


def _capture_options(source: str) -> str:
    """FFmpeg's options for ``source``: RTSP over TCP, and only the protocols this kind of source needs."""
    remote = "://" in source
    whitelist = RTSP_PROTOCOLS if remote else FILE_PROTOCOLS
    return f"{_RTSP_OVER_TCP}|protocol_whitelist;{whitelist}" if remote else f"protocol_whitelist;{whitelist}"


_CAPTURE_OPTIONS_LOCK = threading.Lock()


def no_detection(frame: Frame, ts: int) -> list[Observation]:
    """The default frame sink: looks at nothing, reports nothing."""
    return []


CaptureOpener = Callable[[str, float], FrameSource]
"""Opens a source (as declared) with a timeout in seconds; raises when it cannot."""


def is_http_url(source: str) -> bool:
    return source.lower().startswith(("http://", "https://"))


class VideoCaptureSource:
    """A stream or video file read with ``cv2.VideoCapture`` (FFmpeg); a file is rewound at its end."""

    def __init__(self, source: str, timeout_s: float) -> None:
        self._source = source
        self._timeout_ms = max(1, round(timeout_s * 1000))
        self._live = "://" in source and not source.lower().startswith("file:")
        self._frames = 0
        self._capture = self._open()

    @property
    def live(self) -> bool:
        return self._live

    @property
    def stream_fps(self) -> float | None:
        fps = float(self._capture.get(cv2.CAP_PROP_FPS))
        return fps if fps > 0 else None

    def _open(self) -> cv2.VideoCapture:
        timeouts = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, self._timeout_ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, self._timeout_ms]
        with _CAPTURE_OPTIONS_LOCK:  # OpenCV reads FFmpeg's options from the environment as it opens
            before = os.environ.get(_CAPTURE_OPTIONS_ENV)
            os.environ[_CAPTURE_OPTIONS_ENV] = _capture_options(self._source)
            try:
                capture = cv2.VideoCapture(self._source, cv2.CAP_FFMPEG, timeouts)
            finally:  # nothing else in the process (a child it starts) inherits this camera's options
                if before is None:
                    del os.environ[_CAPTURE_OPTIONS_ENV]
                else:
                    os.environ[_CAPTURE_OPTIONS_ENV] = before
        if not capture.isOpened():
            capture.release()
            raise CameraUnavailableError(self._why_not_opened())
        return capture

    def _why_not_opened(self) -> str:
        """OpenCV says only that it failed: an RTSP camera is asked itself, so the reason says what to fix
        (wrong login, no such path, refused, timed out, a codec FFmpeg cannot decode)."""
        shown = redact_source(self._source)
        if not self._source.lower().startswith("rtsp://"):
            return f"cannot open {shown}"
        probe = probe_rtsp(self._source, self._timeout_ms / 1000)
        if probe.kind is ProbeKind.OK:
            return f"cannot open {shown}: the camera offers {probe.codec} video, but it could not be played"
        if probe.kind is ProbeKind.NOT_PROBED:
            return f"cannot open {shown}"
        return probe.reason

    def grab(self) -> None:
        if self._capture.grab():
            self._frames += 1
            return
        if self._live:
            raise CameraUnavailableError(
                f"no frame within {self._timeout_ms / 1000:g} s: the stream ended or timed out"
            )
        if self._frames == 0:
            raise CameraUnavailableError("no frame in the file")
        self._capture.release()
        self._frames = 0
        self._capture = self._open()  # rewind; fails if the file has gone
        self.grab()

    def retrieve(self) -> Frame:
        ok, frame = self._capture.retrieve()
        if not ok or frame is None:
            raise CameraUnavailableError("cannot decode the frame")
        return np.asarray(frame, dtype=np.uint8)

    def release(self) -> None:
        self._capture.release()


def open_capture(source: str, timeout_s: float) -> FrameSource:
    """The default opener: HTTP(S) URLs are snapshot URLs or MJPEG streams, anything else goes to OpenCV."""
    if is_http_url(source):
        return open_http_camera(source, timeout_s)
    return VideoCaptureSource(source, timeout_s)


class CameraParams(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    source: str = Field(
        min_length=1,
        max_length=2048,
        description="rtsp(s):// stream or http(s):// snapshot URL or MJPEG stream; a video file (development only).",
    )
    fps: float = Field(
        default=2.0,
        gt=0,
        le=30,
        description="Frames analysed per second: of a live stream, that many a second on an even grid (every frame "
        "of a slower stream); a snapshot URL is fetched that often; a video file is played at that rate.",
    )
    backoff_min_s: float = Field(default=1.0, gt=0, le=600, description="First retry delay after a failure.")
    backoff_max_s: float = Field(default=60.0, gt=0, le=3_600, description="Retry delays grow up to this.")
    read_timeout_s: float = Field(default=10.0, gt=0, le=300, description="Opening or reading longer fails.")

    @field_validator("source")
    @classmethod
    def _a_camera(cls, source: str, info: ValidationInfo) -> str:
        """Only camera URLs; plain video-file paths when the validation context allows ``file_sources``."""
        files = bool(info.context.get("file_sources")) if isinstance(info.context, dict) else False
        problem = camera_source_problem(source, files=files)
        if problem is not None:
            raise ValueError(problem)
        return source

    @model_validator(mode="after")
    def _backoff_bounds(self) -> Self:
        if self.backoff_min_s > self.backoff_max_s:
            raise ValueError("backoff_min_s must not exceed backoff_max_s")
        return self


@dataclass(frozen=True, slots=True)
class _SinkFailed:
    error: Exception


_Posted = Observation | _SinkFailed


class CameraAdapter:
    """Reads one camera in its own thread; emits its status and what the frame sink reports."""

    def __init__(
        self,
        spec: DeviceSpec,
        clock: Callable[[], int],
        *,
        frame_sink: FrameSink = no_detection,
        opener: CaptureOpener = open_capture,
        file_sources: bool = False,
    ) -> None:
        """``file_sources``: a video file may stand for a camera (development, simulators)."""
        self.params = CameraParams.model_validate(spec.params, context={"file_sources": file_sources})
        self._spec = spec
        self._clock = clock
        self._sink = frame_sink
        self._opener = opener
        self._thread: threading.Thread | None = None
        self._worker: _CaptureWorker | None = None
        self._rate_mark: tuple[float, int] | None = None  # (monotonic, frames) at the previous health()

    @property
    def spec(self) -> DeviceSpec:
        return self._spec

    @property
    def thread(self) -> threading.Thread | None:
        """The capture thread of the current (or last) run."""
        return self._thread

    def health(self) -> CameraHealth:
        """Frames analysed a second since the previous call (the heartbeat's interval), and the counters of
        the current run (a restarted adapter starts them afresh)."""
        worker, now = self._worker, time.monotonic()
        if worker is None:
            return CameraHealth(analysed_fps=0.0, reason="not started")
        previous, self._rate_mark = self._rate_mark, (now, worker.frames)
        fps = 0.0
        if previous is not None and now > previous[0]:
            fps = (worker.frames - previous[1]) / (now - previous[0])
        stream_fps = worker.stream_fps
        last = worker.last_frame_at
        return CameraHealth(
            analysed_fps=round(min(max(fps, 0.0), MAX_FRAME_RATE), 2),
            stream_fps=round(stream_fps, 2) if stream_fps is not None and 0 < stream_fps <= MAX_FRAME_RATE else None,
            last_frame_age_s=None if last is None else round(now - last, 1),
            frames=worker.frames,
            decode_errors=worker.decode_errors,
            reconnects=max(0, worker.opens - 1),
            reason=None if worker.reason is None else worker.reason[:_REASON_LIMIT],
        )

    async def run(self, emit: Emit) -> None:
        loop = asyncio.get_running_loop()
        posted: asyncio.Queue[_Posted] = asyncio.Queue()
        stop = threading.Event()

        def post(item: _Posted) -> None:
            try:
                loop.call_soon_threadsafe(posted.put_nowait, item)
            except RuntimeError:  # the loop closed before the thread noticed the stop
                logger.debug("camera %s: dropped %r after the loop closed", self._spec.id, item)

        worker = _CaptureWorker(self._spec.id, self.params, self._clock, self._sink, self._opener, post)
        self._worker, self._rate_mark = worker, None
        thread = threading.Thread(target=worker.run, args=(stop,), name=f"camera-{self._spec.id}", daemon=True)
        self._thread = thread
        thread.start()
        freeze_check = asyncio.create_task(self._check_frozen(worker))
        try:
            while True:
                item = await posted.get()
                if isinstance(item, _SinkFailed):
                    raise item.error
                emit(item)
        finally:
            freeze_check.cancel()
            stop.set()
            # Waits at most about read_timeout_s (a read in progress), so the source is released before
            # a restarted run opens it again (cameras often allow few sessions).
            await asyncio.to_thread(thread.join)

    @staticmethod
    async def _check_frozen(worker: "_CaptureWorker") -> None:
        while True:
            await asyncio.sleep(_FREEZE_CHECK_S)
            worker.check_frozen()


class _CaptureWorker:
    """The capture thread's loop: open, stream, and on failure report once and retry with backoff."""

    def __init__(
        self,
        device_id: str,
        params: CameraParams,
        clock: Callable[[], int],
        sink: FrameSink,
        opener: CaptureOpener,
        post: Callable[[_Posted], None],
    ) -> None:
        self._device_id = device_id
        self._params = params
        self._clock = clock
        self._sink = sink
        self._opener = opener
        self._post = post
        self._backoff = Backoff(base_s=params.backoff_min_s, cap_s=params.backoff_max_s)
        self._online: bool | None = None  # unknown until the first frame or failure
        self._state = threading.Lock()  # _online, changed by the capture thread and the freeze check
        self._started_at = time.monotonic()  # the freeze check's reference until a first frame arrives
        # what the heartbeat tells (read from the event loop; each a single assignment)
        self.frames = 0
        self.decode_errors = 0
        self.opens = 0
        self.last_frame_at: float | None = None
        self.stream_fps: float | None = None
        self.reason: str | None = None

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                source = self._opener(self._params.source, self._params.read_timeout_s)
            except Exception as exc:
                reason = _describe(exc)
            else:
                self.opens += 1
                self.stream_fps = source.stream_fps
                try:
                    reason = self._stream(source, stop)
                except _SinkError as exc:
                    self._post(_SinkFailed(exc.error))
                    return
                finally:
                    source.release()
            if stop.is_set():
                return
            self._went_offline(reason)
            stop.wait(self._backoff.next_delay())

    def _stream(self, source: FrameSource, stop: threading.Event) -> str:
        """Read until stopped or the source fails; returns why it failed (or "stopped")."""
        period_s = 1.0 / self._params.fps
        pacer = FramePacer(self._params.fps, source.stream_fps if source.live else None)
        while not stop.is_set():
            try:
                source.grab()
            except Exception as exc:
                return _describe(exc)
            self.last_frame_at = time.monotonic()
            if source.live and not pacer.take(self.last_frame_at * 1000):
                continue
            try:
                frame = source.retrieve()
            except Exception as exc:
                self.decode_errors += 1
                return _describe(exc)
            self.frames += 1
            read_at = time.monotonic()
            ts = self._clock()
            self._came_online(ts)
            try:
                observations = self._sink(frame, ts)
            except Exception as exc:
                raise _SinkError(exc) from exc
            for observation in observations:
                self._post(observation)
            if not source.live:  # a file or snapshot URL: at most fps, a late frame not made up for with a burst
                stop.wait(read_at + period_s - time.monotonic())
        return "stopped"

    def check_frozen(self) -> None:
        """Called from the event loop about once a second: a stream that keeps its connection open but sends
        no frame for ``read_timeout_s`` is offline now, not after FFmpeg's own timeouts (several of them)."""
        last = self.last_frame_at
        silent_s = time.monotonic() - (self._started_at if last is None else last)
        if silent_s > self._params.read_timeout_s:
            self._went_offline(f"no frame for {silent_s:.0f} s (the stream froze)", if_online=True)

    def _came_online(self, ts: int) -> None:
        with self._state:
            if self._online is True:
                return
            self._online = True
        self.reason = None
        self._backoff.reset()
        logger.info("camera %s online", self._device_id)
        self._post(DeviceStatus(self._device_id, ts, online=True, reason="receiving frames"))

    def _went_offline(self, reason: str, *, if_online: bool = False) -> None:
        with self._state:
            if self._online is False or (if_online and self._online is not True):
                return
            self._online = False
        self.reason = reason
        logger.warning("camera %s offline: %s", self._device_id, reason)
        self._post(DeviceStatus(self._device_id, self._clock(), online=False, reason=reason))


class _SinkError(Exception):
    """The frame sink raised: that is a bug to surface, not a camera going offline."""

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


def _describe(exc: Exception) -> str:
    text = str(exc) if isinstance(exc, CameraUnavailableError) else f"{type(exc).__name__}: {exc}"
    return text[:_REASON_LIMIT]
