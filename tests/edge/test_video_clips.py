"""The entrance clips hold what they claim: the camera pipeline, fed the decoded H.264 file, counts
exactly their walkers in and out across the clip's line, and sees the covered lens at the end."""

from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.detection.pipeline import FramePipeline
from protocol.detection import DetectionSettings
from protocol.messages import EventKind
from simulators.scenes import HEIGHT, START_MS, WIDTH
from simulators.video_clips import Orientation, alternating, entrance_clip
from tests.rtsp_server import require_rtsp_server


@pytest.mark.parametrize(
    ("orientation", "fps", "every"),
    [
        ("vertical", 10, 1),  # every frame, as a camera adapter at fps 10 takes them
        ("horizontal", 25, 5),  # every fifth frame: a camera adapter at fps 5
    ],
)
def test_the_pipeline_counts_the_clips_walkers_and_sees_the_lens_covered(
    tmp_path: Path, orientation: Orientation, fps: int, every: int
) -> None:
    require_rtsp_server()
    clip = entrance_clip(tmp_path / "gate.mkv", count_in=3, count_out=2, fps=fps, orientation=orientation, covered_s=5)
    assert [walker.direction for walker in clip.walkers] == list(alternating(3, 2))
    assert clip.covered_from_frame is not None
    assert clip.frames == clip.covered_from_frame + 5 * fps

    capture = cv2.VideoCapture(str(clip.path), cv2.CAP_FFMPEG)
    pipeline = FramePipeline("cam-entrance", DetectionSettings(line=clip.line))
    crossings: list[str] = []
    covered_at: list[int] = []
    index = 0
    try:
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            assert frame.shape == (HEIGHT, WIDTH, 3)
            if index % every == 0:
                result = pipeline.process(np.asarray(frame, dtype=np.uint8), START_MS + index * 1000 // fps)
                for detected in result.detections:
                    if detected.kind == EventKind.LINE_CROSSING:
                        crossings.append(str(detected.evidence["direction"]))
                    elif detected.kind == EventKind.CAMERA_TAMPER and detected.evidence.get("reason") == "covered":
                        covered_at.append(index)
            index += 1
    finally:
        capture.release()

    assert index == clip.frames
    assert crossings == [walker.direction for walker in clip.walkers]
    assert (crossings.count("in"), crossings.count("out")) == (clip.count_in, clip.count_out)
    assert len(covered_at) == 1
    assert covered_at[0] >= clip.covered_from_frame
