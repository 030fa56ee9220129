"""Synthetic camera footage: deterministic textured scenes drawn with numpy and OpenCV.

The one renderer of camera frames for the detection tests, the camera adapter's tests and the
benchmarks. A :class:`Camera` looks at a fixed, textured "world" (a panorama a little wider than
its view, so panning reveals new content like a real camera knocked sideways). Each frame can carry
moving shapes (:class:`Mover`), and a :class:`View`: a lighting gain, a pan, a blur or a covered
lens, plus sensor noise; it is deterministic for its index. Frames are BGR uint8 at :data:`WIDTH` x
:data:`HEIGHT`, one every :data:`FRAME_MS`. :func:`flat_frame` makes featureless frames whose
brightness identifies them, and :func:`write_clip` records any frames as a video file.
"""

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

import cv2
import numpy as np
from numpy.typing import NDArray

WIDTH: Final = 640
HEIGHT: Final = 360
FRAME_MS: Final = 100
START_MS: Final = 1_700_000_000_000
PAN_MARGIN: Final = 160
"""How far (pixels) the camera can pan to the right of its home view."""

DARK: Final = (30, 35, 45)
"""A walker's dark clothing (BGR)."""
BRIGHT: Final = (235, 235, 225)
"""A pale shape, brighter than anything in the world (BGR)."""

_NOISE_BANK: Final = 4
_COVERED_LEVEL: Final = 14

Frame = NDArray[np.uint8]
Shape = Literal["rect", "circle"]
Point = tuple[float, float]
Color = tuple[int, int, int]


@dataclass(frozen=True, slots=True)
class Mover:
    """A textured shape that is visible from ``first_frame`` along ``path`` (one centre per frame).

    A rectangle spans ``half_size`` (x, y) either side of its centre; a circle's radius is the larger
    of the two.
    """

    path: tuple[Point, ...]
    first_frame: int = 0
    shape: Shape = "rect"
    half_size: tuple[int, int] = (28, 44)
    color: Color = DARK

    def centre(self, index: int) -> Point | None:
        step = index - self.first_frame
        if 0 <= step < len(self.path):
            return self.path[step]
        return None


def linear_path(start: Point, end: Point, frames: int) -> tuple[Point, ...]:
    """``frames`` evenly spaced centres from ``start`` to ``end`` (inclusive)."""
    xs = np.linspace(start[0], end[0], frames)
    ys = np.linspace(start[1], end[1], frames)
    return tuple((float(x), float(y)) for x, y in zip(xs, ys, strict=True))


def crossing(
    direction: Literal["left_to_right", "right_to_left"],
    *,
    first_frame: int,
    lane_y: float,
    frames: int = 40,
    shape: Shape = "rect",
    color: Color = DARK,
    half_size: tuple[int, int] = (28, 44),
) -> Mover:
    """A shape that enters at one edge and leaves at the other in ``frames`` frames (~18 px/frame at 40)."""
    left, right = -40.0, WIDTH + 40.0
    start, end = (
        ((left, lane_y), (right, lane_y)) if direction == "left_to_right" else ((right, lane_y), (left, lane_y))
    )
    return Mover(
        linear_path(start, end, frames), first_frame=first_frame, shape=shape, half_size=half_size, color=color
    )


def timestamp(index: int) -> int:
    """The capture time (epoch ms) of frame ``index``."""
    return START_MS + index * FRAME_MS


@dataclass(frozen=True, slots=True)
class View:
    """What happens to the camera's view: lighting gain, a pan to the right, a defocus, a cover."""

    gain: float = 1.0
    pan_px: int = 0
    blur_kernel: int = 0
    covered: bool = False


NORMAL: Final = View()
COVERED: Final = View(covered=True)
BLURRED: Final = View(blur_kernel=31)
SHIFTED: Final = View(pan_px=96)
"""The camera knocked sideways by 15% of the frame width."""


def brightening(index: int, frames: int, *, start_gain: float = 0.75, end_gain: float = 1.25) -> View:
    """Frame ``index`` of ``frames`` of a scene brightening linearly from ``start_gain`` to ``end_gain``."""
    return View(gain=start_gain + (end_gain - start_gain) * index / max(frames - 1, 1))


