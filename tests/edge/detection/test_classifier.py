"""The optional ONNX classifier: crossings carry the model's label, and nothing loads it unless configured.

The models are tiny ones built here with ``onnx.helper`` (see :mod:`tests.edge.detection.onnx_models`)
and run by a real ``onnxruntime`` session.
"""

import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pydantic import TypeAdapter

from edge.adapters.base import Detected
from edge.detection.classifier import Frame, load_classifier, model_input
from edge.detection.line_crossing import Box
from edge.detection.pipeline import FramePipeline
from edge.errors import EdgeConfigError
from protocol.detection import ClassifierSettings, DetectionSettings, LineSettings
from protocol.messages import EventKind, Evidence
from simulators.scenes import BRIGHT, Camera, Mover, crossing, flat_frame, timestamp
from tests.edge.detection.onnx_models import LABELS, failing_model, shape_model

DEVICE = "cam-gate"
SIZE = 32
PERSON = crossing("left_to_right", first_frame=5, lane_y=180, half_size=(14, 40))  # tall and dark
VEHICLE = crossing("right_to_left", first_frame=60, lane_y=180, half_size=(64, 24), color=BRIGHT)  # wide, bright


def classifier_settings(model: Path, **settings: object) -> ClassifierSettings:
    values: dict[str, object] = {
        "model": str(model),
        "labels": LABELS,
        "input_width": SIZE,
        "input_height": SIZE,
        "outputs": "logits",
        "min_score": 0.6,
    }
    return ClassifierSettings.model_validate(values | settings)


def with_classifier(model: Path, **settings: object) -> DetectionSettings:
    return DetectionSettings(line=LineSettings(), classifier=classifier_settings(model, **settings))


def crossings(pipeline: FramePipeline, frames: int, movers: Sequence[Mover]) -> list[Detected]:
    camera = Camera()
    return [
        found
        for index in range(frames)
        for found in pipeline.process(camera.frame(index, movers=movers), timestamp(index)).detections
        if found.kind == EventKind.LINE_CROSSING
    ]


@pytest.fixture
def model(tmp_path: Path) -> Path:
    return shape_model(tmp_path / "shape.onnx", SIZE)


# --- crossings labelled by a real model ---------------------------------------------------------------


def test_each_crossing_carries_the_models_label_and_score(model: Path) -> None:
    pipeline = FramePipeline(DEVICE, with_classifier(model))
    found = crossings(pipeline, 110, [PERSON, VEHICLE])
    assert [(event.evidence["direction"], event.evidence["label"]) for event in found] == [
        ("in", "person"),
        ("out", "vehicle"),
    ]
    assert all(0.6 <= event.evidence["label_score"] <= 1.0 for event in found)  # type: ignore[operator]
    assert [event.evidence["total_in"] + event.evidence["total_out"] for event in found] == [1, 2]  # type: ignore[operator]
    wire_evidence = TypeAdapter(Evidence)
    assert all(wire_evidence.validate_python(event.evidence, strict=True) == event.evidence for event in found)


def test_without_a_classifier_crossings_carry_no_label() -> None:
    found = crossings(FramePipeline(DEVICE, DetectionSettings(line=LineSettings())), 110, [PERSON, VEHICLE])
    assert [event.evidence["direction"] for event in found] == ["in", "out"]
    assert all("label" not in event.evidence and "label_score" not in event.evidence for event in found)


def test_a_crossing_during_the_warm_up_is_labelled_and_stamped_when_it_happened(model: Path) -> None:
    early = crossing("left_to_right", first_frame=0, lane_y=180, frames=16, half_size=(14, 40))  # crosses at 0.8 s
    found = crossings(FramePipeline(DEVICE, with_classifier(model)), 40, [early])
    assert [(event.evidence["direction"], event.evidence["label"]) for event in found] == [("in", "person")]
    assert timestamp(0) < found[0].ts < timestamp(16)  # held while the background was learned, then analysed


