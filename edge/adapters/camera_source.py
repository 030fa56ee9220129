"""What every camera source is: frames as arrays, the source protocol the capture thread reads, the one error a
source raises, and URLs made fit for logs."""

from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from edge.errors import EdgeError

Frame = NDArray[np.uint8]


class CameraUnavailableError(EdgeError):
    """A camera source could not be opened, or stopped delivering frames."""


class FrameSource(Protocol):
    """An open camera source, used only from its capture thread."""

    @property
    def live(self) -> bool:
        """Whether frames arrive at the camera's own pace (and must all be grabbed to stay current)."""
        ...

    @property
    def stream_fps(self) -> float | None:
        """The stream's own frame rate, if it says (used to pace a live stream)."""
        ...

    def grab(self) -> None:
        """Move to the next frame, blocking until it is there; raises CameraUnavailableError."""
        ...

    def retrieve(self) -> Frame:
        """Decode the frame last grabbed (BGR); raises CameraUnavailableError."""
        ...

    def release(self) -> None: ...
