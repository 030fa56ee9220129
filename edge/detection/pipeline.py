"""The per-camera frame pipeline: one reduced frame in, detector readings, debounced events out.

Each input frame is converted to grey and reduced to the processing size once; the motion detector
gets it smoothed, the tamper detector gets it as is, and the line counter gets the motion mask.
With a classifier configured, each blob crossing the line is cropped from the full frame and
labelled (:mod:`edge.detection.classifier`). Readings become :class:`~edge.adapters.base.Detected`
observations only when a condition has held for its :class:`~protocol.detection.Hold` (motion
start/stop per zone, tamper raised/cleared per reason); line crossings are events already. Every
observation carries its evidence numbers, never pixels.
"""

import logging
import math
from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np
from numpy.typing import NDArray

from edge.adapters.base import Detected
from edge.detection.classifier import BlobClassifier, ClassifierError, load_classifier
from edge.detection.line_crossing import Box, Crossing, CrossingCounts, LineCrossingCounter, MinuteCount
from edge.detection.motion import Gray, MotionDetector, MotionReading, as_gray
from edge.detection.tamper import TamperDetector, TamperReading, TamperReason
from edge.errors import EdgeConfigError
from protocol.detection import UNKNOWN_LABEL, DetectionSettings, Hold, ProcessingSettings
from protocol.messages import EventKind

logger = logging.getLogger(__name__)

Frame = NDArray[np.uint8]
"""A BGR image, height x width x 3, 8 bits per channel, as OpenCV decodes video."""
Transition = Literal["raised", "cleared"]
EvidenceValue = float | int | bool | str

_EVIDENCE_DECIMALS = 4


class Debouncer:
    """Turns a per-frame condition into a steady state: raised once it has held, cleared once gone."""

    def __init__(self, hold: Hold) -> None:
        self._hold = hold
        self._active = False
        self._streak = 0
        self._streak_start = 0

    @property
    def active(self) -> bool:
        return self._active

    def update(self, condition: bool, ts: int) -> Transition | None:
        """Feed the condition seen at ``ts`` (epoch ms); return the state change it completes, if any."""
        if condition == self._active:
            self._streak = 0
            return None
        if self._streak == 0:
            self._streak_start = ts
        self._streak += 1
        frames, seconds = (
            (self._hold.raise_frames, self._hold.raise_s)
            if condition
            else (self._hold.clear_frames, self._hold.clear_s)
        )
        if self._streak < frames or ts - self._streak_start < seconds * 1_000:
            return None
        self._active = condition
        self._streak = 0
        return "raised" if condition else "cleared"


@dataclass(frozen=True, slots=True)
class PreparedFrame:
    """The input reduced once and shared: grey at processing size, and a smoothed copy for motion."""

    gray: Gray
    blurred: Gray


def prepare(frame: Frame, settings: ProcessingSettings) -> PreparedFrame:
    """Grey first (three times less to resize), then one area-averaging resize, then the blur."""
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise ValueError(f"expected a BGR uint8 frame (H x W x 3), got {frame.dtype} {frame.shape}")
    gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
    size = (settings.width, settings.height)
    if (gray.shape[1], gray.shape[0]) != size:
        gray = cv2.resize(gray, size, interpolation=cv2.INTER_AREA)
    kernel = settings.blur_kernel
    blurred = cv2.GaussianBlur(gray, (kernel, kernel), 0) if kernel > 1 else gray
    return PreparedFrame(as_gray(gray), as_gray(blurred))


@dataclass(frozen=True, slots=True)
class FrameResult:
    """What one frame produced: new observations, and the line counts after it (if a line is set)."""

    detections: list[Detected]
    counts: CrossingCounts | None


@dataclass(slots=True)
class _ZoneState:
    debouncer: Debouncer
    started_ts: int = 0
    peak: float = 0.0


