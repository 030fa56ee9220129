"""Settings of the camera detectors: strict models, every default documented.

Units, so settings carry over between cameras of different resolutions:

* positions are normalized image coordinates, ``(x / width, y / height)``, each in ``0..1``,
  ``(0, 0)`` the top-left corner;
* distances are fractions of the processing frame's width;
* areas are fractions of the processing frame's area;
* grey levels are 0..255 on the processing frame.
"""

from typing import Annotated, Self

from pydantic import AfterValidator, Field, model_validator

from protocol.config_model import ConfigModel
from protocol.identifiers import Identifier

Unit = Annotated[float, Field(ge=0.0, le=1.0)]
Point = tuple[Unit, Unit]
"""A normalized image position ``(x, y)``."""


def _odd(value: int) -> int:
    if value % 2 == 0:
        raise ValueError(f"a kernel size must be odd (1 disables it), got {value}")
    return value


OddKernel = Annotated[int, Field(ge=1, le=31), AfterValidator(_odd)]
"""A filter's kernel size in pixels: odd, 1 meaning no filtering."""

FULL_FRAME: tuple[Point, ...] = ((0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 1.0))
_MIN_LINE_LENGTH = 0.01
_MIN_INSIDE_OFFSET = 0.001


class Hold(ConfigModel):
    """How long a condition must persist before it is reported, and be gone before it is cleared.

    Both the frame count and the duration must be reached, so the rule means the same at any
    frame rate; set a count or a duration to its minimum to rely on the other alone.
    """

    raise_frames: int = Field(default=3, ge=1, le=10_000, description="Consecutive frames to report a condition.")
    raise_s: float = Field(
        default=0.0, ge=0.0, le=3_600.0, description="Seconds a condition lasts before it is reported."
    )
    clear_frames: int = Field(default=10, ge=1, le=10_000, description="Consecutive quiet frames to clear a condition.")
    clear_s: float = Field(default=1.0, ge=0.0, le=3_600.0, description="Seconds a condition is gone before it clears.")


class ProcessingSettings(ConfigModel):
    """The one reduced frame every detector works on, made once per input frame."""

    width: int = Field(default=320, ge=32, le=1_920, description="Processing width in pixels (default 320).")
    height: int = Field(default=180, ge=18, le=1_080, description="Processing height in pixels (default 180, 16:9).")
    blur_kernel: OddKernel = Field(
        default=5, description="Gaussian kernel smoothing the frame for motion (odd; 1 disables)."
    )


class Zone(ConfigModel):
    """A named polygon of the image in which motion is measured."""

    name: Identifier
    polygon: tuple[Point, ...] = Field(min_length=3, max_length=64, description="Corners, normalized.")
    min_changed_fraction: float = Field(
        default=0.01, gt=0.0, le=1.0, description="Share of the zone that must change to count as motion (1%)."
    )


class MotionSettings(ConfigModel):
    """Running-average background subtraction, compensated for global lighting changes."""

    zones: tuple[Zone, ...] = Field(
        default=(Zone(name="scene", polygon=FULL_FRAME),),
        min_length=1,
        max_length=16,
        description="Zones to watch; by default one zone, 'scene', covering the whole image.",
    )
    learning_rate: float = Field(
        default=0.02,
        gt=0.0,
        le=1.0,
        description="Running-average alpha per frame: a stopped object fades into the background in ~1/alpha frames.",
    )
    diff_threshold: int = Field(
        default=25, ge=1, le=255, description="Grey-level difference from the background that marks a pixel changed."
    )
    compensate_lighting: bool = Field(
        default=True,
        description="Scale the background by the scene's overall brightness change before comparing, "
        "so clouds, dusk and auto-exposure are not motion.",
    )
    open_kernel: OddKernel = Field(default=3, description="Morphological opening removing speckle noise (odd; 1 off).")
    hold: Hold = Field(default_factory=Hold, description="Motion starts after 3 frames and stops after 10 frames/1 s.")

    @model_validator(mode="after")
    def _valid(self) -> Self:
        names = [zone.name for zone in self.zones]
        if len(set(names)) != len(names):
            raise ValueError(f"zone names must be unique, got {names}")
        return self


