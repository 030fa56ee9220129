"""H.264 clips of people walking through an entrance, with known counts, for cameras served over RTSP.

The frames come from :mod:`simulators.scenes` (the project's one renderer of camera footage: a
textured world, textured walkers, sensor noise, a covered lens), at its :data:`~simulators.scenes.WIDTH`
x :data:`~simulators.scenes.HEIGHT` (640 x 360). They are encoded to H.264 by GStreamer's ``x264enc``
(``gst-launch-1.0``; Debian's gstreamer1.0-tools and gstreamer1.0-plugins-ugly, installed by
``scripts/test``) as a camera would: no B-frames and a keyframe every ``keyframe_interval_s`` (1 s by
default), so a client that joins a live stream mid-way has a picture within a second.

:func:`entrance_clip` lays out the scene: ``lead_in_s`` of empty entrance (for the motion
detector's background and the tamper detector's reference), then each walker in turn, crossing
the whole frame at ``speed_px_s`` and followed by ``gap_s`` of empty entrance, then ``tail_s`` of
empty entrance and, optionally, ``covered_s`` of a covered lens (a uniform dark frame). Walkers
go one at a time, never overlapping, so every one is a blob of its own.

The returned :class:`Clip` carries the counts a correct detector finds and the
:class:`~protocol.detection.LineSettings` they hold for, which are the project's defaults for a
vertical line (down the middle, "in" = left to right, as ``tests/edge/test_camera_pipeline.py``
uses) and, for a horizontal line, across the middle with "in" = top to bottom::

    clip = entrance_clip(tmp_path / "gate.mp4", count_in=3, count_out=2, fps=10, covered_s=5)
    spec = DeviceSpec(..., params={"source": url, "fps": 10.0}, detection=DetectionSettings(line=clip.line))
    ...
    assert (counts.total_in, counts.total_out) == (clip.count_in, clip.count_out)

The detector's tracker scales how far a walker may move with the time between analysed frames
(``LineSettings.max_speed``), so these clips count exactly at 2, 5 and 10 analysed frames a second
(``tests/edge/detection/test_field_rates.py``); below 1.5 a counting camera is refused
(:mod:`edge.detection.rates`).
"""

import math
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

from protocol.detection import LineSettings
from simulators.scenes import COVERED, HEIGHT, NORMAL, WIDTH, Camera, Frame, Mover, linear_path

Direction = Literal["in", "out"]
Orientation = Literal["vertical", "horizontal"]

GST_LAUNCH: Final = "gst-launch-1.0"
WALKING_SPEED_PX_S: Final = 160.0
"""Walking pace across the 640 px frame: a person crosses it in about 4.5 s."""
VERTICAL_LINE: Final = LineSettings()
"""Down the middle of the frame; "in" is left to right (the project's default line)."""
HORIZONTAL_LINE: Final = LineSettings(start=(0.0, 0.5), end=(1.0, 0.5), inside=(0.5, 1.0))
"""Across the middle of the frame; "in" is top to bottom."""
_LANES: Final = (0.35, 0.5, 0.65)
"""Where walkers cross, as a fraction of the frame's extent along the line; walker ``i`` takes lane ``i % 3``."""
_HALF_SIZE: Final = (28, 44)
_MARGIN: Final = 60.0
"""Walkers start and end this far (px) beyond the frame's edge, out of sight."""
_MUXERS: Final = {
    ".mp4": ["h264parse", "!", "mp4mux", "!"],
    ".mkv": ["h264parse", "!", "matroskamux", "!"],
    ".h264": ["h264parse", "!", "video/x-h264,stream-format=byte-stream", "!"],
}
_ENCODE_TIMEOUT_S: Final = 300.0


class EncoderUnavailableError(RuntimeError):
    """``gst-launch-1.0`` (or one of its elements) is not installed: run ``scripts/test``, which installs them."""


@dataclass(frozen=True, slots=True)
class Walker:
    """One person crossing the line: which way, and the frames during which they are in sight."""

    direction: Direction
    first_frame: int
    frames: int

    @property
    def last_frame(self) -> int:
        return self.first_frame + self.frames - 1


