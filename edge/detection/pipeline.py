"""The per-camera frame pipeline: one reduced frame in, detector readings, debounced events out.

Each input frame is converted to grey and reduced to the processing size once; the motion detector
gets it smoothed, the tamper detector gets it as is, and the line counter gets the motion mask.
With a classifier configured, each blob crossing the line is cropped from the full frame and
labelled (:mod:`edge.detection.classifier`). Readings become :class:`~edge.adapters.base.Detected`
observations only when a condition has held for its :class:`~protocol.detection.Hold` (motion
start/stop per zone, tamper raised/cleared per reason), timed on the frames' timestamps so a hold
lasts as long at 2 frames/s as at 10; line crossings are events already. Every observation carries
its evidence numbers, never pixels.

With a line, each minute in which frames were analysed ends in a report of its counts, zeros
included: :class:`~edge.adapters.base.Measured` ``line_in`` and ``line_out`` (and, with a
classifier, ``line_in_<label>`` / ``line_out_<label>`` for every label a crossing can get), stamped
with the minute's start, in :attr:`FrameResult.measurements` of the first frame of a later minute.
A dashboard sees zeros for an empty entrance and nothing at all for a counter that sees no frames.
"""

import logging
import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Final, Literal

import cv2
import numpy as np
from numpy.typing import NDArray

from edge.adapters.base import Detected, Measured
from edge.detection.classifier import BlobClassifier, ClassifierError, load_classifier
from edge.detection.line_crossing import (
    MINUTE_MS,
    Box,
    Crossing,
    CrossingCounts,
    LineCrossingCounter,
    MinuteCount,
)
from edge.detection.motion import Gray, MotionDetector, MotionReading, as_gray
from edge.detection.tamper import TamperDetector, TamperReading, TamperReason
from edge.errors import EdgeConfigError
from protocol.detection import OTHER_LABEL, UNKNOWN_LABEL, DetectionSettings, Hold, ProcessingSettings
from protocol.messages import EventKind

logger = logging.getLogger(__name__)

Frame = NDArray[np.uint8]
"""A BGR image, height x width x 3, 8 bits per channel, as OpenCV decodes video."""
Transition = Literal["raised", "cleared"]
EvidenceValue = float | int | bool | str

_EVIDENCE_DECIMALS = 4
WARM_UP_S: Final = 2.0
"""Seconds of frames the motion background is first learned from (and again after :meth:`FramePipeline.relearn`).

Each pixel's background is its median over those frames, so a walker in view, who covers a pixel
for a fraction of a second, is not part of it; those frames are then analysed against it, in order,
so whoever was in view at the very first frame is followed from that frame and counted if they cross.
The warm-up delays what those frames show by two seconds; it loses nothing.
"""
_WARM_UP_MAX_FRAMES: Final = 64


