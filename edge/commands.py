"""Answers the fleet's commands on the gateway: diagnostics, listing and audited fetching of snapshots, restart,
installing a renewed TLS client certificate (:mod:`edge.certificate_install`), starting an agent update
(:mod:`edge.updates.updater`: the answer says it started; its progress travels in the heartbeats).

:meth:`CommandHandler.handle` takes a decoded :class:`~protocol.messages.Command` and returns the
messages to publish; it never raises. Every command gets one :class:`~protocol.messages.CommandResponse`
(``ok=False`` with an ``error`` when refused or failed), except a repeated delivery of a request
already accepted (QoS 1 may deliver twice; anyone may replay a recording), which is ignored, in this run or
an earlier one: the request ids are kept on disk until they expire (:mod:`edge.command_memory`).

A gateway holding the fleet's key (``config_signing_key``) runs only commands signed with it for this
gateway (:mod:`protocol.command_signing`); an unsigned or forged one is refused before anything else.

A command older than its ``timeout_s`` (gateway clock minus the command's ``ts``) is refused as
expired, so one queued while the gateway was offline does not run hours later. One dated further in the future
than ``max_ahead_s`` (default :data:`DEFAULT_MAX_AHEAD_S`) is refused too: either clock is wrong, so its age, and
whether it expired, cannot be told; the refusal says by how much and which clocks to check.

``fetch_snapshot`` is the only way a camera frame leaves the gateway. It needs ``requested_by``,
``reason`` and an existing ``args.snapshot_id``; every attempt, granted or refused, is appended to
the audit log (JSON lines, fsynced) before the answer is built, and a fetch whose audit record
cannot be written is refused. A granted fetch returns the JPEG as the response's attachment and a
``snapshot_fetched`` :class:`~protocol.messages.DeviceEvent`, listed first, for the fleet's audit trail.
"""

import asyncio
import json
import logging
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Final
from uuid import UUID

from edge import AGENT_VERSION
from edge.certificate_install import CertificateInstaller, CertificateRefusedError
from edge.command_memory import CommandMemory, CommandMemoryError
from edge.config_signature import ConfigSignatures
from edge.envelope import EnvelopeStamper
from edge.errors import EdgeError, SnapshotError
from edge.snapshots import SnapshotInfo, SnapshotStore, is_snapshot_id
from protocol.clock import judge_source_time
from protocol.identifiers import is_identifier
from protocol.messages import (
    COMMAND_ARGS,
    AdapterState,
    Command,
    CommandName,
    CommandResponse,
    DeviceEvent,
    EventKind,
    Evidence,
    EvidenceValue,
    GatewayHealth,
    Message,
)

logger = logging.getLogger(__name__)

AUDIT_LOG_NAME: Final = "snapshot-audit.jsonl"
"""The audit log's file name in the gateway's state directory."""
LIST_ENTRIES: Final = 24
"""Snapshots named in one ``list_snapshots`` answer (with its 7 summary keys, within Evidence's 32)."""
LIST_ENTRY_FORMAT: Final = "id ts device_id reason"
"""How each ``snapshot_NN`` value of a listing reads: space-separated, the reason last (it may hold spaces)."""

DEFAULT_MAX_AHEAD_S: Final = 60.0
"""How far in the future a command may be dated by the gateway's clock: the skew two NTP-synchronised clocks never
reach; beyond it, one of the clocks is wrong."""

_TEXT_MAX: Final = 256  # a ShortText on the wire

AuditValue = str | int | float | bool | None


class CommandRefusedError(EdgeError):
    """A command cannot be carried out as asked; its message becomes the response's ``error``."""


