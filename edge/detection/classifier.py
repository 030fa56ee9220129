"""Optional blob classifier: a local ONNX model names what crossed the line (person, vehicle, ...).

Blob tracking counts crossings on its own; when a camera's detection settings name a model file
(:class:`~protocol.detection.ClassifierSettings`), the crop of each blob that crosses the line is
scored by that model through ``onnxruntime`` (CPU, one thread), and the crossing carries the best
label and its probability. The model is loaded once at start-up from a file on the gateway and is
never downloaded; ``onnxruntime`` is imported only then, so cameras without a classifier never load
it. The crop lives in memory for the one inference and is dropped: a label is a class of object,
never who or which one it is.
"""

import importlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal, Protocol

import cv2
import numpy as np
from numpy.typing import NDArray

from edge.detection.line_crossing import Box
from edge.errors import EdgeConfigError, EdgeError
from protocol.detection import OTHER_LABEL, UNKNOWN_LABEL, ClassifierSettings

logger = logging.getLogger(__name__)

Frame = NDArray[np.uint8]
"""A BGR image, height x width x 3, 8 bits per channel."""
Tensor = NDArray[np.float32]

PACKAGE: Final = "onnxruntime"
INSTALL_HINT: Final = "pip install 'outpost[classifier]' (or: pip install onnxruntime)"


class ClassifierError(EdgeError):
    """The model failed on a crop (the crossing is still counted, labelled unknown)."""


class _Input(Protocol):
    """What ``onnxruntime`` says about one model input (``NodeArg``)."""

    @property
    def name(self) -> str: ...

    @property
    def shape(self) -> Sequence[int | str | None]: ...

    @property
    def type(self) -> str: ...


class Session(Protocol):
    """The part of ``onnxruntime.InferenceSession`` the classifier uses."""

    def get_inputs(self) -> Sequence[_Input]: ...

    def run(self, output_names: list[str] | None, input_feed: dict[str, Tensor]) -> Sequence[object]: ...


@dataclass(frozen=True, slots=True)
class Classification:
    """The label a crossing is reported under, and the probability of the model's best class."""

    label: str
    score: float


def model_input(frame: Frame, box: Box, settings: ClassifierSettings) -> Tensor:
    """The tensor the model gets for the blob in ``box`` (frame pixels): crop, scale, order, normalize."""
    crop = _crop(frame, box, settings.margin)
    if settings.channels == "gray":
        pixels = np.asarray(cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY), dtype=np.uint8)[:, :, np.newaxis]
    elif settings.channels == "rgb":
        pixels = np.asarray(cv2.cvtColor(crop, cv2.COLOR_BGR2RGB), dtype=np.uint8)
    else:
        pixels = crop
    sized = _fit(pixels, settings.input_width, settings.input_height, keep_aspect=settings.keep_aspect)
    mean = np.asarray(settings.mean, dtype=np.float32)
    std = np.asarray(settings.std, dtype=np.float32)
    values = (sized.astype(np.float32) / np.float32(255.0) - mean) / std
    if settings.layout == "nchw":
        values = values.transpose(2, 0, 1)
    return np.ascontiguousarray(values[np.newaxis], dtype=np.float32)


def _crop(frame: Frame, box: Box, margin: float) -> Frame:
    """``box`` grown by ``margin`` of its size on every side, within the frame (never empty)."""
    x, y, width, height = box
    grow_x, grow_y = round(width * margin), round(height * margin)
    frame_height, frame_width = frame.shape[:2]
    left, top = min(max(x - grow_x, 0), frame_width - 1), min(max(y - grow_y, 0), frame_height - 1)
    right = max(min(x + width + grow_x, frame_width), left + 1)
    bottom = max(min(y + height + grow_y, frame_height), top + 1)
    return frame[top:bottom, left:right]


def _fit(pixels: Frame, width: int, height: int, *, keep_aspect: bool) -> Frame:
    """``pixels`` scaled to ``width`` x ``height``: stretched, or in proportion and centred on black."""
    crop_height, crop_width, channels = pixels.shape
    if not keep_aspect:
        return _resized(pixels, width, height, channels)
    scale = min(width / crop_width, height / crop_height)
    inner_width = min(width, max(1, round(crop_width * scale)))
    inner_height = min(height, max(1, round(crop_height * scale)))
    canvas = np.zeros((height, width, channels), dtype=np.uint8)
    left, top = (width - inner_width) // 2, (height - inner_height) // 2
    canvas[top : top + inner_height, left : left + inner_width] = _resized(pixels, inner_width, inner_height, channels)
    return canvas


def _resized(pixels: Frame, width: int, height: int, channels: int) -> Frame:
    shrinking = width < pixels.shape[1] or height < pixels.shape[0]
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    resized = np.asarray(cv2.resize(pixels, (width, height), interpolation=interpolation), dtype=np.uint8)
    return resized.reshape(height, width, channels)  # OpenCV drops a single channel's axis


