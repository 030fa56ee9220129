"""Files written at enrollment: each atomically (a temporary file renamed over the old one) with its mode
from the start, and the set they replace kept in a backup directory.

Secrets (the gateway's private key, the settings with the broker password) are ``0600``, in a ``0700``
directory. The agent runs as its own user (``User=outpost`` in the unit): with ``group`` set, the settings
file is ``0640`` and the directory ``0750``, both of that group, so the agent can read them; the private
key stays ``0600`` unless the fleet serves updates (then ``0640`` like the settings: the agent signs its
downloads with it). Public files (CA, the fleet's signing key, the release keys) are ``0644``.
Every file is owned by whoever enrolls (root on a gateway), so the agent cannot change any of them. The
group is ``outpost`` when the system has one (never the agent user's primary group by default: a user made
without ``--group`` has ``nogroup``, which other daemons share); the unit runs the agent with the settings'
group (``Group=``). Without a group, :func:`agent_cannot_read` says why the agent will not start and what to
run.
"""

import grp
import os
import pwd
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

from edge.durable_file import replace_durably, sync_directory
from edge.errors import EnrollmentError

PUBLIC_MODE: Final = 0o644
SECRET_MODE: Final = 0o600
SHARED_SECRET_MODE: Final = 0o640
DIRECTORY_MODE: Final = 0o700
SHARED_DIRECTORY_MODE: Final = 0o750
AGENT_GROUP: Final = "outpost"
"""The unit's ``Group=``."""
AGENT_USER: Final = "outpost"
"""The unit's ``User=``."""


@dataclass(frozen=True, slots=True)
class Access:
    """Who may read the settings besides their owner: nobody (``gid`` None), or the agent's group."""

    gid: int | None = None
    name: str | None = None
    """The group's name, when it was chosen by name (the unit's ``Group=``)."""

    @classmethod
    def for_group(cls, group: str | None) -> "Access":
        """``group``'s access; None: the agent's group (``outpost``) if this system has it, else nobody's;
        an empty name: nobody's."""
        if group is None:
            try:
                return cls(grp.getgrnam(AGENT_GROUP).gr_gid, AGENT_GROUP)
            except KeyError:
                return cls()
        if not group:
            return cls()
        try:
            return cls(grp.getgrnam(group).gr_gid, group)
        except KeyError:
            raise EnrollmentError(f"there is no group {group!r} (the agent's; create it, or give --group '')") from None

    @property
    def group_name(self) -> str | None:
        """The group's name, for the unit's ``Group=``; None for nobody's (or a group without a name)."""
        if self.gid is None or self.name is not None:
            return self.name
        try:
            return grp.getgrgid(self.gid).gr_name
        except KeyError:
            return None

    @property
    def directory_mode(self) -> int:
        return DIRECTORY_MODE if self.gid is None else SHARED_DIRECTORY_MODE

    @property
    def settings_mode(self) -> int:
        return SECRET_MODE if self.gid is None else SHARED_SECRET_MODE


def agent_cannot_read(access: Access, directory: Path, readable: list[Path], user: str = AGENT_USER) -> str | None:
    """Why the agent, run by the unit as ``user`` with ``access``'s group, could not read ``readable`` (the
    settings and the files they name) in ``directory``, and what to run about it; None when it can."""
    try:
        account = pwd.getpwnam(user)
    except KeyError:
        account = None
    if account is not None and (access.gid is not None or account.pw_uid == os.geteuid()):
        return None
    files = " ".join(str(path) for path in readable)
    fix = f"sudo chgrp {AGENT_GROUP} {directory} {files} && sudo chmod 0750 {directory} && sudo chmod 0640 {files}"
    if account is None:
        return (
            f"there is no user {user!r} here, and the systemd unit runs the agent as that user: systemd will not "
            f"start it. Create the user (docs/GATEWAY.md): sudo adduser --system --group --home /var/lib/outpost "
            f"--no-create-home {user} && sudo usermod -aG gpio,video {user}; then let it read the settings: {fix}"
        )
    try:
        grp.getgrnam(AGENT_GROUP)
    except KeyError:
        fix = f"sudo addgroup --system {AGENT_GROUP} && sudo adduser {user} {AGENT_GROUP} && {fix}"
    return (
        f"the settings are readable by their owner only ({directory} {DIRECTORY_MODE:o}, files {SECRET_MODE:o}) and "
        f"the agent runs as {user!r}, which cannot read them: it will not start. Let it read them: {fix}"
    )


def prepare_directory(directory: Path, access: Access) -> None:
    """Create ``directory`` (and its parents) if needed and give it its mode and group."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        os.chmod(directory, access.directory_mode)
        if access.gid is not None:
            os.chown(directory, -1, access.gid)
    except OSError as exc:
        raise EnrollmentError(f"cannot prepare {directory}: {exc}") from exc


def write_atomically(path: Path, data: str, mode: int, gid: int | None = None) -> Path:
    """Write ``data`` to ``path`` durably (:func:`edge.durable_file.replace_durably`) with ``mode`` (and group
    ``gid``) set before any byte is written."""
    try:
        replace_durably(path, data, mode, gid)
    except OSError as exc:
        raise EnrollmentError(f"cannot write {path}: {exc}") from exc
    return path


def back_up(paths: Iterable[Path], directory: Path, now: datetime | None = None) -> Path | None:
    """Move those of ``paths`` that exist into a new ``backup-<UTC time>`` directory (``0700``) inside
    ``directory``; return it, or None when there was nothing to keep."""
    existing = [path for path in paths if path.exists()]
    if not existing:
        return None
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%S%fZ")
    backup = directory / f"backup-{stamp}"
    try:
        backup.mkdir(mode=DIRECTORY_MODE)
        os.chmod(backup, DIRECTORY_MODE)
        for path in existing:
            os.replace(path, backup / path.name)
        sync_directory(directory)
    except OSError as exc:
        raise EnrollmentError(f"cannot back up the previous enrollment into {backup}: {exc}") from exc
    return backup