def test_each_minute_reports_its_counts_by_label_every_label_included(model: Path) -> None:
    pipeline = FramePipeline(DEVICE, with_classifier(model, count_labels=["person"]))
    camera = Camera()
    reported = [
        measured
        for index in range(110)
        for measured in pipeline.process(camera.frame(index, movers=[PERSON, VEHICLE]), timestamp(index)).measurements
    ]
    minute = timestamp(0) - timestamp(0) % 60_000
    assert timestamp(109) < minute + 60_000
    assert reported == []  # the minute is not over yet
    reported = pipeline.process(camera.frame(110), minute + 60_000).measurements
    assert {measured.ts for measured in reported} == {minute}
    assert {measured.metric: measured.value for measured in reported} == {
        "line_in": 1.0,
        "line_out": 1.0,
        "line_in_person": 1.0,
        "line_out_person": 0.0,
        "line_in_other": 0.0,
        "line_out_other": 1.0,  # the vehicle: not among count_labels
        "line_in_unknown": 0.0,
        "line_out_unknown": 0.0,
    }


def test_a_crossing_is_counted_even_when_the_model_fails_on_it(tmp_path: Path) -> None:
    pipeline = FramePipeline(DEVICE, with_classifier(failing_model(tmp_path / "failing.onnx", SIZE)))
    found = crossings(pipeline, 60, [PERSON])
    assert [(event.evidence["direction"], event.evidence["label"]) for event in found] == [("in", "unknown")]
    assert "label_score" not in found[0].evidence
    assert pipeline.classifier_failures == 1


def test_an_unsure_model_says_unknown_and_uncounted_labels_are_other(model: Path) -> None:
    frame = flat_frame((320, 180), 100)
    square, wide = (100, 50, 60, 60), (60, 70, 200, 40)
    classifier = load_classifier(classifier_settings(model))
    assert classifier.classify(frame, square).label == "unknown"  # a square crop scores 50/50
    assert classifier.classify(frame, square).score == pytest.approx(0.5)
    assert classifier.classify(frame, wide).label == "vehicle"
    only_people = load_classifier(classifier_settings(model, count_labels=["person"]))
    assert only_people.classify(frame, wide).label == "other"


# --- what the model is fed ------------------------------------------------------------------------------


def red_bar_frame() -> tuple[Frame, Box]:
    """A black frame with a pure red (BGR) bar, 100 x 20 pixels, and the bar's box."""
    frame = np.zeros((100, 200, 3), dtype=np.uint8)
    frame[40:60, 50:150] = (0, 0, 255)
    return frame, (50, 40, 100, 20)


def test_a_wide_crop_is_letterboxed_in_rgb_channel_first_order(model: Path) -> None:
    frame, box = red_bar_frame()
    tensor = model_input(frame, box, classifier_settings(model, margin=0.0))
    assert tensor.shape == (1, 3, SIZE, SIZE)
    assert tensor.dtype == np.float32
    # 100 x 20 scaled to fit 32 wide is 32 x 6, centred: black rows above and below.
    assert np.all(tensor[0, 0, 13:19, :] == 1.0)
    assert np.all(tensor[0, 1:, 13:19, :] == 0.0)
    assert np.all(tensor[0, :, :13, :] == 0.0)
    assert np.all(tensor[0, :, 19:, :] == 0.0)


def test_layout_channels_stretching_and_normalization_follow_the_settings(model: Path) -> None:
    frame, box = red_bar_frame()
    gray = model_input(frame, box, classifier_settings(model, margin=0.0, channels="gray", layout="nhwc"))
    assert gray.shape == (1, SIZE, SIZE, 1)
    stretched = model_input(frame, box, classifier_settings(model, margin=0.0, keep_aspect=False, channels="bgr"))
    assert np.all(stretched[0, 2] == 1.0)  # red fills the whole input, last in BGR order
    assert np.all(stretched[0, :2] == 0.0)
    normalized = model_input(
        frame, box, classifier_settings(model, margin=0.0, keep_aspect=False, mean=[0.5], std=[0.25])
    )
    assert np.allclose(normalized[0, 0], 2.0)  # (1 - 0.5) / 0.25
    assert np.allclose(normalized[0, 1:], -2.0)