class Camera:
    """Renders frames of one deterministic textured world (the same ``seed``, the same frames)."""

    def __init__(self, seed: int = 7, noise_sigma: float = 2.0) -> None:
        rng = np.random.default_rng(seed)
        self._world = _world(rng, WIDTH + PAN_MARGIN, HEIGHT)
        noise = np.rint(rng.standard_normal((_NOISE_BANK, HEIGHT, WIDTH, 3), dtype=np.float32) * noise_sigma)
        # Signed noise as two saturating byte images, so adding it is two fast OpenCV calls.
        self._noise_up = np.clip(noise, 0, 255).astype(np.uint8)
        self._noise_down = np.clip(-noise, 0, 255).astype(np.uint8)

    def frame(self, index: int, view: View = NORMAL, movers: Sequence[Mover] = ()) -> Frame:
        """Frame ``index`` as the camera sees it through ``view``, with ``movers`` drawn in."""
        if view.covered:
            return self._with_noise(np.full((HEIGHT, WIDTH, 3), _COVERED_LEVEL, dtype=np.uint8), index, halved=True)
        image = self._world[:, view.pan_px : view.pan_px + WIDTH].copy()
        for mover in movers:
            _draw(image, mover, index)
        if view.blur_kernel:
            image = np.asarray(cv2.GaussianBlur(image, (view.blur_kernel, view.blur_kernel), 0), dtype=np.uint8)
        if view.gain != 1.0:
            image = np.asarray(cv2.convertScaleAbs(image, alpha=view.gain), dtype=np.uint8)
        return self._with_noise(image, index)

    def frames(self, count: int, movers: Sequence[Mover] = (), view: View = NORMAL) -> Iterator[Frame]:
        """Frames ``0 .. count - 1`` through one ``view``, rendered as they are taken."""
        return (self.frame(index, view, movers) for index in range(count))

    def _with_noise(self, image: Frame, index: int, *, halved: bool = False) -> Frame:
        up, down = self._noise_up[index % _NOISE_BANK], self._noise_down[index % _NOISE_BANK]
        if halved:
            up, down = up // 2, down // 2
        return np.asarray(cv2.subtract(cv2.add(image, up), down), dtype=np.uint8)


def flat_frame(size: tuple[int, int], brightness: int) -> Frame:
    """A featureless grey BGR frame of ``size`` (width, height): its brightness tells it apart."""
    width, height = size
    return np.full((height, width, 3), brightness, dtype=np.uint8)


def write_clip(path: Path, frames: Iterable[Frame], fps: float = 10.0) -> Path:
    """Record ``frames`` (all of one size) as an MJPG AVI at ``path``, as a camera or NVR would; returns ``path``."""
    writer: cv2.VideoWriter | None = None
    try:
        for frame in frames:
            if writer is None:
                size = (frame.shape[1], frame.shape[0])
                writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), fps, size)
                if not writer.isOpened():
                    raise OSError(f"cannot write a video to {path}")
            writer.write(frame)
    finally:
        if writer is not None:
            writer.release()
    if writer is None:
        raise ValueError("a clip needs at least one frame")
    return path


def _world(rng: np.random.Generator, width: int, height: int) -> Frame:
    """Mottled ground, some hard-edged 'buildings' and fine grain: texture at every scale."""
    coarse = rng.uniform(50, 170, (height // 24 + 2, width // 24 + 2, 3)).astype(np.float32)
    world = np.asarray(cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC), dtype=np.float32)
    for _ in range(18):
        x, y = int(rng.integers(0, width - 40)), int(rng.integers(0, height - 40))
        w, h = int(rng.integers(20, 120)), int(rng.integers(20, 100))
        shade = tuple(float(v) for v in rng.uniform(40, 190, 3))
        cv2.rectangle(world, (x, y), (x + w, y + h), shade, thickness=-1)
    grain = rng.normal(0.0, 10.0, (height, width, 1)).astype(np.float32)
    return np.asarray(np.clip(world + grain, 0, 200), dtype=np.uint8)


def _draw(image: Frame, mover: Mover, index: int) -> None:
    centre = mover.centre(index)
    if centre is None:
        return
    cx, cy = round(centre[0]), round(centre[1])
    hx, hy = mover.half_size
    if mover.shape == "circle":
        cv2.circle(image, (cx, cy), max(hx, hy), mover.color, thickness=-1)
    else:
        cv2.rectangle(image, (cx - hx, cy - hy), (cx + hx, cy + hy), mover.color, thickness=-1)
    # Stripes give the shape texture of its own, like clothing or a vehicle's panels.
    darker = tuple(int(c * 0.6) for c in mover.color)
    for offset in range(-hy, hy, 12):
        cv2.line(image, (cx - hx // 2, cy + offset), (cx + hx // 2, cy + offset), darker, thickness=3)