def probabilities(scores: NDArray[np.float32], outputs: Literal["probabilities", "logits"]) -> NDArray[np.float32]:
    """The model's scores as probabilities: a softmax of logits, probabilities as they are."""
    if outputs != "logits":
        return scores
    exponentials = np.exp(scores - scores.max())
    return np.asarray(exponentials / exponentials.sum(), dtype=np.float32)


class BlobClassifier:
    """Scores blob crops with one loaded model and turns the scores into a reported label."""

    def __init__(self, settings: ClassifierSettings, session: Session) -> None:
        self._settings = settings
        self._session = session
        self._input_name = session.get_inputs()[0].name
        self._counted = set(settings.count_labels if settings.count_labels is not None else settings.labels)

    @property
    def settings(self) -> ClassifierSettings:
        return self._settings

    @property
    def session(self) -> Session:
        return self._session

    def classify(self, frame: Frame, box: Box) -> Classification:
        """Label the blob in ``box`` (pixels of ``frame``); raises :class:`ClassifierError` if the model fails."""
        scores = probabilities(self.scores(model_input(frame, box, self._settings)), self._settings.outputs)
        best = int(np.argmax(scores))
        score = float(scores[best])
        if score < self._settings.min_score:
            return Classification(UNKNOWN_LABEL, score)
        label = self._settings.labels[best]
        return Classification(label if label in self._counted else OTHER_LABEL, score)

    def scores(self, tensor: Tensor) -> NDArray[np.float32]:
        """The model's first output for ``tensor``, one score per label."""
        try:
            outputs = self._session.run(None, {self._input_name: tensor})
        except Exception as exc:  # onnxruntime's errors derive from Exception directly
            raise ClassifierError(f"the classifier model failed: {exc}") from exc
        scores = np.asarray(outputs[0], dtype=np.float32).ravel() if outputs else np.empty(0, np.float32)
        if scores.size != len(self._settings.labels):
            raise ClassifierError(f"the model gave {scores.size} scores for {len(self._settings.labels)} labels")
        return scores


def load_classifier(settings: ClassifierSettings) -> BlobClassifier:
    """Load the model file, check it against the settings and run it once; raises :class:`EdgeConfigError`."""
    path = Path(settings.model)
    if not path.is_file():
        raise EdgeConfigError(
            f"classifier model {path} is not a file; models are never downloaded: copy the .onnx file onto the gateway"
        )
    session = _open_session(path)
    _check_input(session, settings, path)
    classifier = BlobClassifier(settings, session)
    warm_up = np.zeros(_input_shape(settings), dtype=np.float32)
    try:
        classifier.scores(warm_up)
    except ClassifierError as exc:
        raise EdgeConfigError(f"classifier model {path} does not fit its settings: {exc}") from exc
    logger.info("classifier model %s loaded: labels %s", path, ", ".join(settings.labels))
    return classifier


def _open_session(path: Path) -> Session:
    try:
        runtime = importlib.import_module(PACKAGE)
    except ImportError as exc:
        raise EdgeConfigError(f"a classifier is configured but {PACKAGE} is not installed: {INSTALL_HINT}") from exc
    options = runtime.SessionOptions()
    options.intra_op_num_threads = 1  # a gateway gives each camera one core
    options.inter_op_num_threads = 1
    options.execution_mode = runtime.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 4  # fatal only: its errors are raised, translated and logged here
    try:
        session: Session = runtime.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime's errors derive from Exception directly
        raise EdgeConfigError(f"classifier model {path} cannot be loaded: {exc}") from exc
    return session


def _input_shape(settings: ClassifierSettings) -> tuple[int, int, int, int]:
    channels = 1 if settings.channels == "gray" else 3
    if settings.layout == "nchw":
        return (1, channels, settings.input_height, settings.input_width)
    return (1, settings.input_height, settings.input_width, channels)


def _check_input(session: Session, settings: ClassifierSettings, path: Path) -> None:
    inputs = session.get_inputs()
    if len(inputs) != 1:
        raise EdgeConfigError(f"classifier model {path} takes {len(inputs)} inputs; one image tensor is supported")
    (declared,) = inputs
    expected = _input_shape(settings)
    fixed = [dim if isinstance(dim, int) else None for dim in declared.shape]
    fits = len(fixed) == len(expected) and all(
        dim is None or dim == want for dim, want in zip(fixed, expected, strict=True)
    )
    if declared.type != "tensor(float)" or not fits:
        raise EdgeConfigError(
            f"classifier model {path} takes {declared.type} {list(declared.shape)}, but its settings give "
            f"tensor(float) {list(expected)} ({settings.layout}, {settings.channels}, "
            f"{settings.input_width} x {settings.input_height})"
        )