@dataclass(frozen=True, slots=True)
class Clip:
    """An encoded clip and what is in it."""

    path: Path
    fps: int
    frames: int
    walkers: tuple[Walker, ...]
    line: LineSettings
    covered_from_frame: int | None
    """The first frame of the covered lens, None if the lens is never covered."""
    keyframe_interval: int
    """Frames from one keyframe to the next."""

    @property
    def count_in(self) -> int:
        return sum(1 for walker in self.walkers if walker.direction == "in")

    @property
    def count_out(self) -> int:
        return sum(1 for walker in self.walkers if walker.direction == "out")

    @property
    def duration_s(self) -> float:
        return self.frames / self.fps

    @property
    def covered_from_s(self) -> float | None:
        return None if self.covered_from_frame is None else self.covered_from_frame / self.fps


@dataclass(frozen=True, slots=True)
class EntranceScene:
    """The frames of an entrance clip, rendered on demand (see :func:`entrance_scene`)."""

    camera: Camera
    movers: tuple[Mover, ...]
    walkers: tuple[Walker, ...]
    fps: int
    frames: int
    line: LineSettings
    covered_from_frame: int | None

    def frame(self, index: int) -> Frame:
        covered = self.covered_from_frame is not None and index >= self.covered_from_frame
        return self.camera.frame(index, COVERED if covered else NORMAL, self.movers)

    def render(self) -> Iterable[Frame]:
        return (self.frame(index) for index in range(self.frames))

    def encode(self, path: Path, *, keyframe_interval_s: float = 1.0) -> "Clip":
        """Encode the scene to ``path`` (``.mp4``, ``.mkv`` or raw ``.h264``) with :func:`encode_h264`."""
        keyframe_interval = max(1, round(keyframe_interval_s * self.fps))
        encode_h264(path, self.render(), fps=self.fps, keyframe_interval=keyframe_interval)
        return Clip(
            path=path,
            fps=self.fps,
            frames=self.frames,
            walkers=self.walkers,
            line=self.line,
            covered_from_frame=self.covered_from_frame,
            keyframe_interval=keyframe_interval,
        )


def alternating(count_in: int, count_out: int) -> tuple[Direction, ...]:
    """``in, out, in, out, ...`` while both last, then the rest of the longer one."""
    directions: list[Direction] = []
    for index in range(max(count_in, count_out)):
        if index < count_in:
            directions.append("in")
        if index < count_out:
            directions.append("out")
    return tuple(directions)


def entrance_scene(
    *,
    count_in: int = 0,
    count_out: int = 0,
    walkers: Sequence[Direction] | None = None,
    fps: int = 10,
    orientation: Orientation = "vertical",
    speed_px_s: float = WALKING_SPEED_PX_S,
    lead_in_s: float = 3.0,
    gap_s: float = 1.5,
    tail_s: float = 1.0,
    covered_s: float = 0.0,
    seed: int = 7,
) -> EntranceScene:
    """The scene of :func:`entrance_clip`, not encoded: ``walkers`` (directions, in order) or else
    :func:`alternating` ``count_in`` and ``count_out``."""
    if fps <= 0 or speed_px_s <= 0:
        raise ValueError("fps and speed_px_s must be positive")
    directions = tuple(walkers) if walkers is not None else alternating(count_in, count_out)
    extent = WIDTH if orientation == "vertical" else HEIGHT  # the distance walked across the line
    across = HEIGHT if orientation == "vertical" else WIDTH  # the extent along the line, where lanes lie
    distance = extent + 2 * _MARGIN
    walk_frames = max(2, math.ceil(distance / speed_px_s * fps))
    gap_frames = round(gap_s * fps)
    frame = round(lead_in_s * fps)
    movers: list[Mover] = []
    placed: list[Walker] = []
    for index, direction in enumerate(directions):
        lane = _LANES[index % len(_LANES)] * across
        # "in" is left to right (vertical line) or top to bottom (horizontal line), as the line settings say.
        near, far = -_MARGIN, extent + _MARGIN
        start, end = (near, far) if direction == "in" else (far, near)
        path = (
            linear_path((start, lane), (end, lane), walk_frames)
            if orientation == "vertical"
            else linear_path((lane, start), (lane, end), walk_frames)
        )
        movers.append(Mover(path, first_frame=frame, half_size=_HALF_SIZE))
        placed.append(Walker(direction, frame, walk_frames))
        frame += walk_frames + gap_frames
    frame += round(tail_s * fps)
    covered_from = frame if covered_s > 0 else None
    frame += round(covered_s * fps)
    line = VERTICAL_LINE if orientation == "vertical" else HORIZONTAL_LINE
    return EntranceScene(Camera(seed=seed), tuple(movers), tuple(placed), fps, frame, line, covered_from)


