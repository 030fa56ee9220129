"""HTTP(S) cameras: a snapshot URL (one JPEG per request) or an MJPEG stream (``multipart/x-mixed-replace``).

:func:`open_http_camera` asks the URL once and goes by what it answers: a ``multipart/x-mixed-replace``
response is an MJPEG stream, read part by part on that one connection (:class:`MjpegSource`, live: every
part is read, so the camera's pace sets the rate); anything else is a snapshot URL, asked again for each
frame (:class:`SnapshotSource`). ``user:password@`` in the URL becomes Basic authentication. Every failure
is told in words a technician can act on (wrong credentials, path not found, connection refused, timed
out, not an image) and never shows the credentials or the query string.
"""

import base64
import http.client
import socket
import urllib.error
import urllib.parse
import urllib.request
from typing import Final

import cv2
import numpy as np

from edge.adapters.camera_source import CameraUnavailableError, Frame, FrameSource
from protocol.camera_sources import redact_source

IMAGE_LIMIT_BYTES: Final = 16 * 1024 * 1024
"""The largest JPEG (snapshot or MJPEG part) taken; more is a broken or hostile camera."""
_HEADER_LINE_LIMIT: Final = 8 * 1024
_HEADER_LINES_LIMIT: Final = 64
_MULTIPART: Final = "multipart/x-mixed-replace"


def open_http_camera(url: str, timeout_s: float) -> FrameSource:
    """Ask ``url`` once: an MJPEG stream, or a snapshot URL (its first answer is the first frame)."""
    request = _request(url)
    shown = redact_source(url)
    response = _open(request, shown, timeout_s)
    if response.headers.get_content_type() == _MULTIPART:
        boundary = response.headers.get_param("boundary")
        if not isinstance(boundary, str) or not boundary:
            response.close()
            raise CameraUnavailableError(f"{shown} sent an MJPEG stream without a boundary")
        return MjpegSource(response, boundary, shown)
    try:
        first = _read_image(response, shown)
    finally:
        response.close()
    return SnapshotSource(request, shown, timeout_s, first)


class SnapshotSource:
    """A snapshot URL: each grab asks for one JPEG."""

    def __init__(self, request: urllib.request.Request, shown: str, timeout_s: float, first: bytes) -> None:
        self._request = request
        self._shown = shown
        self._timeout_s = timeout_s
        self._jpeg = b""
        self._first: bytes | None = first

    @property
    def live(self) -> bool:
        return False

    @property
    def stream_fps(self) -> float | None:
        return None

    def grab(self) -> None:
        if self._first is not None:
            self._jpeg, self._first = self._first, None
            return
        response = _open(self._request, self._shown, self._timeout_s)
        try:
            self._jpeg = _read_image(response, self._shown)
        finally:
            response.close()

    def retrieve(self) -> Frame:
        return _decode(self._jpeg, self._shown)

    def release(self) -> None:
        self._jpeg, self._first = b"", None


class MjpegSource:
    """An MJPEG stream: parts of a ``multipart/x-mixed-replace`` response, each one JPEG, read as they come."""

    def __init__(self, response: http.client.HTTPResponse, boundary: str, shown: str) -> None:
        self._response = response
        self._boundary = b"--" + boundary.encode("latin-1").removeprefix(b"--")
        self._shown = shown
        self._jpeg = b""

    @property
    def live(self) -> bool:
        return True

    @property
    def stream_fps(self) -> float | None:
        return None

    def grab(self) -> None:
        try:
            self._jpeg = self._next_part()
        except (OSError, http.client.HTTPException) as exc:  # timeouts, resets
            raise CameraUnavailableError(f"{self._shown}: the MJPEG stream {_network_reason(exc)}") from exc

    def retrieve(self) -> Frame:
        return _decode(self._jpeg, self._shown)

    def release(self) -> None:
        self._response.close()
        self._jpeg = b""

    def _next_part(self) -> bytes:
        line = self._line()
        skipped = 0
        while not line.startswith(self._boundary):  # the preamble, or what trails the previous part
            skipped += len(line)
            if skipped > IMAGE_LIMIT_BYTES:
                raise CameraUnavailableError(f"{self._shown}: no MJPEG part boundary in {IMAGE_LIMIT_BYTES} bytes")
            line = self._line()
        if line.rstrip().endswith(b"--"):
            raise CameraUnavailableError(f"{self._shown}: the MJPEG stream ended")
        length: int | None = None
        for _ in range(_HEADER_LINES_LIMIT):
            header = self._line()
            if not header.strip():
                break
            name, _, value = header.decode("latin-1").partition(":")
            if name.strip().lower() == "content-length":
                length = _part_length(value.strip(), self._shown)
        else:
            raise CameraUnavailableError(f"{self._shown}: an MJPEG part has too many header lines")
        if length is None:
            return self._until_end_of_image()
        body = self._response.read(length)
        if len(body) < length:
            raise CameraUnavailableError(f"{self._shown}: the MJPEG stream ended inside a part")
        return body

    def _until_end_of_image(self) -> bytes:
        """A part without Content-Length: the JPEG up to its end-of-image marker."""
        data = bytearray()
        while (end := data.find(b"\xff\xd9")) < 0:
            chunk = self._response.read1(64 * 1024)
            if not chunk:
                raise CameraUnavailableError(f"{self._shown}: the MJPEG stream ended inside a part")
            data += chunk
            if len(data) > IMAGE_LIMIT_BYTES:
                raise CameraUnavailableError(f"{self._shown} sent an MJPEG part over {IMAGE_LIMIT_BYTES} bytes")
        return bytes(data[: end + 2])

    def _line(self) -> bytes:
        line = self._response.readline(_HEADER_LINE_LIMIT)
        if not line:
            raise CameraUnavailableError(f"{self._shown}: the MJPEG stream ended")
        return line


