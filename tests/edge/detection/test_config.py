"""Detector settings: documented defaults, and refusal of anything malformed or unknown."""

import json

import pytest
from pydantic import ValidationError

from protocol.detection import FULL_FRAME, DetectionSettings, Hold, LineSettings, MotionSettings, TamperSettings, Zone


def test_defaults_process_at_320x180_with_one_full_frame_zone_and_no_line() -> None:
    settings = DetectionSettings()
    assert (settings.processing.width, settings.processing.height) == (320, 180)
    assert [zone.name for zone in settings.motion.zones] == ["scene"]
    assert settings.motion.zones[0].polygon == FULL_FRAME
    assert settings.line is None
    assert (settings.tamper.hold.raise_s, settings.tamper.hold.clear_s) == (2.0, 2.0)


def test_settings_load_from_plain_data_such_as_toml() -> None:
    settings = DetectionSettings.model_validate(
        {
            "motion": {"zones": [{"name": "gate", "polygon": [[0.1, 0.1], [0.4, 0.1], [0.4, 0.9]]}]},
            "line": {"start": [0.2, 0.5], "end": [0.8, 0.5], "inside": [0.5, 0.9]},
        }
    )
    assert settings.motion.zones[0].polygon[2] == (0.4, 0.9)
    assert settings.line is not None
    assert settings.line.inside == (0.5, 0.9)


@pytest.mark.parametrize(
    "data",
    [
        {"unknown": 1},
        {"processing": {"width": 320, "colour": True}},
        {"processing": {"blur_kernel": 4}},
        {"motion": {"open_kernel": 2}},
        {"motion": {"zones": []}},
        {"tamper": {"defocus_ratio": 1.5}},
        {"tamper": {"hold": {"raise_s": -1.0}}},
        {"tamper": {"learn_s": -1.0}},
        {"line": {"max_speed": 0.0}},
        {"line": {"max_missed_s": -0.5}},
        {"motion": {"background_s": 0.0}},
    ],
)
def test_unknown_or_out_of_range_settings_are_refused(data: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        DetectionSettings.model_validate(data)


def test_zone_corners_must_be_normalized_and_at_least_three() -> None:
    with pytest.raises(ValidationError):
        Zone(name="gate", polygon=((0.0, 0.0), (1.2, 0.0), (1.0, 1.0)))
    with pytest.raises(ValidationError):
        Zone(name="gate", polygon=((0.0, 0.0), (1.0, 0.0)))
    with pytest.raises(ValidationError):
        Zone(name="Gate A", polygon=FULL_FRAME)


def test_zone_names_must_be_unique() -> None:
    zone = Zone(name="gate", polygon=FULL_FRAME)
    with pytest.raises(ValidationError, match="unique"):
        MotionSettings(zones=(zone, zone))


def test_line_needs_length_and_an_inside_point_off_the_line() -> None:
    with pytest.raises(ValidationError, match="apart"):
        LineSettings(start=(0.5, 0.5), end=(0.5, 0.5))
    with pytest.raises(ValidationError, match="inside"):
        LineSettings(start=(0.5, 0.0), end=(0.5, 1.0), inside=(0.5, 0.3))
    with pytest.raises(ValidationError, match="min_blob_area"):
        LineSettings(min_blob_area=0.5, max_blob_area=0.1)


def test_hold_defaults_report_after_three_tenths_of_a_second_and_clear_after_one() -> None:
    assert Hold() == Hold(raise_s=0.3, clear_s=1.0)


def test_settings_once_counted_in_frames_are_accepted_from_old_configs_and_ignored() -> None:
    old = {
        "motion": {"learning_rate": 0.05, "hold": {"raise_frames": 3, "raise_s": 0.5, "clear_frames": 10}},
        "line": {"max_match_distance": 0.2, "max_missed_frames": 4},
        "tamper": {"learn_frames": 25, "hold": {"raise_frames": 10, "raise_s": 2.0, "clear_frames": 10}},
    }
    settings = DetectionSettings.model_validate(old)
    assert settings.motion.hold == Hold(raise_s=0.5)
    assert settings.motion.background_s == MotionSettings().background_s
    assert settings.line == LineSettings()
    assert settings.tamper.learn_s == TamperSettings().learn_s
    assert settings.tamper.hold == Hold(raise_s=2.0, clear_s=1.0)
    assert DetectionSettings.model_validate_json(json.dumps(old), strict=True) == settings
    assert "frames" not in settings.model_dump_json()


CLASSIFIER: dict[str, object] = {"model": "/var/lib/outpost/models/blobs.onnx", "labels": ["person", "vehicle"]}


def test_a_classifier_is_optional_and_loads_from_plain_data() -> None:
    assert DetectionSettings().classifier is None
    settings = DetectionSettings.model_validate({"line": {}, "classifier": CLASSIFIER})
    assert settings.classifier is not None
    assert settings.classifier.labels == ("person", "vehicle")
    assert (settings.classifier.input_width, settings.classifier.channels, settings.classifier.layout) == (
        64,
        "rgb",
        "nchw",
    )


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"model": "models/blobs.onnx"}, "absolute"),
        ({"labels": []}, "at least 1"),
        ({"labels": ["person", "person"]}, "unique"),
        ({"labels": ["Person"]}, "pattern"),
        ({"labels": ["person", "unknown"]}, "reserved"),
        ({"count_labels": ["animal"]}, "among the labels"),
        ({"mean": [0.5, 0.5]}, "one per channel"),
        ({"channels": "gray", "std": [0.2, 0.2, 0.2]}, "one per channel"),
        ({"std": [0.0]}, "greater than 0"),
        ({"url": "https://example.org/model.onnx"}, "Extra inputs"),
    ],
)
def test_invalid_classifier_settings_are_refused(changes: dict[str, object], problem: str) -> None:
    with pytest.raises(ValidationError, match=problem):
        DetectionSettings.model_validate({"line": {}, "classifier": CLASSIFIER | changes})


def test_a_classifier_needs_a_counting_line() -> None:
    with pytest.raises(ValidationError, match="set a counting line"):
        DetectionSettings.model_validate({"classifier": CLASSIFIER})


def test_classifier_settings_survive_the_strict_wire_decoding() -> None:
    settings = DetectionSettings.model_validate(
        {"line": {}, "classifier": CLASSIFIER | {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}}
    )
    assert DetectionSettings.model_validate_json(settings.model_dump_json(), strict=True) == settings
