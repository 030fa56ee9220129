"""How often a camera's frames must be analysed for its detectors to work, checked when it is configured.

Motion and tamper work at any rate: their holds are in seconds. Line counting does not: a walker is
followed from one analysed frame to the next and counted when two successive sightings lie on
opposite sides of the line, so each walker must be seen at least once on each side, clear of the
line's band, and be told apart from the others between sightings. At walking pace (1 to 1.5 m/s; a
quarter of the view a second on an entrance camera, 160 px/s on a 640 px frame) and 1.5 frames/s a
walker moves about a metre, a sixth of the view, between frames and is seen two or three times on
each side of a line across the middle; any slower and a walker near the edge of the view, or a
brisk one, is seen once or not at all on one side, and is not counted. Counting is tested at 2, 5
and 10 analysed frames/s, on 10 and 25 frames/s streams.

:func:`check_counting_rate` is the check for wherever a camera's analysed rate (the camera adapter's
``fps``) meets its :class:`~protocol.detection.DetectionSettings`.
"""

from typing import Final

from edge.errors import EdgeConfigError
from protocol.detection import DetectionSettings

MIN_COUNTING_FPS: Final = 1.5
"""The slowest analysed rate (frames/s) at which a camera with a counting line may be configured."""


def minimum_counting_fps(settings: DetectionSettings | None) -> float | None:
    """The slowest analysed rate ``settings`` work at, frames/s; None when any rate will do (no line)."""
    if settings is None or settings.line is None:
        return None
    return MIN_COUNTING_FPS


def check_counting_rate(device_id: str, fps: float, settings: DetectionSettings | None) -> None:
    """Refuse a camera whose frames are analysed too rarely (``fps`` a second) for its counting line.

    Raises :class:`~edge.errors.EdgeConfigError` naming the camera, the rate and the minimum.
    """
    minimum = minimum_counting_fps(settings)
    if minimum is not None and fps < minimum:
        raise EdgeConfigError(
            f"camera {device_id}: fps {fps:g} is too low to count people across its line: a walker moves too far "
            f"between analysed frames to be followed; set fps to at least {minimum:g} (2 or more is tested), "
            "or remove the line"
        )
