"""Updates on the wire: what kind of release a gateway installs, and how far an update of it has come.

A gateway reports its update in every heartbeat (``health.update``, :class:`UpdateReport`), and sends a heartbeat
at once when the state changes: the fleet's jobs read where each gateway stands from there. The report is
state, not an event, so nothing is lost while the gateway restarts into a new agent (or back into the old one):
the new agent reports ``health_check`` and then ``succeeded``; after a rollback the old one reports
``rolled_back`` with the reason, until the next update.
"""

import re
from enum import StrEnum
from typing import Annotated, Final

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from protocol.identifiers import EpochMillis, Identifier, ShortText

RELEASE_VERSION_PATTERN: Final = r"^[0-9A-Za-z][0-9A-Za-z.+!_-]{0,63}$"
"""A release's version: PEP 440 for agents (``0.2.0``, ``0.2.0rc1``), the firmware's own for nodes."""
RELEASE_VERSION_RE: Final = re.compile(RELEASE_VERSION_PATTERN)
ReleaseVersion = Annotated[str, StringConstraints(pattern=RELEASE_VERSION_PATTERN)]


class ReleaseKind(StrEnum):
    AGENT = "agent"
    """The gateway agent: Outpost's wheel and the wheels it depends on, installed into a virtual environment."""
    FIRMWARE = "firmware"
    """A sensor node's firmware: ``main.py`` and the ``.mpy`` modules, copied to the node's flash."""


class UpdateState(StrEnum):
    DEFERRED = "deferred"  # waiting: the gateway raised a critical alert in the last minutes (its siren may sound)
    DOWNLOADING = "downloading"
    VERIFYING = "verifying"
    INSTALLING = "installing"
    HEALTH_CHECK = "health_check"  # the new agent runs on trial
    SUCCEEDED = "succeeded"
    FAILED = "failed"  # nothing changed on the gateway: it runs what it ran
    ROLLED_BACK = "rolled_back"  # the new agent failed its health gate: the gateway runs the old one again

    @property
    def final(self) -> bool:
        return self in _FINAL


_FINAL: Final = frozenset({UpdateState.SUCCEEDED, UpdateState.FAILED, UpdateState.ROLLED_BACK})


class UpdateReport(BaseModel):
    """The gateway's latest update: which release, for which job, where it stands, and why it ended so."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True, allow_inf_nan=False)

    job_id: Identifier | None = Field(default=None, description="The fleet job that asked for it, if any.")
    kind: ReleaseKind
    version: ReleaseVersion
    state: UpdateState
    reason: ShortText | None = Field(default=None, description="Why it failed or was rolled back.")
    changed_ms: EpochMillis = Field(description="When it reached this state, by the gateway's clock.")