def entrance_clip(
    path: Path,
    *,
    count_in: int = 0,
    count_out: int = 0,
    walkers: Sequence[Direction] | None = None,
    fps: int = 10,
    orientation: Orientation = "vertical",
    speed_px_s: float = WALKING_SPEED_PX_S,
    lead_in_s: float = 3.0,
    gap_s: float = 1.5,
    tail_s: float = 1.0,
    covered_s: float = 0.0,
    keyframe_interval_s: float = 1.0,
    seed: int = 7,
) -> Clip:
    """Render and encode an entrance clip to ``path`` (``.mp4``, ``.mkv`` or raw ``.h264``); see the module doc."""
    scene = entrance_scene(
        count_in=count_in,
        count_out=count_out,
        walkers=walkers,
        fps=fps,
        orientation=orientation,
        speed_px_s=speed_px_s,
        lead_in_s=lead_in_s,
        gap_s=gap_s,
        tail_s=tail_s,
        covered_s=covered_s,
        seed=seed,
    )
    return scene.encode(path, keyframe_interval_s=keyframe_interval_s)


def encoder_available() -> bool:
    return shutil.which(GST_LAUNCH) is not None


def encode_h264(
    path: Path,
    frames: Iterable[Frame],
    *,
    fps: int,
    keyframe_interval: int,
    size: tuple[int, int] = (WIDTH, HEIGHT),
    quantizer: int = 20,
) -> Path:
    """Encode BGR ``frames`` of ``size`` (width, height) to H.264 at ``path``, as a camera would.

    No B-frames, a keyframe every ``keyframe_interval`` frames (and only then: no scene-cut
    keyframes), constant quality ``quantizer`` (x264's CRF-like mode; lower is better). The
    container follows the suffix: ``.mp4``, ``.mkv`` or ``.h264`` (a raw Annex B byte stream).
    The file appears at ``path`` only once it is complete. Raises :class:`EncoderUnavailableError`
    if ``gst-launch-1.0`` is missing, :class:`OSError` if encoding fails.
    """
    launcher = shutil.which(GST_LAUNCH)
    if launcher is None:
        raise EncoderUnavailableError(f"{GST_LAUNCH} is not installed; run scripts/test, which installs it")
    muxer = _MUXERS.get(path.suffix)
    if muxer is None:
        raise ValueError(f"cannot tell the container from {path.name}: use one of {', '.join(_MUXERS)}")
    width, height = size
    partial = path.with_name(f".{path.name}.partial")
    argv = [
        launcher,
        "-q",
        "fdsrc",
        "fd=0",
        "!",
        "rawvideoparse",
        f"width={width}",
        f"height={height}",
        "format=bgr",
        f"framerate={fps}/1",
        "!",
        "videoconvert",
        "!",
        "video/x-raw,format=I420",
        "!",
        "x264enc",
        f"key-int-max={keyframe_interval}",
        "bframes=0",
        "speed-preset=veryfast",
        "pass=qual",
        f"quantizer={quantizer}",
        "option-string=scenecut=0:min-keyint=1",
        "!",
        *muxer,
        "filesink",
        f"location={partial}",
    ]
    count = 0
    try:
        with tempfile.TemporaryFile() as messages:
            with subprocess.Popen(argv, stdin=subprocess.PIPE, stderr=messages) as encoder:  # noqa: S603 - gst-launch, our argv
                assert encoder.stdin is not None
                try:
                    for frame in frames:
                        if frame.shape != (height, width, 3):
                            raise ValueError(f"frame {count} is {frame.shape}, not {(height, width, 3)}")
                        encoder.stdin.write(frame.tobytes())
                        count += 1
                except BrokenPipeError:
                    pass  # the encoder failed; its exit code and message say why
                finally:
                    encoder.stdin.close()
                code = encoder.wait(_ENCODE_TIMEOUT_S)
            messages.seek(0)
            message = messages.read().decode(errors="replace").strip()
        if count == 0:
            raise ValueError("a clip needs at least one frame")
        if code != 0:
            if "no element" in message.lower():
                raise EncoderUnavailableError(f"{GST_LAUNCH} lacks an element ({message}); run scripts/test")
            raise OSError(f"encoding {path.name} failed (exit code {code}): {message}")
        partial.replace(path)
    finally:
        partial.unlink(missing_ok=True)
    return path
