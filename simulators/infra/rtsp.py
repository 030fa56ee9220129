"""A real RTSP server for camera tests and benchmarks: H.264 clips at mount paths on a free loopback port.

:class:`RtspServer` runs ``simulators/infra/rtsp_serve.py`` (GStreamer's gst-rtsp-server) as a child process
under a Python that can import GStreamer's bindings: this interpreter if it can, else Debian's
``/usr/bin/python3`` (the project's venv cannot import ``gi``; Debian's python3-gi serves the system
Python). The Debian packages are installed by ``scripts/test`` (see :data:`DEBIAN_PACKAGES`).

The server listens on 127.0.0.1 on a port the kernel chooses at the first start, and keeps it across
:meth:`~RtspServer.restart`. It is ready when it listens and an RTSP ``DESCRIBE`` of every mount
answers 200. Clients may use RTP over TCP (FFmpeg/OpenCV: ``OPENCV_FFMPEG_CAPTURE_OPTIONS=rtsp_transport;tcp``,
see :data:`TCP_CAPTURE_OPTIONS`) or over UDP. Each clip is served as encoded, without re-encoding;
clips from :mod:`simulators.video_clips` have a keyframe every second. Playback per mount (:class:`Mount`):

* ``"once"``: every session plays the clip from its first frame, then the stream ends;
* ``"loop"`` (default): every session plays the clip from its first frame, looping forever;
* ``"live"``: a camera running since the :class:`RtspServer` was made: a session starts at the
  keyframe before the clip's current position (at most 1 s back), and a restart does not rewind.

What OpenCV's FFmpeg client does with it (measured; the camera adapter reads streams this way):

* Opening a stream reads ~20 frames before it returns (FFmpeg probes the frame rate): 2.8 s at
  10 fps, 1.1 s at 25 fps. Those frames are kept, so the first reads return at once and no frame is
  lost; after them frames come at the clip's pace, each read ~3 frame intervals after the server
  sent it (decoder delay included).
* A frozen server: the buffered frames come at once, then each read waits the read timeout, and the
  first two or so of those still return frames the decoder held: a camera adapter notices only
  after about three read timeouts.
* A stopped or killed server: reads fail once the buffered frames are read; a ``"once"`` stream
  likewise ends right after its last frame (a camera adapter then reconnects and sees it again).

The lifecycle methods are synchronous (they block for up to about a second); from a coroutine that
must keep its event loop turning meanwhile, call them through ``asyncio.to_thread``.

The ``rtsp_server`` fixture (``tests/rtsp_server.py``, registered for every test by ``tests/conftest.py``)::

    def test_camera(rtsp_server: RtspServerFactory, tmp_path: Path) -> None:
        clip = entrance_clip(tmp_path / "gate.mp4", count_in=2, count_out=1)
        server = rtsp_server({"/cam1": clip.path}, credentials=Credentials("viewer", "s3cret"))
        url = server.url("/cam1")  # rtsp://viewer:s3cret@127.0.0.1:PORT/cam1
        ...
        server.freeze(); server.thaw(); server.restart(); server.kill(); server.start()

``rtsp_server`` starts each server it makes and closes them all after the test. If GStreamer's
RTSP server is not installed it skips the test, saying what to install, unless
``OUTPOST_REQUIRE_RTSP_SERVER=1`` (``scripts/test`` sets it after installing the packages), when it
fails it instead: a suite run by the project's scripts never skips these tests.
"""

import base64
import contextlib
import functools
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Final, Literal, Self

from simulators.infra.errors import ServerStartError, ServerStateError
from simulators.infra.ports import LOOPBACK

Playback = Literal["once", "loop", "live"]

SERVE_SCRIPT: Final = Path(__file__).with_name("rtsp_serve.py")
SYSTEM_PYTHON: Final = Path("/usr/bin/python3")
DEBIAN_PACKAGES: Final = (
    "python3-gi",
    "gir1.2-gst-rtsp-server-1.0",
    "gstreamer1.0-plugins-base",
    "gstreamer1.0-plugins-good",
    "gstreamer1.0-plugins-bad",
    "gstreamer1.0-plugins-ugly",
    "gstreamer1.0-tools",
)
"""What the server and the clip encoder need (scripts/test installs them)."""
REQUIRE_ENV: Final = "OUTPOST_REQUIRE_RTSP_SERVER"
"""Set to 1 to fail, not skip, tests of a machine without the server (scripts/test sets it)."""
TCP_CAPTURE_OPTIONS: Final = "rtsp_transport;tcp"
"""``OPENCV_FFMPEG_CAPTURE_OPTIONS`` for RTP over TCP (RTSP interleaved), as many NVRs and firewalls need."""

