"""Replacing a small file so that a power cut leaves either the old content or the new, never a mix or nothing.

The data goes to a temporary file in the same directory (created with its final permissions before a byte is
written), is fsynced, renamed over the target, and the directory is fsynced so the rename itself survives. Every
state file the gateway must not lose (applied config, config version floor, revoked keys, command memory,
enrollment files) is written this way. Blocking: call it on a worker thread from the event loop.
"""

import os
import tempfile
from pathlib import Path


def replace_durably(path: Path, data: str, mode: int = 0o600, gid: int | None = None) -> None:
    """Make ``data`` the content of ``path`` (mode ``mode``, group ``gid`` if given); raises OSError."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(descriptor, mode)  # mkstemp makes 0600; umask does not apply to fchmod
        if gid is not None:
            os.fchown(descriptor, -1, gid)
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    sync_directory(path.parent)


def sync_directory(directory: Path) -> None:
    """fsync ``directory``: the names created, renamed or removed in it survive a power cut."""
    descriptor = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
