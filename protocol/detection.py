"""Settings of the camera detectors: strict models, every default documented.

Units, so settings carry over between cameras of different resolutions:

* positions are normalized image coordinates, ``(x / width, y / height)``, each in ``0..1``,
  ``(0, 0)`` the top-left corner;
* distances are fractions of the processing frame's width;
* areas are fractions of the processing frame's area;
* grey levels are 0..255 on the processing frame;
* durations are seconds, measured on the frames' capture timestamps, so a setting means the same
  whatever rate frames are analysed at (the camera adapter's ``fps``). Settings once counted in
  frames (``raise_frames``, ``clear_frames``, ``learn_frames``, ``max_missed_frames``,
  ``max_match_distance`` per frame, ``learning_rate`` per frame) are replaced by their ``*_s`` (or
  per-second) counterparts; the old names are still accepted, for configs written before, and
  ignored: the new settings' defaults apply.
"""

from pathlib import PurePosixPath
from typing import Annotated, Any, Final, Literal, Self

from pydantic import AfterValidator, BeforeValidator, Field, StringConstraints, model_validator
from pydantic.json_schema import SkipJsonSchema

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


def _ignore(value: object) -> None:
    return None


Ignored = SkipJsonSchema[Annotated[None, BeforeValidator(_ignore)]]
"""A setting of old configs, counted in frames: accepted whatever its value, then forgotten (always None,
never written out, not in the schema), so a config written before still loads and compares equal."""


def _ignored(replaced_by: str) -> Any:
    return Field(default=None, exclude=True, repr=False, description=f"Ignored; replaced by {replaced_by}.")


class Hold(ConfigModel):
    """How long a condition must persist before it is reported, and be gone before it is cleared.

    Durations run from the first frame showing the change to the latest frame still showing it, on
    the frames' capture timestamps, so a hold means the same at any analysed frame rate: at 2
    frames/s a 2 s hold is five frames, at 10 frames/s twenty-one. A hold of 0 acts on the first
    frame. (``raise_frames`` and ``clear_frames`` of old configs are accepted and ignored.)
    """

    raise_s: float = Field(
        default=0.3, ge=0.0, le=3_600.0, description="Seconds a condition lasts before it is reported."
    )
    clear_s: float = Field(default=1.0, ge=0.0, le=3_600.0, description="Seconds a condition is gone before it clears.")
    raise_frames: Ignored = _ignored("raise_s")
    clear_frames: Ignored = _ignored("clear_s")


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
    background_s: float = Field(
        default=5.0,
        ge=0.5,
        le=3_600.0,
        description="Time constant of the running-average background (seconds): a stopped object or a slow "
        "local change fades into it over about this long, at any frame rate.",
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
    hold: Hold = Field(default_factory=Hold, description="Motion starts after 0.3 s and stops after 1 s.")
    learning_rate: Ignored = _ignored("background_s")

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

    Blobs are followed from frame to frame within a distance that grows with the time between the
    frames (``max_speed``), so counting works at any analysed rate from 1.5 frames/s up
    (:func:`edge.detection.rates.check_counting_rate`). Counts per direction are reported every
    minute, zeros included, for every minute in which frames were analysed.
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
    max_speed: float = Field(
        default=1.0,
        gt=0.0,
        le=10.0,
        description="Fastest a followed blob moves, in frame widths per second (a walker crossing the view in 4 s "
        "moves 0.25): between frames dt seconds apart a blob may move this times dt and stay the same blob.",
    )
    max_missed_s: float = Field(
        default=1.5, ge=0.0, le=60.0, description="Seconds a blob may go unseen before it is dropped."
    )
    max_blobs: int = Field(default=32, ge=1, le=1_000, description="Only the largest blobs of a frame are tracked.")
    keep_minutes: int = Field(default=60, ge=1, le=10_080, description="Per-minute counts kept for reporting.")
    max_match_distance: Ignored = _ignored("max_speed")
    max_missed_frames: Ignored = _ignored("max_missed_s")

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

    learn_s: float = Field(
        default=3.0,
        ge=0.0,
        le=3_600.0,
        description="Seconds of frames averaged into the first reference (at least one frame); nothing is checked "
        "meanwhile.",
    )
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
        default=Hold(raise_s=2.0, clear_s=2.0),
        description="Tamper is raised after 2 s and cleared after 2 s, at any frame rate.",
    )
    learn_frames: Ignored = _ignored("learn_s")


ClassLabel = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,31}$")]
"""A class a blob classifier names; metric-safe, since counts may be split by it (``line_in_person``)."""

UNKNOWN_LABEL: Final = "unknown"
"""The label of a crossing whose best class scored under ``min_score``."""
OTHER_LABEL: Final = "other"
"""The label of a crossing whose best class is not one of ``count_labels``."""