_READY_PREFIX: Final = "READY port="
_CHECK_TIMEOUT_S: Final = 30.0
_DESCRIBE_TIMEOUT_S: Final = 5.0
_POLL_INTERVAL_S: Final = 0.02
_TAIL_LINES: Final = 30


@dataclass(frozen=True, slots=True)
class Credentials:
    """A basic-auth login."""

    user: str
    password: str


@dataclass(frozen=True, slots=True)
class Mount:
    """A clip served at ``path`` (``/cam1``)."""

    path: str
    clip: Path
    playback: Playback = "loop"


@functools.cache
def gstreamer_python() -> Path | None:
    """A Python that imports GStreamer's RTSP server bindings and finds every element it needs, or None."""
    candidates = [Path(sys.executable), SYSTEM_PYTHON]
    found = shutil.which("python3")
    if found is not None:
        candidates.append(Path(found))
    for candidate in dict.fromkeys(candidates):
        if not candidate.exists():
            continue
        try:
            checked = subprocess.run(  # noqa: S603 - our own script, under a Python found here
                [str(candidate), str(SERVE_SCRIPT), "--check"],
                capture_output=True,
                timeout=_CHECK_TIMEOUT_S,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired):
            continue
        if checked.returncode == 0:
            return candidate
    return None


def unavailable_reason() -> str | None:
    """Why the server and the clip encoder cannot run on this machine, or None if they can."""
    missing = []
    if gstreamer_python() is None:
        missing.append(
            f"no Python here imports GStreamer's RTSP server (gi) and finds the elements {SERVE_SCRIPT.name} uses"
        )
    if shutil.which("gst-launch-1.0") is None:
        missing.append("no gst-launch-1.0 to encode clips")
    if not missing:
        return None
    return (
        f"the RTSP server for camera tests cannot run ({'; '.join(missing)}): run scripts/test, which installs "
        f"the Debian packages {' '.join(DEBIAN_PACKAGES)}"
    )


def describe(
    host: str, port: int, path: str, credentials: Credentials | None = None, *, timeout_s: float = _DESCRIBE_TIMEOUT_S
) -> int:
    """The status code of an RTSP ``DESCRIBE`` of ``path`` (with basic auth if ``credentials``)."""
    lines = [
        f"DESCRIBE rtsp://{host}:{port}{path} RTSP/1.0",
        "CSeq: 1",
        "Accept: application/sdp",
        "User-Agent: outpost-tests",
    ]
    if credentials is not None:
        token = base64.b64encode(f"{credentials.user}:{credentials.password}".encode()).decode("ascii")
        lines.append(f"Authorization: Basic {token}")
    request = ("\r\n".join(lines) + "\r\n\r\n").encode()
    with socket.create_connection((host, port), timeout=timeout_s) as sock:
        sock.sendall(request)
        response = b""
        while b"\r\n" not in response:
            chunk = sock.recv(4096)
            if not chunk:
                break
            response += chunk
    status = response.split(b"\r\n", 1)[0].split()
    if len(status) < 2 or not status[0].startswith(b"RTSP/") or not status[1].isdigit():
        raise ConnectionError(f"not an RTSP answer: {response[:80]!r}")
    return int(status[1])