class AuditLog:
    """Append-only JSON lines, each fsynced before :meth:`append` returns; blocking (call it in a thread)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def append(self, record: Mapping[str, AuditValue]) -> None:
        """Append ``record`` as one line; raises SnapshotError if it is not on disk afterwards."""
        line = json.dumps(record, ensure_ascii=False, sort_keys=True, allow_nan=False).encode("utf-8") + b"\n"
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                size = os.fstat(fd).st_size
                if size and os.pread(fd, 1, size - 1) != b"\n":
                    line = b"\n" + line  # a power cut cut the last record short: keep this one on its own line
                os.write(fd, line)
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            raise SnapshotError(f"cannot write the audit log {self.path}: {exc}") from exc


class CommandHandler:
    """Turns each command into the messages that answer it."""

    def __init__(
        self,
        stamper: EnvelopeStamper,
        snapshots: SnapshotStore,
        audit: AuditLog,
        health: Callable[[], GatewayHealth],
        request_restart: Callable[[], None],
        *,
        signatures: ConfigSignatures,
        memory: CommandMemory,
        certificates: CertificateInstaller,
        start_update: Callable[[str, str | None], str | None] | None = None,
        agent_version: str = AGENT_VERSION,
        max_ahead_s: float = DEFAULT_MAX_AHEAD_S,
    ) -> None:
        """``health`` gives the agent's vital signs (``GatewayAgent.health``); ``request_restart`` asks the
        agent to stop so that systemd starts it again: it is called from the event loop soon after
        :meth:`handle` returned the acknowledgement, so the caller queues that first. A command dated more than
        ``max_ahead_s`` ahead of this gateway's clock is refused."""
        if max_ahead_s < 0:
            raise ValueError("max_ahead_s is zero or more")
        self._max_ahead_ms = round(max_ahead_s * 1000)
        self._stamper = stamper
        self._snapshots = snapshots
        self._audit = audit
        self._health = health
        self._request_restart = request_restart
        self._agent_version = agent_version
        self._signatures = signatures
        self._memory = memory
        self._certificates = certificates
        self._start_update = start_update
        self._memory_loaded = False
        self._memory_lock = asyncio.Lock()  # one command at a time on the memory's worker thread

    async def handle(self, command: Command) -> list[Message]:
        """The messages answering ``command``, to publish in this order; never raises."""
        try:
            turned_away = await self._admission(command)
            if turned_away is not None:
                return turned_away
            refusal = self._refusal(command)
            if command.name is CommandName.FETCH_SNAPSHOT:
                return await self._fetch(command, refusal)
            if refusal is not None:
                logger.warning("command %s (%s) refused: %s", command.request_id, command.name, refusal)
                return [self._response(command, ok=False, error=refusal)]
            return [await self._run(command)]
        except Exception:
            logger.exception("command %s (%s) could not be answered", command.request_id, command.name)
            return []

    async def _admission(self, command: Command) -> list[Message] | None:
        """The answer to a command that is not the fleet's (a refusal) or was accepted before (none); None for a
        signed command seen the first time, now remembered until it expires."""
        forged = self._signatures.command_refusal(command)
        if forged is not None:
            logger.warning("command %s (%s) refused: %s", command.request_id, command.name, forged)
            return [self._response(command, ok=False, error=forged)]
        try:
            async with self._memory_lock:
                first = await asyncio.to_thread(self._remember, command)
        except CommandMemoryError as exc:
            logger.error("command %s (%s) refused: %s", command.request_id, command.name, exc)
            return [self._response(command, ok=False, error=f"cannot remember it, so it could run twice: {exc}")]
        if not first:
            logger.info("command %s (%s) was already answered; ignored", command.request_id, command.name)
            return []
        return None

    def _remember(self, command: Command) -> bool:
        """Note ``command`` as accepted until it expires (blocking: on a worker thread); False if it was before."""
        now_ms = self._stamper.clock()
        if not self._memory_loaded:
            self._memory.load(now_ms)
            self._memory_loaded = True
        return self._memory.remember(command.request_id, command.ts + round(command.timeout_s * 1000), now_ms)

    def _refusal(self, command: Command) -> str | None:
        """Why ``command`` must not run at all, whatever it is; None if it may."""
        if command.gateway_id != self._stamper.gateway_id:
            return f"addressed to gateway {command.gateway_id}, this is {self._stamper.gateway_id}"
        dated = judge_source_time(
            command.ts,
            self._stamper.clock(),
            max_age_ms=round(command.timeout_s * 1000),
            max_ahead_ms=self._max_ahead_ms,
        )
        if dated.skewed and dated.offset_ms > 0:
            return (
                f"dated {dated.offset_ms / 1000:.0f} s in the future by this gateway's clock (allowed "
                f"{self._max_ahead_ms / 1000:g} s): the gateway's or the fleet's clock is wrong; check their time sync"
            )
        if dated.skewed:
            return f"expired: issued {-dated.offset_ms / 1000:.0f} s ago, timeout {command.timeout_s:g} s"
        unknown = sorted(set(command.args) - COMMAND_ARGS.get(command.name, frozenset()))
        if unknown:
            return f"{command.name} takes no argument {', '.join(unknown)}"
        return None

    async def _run(self, command: Command) -> CommandResponse:
        try:
            match command.name:
                case CommandName.DIAGNOSTICS:
                    result = self._diagnostics()
                case CommandName.LIST_SNAPSHOTS:
                    result = self._list(command.args)
                case CommandName.RESTART_AGENT:
                    asyncio.get_running_loop().call_soon(self._restart, command.request_id)
                    result = {"restarting": True}
                case CommandName.INSTALL_CERTIFICATE:
                    result = await self._install_certificate(command.attachment)
                case CommandName.UPDATE_AGENT:
                    result = self._update(command.args)
                case _:  # a name added to the contract without a handler here
                    raise CommandRefusedError(f"command {command.name} is not supported by this gateway")
        except CommandRefusedError as exc:
            logger.warning("command %s (%s) refused: %s", command.request_id, command.name, exc)
            return self._response(command, ok=False, error=str(exc))
        except Exception as exc:
            logger.exception("command %s (%s) failed", command.request_id, command.name)
            return self._response(command, ok=False, error=f"failed: {type(exc).__name__}: {exc}")
        logger.info("command %s (%s) done", command.request_id, command.name)
        return self._response(command, ok=True, result=result)

    async def _install_certificate(self, pem: bytes | None) -> Evidence:
        if pem is None:
            raise CommandRefusedError("install_certificate carries the certificate as its attachment")
        try:
            return await asyncio.to_thread(self._certificates.install, pem)
        except CertificateRefusedError as exc:
            raise CommandRefusedError(f"certificate not installed: {exc}") from exc

    def _update(self, args: Mapping[str, EvidenceValue]) -> Evidence:
        if self._start_update is None:
            raise CommandRefusedError("this gateway takes no updates: its settings have no [updates]")
        version, job_id = args.get("version"), args.get("job_id")
        if not isinstance(version, str) or not (job_id is None or isinstance(job_id, str)):
            raise CommandRefusedError("update_agent takes version (and job_id) as text")
        refusal = self._start_update(version, job_id)
        if refusal is not None:
            raise CommandRefusedError(f"not updating: {refusal}")
        return {"version": version, "started": True}

    def _restart(self, request_id: UUID) -> None:
        logger.warning("restarting the agent as command %s asked", request_id)
        try:
            self._request_restart()
        except Exception:
            logger.exception("the restart asked by command %s failed", request_id)

    # --- diagnostics --------------------------------------------------------------------------------

    def _diagnostics(self) -> Evidence:
        """The agent's state in at most 20 keys: adapters as counts per state plus who is not running."""
        health = self._health()
        adapters = health.adapters
        result: Evidence = {
            "agent_version": self._agent_version[:_TEXT_MAX],
            "uptime_s": health.uptime_s,
            "cpu_percent": health.cpu_percent,
            "memory_percent": health.memory_percent,
            "disk_percent": health.disk_percent,
            "buffer_depth": health.buffer_depth,
            "buffer_bytes": health.buffer_bytes,
            "dropped_total": sum(health.dropped.values()),
            "adapters": len(adapters),
            "snapshots_enabled": self._snapshots.policy.enabled,
            "snapshots": self._snapshots.count,
            "snapshot_bytes": self._snapshots.disk_bytes,
            "snapshot_write_failures": self._snapshots.write_failures,
        }
        if health.temperature_c is not None:
            result["temperature_c"] = health.temperature_c
        if health.uplink_rtt_ms is not None:
            result["uplink_rtt_ms"] = health.uplink_rtt_ms
        for state in AdapterState:
            devices = sorted(device for device, current in adapters.items() if current is state)
            result[f"adapters_{state.value}"] = len(devices)
            if devices and state is not AdapterState.RUNNING:
                result[f"{state.value}_devices"] = _joined(devices)
        return result

    # --- snapshots ----------------------------------------------------------------------------------

    def _list(self, args: Evidence) -> Evidence:
        """Newest first: a summary, then up to 24 ``snapshot_NN`` entries (see :data:`LIST_ENTRY_FORMAT`).

        ``args.device_id`` narrows to one camera; ``args.before_ts`` lists only older snapshots, so the
        next page starts at the ``ts`` of the last entry listed (``more`` says whether there is one).
        """
        device_id = args.get("device_id")
        before_ts = args.get("before_ts")
        if device_id is not None and not (isinstance(device_id, str) and is_identifier(device_id)):
            raise CommandRefusedError("args.device_id must be a device id")
        if before_ts is not None and type(before_ts) is not int:
            raise CommandRefusedError("args.before_ts must be an integer epoch-ms time")
        snapshots = self._snapshots.list(device_id)
        if before_ts is not None:
            snapshots = [info for info in snapshots if info.ts < before_ts]
        listed = snapshots[:LIST_ENTRIES]
        result: Evidence = {
            "count": len(snapshots),
            "total_bytes": sum(info.size_bytes for info in snapshots),
            "listed": len(listed),
            "more": len(snapshots) > len(listed),
            "format": LIST_ENTRY_FORMAT,
        }
        if snapshots:
            result["newest_ts"] = snapshots[0].ts
            result["oldest_ts"] = snapshots[-1].ts
        for index, info in enumerate(listed):
            result[f"snapshot_{index:02d}"] = f"{info.id} {info.ts} {info.device_id} {info.reason}"[:_TEXT_MAX]
        return result

    async def _fetch(self, command: Command, refusal: str | None) -> list[Message]:
        """Audit the attempt, then answer it: the JPEG and the audit event, or the reason it was refused."""
        snapshot_id = command.args.get("snapshot_id")
        info: SnapshotInfo | None = None
        jpeg: bytes | None = None
        error = refusal or _fetch_precondition(command, snapshot_id)
        if error is None and isinstance(snapshot_id, str):  # a well-formed id, says _fetch_precondition
            try:
                info, jpeg = await asyncio.to_thread(self._read_snapshot, snapshot_id)
            except SnapshotError as exc:
                error = str(exc)
            except Exception as exc:
                logger.exception("snapshot %s could not be read", snapshot_id)
                error = f"failed: {type(exc).__name__}: {exc}"
        record = self._audit_record(command, snapshot_id, info, error)
        try:
            await asyncio.to_thread(self._audit.append, record)
        except Exception as exc:
            logger.error("fetch %s refused: its audit record could not be written: %s", command.request_id, exc)
            error = "refused: the gateway's audit log cannot be written"
        if error is not None or info is None or jpeg is None:
            logger.warning("snapshot fetch %s refused: %s", command.request_id, error)
            result: Evidence = {"snapshot_id": snapshot_id[:_TEXT_MAX]} if isinstance(snapshot_id, str) else {}
            return [self._response(command, ok=False, result=result, error=error or "refused")]
        logger.info("snapshot %s of %s fetched by command %s", info.id, info.device_id, command.request_id)
        event = DeviceEvent(
            **self._stamper.stamp(),
            device_id=info.device_id,
            kind=EventKind.SNAPSHOT_FETCHED,
            evidence={
                "snapshot_id": info.id,
                "snapshot_ts": info.ts,
                "bytes": info.size_bytes,
                "requested_by": command.requested_by or "",
                "reason": command.reason or "",
                "request_id": str(command.request_id),
            },
        )
        result = {
            "snapshot_id": info.id,
            "device_id": info.device_id,
            "ts": info.ts,
            "kept_because": info.reason,
            "bytes": info.size_bytes,
            "content_type": "image/jpeg",
        }
        return [event, self._response(command, ok=True, result=result, attachment=jpeg)]

    def _read_snapshot(self, snapshot_id: str) -> tuple[SnapshotInfo, bytes]:
        return self._snapshots.info(snapshot_id), self._snapshots.read(snapshot_id)

    def _audit_record(
        self, command: Command, snapshot_id: EvidenceValue | None, info: SnapshotInfo | None, error: str | None
    ) -> dict[str, AuditValue]:
        return {
            "ts": self._stamper.clock(),
            "gateway_id": self._stamper.gateway_id,
            "request_id": str(command.request_id),
            "command_event_id": str(command.event_id),
            "command_ts": command.ts,
            "requested_by": command.requested_by,
            "reason": command.reason,
            "snapshot_id": snapshot_id[:80] if isinstance(snapshot_id, str) else snapshot_id,
            "device_id": info.device_id if info else None,
            "snapshot_ts": info.ts if info else None,
            "bytes": info.size_bytes if info else None,
            "granted": error is None,
            "error": error,
        }

    # --- responses ----------------------------------------------------------------------------------

    def _response(
        self,
        command: Command,
        *,
        ok: bool,
        result: Evidence | None = None,
        error: str | None = None,
        attachment: bytes | None = None,
    ) -> CommandResponse:
        return CommandResponse(
            **self._stamper.stamp(),
            request_id=command.request_id,
            ok=ok,
            result=result or {},
            attachment=attachment,
            error=error[:_TEXT_MAX] if error is not None else None,
        )


def _fetch_precondition(command: Command, snapshot_id: EvidenceValue | None) -> str | None:
    if not (command.requested_by or "").strip():
        return "refused: fetch_snapshot needs requested_by (who asks) for the audit trail"
    if not (command.reason or "").strip():
        return "refused: fetch_snapshot needs a reason for the audit trail"
    if snapshot_id is None:
        return "refused: fetch_snapshot needs args.snapshot_id"
    if not (isinstance(snapshot_id, str) and is_snapshot_id(snapshot_id)):
        return "refused: malformed snapshot id"
    return None


def _joined(devices: list[str]) -> str:
    """Comma-separated ids within one wire text, ending ``+N`` when some did not fit."""
    text = ""
    for index, device in enumerate(devices):
        rest = len(devices) - index
        candidate = f"{text},{device}" if text else device
        if len(candidate) + (len(f",+{rest - 1}") if rest > 1 else 0) > _TEXT_MAX:
            return f"{text},+{rest}" if text else f"+{rest}"
        text = candidate
    return text