class Debouncer:
    """Turns a per-frame condition into a steady state: raised once it has held, cleared once gone.

    A change completes when every frame from the first showing it to the current one (``ts``
    apart by at least the hold's seconds) showed it: the same time at any frame rate.
    """

    def __init__(self, hold: Hold) -> None:
        self._hold = hold
        self._active = False
        self._streak_start: int | None = None

    @property
    def active(self) -> bool:
        return self._active

    def update(self, condition: bool, ts: int) -> Transition | None:
        """Feed the condition seen at ``ts`` (epoch ms); return the state change it completes, if any."""
        if condition == self._active:
            self._streak_start = None
            return None
        if self._streak_start is None:
            self._streak_start = ts
        seconds = self._hold.raise_s if condition else self._hold.clear_s
        if ts - self._streak_start < seconds * 1_000:
            return None
        self._active = condition
        self._streak_start = None
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
    """What one frame produced: new observations, the line counts after it (if a line is set), and the
    count reports of the minutes it ended (see the module doc), to be sent as telemetry."""

    detections: list[Detected]
    counts: CrossingCounts | None
    measurements: list[Measured] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class _Held:
    """A frame held during the warm-up: what motion needs, what a classifier needs, and when it was taken."""

    blurred: Gray
    frame: Frame | None
    ts: int


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
        self._report_labels = _reported_labels(self._classifier)
        self._labelled: dict[int, Counter[str]] = {}  # minute start -> crossings per metric, by label
        self._held: list[_Held] | None = []  # frames of the warm-up; None once the background is learned

    @property
    def settings(self) -> DetectionSettings:
        return self._settings

    @property
    def classifier_failures(self) -> int:
        """Crossings the classifier model failed on since start-up (they were labelled unknown)."""
        return self._classifier_failures

    def process(self, frame: Frame, ts: int) -> FrameResult:
        """Analyse ``frame``, captured at ``ts`` (epoch ms); frames must come in capture order.

        During the warm-up (see :data:`WARM_UP_S`) the frame is held and only the tamper checks see it;
        the frame that ends the warm-up returns what every held frame produced, each at its own ``ts``.
        """
        prepared = prepare(frame, self._settings.processing)
        tamper = self._tamper.update(prepared.gray, ts)
        detections: list[Detected] = []
        if self._held is None:
            detections += self._analyse(prepared.blurred, frame, ts)
        else:
            self._held.append(_Held(prepared.blurred, self._for_classifier(frame), ts))
            if ts - self._held[0].ts >= WARM_UP_S * 1_000 or len(self._held) >= _WARM_UP_MAX_FRAMES:
                held, self._held = self._held, None
                self._motion.learn_background([kept.blurred for kept in held], held[0].ts)
                for kept in held:
                    detections += self._analyse(kept.blurred, kept.frame, kept.ts)
        detections += self._tamper_events(tamper, ts)
        if self._line is None:
            return FrameResult(detections, None)
        return FrameResult(detections, self._line.counts(), self._count_reports(self._line))

    @property
    def warming_up(self) -> bool:
        """Whether frames are being held to learn the motion background from (see :data:`WARM_UP_S`)."""
        return self._held is not None

    def _analyse(self, blurred: Gray, frame: Frame | None, ts: int) -> list[Detected]:
        """Motion and line crossing on one frame, against the background; ``frame`` is for the classifier."""
        motion = self._motion.update(blurred, ts)
        return [*self._motion_events(motion, ts), *self._crossing_events(motion.foreground, frame, ts)]

    def _for_classifier(self, frame: Frame) -> Frame | None:
        """What of a held frame to keep for labelling its crossings later: the frame at processing size."""
        if self._classifier is None:
            return None
        size = (self._settings.processing.width, self._settings.processing.height)
        if (frame.shape[1], frame.shape[0]) == size:
            return frame.copy()
        return np.asarray(cv2.resize(frame, size, interpolation=cv2.INTER_AREA), dtype=np.uint8)

    def crossing_minutes(self) -> tuple[MinuteCount, ...]:
        """Per-minute line counts, oldest first (empty without a line)."""
        return self._line.minutes() if self._line is not None else ()

    def relearn(self) -> None:
        """Accept the current view as normal: learn a new tamper reference and background.

        For a camera deliberately re-aimed. Raised tamper conditions clear through their hold as usual.
        """
        logger.info("camera %s: relearning its reference view", self._device_id)
        self._held = []
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

    def _crossing_events(self, foreground: Gray, frame: Frame | None, ts: int) -> list[Detected]:
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
            if self._classifier is not None and frame is not None:
                evidence |= self._label(self._classifier, frame, crossing)
                minute = crossing.ts - crossing.ts % MINUTE_MS
                self._labelled.setdefault(minute, Counter())[f"line_{crossing.direction}_{evidence['label']}"] += 1
            detections.append(self._detected(crossing.ts, EventKind.LINE_CROSSING, evidence))
        return detections

    def _count_reports(self, line: LineCrossingCounter) -> list[Measured]:
        """The reports of the minutes the last frame ended: every count, zeros included."""
        reports: list[Measured] = []
        for minute in line.take_finished():
            labelled = self._labelled.pop(minute.start_ms, Counter())
            values = {"line_in": minute.count_in, "line_out": minute.count_out}
            for label in self._report_labels:
                for direction in ("in", "out"):
                    metric = f"line_{direction}_{label}"
                    values[metric] = labelled[metric]
            reports += [
                Measured(self._device_id, metric, float(value), minute.start_ms) for metric, value in values.items()
            ]
        for stale in [start for start in self._labelled if start < line.counts().minute.start_ms]:
            del self._labelled[stale]  # minutes without a report (none: a crossing's minute had a frame)
        return reports

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


def _reported_labels(classifier: BlobClassifier | None) -> tuple[str, ...]:
    """Every label a crossing can be reported under, in a stable order (none without a classifier)."""
    if classifier is None:
        return ()
    settings = classifier.settings
    counted = settings.count_labels if settings.count_labels is not None else settings.labels
    others = (OTHER_LABEL,) if set(counted) != set(settings.labels) else ()
    return (*counted, *others, UNKNOWN_LABEL)


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