class LineSettings(ConfigModel):
    """A virtual line across which anonymous moving blobs are counted, in each direction.

    A blob that ends up on the side of ``inside`` has gone "in"; the other way is "out". The default
    is a vertical line down the middle of the image, with "in" meaning left to right.
    """

    name: Identifier = "line"
    start: Point = (0.5, 0.0)
    end: Point = (0.5, 1.0)
    inside: Point = Field(default=(1.0, 0.5), description="Any point on the 'in' side of the line.")
    hysteresis: float = Field(
        default=0.03,
        gt=0.0,
        le=0.5,
        description="Half-width of the band around the line (fraction of width) a blob must leave on the far side "
        "before its crossing counts; jitter on the line is never counted twice.",
    )
    min_blob_area: float = Field(default=0.002, gt=0.0, le=1.0, description="Smallest blob counted (area fraction).")
    max_blob_area: float = Field(
        default=0.5,
        gt=0.0,
        le=1.0,
        description="Larger blobs are a scene change (lighting, a knocked camera), not a walker.",
    )
    merge_kernel: OddKernel = Field(default=5, description="Closing that joins a blob's fragments (odd; 1 off).")
    max_match_distance: float = Field(
        default=0.1, gt=0.0, le=1.0, description="Farthest a blob moves between frames and stays the same blob."
    )
    max_missed_frames: int = Field(
        default=5, ge=0, le=1_000, description="Frames a blob may vanish before it is dropped."
    )
    max_blobs: int = Field(default=32, ge=1, le=1_000, description="Only the largest blobs of a frame are tracked.")
    keep_minutes: int = Field(default=60, ge=1, le=10_080, description="Per-minute counts kept for reporting.")

    @model_validator(mode="after")
    def _valid(self) -> Self:
        if self.min_blob_area >= self.max_blob_area:
            raise ValueError("min_blob_area must be smaller than max_blob_area")
        (x0, y0), (x1, y1), (px, py) = self.start, self.end, self.inside
        length = ((x1 - x0) ** 2 + (y1 - y0) ** 2) ** 0.5
        if length < _MIN_LINE_LENGTH:
            raise ValueError("the line's start and end must be apart")
        if abs((x1 - x0) * (py - y0) - (y1 - y0) * (px - x0)) / length < _MIN_INSIDE_OFFSET:
            raise ValueError("the inside point must lie off the line")
        return self


class TamperSettings(ConfigModel):
    """Covered, defocused and moved checks against a reference learned from the first frames.

    The reference adapts slowly on frames that pass every check, so dusk and dawn are followed but
    a sudden change is not absorbed. Checks are in priority order (covered, defocused, moved): a
    covered lens also looks blurred and unmatched, but is reported only as covered.
    """

    learn_frames: int = Field(default=25, ge=1, le=10_000, description="Frames averaged into the first reference.")
    adapt_rate: float = Field(
        default=0.002, ge=0.0, le=0.5, description="Reference running-average alpha per normal frame (0 freezes it)."
    )
    covered_contrast_ratio: float = Field(
        default=0.25,
        gt=0.0,
        lt=1.0,
        description="Covered when contrast (grey-level std) falls below this share of the reference's contrast.",
    )
    covered_min_contrast: float = Field(
        default=4.0,
        ge=0.0,
        le=128.0,
        description="Covered, too, when contrast falls below this many grey levels, whatever the reference.",
    )
    defocus_ratio: float = Field(
        default=0.35,
        gt=0.0,
        lt=1.0,
        description="Defocused when sharpness (Laplacian variance over grey variance, median over a 4 x 4 grid of "
        "tiles) falls below this share of the reference's.",
    )
    max_shift: float = Field(
        default=0.05, gt=0.0, le=0.5, description="Moved when the view shifts more than this (fraction of the width)."
    )
    min_match_response: float = Field(
        default=0.15,
        ge=0.0,
        le=1.0,
        description="Phase-correlation peak (1 = same view) below which the shift estimate is noise, as when "
        "the view is covered or wholly different, and is not reported as a move.",
    )
    shift_downscale: int = Field(
        default=2, ge=1, le=8, description="The shift is estimated on the processing frame reduced by this factor."
    )
    hold: Hold = Field(
        default=Hold(raise_frames=10, raise_s=2.0, clear_frames=10, clear_s=2.0),
        description="Tamper is raised after 10 frames/2 s and cleared after 10 frames/2 s.",
    )


class DetectionSettings(ConfigModel):
    """Everything one camera's :class:`~edge.detection.pipeline.FramePipeline` needs."""

    processing: ProcessingSettings = Field(default_factory=ProcessingSettings)
    motion: MotionSettings = Field(default_factory=MotionSettings)
    line: LineSettings | None = Field(default=None, description="The counting line; none by default.")
    tamper: TamperSettings = Field(default_factory=TamperSettings)