def _request(url: str) -> urllib.request.Request:
    parts = urllib.parse.urlsplit(url)
    netloc = parts.hostname or ""
    if parts.port is not None:
        netloc = f"{netloc}:{parts.port}"
    request = urllib.request.Request(urllib.parse.urlunsplit(parts._replace(netloc=netloc)))  # noqa: S310 - http(s) only
    if parts.username is not None:
        user = urllib.parse.unquote(parts.username)
        password = urllib.parse.unquote(parts.password or "")
        token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
        request.add_header("Authorization", f"Basic {token}")
    return request


def _open(request: urllib.request.Request, shown: str, timeout_s: float) -> http.client.HTTPResponse:
    try:
        response = urllib.request.urlopen(request, timeout=timeout_s)  # noqa: S310 - http(s) only
    except urllib.error.HTTPError as exc:
        exc.close()
        raise CameraUnavailableError(f"{shown} {_http_reason(exc.code, request)}") from exc
    except (OSError, ValueError, http.client.HTTPException) as exc:  # URLError, timeouts, refused connections
        raise CameraUnavailableError(f"{shown}: {_network_reason(exc)}") from exc
    if not isinstance(response, http.client.HTTPResponse):
        response.close()
        raise CameraUnavailableError(f"{shown} is not an HTTP camera")
    return response


def _http_reason(code: int, request: urllib.request.Request) -> str:
    if code == 401:
        given = request.has_header("Authorization")
        return f"answered HTTP 401: {'wrong user or password' if given else 'it needs a user and password'}"
    if code == 403:
        return "answered HTTP 403: this user may not view it"
    if code == 404:
        return "answered HTTP 404: no such path on the camera"
    return f"answered HTTP {code}"


def _network_reason(exc: BaseException) -> str:
    cause = exc.reason if isinstance(exc, urllib.error.URLError) and isinstance(exc.reason, BaseException) else exc
    if isinstance(cause, ConnectionRefusedError):
        return "connection refused (is the camera's web server on, and is the port right?)"
    if isinstance(cause, TimeoutError | socket.timeout):
        return "timed out"
    if isinstance(cause, socket.gaierror):
        return "unknown host name"
    if isinstance(cause, ConnectionResetError):
        return "connection reset by the camera"
    return f"{type(cause).__name__}: {cause}"


def _read_image(response: http.client.HTTPResponse, shown: str) -> bytes:
    try:
        body = response.read(IMAGE_LIMIT_BYTES + 1)
    except (OSError, http.client.HTTPException) as exc:
        raise CameraUnavailableError(f"{shown}: {_network_reason(exc)}") from exc
    if len(body) > IMAGE_LIMIT_BYTES:
        raise CameraUnavailableError(f"{shown} sent more than {IMAGE_LIMIT_BYTES} bytes")
    return body


def _part_length(value: str, shown: str) -> int:
    if not value.isdigit() or int(value) > IMAGE_LIMIT_BYTES:
        raise CameraUnavailableError(f"{shown}: an MJPEG part of Content-Length {value[:20]!r}")
    return int(value)


def _decode(jpeg: bytes, shown: str) -> Frame:
    frame = cv2.imdecode(np.frombuffer(jpeg, dtype=np.uint8), cv2.IMREAD_COLOR)
    if frame is None:
        raise CameraUnavailableError(f"{shown} did not send an image")
    return np.asarray(frame, dtype=np.uint8)
