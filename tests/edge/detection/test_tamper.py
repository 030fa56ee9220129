"""Tamper checks: covered, defocused and moved are seen; lighting drift and passers-by are not."""

from collections.abc import Sequence

from edge.detection.pipeline import prepare
from edge.detection.tamper import TamperDetector, TamperReading, TamperReason
from protocol.detection import ProcessingSettings, TamperSettings
from simulators.scenes import (
    BLURRED,
    COVERED,
    FRAME_MS,
    NORMAL,
    SHIFTED,
    Camera,
    Mover,
    View,
    brightening,
    linear_path,
    timestamp,
)

PROCESSING = ProcessingSettings()
LEARN = round(TamperSettings().learn_s * 1_000 / FRAME_MS) + 1
"""Frames learned at 10 frames/s: those of the first ``learn_s`` seconds, both ends included."""


def detector(settings: TamperSettings | None = None) -> TamperDetector:
    return TamperDetector(settings or TamperSettings(), PROCESSING.width, PROCESSING.height)


def feed(
    tamper: TamperDetector, camera: Camera, views: Sequence[View], movers: Sequence[Mover] = (), start: int = 0
) -> list[TamperReading]:
    return [
        tamper.update(prepare(camera.frame(start + offset, view, movers), PROCESSING).gray, timestamp(start + offset))
        for offset, view in enumerate(views)
    ]


def reasons(readings: Sequence[TamperReading]) -> set[TamperReason | None]:
    return {reading.reason for reading in readings}


def test_nothing_is_checked_while_the_reference_is_learned() -> None:
    readings = feed(detector(), Camera(), [COVERED] * LEARN + [NORMAL])
    assert all(reading.learning and reading.checks == () for reading in readings[:LEARN])
    assert not readings[LEARN].learning
    assert [check.reason for check in readings[LEARN].checks] == list(TamperReason)


def test_a_static_scene_passes_every_check_and_keeps_matching_its_reference() -> None:
    readings = feed(detector(), Camera(), [NORMAL] * 300)
    assert reasons(readings[LEARN:]) == {None}
    # The reference must not erode frame after frame (it once did: see TamperDetector._phase_correlate).
    assert readings[-1].measurements["match_response"] > 0.9
    assert abs(readings[-1].measurements["shift_x"]) < 0.01


def test_slow_brightening_and_dusk_pass_and_the_reference_follows_them() -> None:
    brighter = feed(detector(), Camera(), [brightening(index, 400) for index in range(400)])
    darker = feed(detector(), Camera(), [brightening(index, 400, start_gain=1.2, end_gain=0.4) for index in range(400)])
    assert reasons(brighter[LEARN:]) == {None}
    assert reasons(darker[LEARN:]) == {None}
    assert darker[-1].measurements["reference_contrast"] < darker[LEARN].measurements["reference_contrast"]


def test_a_covered_lens_is_covered_and_only_covered() -> None:
    readings = feed(detector(), Camera(), [NORMAL] * 40 + [COVERED] * 10)
    assert reasons(readings[40:]) == {TamperReason.COVERED}
    covered = readings[-1].checks[0]
    assert covered.failing
    assert covered.score < covered.threshold
    assert readings[-1].measurements["brightness"] < 20


def test_a_camera_covered_from_the_start_is_covered_by_the_absolute_floor() -> None:
    readings = feed(detector(), Camera(), [COVERED] * (LEARN + 5))
    assert reasons(readings[LEARN:]) == {TamperReason.COVERED}


def test_a_blurred_image_is_defocused() -> None:
    readings = feed(detector(), Camera(), [NORMAL] * 40 + [BLURRED] * 10)
    assert reasons(readings[40:]) == {TamperReason.DEFOCUSED}
    defocused = readings[-1].checks[1]
    assert defocused.score < 0.2 < 0.35 == defocused.threshold


def test_a_camera_knocked_sideways_has_moved_by_the_right_amount() -> None:
    readings = feed(detector(), Camera(), [NORMAL] * 40 + [SHIFTED] * 10)
    assert reasons(readings[40:]) == {TamperReason.MOVED}
    last = readings[-1]
    assert abs(last.measurements["shift_x"] + 0.15) < 0.01  # the view moved left by 96 / 640 of its width
    assert abs(last.measurements["shift_y"]) < 0.01
    assert last.checks[2].score > last.checks[2].threshold


def test_a_large_object_in_front_of_the_camera_is_not_a_move() -> None:
    lorry = Mover(linear_path((320.0, 180.0), (330.0, 180.0), 60), first_frame=40, half_size=(180, 120))
    readings = feed(detector(), Camera(), [NORMAL] * 100, [lorry])
    assert reasons(readings[LEARN:]) == {None}


def test_tampered_frames_are_never_learned_as_normal() -> None:
    tamper = detector(TamperSettings(adapt_rate=0.5))  # absurdly fast adaptation, to make the point
    camera = Camera()
    feed(tamper, camera, [NORMAL] * 40)
    during = feed(tamper, camera, [SHIFTED] * 200, start=40)
    after = feed(tamper, camera, [NORMAL] * 3, start=240)
    assert reasons(during) == {TamperReason.MOVED}
    assert reasons(after) == {None}


def test_the_reference_is_learned_over_seconds_whatever_the_frame_rate() -> None:
    camera = Camera()
    for every in (1, 5):  # 10 and 2 frames/s
        tamper = detector()
        learning = [
            tamper.update(prepare(camera.frame(index), PROCESSING).gray, timestamp(index)).learning
            for index in range(0, 60, every)
        ]
        assert learning.count(True) == (LEARN - 1) // every + 1  # the frames of the first 3 s, both ends included


def test_relearning_accepts_a_new_view() -> None:
    tamper = detector()
    camera = Camera()
    feed(tamper, camera, [NORMAL] * 40)
    tamper.relearn()
    readings = feed(tamper, camera, [SHIFTED] * (LEARN + 20), start=40)
    assert all(reading.learning for reading in readings[:LEARN])
    assert reasons(readings[LEARN:]) == {None}
