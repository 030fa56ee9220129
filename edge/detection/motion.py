"""Motion: a running-average background model and the changed fraction of each zone, per frame.

Each processing frame is compared with the background; pixels that differ by more than
``diff_threshold`` grey levels are foreground. Before comparing, the background is scaled by the
scene's overall brightness change (the median, over a coarse grid, of frame / background), so a
cloud, dusk or the camera's auto-exposure brightens or darkens both alike and is not motion, while
a walker, who changes only a few grid cells, does not move the median. The background then takes in
the new frame with the weight ``1 - exp(-dt / background_s)``, ``dt`` being the time since the
previous frame, so slow local changes (a moving shadow, a parked car) fade in over about
``background_s`` whatever the frame rate. No frame counts for more than :data:`MAX_LEARNING_STEP_S`
however long since the one before: a walker in one frame of a slow (2 frames/s) stream then weighs
too little to leave a ghost behind, and the first frame after a gap (a reconnect) is compared with
the background as it was, so whoever is in view then is seen at once rather than learned.

The result is per-frame measurement only; deciding when motion starts and stops is the pipeline's.
"""

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import cv2
import numpy as np
from numpy.typing import NDArray

from protocol.detection import MotionSettings, Zone

logger = logging.getLogger(__name__)

Gray = NDArray[np.uint8]
"""A single-channel 8-bit image; masks are the same, with 0 or 255."""

_GAIN_GRID: Final = (16, 9)
_MIN_GAIN: Final = 0.2
_MAX_GAIN: Final = 5.0
MAX_LEARNING_STEP_S: Final = 0.5
"""The most time one frame teaches the background, however long since the previous frame."""


def as_gray(image: cv2.typing.MatLike) -> Gray:
    """``image`` (an OpenCV result) typed as an 8-bit array, without copying."""
    return np.asarray(image, dtype=np.uint8)


@dataclass(frozen=True, slots=True)
class ZoneReading:
    """How much of one zone changed in one frame."""

    name: str
    changed_fraction: float
    threshold: float

    @property
    def moving(self) -> bool:
        return self.changed_fraction >= self.threshold


@dataclass(frozen=True, slots=True)
class MotionReading:
    """One frame's foreground mask (255 = changed), zone readings and lighting compensation."""

    foreground: Gray
    zones: tuple[ZoneReading, ...]
    lighting_gain: float


@dataclass(frozen=True, slots=True)
class _ZoneMask:
    name: str
    rows: slice
    cols: slice
    mask: Gray  # the zone inside its bounding box
    area: int
    threshold: float


def _zone_mask(zone: Zone, width: int, height: int) -> _ZoneMask:
    corners = np.array([[round(x * (width - 1)), round(y * (height - 1))] for x, y in zone.polygon], dtype=np.int32)
    full = np.zeros((height, width), dtype=np.uint8)
    cv2.fillPoly(full, [corners], 255)
    x, y, w, h = cv2.boundingRect(corners)
    rows, cols = slice(y, y + h), slice(x, x + w)
    mask = np.ascontiguousarray(full[rows, cols])
    # A polygon always fills at least one pixel, even a degenerate one, so the area is never zero.
    return _ZoneMask(zone.name, rows, cols, mask, cv2.countNonZero(mask), zone.min_changed_fraction)


class MotionDetector:
    """Keeps the background of one camera and measures each frame against it."""

    def __init__(self, settings: MotionSettings, width: int, height: int) -> None:
        self._settings = settings
        self._zones = tuple(_zone_mask(zone, width, height) for zone in settings.zones)
        self._kernel = (
            as_gray(cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (settings.open_kernel, settings.open_kernel)))
            if settings.open_kernel > 1
            else None
        )
        self._background: NDArray[np.float32] | None = None
        self._background_cells: NDArray[np.float32] | None = None
        self._last_ts = 0

    def reset(self) -> None:
        """Forget the background; the next frame becomes it."""
        self._background = None
        self._background_cells = None

    def learn_background(self, frames: Sequence[Gray], ts: int) -> None:
        """Make the per-pixel median of ``frames`` (smoothed processing frames, the first taken at ``ts``)
        the background: what stays put through most of them, without whoever passed by."""
        if not frames:
            raise ValueError("the background is learned from one frame at least")
        median = np.median(np.stack(frames), axis=0).astype(np.float32)
        self._background = median
        self._background_cells = np.asarray(
            cv2.resize(median, _GAIN_GRID, interpolation=cv2.INTER_AREA), dtype=np.float32
        )
        self._last_ts = ts

    def update(self, blurred: Gray, ts: int) -> MotionReading:
        """Measure ``blurred`` (the smoothed processing frame at ``ts``, epoch ms) against the background,
        then learn from it."""
        cells = np.asarray(cv2.resize(blurred, _GAIN_GRID, interpolation=cv2.INTER_AREA), dtype=np.float32)
        if self._background is None or self._background_cells is None:
            self._background = blurred.astype(np.float32)
            self._background_cells = cells.copy()
            self._last_ts = ts
        step_s = min(max(ts - self._last_ts, 0) / 1_000.0, MAX_LEARNING_STEP_S)
        self._last_ts = ts
        rate = 1.0 - math.exp(-step_s / self._settings.background_s)
        gain = _lighting_gain(cells, self._background_cells) if self._settings.compensate_lighting else 1.0
        expected = cv2.convertScaleAbs(self._background, alpha=gain)
        _, changed = cv2.threshold(
            cv2.absdiff(blurred, expected), self._settings.diff_threshold, 255, cv2.THRESH_BINARY
        )
        if self._kernel is not None:
            changed = cv2.morphologyEx(changed, cv2.MORPH_OPEN, self._kernel)
        foreground = as_gray(changed)
        # Area-averaging is linear, so the grid of the running average is the running average of the grids.
        cv2.accumulateWeighted(blurred, self._background, rate)
        cv2.accumulateWeighted(cells, self._background_cells, rate)
        zones = tuple(ZoneReading(zone.name, _changed(foreground, zone), zone.threshold) for zone in self._zones)
        return MotionReading(foreground, zones, gain)


def _changed(foreground: Gray, zone: _ZoneMask) -> float:
    inside = cv2.bitwise_and(foreground[zone.rows, zone.cols], zone.mask)
    return cv2.countNonZero(inside) / zone.area


def _lighting_gain(cells: NDArray[np.float32], background_cells: NDArray[np.float32]) -> float:
    """The median brightness ratio of frame to background over the grid cells."""
    ratios = ((cells + 1.0) / (background_cells + 1.0)).ravel()
    middle = ratios.size // 2
    return float(np.clip(np.partition(ratios, middle)[middle], _MIN_GAIN, _MAX_GAIN))
