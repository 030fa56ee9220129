"""The agent's systemd unit, installed at enrollment with the paths of this gateway's settings.

The unit is the one ``outpost gateway unit`` prints (``edge/systemd/outpost-gateway.service``), with the
settings file and the ``outpost`` executable it runs replaced by this installation's (the ``outpost`` beside
the running Python, in its virtual environment), as absolute paths. It is started only
when asked (``--start``) and systemd is running: ``daemon-reload``, ``enable`` and ``restart`` (not
``enable --now``, which leaves a running agent on the credentials a re-enrollment just replaced).
"""

import grp
import logging
import re
import shutil
import subprocess
import sys
from collections.abc import Sequence
from importlib.resources import files
from pathlib import Path
from typing import Final

from edge.enrollment.files import PUBLIC_MODE, write_atomically
from edge.errors import EnrollmentError

logger = logging.getLogger(__name__)

UNIT_NAME: Final = "outpost-gateway.service"
DEFAULT_CONFIG: Final = Path("/etc/outpost/gateway.toml")
DEFAULT_EXECUTABLE: Final = "/opt/outpost/current/bin/outpost"
"""The template's placeholder for the ``outpost`` command, always replaced by :func:`unit_text`."""
GUARD_NAME: Final = "outpost-update-guard"
DEFAULT_GUARD_DIR: Final = Path("/usr/local/lib/outpost")
"""Where the update guard is installed: outside every slot, so a broken release cannot break it."""
DEFAULT_UPDATE_ROOT: Final = "/opt/outpost"
DEFAULT_STATE_DIR: Final = Path("/var/lib/outpost")
AGENT_GROUP_LINE: Final = "Group=outpost"
SUPPLEMENTARY_GROUPS: Final = ("gpio", "video", "dialout")
"""The template's ``SupplementaryGroups=``: the GPIO pins, cameras (V4L2) and serial ports (a Raspberry Pi's)."""
SYSTEMD_RUNNING_MARKER: Final = Path("/run/systemd/system")
"""Exists only while systemd is the init system (what sd_booted() checks)."""


def unit_text(
    config_path: Path,
    state_dir: Path,
    executable: Path | None = None,
    *,
    group: str | None = None,
    supplementary_groups: Sequence[str] = SUPPLEMENTARY_GROUPS,
    guard_dir: Path = DEFAULT_GUARD_DIR,
) -> str:
    """The unit, running ``executable`` (default: this installation's, :func:`agent_command`) on ``config_path``,
    as ``group`` (default: the template's ``outpost``) with ``supplementary_groups`` (none: the line goes).

    Every path is made absolute: systemd refuses a relative ``ExecStart=`` program, and the agent's working
    directory is its state directory, not where enrollment ran.
    """
    text = files("edge").joinpath(f"systemd/{UNIT_NAME}").read_text(encoding="utf-8")
    command = agent_command(executable)
    text = text.replace(DEFAULT_EXECUTABLE, " ".join(_systemd_word(word) for word in command))
    root = update_root(Path(command[0]))
    if root is not None:  # the guard's and the agent's update root: where this installation's slots are
        word = _systemd_word(str(root))
        for before in (" ", "-"):
            text = text.replace(f"{before}{DEFAULT_UPDATE_ROOT}\n", f"{before}{word}\n")
        guard = _systemd_word(str(guard_dir.absolute() / GUARD_NAME))
        text = text.replace(f"+{DEFAULT_GUARD_DIR / GUARD_NAME} ", f"+{guard} ")
    else:  # an installation without slots takes no updates: no guard, nothing to write beside its state
        text = "".join(line for line in text.splitlines(keepends=True) if not _update_line(line))
        text = text.replace(f" -{DEFAULT_UPDATE_ROOT}\n", "\n")
    text = text.replace(str(DEFAULT_CONFIG), _systemd_word(str(config_path.absolute())))
    if state_dir.absolute() != DEFAULT_STATE_DIR:  # the agent may write there too
        text = text.replace(
            f"ReadWritePaths={DEFAULT_STATE_DIR}", f"ReadWritePaths={DEFAULT_STATE_DIR} {state_dir.absolute()}"
        )
    if group is not None:
        text = text.replace(f"\n{AGENT_GROUP_LINE}\n", f"\nGroup={group}\n")
    wanted = f"SupplementaryGroups={' '.join(supplementary_groups)}\n" if supplementary_groups else ""
    return text.replace(f"SupplementaryGroups={' '.join(SUPPLEMENTARY_GROUPS)}\n", wanted)