class RtspServer:
    """A gst-rtsp-server child process serving ``mounts`` on 127.0.0.1 (see the module docstring).

    ``mounts`` maps mount paths to clips (played with ``"loop"``), or is a sequence of :class:`Mount`.
    With ``credentials`` every mount needs that basic-auth login; with ``tcp_only`` RTP goes only over
    the RTSP connection (a client asking for UDP is refused with 461, as behind a firewall).
    :meth:`stop` and :meth:`kill` keep the port for a later :meth:`start`; :meth:`close` (and leaving
    ``with``) also deletes the server's directory (its config and log) unless it was given as ``directory``.
    """

    def __init__(
        self,
        mounts: Mapping[str, Path] | Sequence[Mount],
        *,
        credentials: Credentials | None = None,
        tcp_only: bool = False,
        directory: Path | None = None,
        python: Path | None = None,
        start_timeout_s: float = 15.0,
        stop_timeout_s: float = 5.0,
    ) -> None:
        self.mounts: tuple[Mount, ...] = (
            tuple(Mount(path, clip) for path, clip in mounts.items()) if isinstance(mounts, Mapping) else tuple(mounts)
        )
        if not self.mounts:
            raise ValueError("an RTSP server needs at least one mount")
        for mount in self.mounts:
            if not mount.path.startswith("/"):
                raise ValueError(f"a mount path starts with '/': {mount.path!r}")
            if not mount.clip.is_file():
                raise FileNotFoundError(f"no clip at {mount.clip}")
        self.credentials = credentials
        self.tcp_only = tcp_only
        self._own_directory = directory is None
        self.directory = directory if directory is not None else Path(tempfile.mkdtemp(prefix="outpost-rtsp-"))
        self.directory.mkdir(parents=True, exist_ok=True)
        self._python = python
        self._start_timeout_s = start_timeout_s
        self._stop_timeout_s = stop_timeout_s
        self.live_since = time.monotonic()
        """When (``time.monotonic()``) "live" mounts began playing their clip's first frame."""
        self._port = 0
        self._process: subprocess.Popen[bytes] | None = None
        self._frozen = False
        self._closed = False
        self.startup_s: float | None = None
        """How long the last :meth:`start` took, until ready."""

    # --- addresses -------------------------------------------------------------------------------

    @property
    def host(self) -> str:
        return LOOPBACK

    @property
    def port(self) -> int:
        """The server's port (0 until the first start)."""
        return self._port

    @property
    def log_path(self) -> Path:
        """The server's stdout and stderr, appended across starts."""
        return self.directory / "rtsp-server.log"

    def url(self, path: str | None = None, *, credentials: Credentials | Literal["server"] | None = "server") -> str:
        """``rtsp://[user:password@]127.0.0.1:PORT/path`` of ``path`` (the first mount by default).

        The login is the server's own by default; pass other ``credentials`` (a wrong password), or
        None for none.
        """
        if self._port == 0:
            raise ServerStateError("the RTSP server has no port before its first start")
        login = self.credentials if credentials == "server" else credentials
        userinfo = ""
        if login is not None:
            userinfo = f"{urllib.parse.quote(login.user, safe='')}:{urllib.parse.quote(login.password, safe='')}@"
        return f"rtsp://{userinfo}{LOOPBACK}:{self._port}{path if path is not None else self.mounts[0].path}"

    # --- state -------------------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def frozen(self) -> bool:
        return self._frozen and self.running

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None and self.running else None

    # --- lifecycle ---------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the server and return once it is ready; the port stays that of the first start.

        Raises :class:`ServerStartError` (with the tail of its log) if it exits or is not ready within
        ``start_timeout_s``, :class:`ServerStateError` if it is running or closed.
        """
        if self._closed:
            raise ServerStateError("this RtspServer is closed; make a new one")
        if self.running:
            raise ServerStateError(f"the RTSP server is already running on port {self._port}")
        python = self._python or gstreamer_python()
        if python is None:
            raise ServerStartError(unavailable_reason() or "no Python with GStreamer's RTSP server bindings")
        config = self.directory / "rtsp-server.json"
        config.write_text(
            json.dumps(
                {
                    "port": self._port,
                    "mounts": [
                        {"path": mount.path, "clip": str(mount.clip.resolve()), "playback": mount.playback}
                        for mount in self.mounts
                    ],
                    "user": self.credentials.user if self.credentials else None,
                    "password": self.credentials.password if self.credentials else None,
                    "epoch": self.live_since,
                    "tcp_only": self.tcp_only,
                    "parent": os.getpid(),
                }
            )
        )
        began = time.monotonic()
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(  # noqa: S603 - our own script, under a Python found here
                [str(python), str(SERVE_SCRIPT), str(config)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a Ctrl-C in the terminal stops pytest, which stops the server
            )
        self._frozen = False
        try:
            self._wait_ready(began, offset)
        except BaseException:
            self.kill()
            raise
        self.startup_s = time.monotonic() - began

    def stop(self) -> None:
        """SIGTERM the server (thawing it if frozen) and SIGKILL it after ``stop_timeout_s``; clients see the
        connection close."""
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                process.terminate()
                if self._frozen:
                    process.send_signal(signal.SIGCONT)  # a stopped process handles SIGTERM only once continued
        self._frozen = False
        try:
            process.wait(self._stop_timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def kill(self) -> None:
        """SIGKILL the server, as a crash or a power cut would (works when frozen too)."""
        process, self._process = self._process, None
        self._frozen = False
        if process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        process.wait()

    def restart(self) -> None:
        """Stop the server and start it again on the same port."""
        self.stop()
        self.start()

    def freeze(self) -> None:
        """SIGSTOP the server: connections stay open but nothing moves (a hung camera)."""
        process = self._require_running()
        process.send_signal(signal.SIGSTOP)
        self._frozen = True
        _wait_for_state(process.pid, "T", self._stop_timeout_s)

    def thaw(self) -> None:
        """SIGCONT a frozen server; it carries on where it stopped."""
        process = self._require_running()
        process.send_signal(signal.SIGCONT)
        self._frozen = False

    def close(self) -> None:
        """Stop the server and delete its directory (if it made it); it cannot be started again."""
        try:
            self.stop()
        finally:
            self._closed = True
            if self._own_directory:
                shutil.rmtree(self.directory, ignore_errors=True)

    def log_tail(self, offset: int = 0) -> str:
        """The last lines of the server's log after byte ``offset``, for messages."""
        try:
            with self.log_path.open("rb") as log:
                log.seek(offset)
                text = log.read().decode(errors="replace").rstrip()
        except FileNotFoundError:
            return "(no log)"
        return "\n".join(text.splitlines()[-_TAIL_LINES:]) if text else "(empty)"

    def __enter__(self) -> Self:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # --- internals ---------------------------------------------------------------------------------

    def _require_running(self) -> subprocess.Popen[bytes]:
        if self._process is None or self._process.poll() is not None:
            raise ServerStateError("the RTSP server is not running")
        return self._process

    def _wait_ready(self, began: float, offset: int) -> None:
        process = self._require_running()
        deadline = began + self._start_timeout_s
        pending = list(self.mounts)
        while True:
            if process.poll() is not None:
                raise ServerStartError(
                    f"the RTSP server exited with code {process.returncode} while starting:\n{self.log_tail(offset)}"
                )
            if self._port == 0:
                self._port = self._announced_port(offset)
            if self._port != 0 and self._listening(offset):
                pending = [mount for mount in pending if not self._describes(mount)]
                if not pending:
                    return
            if time.monotonic() >= deadline:
                raise ServerStartError(
                    f"the RTSP server was not ready (DESCRIBE of {', '.join(m.path for m in pending)} answering 200) "
                    f"within {self._start_timeout_s:g} s:\n{self.log_tail(offset)}"
                )
            time.sleep(_POLL_INTERVAL_S)

    def _announced_port(self, offset: int) -> int:
        for line in self._log_lines(offset):
            if line.startswith(_READY_PREFIX):
                return int(line.removeprefix(_READY_PREFIX))
        return 0

    def _listening(self, offset: int) -> bool:
        return any(line.startswith(_READY_PREFIX) for line in self._log_lines(offset))

    def _log_lines(self, offset: int) -> list[str]:
        try:
            with self.log_path.open("rb") as log:
                log.seek(offset)
                return log.read().decode(errors="replace").splitlines()
        except FileNotFoundError:
            return []

    def _describes(self, mount: Mount) -> bool:
        try:
            return describe(LOOPBACK, self._port, mount.path, self.credentials) == 200
        except (OSError, ConnectionError):
            return False


def _wait_for_state(pid: int, state: str, timeout_s: float) -> None:
    """Wait until ``/proc/PID/stat`` shows ``state`` (``T``: stopped by a signal)."""
    deadline = time.monotonic() + timeout_s
    stat = Path(f"/proc/{pid}/stat")
    while time.monotonic() < deadline:
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            return  # gone, or not Linux: nothing to wait for
        if fields and fields[0] == state:
            return
        time.sleep(_POLL_INTERVAL_S)
