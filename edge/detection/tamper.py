"""Camera tamper: is the lens covered, the image defocused, or the camera pointed elsewhere?

Three measurements per frame, each compared with a reference learned over the frames of the first
``learn_s`` seconds (at least one frame):

* contrast, the grey-level standard deviation: covering or spraying the lens makes the image
  near-uniform, whatever its brightness (a hand is dark, white paint or a torch is bright). A
  sudden darkness collapses contrast too, since contrast scales with the light;
* sharpness, per tile of a 4 x 4 grid, the Laplacian's variance over the grey-level variance:
  blurring removes fine detail far faster than contrast, and the ratio ignores a lighting gain.
  The score is the median tile's sharpness against its reference, so the whole image must lose
  detail: a large smooth object (a lorry's side) filling part of the view is not a defocus;
* shift, the translation of the view against the reference image, by phase correlation on a
  further-reduced frame; lighting changes do not move the correlation peak. A weak peak gives
  no reliable shift and is not reported as a move.

The reference follows slow drift (dusk, dawn, seasons) at ``adapt_rate``, but only on frames
that pass every check, so a tampered view is never learned as normal. Deciding when a failing
check becomes an alarm is the pipeline's.
"""

import logging
import math
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

import cv2
import numpy as np
from numpy.typing import NDArray

from edge.detection.motion import Gray
from protocol.detection import TamperSettings

logger = logging.getLogger(__name__)

Image32 = NDArray[np.float32]

_SHARPNESS_GRID: Final = (4, 4)
_MIN_GREY_VARIANCE: Final = 1.0
_MIN_REFERENCE_SHARPNESS: Final = 1e-6


class TamperReason(StrEnum):
    """Why a camera counts as tampered with, in priority order."""

    COVERED = "covered"
    DEFOCUSED = "defocused"
    MOVED = "moved"


@dataclass(frozen=True, slots=True)
class TamperCheck:
    """One check on one frame: its score against its threshold, and whether it fails."""

    reason: TamperReason
    failing: bool
    score: float
    threshold: float


@dataclass(frozen=True, slots=True)
class TamperReading:
    """One frame's measurements and checks (no checks while the reference is being learned)."""

    learning: bool
    checks: tuple[TamperCheck, ...]
    measurements: dict[str, float]

    @property
    def reason(self) -> TamperReason | None:
        """The highest-priority failing check, if any."""
        return next((check.reason for check in self.checks if check.failing), None)


@dataclass(slots=True)
class _Reference:
    contrast: float
    sharpness: Image32  # per tile
    image: Image32


@dataclass(frozen=True, slots=True)
class _Measured:
    brightness: float
    contrast: float
    sharpness: Image32  # per tile
    thumbnail: Image32