def agent_command(executable: Path | None = None) -> list[str]:
    """How the unit starts ``outpost``: ``executable`` if given; else the ``outpost`` beside the running Python
    (``sys.executable``'s directory: this virtual environment's ``bin``); else that Python with ``-m outpost_cli``.
    Absolute paths, the Python's unresolved (a venv's ``python`` is a symlink to the system's)."""
    if executable is not None:
        return [str(executable.absolute())]
    prefix = Path(sys.prefix).absolute()
    if prefix.parent.name == "slots" and (prefix.parent.parent / "current").is_symlink():
        return [str(prefix.parent.parent / "current" / "bin" / "outpost")]  # updates switch what current is
    python = Path(sys.executable).absolute()
    found = shutil.which("outpost", path=str(python.parent))
    return [str(Path(found).absolute())] if found else [str(python), "-m", "outpost_cli"]


def _update_line(line: str) -> bool:
    """A line of the template only an installation with update slots keeps (the guard and its comments)."""
    return line.startswith("ExecStartPre=-+") or line.startswith(("# Before each start: rolls", "# /opt/outpost: "))


def update_root(executable: Path) -> Path | None:
    """The update root of an agent run as ``<root>/current/bin/outpost`` (None for any other installation)."""
    return executable.parent.parent.parent if executable.parent.parent.name == "current" else None


def install_guard(guard_dir: Path, systemd_dir: Path, root: Path) -> Path:
    """Install the update guard (``guard_dir``) and the timer that checks an update on trial in ``root``
    (``systemd_dir``)."""
    try:
        guard_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise EnrollmentError(f"cannot create {guard_dir}: {exc}") from exc
    source = files("edge").joinpath(f"systemd/{GUARD_NAME}")
    guard = write_atomically(guard_dir / GUARD_NAME, source.read_text(encoding="utf-8"), 0o755)
    for suffix in (".service", ".timer"):
        text = files("edge").joinpath(f"systemd/{GUARD_NAME}{suffix}").read_text(encoding="utf-8")
        text = text.replace(str(DEFAULT_GUARD_DIR / GUARD_NAME), _systemd_word(str(guard)))
        text = text.replace(f" {DEFAULT_UPDATE_ROOT}\n", f" {_systemd_word(str(root))}\n")
        write_atomically(systemd_dir / f"{GUARD_NAME}{suffix}", text, PUBLIC_MODE)
    return guard


def existing_groups(names: Sequence[str]) -> tuple[list[str], list[str]]:
    """``names`` split into the groups this system has and those it lacks (systemd refuses to start a unit
    whose ``SupplementaryGroups=`` names a group that does not exist)."""
    present: list[str] = []
    missing: list[str] = []
    for name in names:
        try:
            grp.getgrnam(name)
        except KeyError:
            missing.append(name)
        else:
            present.append(name)
    return present, missing


def _systemd_word(word: str) -> str:
    """``word`` as one argument of ``ExecStart=``: quoted if it has blanks; quotes, backslashes, ``%`` specifiers
    and ``$`` variables escaped."""
    escaped = word.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%").replace("$", "$$")
    return f'"{escaped}"' if re.search(r"\s", word) or '"' in word else escaped


def install_unit(unit_dir: Path, text: str) -> Path:
    try:
        unit_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise EnrollmentError(f"cannot create {unit_dir}: {exc}") from exc
    return write_atomically(unit_dir / UNIT_NAME, text, PUBLIC_MODE)


def systemd_running() -> bool:
    return SYSTEMD_RUNNING_MARKER.is_dir()


def start_agent(*, guarded: bool = False) -> None:
    """Reload systemd's units, enable the agent at boot and (re)start it now (``guarded``: and the update guard's
    timer)."""
    steps = [["daemon-reload"], ["enable", UNIT_NAME], ["restart", UNIT_NAME]]
    if guarded:
        steps.append(["enable", "--now", f"{GUARD_NAME}.timer"])
    for arguments in steps:
        command = ["systemctl", *arguments]
        try:
            subprocess.run(command, check=True, capture_output=True, text=True, timeout=60)  # noqa: S603
        except FileNotFoundError as exc:
            raise EnrollmentError("systemctl is not installed") from exc
        except subprocess.CalledProcessError as exc:
            raise EnrollmentError(f"{' '.join(command)} failed: {exc.stderr.strip() or exc.returncode}") from exc
        except subprocess.TimeoutExpired as exc:
            raise EnrollmentError(f"{' '.join(command)} did not finish within {exc.timeout} s") from exc
    logger.info("started %s", UNIT_NAME)