class FramePipeline:
    """Runs motion, line crossing and tamper checks on one camera's frames.

    A configured classifier model is loaded here, so a missing or unfit model file, or a missing
    ``onnxruntime``, is an :class:`~edge.errors.EdgeConfigError` when the camera is set up.
    """

    def __init__(self, device_id: str, settings: DetectionSettings | None = None) -> None:
        self._device_id = device_id
        self._settings = settings or DetectionSettings()
        processing = self._settings.processing
        width, height = processing.width, processing.height
        self._motion = MotionDetector(self._settings.motion, width, height)
        self._tamper = TamperDetector(self._settings.tamper, width, height)
        line = self._settings.line
        self._line = LineCrossingCounter(line, width, height) if line is not None else None
        motion_hold, tamper_hold = self._settings.motion.hold, self._settings.tamper.hold
        self._zone_states = {zone.name: _ZoneState(Debouncer(motion_hold)) for zone in self._settings.motion.zones}
        self._tamper_states = {reason: Debouncer(tamper_hold) for reason in TamperReason}
        self._classifier = self._load_classifier()
        self._classifier_failures = 0

    @property
    def settings(self) -> DetectionSettings:
        return self._settings

    @property
    def classifier_failures(self) -> int:
        """Crossings the classifier model failed on since start-up (they were labelled unknown)."""
        return self._classifier_failures

    def process(self, frame: Frame, ts: int) -> FrameResult:
        """Analyse ``frame``, captured at ``ts`` (epoch ms); frames must come in capture order."""
        prepared = prepare(frame, self._settings.processing)
        motion = self._motion.update(prepared.blurred)
        tamper = self._tamper.update(prepared.gray)
        detections = [
            *self._motion_events(motion, ts),
            *self._crossing_events(motion.foreground, frame, ts),
            *self._tamper_events(tamper, ts),
        ]
        return FrameResult(detections, self._line.counts() if self._line is not None else None)

    def crossing_minutes(self) -> tuple[MinuteCount, ...]:
        """Per-minute line counts, oldest first (empty without a line)."""
        return self._line.minutes() if self._line is not None else ()

    def relearn(self) -> None:
        """Accept the current view as normal: learn a new tamper reference and background.

        For a camera deliberately re-aimed. Raised tamper conditions clear through their hold as usual.
        """
        logger.info("camera %s: relearning its reference view", self._device_id)
        self._motion.reset()
        self._tamper.relearn()

    # --- observations ----------------------------------------------------------------------------

    def _motion_events(self, motion: MotionReading, ts: int) -> list[Detected]:
        detections: list[Detected] = []
        for zone in motion.zones:
            state = self._zone_states[zone.name]
            if state.debouncer.active:
                state.peak = max(state.peak, zone.changed_fraction)
            transition = state.debouncer.update(zone.moving, ts)
            if transition is None:
                continue
            evidence: dict[str, EvidenceValue] = {
                "zone": zone.name,
                "score": zone.changed_fraction,
                "threshold": zone.threshold,
                "lighting_gain": motion.lighting_gain,
            }
            if transition == "raised":
                state.started_ts, state.peak = ts, zone.changed_fraction
                evidence["state"] = "start"
            else:
                evidence |= {"state": "stop", "peak_score": state.peak, "duration_ms": ts - state.started_ts}
            logger.debug("camera %s: motion %s in zone %s", self._device_id, evidence["state"], zone.name)
            detections.append(self._detected(ts, EventKind.MOTION, evidence))
        return detections

    def _crossing_events(self, foreground: Gray, frame: Frame, ts: int) -> list[Detected]:
        line = self._line
        if line is None:
            return []
        detections: list[Detected] = []
        for crossing in line.update(foreground, ts):
            counts = line.counts()
            evidence: dict[str, EvidenceValue] = {
                "line": line.settings.name,
                "direction": crossing.direction,
                "score": crossing.blob_area,
                "threshold": line.settings.min_blob_area,
                "position": crossing.position,
                "total_in": counts.total_in,
                "total_out": counts.total_out,
            }
            if self._classifier is not None:
                evidence |= self._label(self._classifier, frame, crossing)
            detections.append(self._detected(crossing.ts, EventKind.LINE_CROSSING, evidence))
        return detections

    def _label(self, classifier: BlobClassifier, frame: Frame, crossing: Crossing) -> dict[str, EvidenceValue]:
        """The crossing blob's label and its score; unknown (and logged) if the model fails on it."""
        processing = self._settings.processing
        box = _scaled(crossing.box, frame.shape[1] / processing.width, frame.shape[0] / processing.height)
        try:
            found = classifier.classify(frame, box)
        except ClassifierError as exc:
            self._classifier_failures += 1
            logger.warning("camera %s: crossing labelled %s: %s", self._device_id, UNKNOWN_LABEL, exc)
            return {"label": UNKNOWN_LABEL}
        return {"label": found.label, "label_score": found.score}

    def _load_classifier(self) -> BlobClassifier | None:
        settings = self._settings.classifier
        if settings is None:
            return None
        try:
            return load_classifier(settings)
        except EdgeConfigError as exc:
            raise EdgeConfigError(f"camera {self._device_id}: {exc}") from exc

    def _tamper_events(self, reading: TamperReading, ts: int) -> list[Detected]:
        detections: list[Detected] = []
        current = reading.reason  # None while learning, so a relearn clears raised conditions
        for reason, debouncer in self._tamper_states.items():
            transition = debouncer.update(reason is current, ts)
            if transition is not None:
                detections.append(self._tamper_event(reason, transition, reading, ts))
        return detections

    def _tamper_event(self, reason: TamperReason, transition: Transition, reading: TamperReading, ts: int) -> Detected:
        check = next((check for check in reading.checks if check.reason is reason), None)
        evidence: dict[str, EvidenceValue] = {"reason": reason.value, "state": transition}
        if check is not None:
            evidence |= {"score": check.score, "threshold": check.threshold}
        evidence |= reading.measurements
        evidence["learning"] = reading.learning
        log = logger.warning if transition == "raised" else logger.info
        log("camera %s: tamper (%s) %s", self._device_id, reason.value, transition)
        return self._detected(ts, EventKind.CAMERA_TAMPER, evidence)

    def _detected(self, ts: int, kind: EventKind, evidence: dict[str, EvidenceValue]) -> Detected:
        return Detected(self._device_id, ts, kind.value, _clean(evidence))


def _scaled(box: Box, scale_x: float, scale_y: float) -> Box:
    """``box`` from processing-frame pixels to input-frame pixels (rounded outwards)."""
    x, y, width, height = box
    left, top = math.floor(x * scale_x), math.floor(y * scale_y)
    return left, top, math.ceil((x + width) * scale_x) - left, math.ceil((y + height) * scale_y) - top


def _clean(evidence: dict[str, EvidenceValue]) -> dict[str, EvidenceValue]:
    """Round floats for the wire and drop any non-finite one (JSON has no NaN)."""
    return {
        key: round(value, _EVIDENCE_DECIMALS) if isinstance(value, float) else value
        for key, value in evidence.items()
        if not isinstance(value, float) or math.isfinite(value)
    }