class TamperDetector:
    """Learns what one camera normally sees and checks every frame against it."""

    def __init__(self, settings: TamperSettings, width: int, height: int) -> None:
        self._settings = settings
        self._thumb_size = (max(width // settings.shift_downscale, 8), max(height // settings.shift_downscale, 8))
        self._window = np.asarray(cv2.createHanningWindow(self._thumb_size, cv2.CV_32F), dtype=np.float32)
        self._learned = 0
        self._learning = True
        self._learn_from_ts = 0
        self._reference: _Reference | None = None

    @property
    def learning(self) -> bool:
        return self._learning

    def relearn(self) -> None:
        """Forget the reference, e.g. after the camera was deliberately re-aimed; learning starts again."""
        self._learned = 0
        self._learning = True
        self._reference = None

    def update(self, gray: Gray, ts: int) -> TamperReading:
        """Check ``gray`` (the unsmoothed processing frame at ``ts``, epoch ms) against the reference, then
        learn from it."""
        measured = self._measure(gray)
        if self._reference is None or self._learning:
            reference = self._learn(measured, ts)
            return TamperReading(True, (), _measurements(measured, reference, 1.0, (0.0, 0.0), 0.0))
        reference = self._reference
        (dx, dy), response = self._phase_correlate(reference.image, measured.thumbnail)
        shift = (dx / self._thumb_size[0], dy / self._thumb_size[0])  # fractions of the width
        sharpness_ratio = _median_ratio(measured.sharpness, reference.sharpness)
        checks = self._checks(measured, reference, sharpness_ratio, shift, response)
        if not any(check.failing for check in checks):
            self._adapt(measured, reference)
        return TamperReading(False, checks, _measurements(measured, reference, sharpness_ratio, shift, response))

    def _measure(self, gray: Gray) -> _Measured:
        mean, std = cv2.meanStdDev(gray)
        small = cv2.resize(gray, self._thumb_size, interpolation=cv2.INTER_AREA)
        return _Measured(
            float(mean[0, 0]), float(std[0, 0]), _tile_sharpness(gray), np.asarray(small, dtype=np.float32)
        )

    def _phase_correlate(self, reference: Image32, current: Image32) -> tuple[tuple[float, float], float]:
        """The shift of ``current`` against ``reference`` (pixels) and the correlation peak's strength.

        The window is applied here, on copies: given a window, OpenCV 5.0's ``phaseCorrelate``
        multiplies its inputs by it in place, which would erode the reference frame after frame.
        """
        (dx, dy), response = cv2.phaseCorrelate(
            cv2.multiply(reference, self._window), cv2.multiply(current, self._window)
        )
        return (float(dx), float(dy)), float(response)

    def _learn(self, measured: _Measured, ts: int) -> _Reference:
        """Fold ``measured`` into the reference as a plain average of the learning frames."""
        self._learned += 1
        if self._reference is None:
            self._reference = _Reference(measured.contrast, measured.sharpness.copy(), measured.thumbnail.copy())
            self._learn_from_ts = ts
        else:
            weight = 1.0 / self._learned
            self._blend(measured, self._reference, weight)
        if ts - self._learn_from_ts >= self._settings.learn_s * 1_000.0:
            self._learning = False
            logger.info(
                "tamper reference learned over %d frames: contrast %.1f", self._learned, self._reference.contrast
            )
        return self._reference

    def _checks(
        self,
        measured: _Measured,
        reference: _Reference,
        sharpness_ratio: float,
        shift: tuple[float, float],
        response: float,
    ) -> tuple[TamperCheck, ...]:
        settings = self._settings
        contrast_floor = max(settings.covered_min_contrast, settings.covered_contrast_ratio * reference.contrast)
        distance = math.hypot(*shift)
        moved = distance > settings.max_shift and response >= settings.min_match_response
        return (
            TamperCheck(TamperReason.COVERED, measured.contrast < contrast_floor, measured.contrast, contrast_floor),
            TamperCheck(
                TamperReason.DEFOCUSED,
                sharpness_ratio < settings.defocus_ratio,
                sharpness_ratio,
                settings.defocus_ratio,
            ),
            TamperCheck(TamperReason.MOVED, moved, distance, settings.max_shift),
        )

    def _adapt(self, measured: _Measured, reference: _Reference) -> None:
        if self._settings.adapt_rate > 0.0:
            self._blend(measured, reference, self._settings.adapt_rate)

    @staticmethod
    def _blend(measured: _Measured, reference: _Reference, weight: float) -> None:
        reference.contrast += weight * (measured.contrast - reference.contrast)
        cv2.accumulateWeighted(measured.sharpness, reference.sharpness, weight)
        cv2.accumulateWeighted(measured.thumbnail, reference.image, weight)


def _tile_sharpness(gray: Gray) -> Image32:
    """Per tile of :data:`_SHARPNESS_GRID`: the Laplacian's variance over the grey-level variance.

    Tile means come from area-averaging resizes (exact block means), variances from E[x^2] - E[x]^2.
    """
    laplacian = np.asarray(cv2.Laplacian(gray, cv2.CV_32F), dtype=np.float32)
    grey = gray.astype(np.float32)
    laplacian_variance = _tile_means(laplacian * laplacian) - np.square(_tile_means(laplacian))
    grey_variance = _tile_means(grey * grey) - np.square(_tile_means(grey))
    return np.asarray(laplacian_variance / np.maximum(grey_variance, _MIN_GREY_VARIANCE), dtype=np.float32)


def _tile_means(image: Image32) -> Image32:
    return np.asarray(cv2.resize(image, _SHARPNESS_GRID, interpolation=cv2.INTER_AREA), dtype=np.float32)


def _median_ratio(current: Image32, reference: Image32) -> float:
    """The median over tiles of current / reference sharpness."""
    ratios = (current / np.maximum(reference, np.float32(_MIN_REFERENCE_SHARPNESS))).ravel()
    middle = ratios.size // 2
    return float(np.partition(ratios, [middle - 1, middle])[middle - 1 : middle + 1].mean())


def _measurements(
    measured: _Measured, reference: _Reference, sharpness_ratio: float, shift: tuple[float, float], response: float
) -> dict[str, float]:
    return {
        "brightness": measured.brightness,
        "contrast": measured.contrast,
        "reference_contrast": reference.contrast,
        "sharpness_ratio": sharpness_ratio,
        "shift_x": shift[0],
        "shift_y": shift[1],
        "match_response": response,
    }
