"""The agent's systemd unit, installed at enrollment with the paths of this gateway's settings.

The unit is the one ``outpost gateway unit`` prints (``edge/systemd/outpost-gateway.service``), with the
settings file and the ``outpost`` executable it runs replaced by this installation's. It is started only
when asked (``--start``) and systemd is running: ``daemon-reload``, ``enable`` and ``restart`` (not
``enable --now``, which leaves a running agent on the credentials a re-enrollment just replaced).
"""

import logging
import shutil
import subprocess
import sys
from importlib.resources import files
from pathlib import Path
from typing import Final

from edge.enrollment.files import PUBLIC_MODE, write_atomically
from edge.errors import EnrollmentError

logger = logging.getLogger(__name__)

UNIT_NAME: Final = "outpost-gateway.service"
DEFAULT_CONFIG: Final = "/etc/outpost/gateway.toml"
DEFAULT_EXECUTABLE: Final = "/opt/outpost/.venv/bin/outpost"
DEFAULT_STATE_DIR: Final = Path("/var/lib/outpost")
SYSTEMD_RUNNING_MARKER: Final = Path("/run/systemd/system")
"""Exists only while systemd is the init system (what sd_booted() checks)."""


def unit_text(config_path: Path, state_dir: Path, executable: Path | None = None) -> str:
    """The unit, running ``executable`` (default: the ``outpost`` beside this Python) on ``config_path``."""
    text = files("edge").joinpath(f"systemd/{UNIT_NAME}").read_text(encoding="utf-8")
    program = executable or installed_executable()
    text = text.replace(DEFAULT_CONFIG, str(config_path))
    if program is not None:
        text = text.replace(DEFAULT_EXECUTABLE, str(program))
    if state_dir != DEFAULT_STATE_DIR:  # the agent may write there too
        text = text.replace(f"ReadWritePaths={DEFAULT_STATE_DIR}", f"ReadWritePaths={DEFAULT_STATE_DIR} {state_dir}")
    return text


def installed_executable() -> Path | None:
    """The ``outpost`` command of this installation (the virtual environment's), if there is one."""
    found = shutil.which("outpost", path=str(Path(sys.executable).parent))
    return Path(found) if found else None


def install_unit(unit_dir: Path, text: str) -> Path:
    try:
        unit_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise EnrollmentError(f"cannot create {unit_dir}: {exc}") from exc
    return write_atomically(unit_dir / UNIT_NAME, text, PUBLIC_MODE)


def systemd_running() -> bool:
    return SYSTEMD_RUNNING_MARKER.is_dir()


def start_agent() -> None:
    """Reload systemd's units, enable the agent at boot and (re)start it now."""
    for arguments in (["daemon-reload"], ["enable", UNIT_NAME], ["restart", UNIT_NAME]):
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