def test_a_box_at_the_frame_edge_is_cropped_within_the_frame(model: Path) -> None:
    frame, _ = red_bar_frame()
    tensor = model_input(frame, (190, 90, 40, 40), classifier_settings(model))
    assert tensor.shape == (1, 3, SIZE, SIZE)


# --- configuration errors at start-up --------------------------------------------------------------------


def test_a_missing_model_file_stops_the_camera_at_start_up(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.onnx"
    with pytest.raises(EdgeConfigError, match="never downloaded") as error:
        FramePipeline(DEVICE, with_classifier(missing))
    assert str(error.value).startswith(f"camera {DEVICE}: classifier model {missing} is not a file")


def test_a_file_that_is_not_a_model_is_a_configuration_error(tmp_path: Path) -> None:
    garbage = tmp_path / "model.onnx"
    garbage.write_bytes(b"this is not a protobuf" * 10)
    with pytest.raises(EdgeConfigError, match=f"camera {DEVICE}: classifier model {garbage} cannot be loaded"):
        FramePipeline(DEVICE, with_classifier(garbage))


def test_a_model_of_another_input_size_is_refused(model: Path) -> None:
    with pytest.raises(EdgeConfigError, match=r"takes tensor\(float\) \[1, 3, 32, 32\].*\[1, 3, 64, 64\]"):
        FramePipeline(DEVICE, with_classifier(model, input_width=64, input_height=64))
    with pytest.raises(EdgeConfigError, match=r"\[1, 3, 32, 32\].*\[1, 32, 32, 3\]"):
        FramePipeline(DEVICE, with_classifier(model, layout="nhwc"))


def test_a_model_with_other_classes_than_the_labels_is_refused(model: Path) -> None:
    with pytest.raises(EdgeConfigError, match="does not fit its settings: the model gave 2 scores for 3 labels"):
        FramePipeline(DEVICE, with_classifier(model, labels=["person", "vehicle", "animal"]))


# --- onnxruntime only where a model is configured --------------------------------------------------------

_PIPELINE = """
import sys
import numpy as np
from edge.detection.pipeline import FramePipeline
from edge.errors import EdgeConfigError
from protocol.detection import ClassifierSettings, DetectionSettings, LineSettings

classifier = {classifier}
settings = DetectionSettings(line=LineSettings(), classifier=classifier)
try:
    FramePipeline("cam-gate", settings).process(np.zeros((360, 640, 3), np.uint8), 0)
except EdgeConfigError as exc:
    print(exc)
print("onnxruntime loaded:", "onnxruntime" in sys.modules)
"""


def run_pipeline(classifier: str, *, without_onnxruntime: bool = False) -> str:
    """Build and run a pipeline in a fresh interpreter; what it printed."""
    code = _PIPELINE.format(classifier=classifier)
    if without_onnxruntime:
        code = 'import sys\nsys.modules["onnxruntime"] = None  # as if not installed\n' + code
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    return done.stdout


def test_without_a_classifier_onnxruntime_is_never_imported(model: Path) -> None:
    assert run_pipeline("None").splitlines() == ["onnxruntime loaded: False"]
    configured = (
        f"ClassifierSettings(model={str(model)!r}, labels=('person', 'vehicle'), input_width=32, input_height=32)"
    )
    assert run_pipeline(configured).splitlines() == ["onnxruntime loaded: True"]  # the check can see it


def test_a_missing_onnxruntime_package_names_what_to_install(model: Path) -> None:
    configured = (
        f"ClassifierSettings(model={str(model)!r}, labels=('person', 'vehicle'), input_width=32, input_height=32)"
    )
    message, _ = run_pipeline(configured, without_onnxruntime=True).splitlines()
    assert message == (
        "camera cam-gate: a classifier is configured but onnxruntime is not installed: "
        "pip install 'outpost[classifier]' (or: pip install onnxruntime)"
    )


def test_the_classifier_runs_on_one_cpu_thread(model: Path) -> None:
    session: Any = load_classifier(classifier_settings(model)).session  # the real onnxruntime session
    assert session.get_providers() == ["CPUExecutionProvider"]
    options = session.get_session_options()
    assert (options.intra_op_num_threads, options.inter_op_num_threads) == (1, 1)