def _absolute(path: str) -> str:
    if not PurePosixPath(path).is_absolute():
        raise ValueError(f"the model path must be absolute, got {path!r}")
    return path


class ClassifierSettings(ConfigModel):
    """An optional local ONNX model that labels each blob crossing the counting line (person, vehicle, ...).

    The model is a file already on the gateway; nothing is ever downloaded. It sees the crossing
    blob's crop of the camera frame, in memory only, and gives one score per class: what leaves is a
    label and a score, never the crop. The crop (the blob's box grown by ``margin``) is scaled to
    ``input_width`` x ``input_height`` (in proportion, centred on black, when ``keep_aspect``), put in
    ``channels`` order, scaled to 0..1, normalized as ``(x - mean) / std`` and fed as the model's only
    input: one float32 tensor of batch 1 in ``layout``. The model's first output holds one score per
    class, in the order of ``labels``.
    """

    model: Annotated[str, Field(min_length=2, max_length=1_024), AfterValidator(_absolute)] = Field(
        description="Absolute path of the .onnx file on the gateway; a missing file stops the agent at start-up."
    )
    labels: tuple[ClassLabel, ...] = Field(
        min_length=1, max_length=32, description="The model's classes in output order, e.g. ['person', 'vehicle']."
    )
    input_width: int = Field(default=64, ge=8, le=1_024, description="Model input width in pixels (default 64).")
    input_height: int = Field(default=64, ge=8, le=1_024, description="Model input height in pixels (default 64).")
    channels: Literal["rgb", "bgr", "gray"] = Field(default="rgb", description="Colour order the model expects.")
    layout: Literal["nchw", "nhwc"] = Field(default="nchw", description="Tensor layout the model expects.")
    mean: tuple[Annotated[float, Field(ge=-255.0, le=255.0)], ...] = Field(
        default=(0.0,),
        min_length=1,
        max_length=3,
        description="Subtracted from the 0..1 pixel values: one value for every channel, or one per channel.",
    )
    std: tuple[Annotated[float, Field(gt=0.0, le=255.0)], ...] = Field(
        default=(1.0,),
        min_length=1,
        max_length=3,
        description="Divides the pixel values after the mean: one value for every channel, or one per channel.",
    )
    keep_aspect: bool = Field(
        default=True, description="Scale the crop in proportion and pad it with black (shape tells classes apart)."
    )
    margin: float = Field(
        default=0.1, ge=0.0, le=1.0, description="Context added around the blob's box, a share of its size per side."
    )
    outputs: Literal["probabilities", "logits"] = Field(
        default="probabilities", description="What the model's scores are; logits are turned into probabilities."
    )
    min_score: float = Field(
        default=0.5,
        ge=0.0,
        le=1.0,
        description=f"Best class probability below which a crossing is labelled '{UNKNOWN_LABEL}'.",
    )
    count_labels: tuple[ClassLabel, ...] | None = Field(
        default=None,
        max_length=32,
        description=f"Labels reported by name; any other class is reported as '{OTHER_LABEL}'. Default: all labels.",
    )

    @model_validator(mode="after")
    def _valid(self) -> Self:
        if len(set(self.labels)) != len(self.labels):
            raise ValueError(f"labels must be unique, got {list(self.labels)}")
        if UNKNOWN_LABEL in self.labels:
            raise ValueError(f"'{UNKNOWN_LABEL}' is reserved for crossings scored under min_score")
        unlisted = set(self.count_labels or ()) - set(self.labels)
        if unlisted:
            raise ValueError(f"count_labels must be among the labels, not {sorted(unlisted)}")
        channels = 1 if self.channels == "gray" else 3
        for name, values in (("mean", self.mean), ("std", self.std)):
            if len(values) not in (1, channels):
                raise ValueError(f"{name} takes one value or one per channel ({channels}), got {len(values)}")
        return self


class DetectionSettings(ConfigModel):
    """Everything one camera's :class:`~edge.detection.pipeline.FramePipeline` needs."""

    processing: ProcessingSettings = Field(default_factory=ProcessingSettings)
    motion: MotionSettings = Field(default_factory=MotionSettings)
    line: LineSettings | None = Field(default=None, description="The counting line; none by default.")
    tamper: TamperSettings = Field(default_factory=TamperSettings)
    classifier: ClassifierSettings | None = Field(
        default=None, description="A local ONNX model labelling line crossings; none by default (blobs only)."
    )

    @model_validator(mode="after")
    def _classifier_needs_a_line(self) -> Self:
        if self.classifier is not None and self.line is None:
            raise ValueError("the classifier labels line crossings: set a counting line too")
        return self
