"""Motion: per-zone changed fractions that see movers but not noise, lighting drift or old news."""

from collections.abc import Sequence

from edge.detection.motion import MotionDetector, MotionReading
from edge.detection.pipeline import prepare
from protocol.detection import FULL_FRAME, MotionSettings, ProcessingSettings, Zone
from simulators.scenes import NORMAL, Camera, Mover, View, brightening, crossing, linear_path, timestamp

PROCESSING = ProcessingSettings()
LEFT = Zone(name="left", polygon=((0.0, 0.0), (0.5, 0.0), (0.5, 1.0), (0.0, 1.0)))
RIGHT = Zone(name="right", polygon=((0.5, 0.0), (1.0, 0.0), (1.0, 1.0), (0.5, 1.0)))


def readings(
    camera: Camera,
    views: Sequence[View],
    movers: Sequence[Mover] = (),
    settings: MotionSettings | None = None,
) -> list[MotionReading]:
    detector = MotionDetector(settings or MotionSettings(), PROCESSING.width, PROCESSING.height)
    return [
        detector.update(prepare(camera.frame(index, view, movers), PROCESSING).blurred, timestamp(index))
        for index, view in enumerate(views)
    ]


def test_a_static_scene_has_no_motion_anywhere() -> None:
    results = readings(Camera(), [NORMAL] * 120)
    assert all(not zone.moving for result in results for zone in result.zones)
    assert max(result.zones[0].changed_fraction for result in results) < 0.001


def test_a_mover_is_motion_in_its_zone_only() -> None:
    # A dark shape walks down the left half of the image and never enters the right half.
    walker = Mover(linear_path((120.0, -40.0), (120.0, 400.0), 40), first_frame=10)
    results = readings(Camera(), [NORMAL] * 50, [walker], MotionSettings(zones=(LEFT, RIGHT)))
    while_walking = results[15:45]
    assert all(result.zones[0].moving for result in while_walking)
    assert all(result.zones[0].name == "left" for result in results)
    assert not any(result.zones[1].moving for result in results)
    assert max(result.zones[0].changed_fraction for result in while_walking) > 0.03


def test_a_slowly_brightening_scene_is_not_motion() -> None:
    frames = 300
    results = readings(Camera(), [brightening(index, frames) for index in range(frames)])
    assert not any(zone.moving for result in results for zone in result.zones)
    assert results[-1].lighting_gain > 1.0  # the compensation is following the light


def test_a_sudden_lighting_change_is_motion_only_without_compensation() -> None:
    views = [NORMAL] * 20 + [View(gain=0.7)] * 5
    compensated = readings(Camera(), views)
    plain = readings(Camera(), views, settings=MotionSettings(compensate_lighting=False))
    assert not any(result.zones[0].moving for result in compensated)
    assert plain[-1].zones[0].moving
    assert 0.65 < compensated[-1].lighting_gain < 0.75


def test_an_object_that_stops_fades_into_the_background() -> None:
    # Walks in, then stands still for good.
    path = linear_path((-40.0, 180.0), (320.0, 180.0), 20) + ((320.0, 180.0),) * 280
    results = readings(
        Camera(), [NORMAL] * 300, [Mover(path)], MotionSettings(zones=(Zone(name="all", polygon=FULL_FRAME),))
    )
    assert results[25].zones[0].moving
    assert not results[-1].zones[0].moving


def test_a_crossing_shape_leaves_no_lasting_trail() -> None:
    results = readings(Camera(), [NORMAL] * 70, [crossing("left_to_right", first_frame=5, lane_y=180)])
    assert results[20].zones[0].moving
    assert results[-1].zones[0].changed_fraction < 0.001
