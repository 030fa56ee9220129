"""Each gateway's desired config: resolved from its layers, versioned, and marked once the broker has it.

The version of a gateway's desired config increases only when its resolved config changes (compared by
digest): a layer repeating a default, or a change that does not reach it, leaves it alone. A gateway
that moved to another village keeps its version but is signed again (the signature binds the village).
Every change clears ``published_ms``, so the publisher sends exactly the rows whose ``published_ms`` is
unset; marking a row published names the version and village it sent, so a change made meanwhile is
never marked published by mistake.
"""

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from sqlalchemy import Table, and_, bindparam, delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from fleet.configs.layers import GATEWAY_CONFIG
from fleet.configs.resolve import canonical, digest
from fleet.db.in_lists import in_chunks
from fleet.db.schema import GatewayConfigRow, GatewayRow
from fleet.errors import InvalidRequestError
from fleet.layers.scope import GatewayPlace, LayerKey
from protocol.codec import DEFAULT_MAX_PAYLOAD_BYTES
from protocol.gateway_config import GatewayConfig

logger = logging.getLogger(__name__)

_ENVELOPE_BYTES: Final = 512
"""What a ConfigDesired adds around its config: ids, version, timestamps, the signature and key id."""
_ERRORS_SHOWN: Final = 3
_INVALID_CHARS: Final = 1_024


@dataclass(slots=True)
class Recomputed:
    """What a recomputation did: gateways reached, given a new desired version (or re-signing), left unchanged."""

    gateways: int = 0
    changed: list[str] = field(default_factory=list)
    invalid: dict[str, str] = field(default_factory=dict)
    unmanaged: int = 0


@dataclass(frozen=True, slots=True)
class Unpublished:
    """A desired config to publish: what the signature covers and the message carries."""

    gateway_id: str
    village_id: str
    version: int
    config: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Published:
    gateway_id: str
    village_id: str
    version: int
    signature: str
    key_id: str


def fits_the_gateway(config: GatewayConfig) -> str | None:
    """Why ``config`` cannot reach a gateway in one message (its decoder's 64 KiB limit), or None."""
    size = len(config.__pydantic_serializer__.to_json(config)) + _ENVELOPE_BYTES
    if size > DEFAULT_MAX_PAYLOAD_BYTES:
        return f"the config is about {size} bytes as a message, over the gateway's {DEFAULT_MAX_PAYLOAD_BYTES}"
    return None


async def recompute(
    session: AsyncSession,
    reached: Sequence[GatewayPlace],
    layers: Mapping[LayerKey, Mapping[str, Any]],
    now_ms: int,
    *,
    refuse_invalid: bool,
    revoked_key_ids: Sequence[str] = (),
) -> Recomputed:
    """Bring the desired configs of the ``reached`` gateways in line with ``layers``, in ``session``'s transaction.

    With ``refuse_invalid`` (a layer being written) a gateway whose config would not validate refuses the
    whole change with :class:`InvalidRequestError` naming it, and nothing is written by the caller's
    transaction. Without (a reconciliation) such a gateway keeps its last good desired config and is
    marked ``invalid`` with the reason, for the API to show. Every config names ``revoked_key_ids`` (the fleet's
    retired signing keys) besides any its layers revoke."""
    outcome = Recomputed(gateways=len(reached))
    rows = await _rows(session, [place.gateway_id for place in reached])
    for place in reached:
        row = rows.get(place.gateway_id)
        applying = [overrides for _, overrides in place.chain(layers)]
        if not applying:
            outcome.unmanaged += 1
            if row is not None and row.config is not None:
                _unmanage(row, now_ms)
                outcome.changed.append(place.gateway_id)
            continue
        try:
            config = GATEWAY_CONFIG.resolve(applying)
            revoked = sorted(set(config.revoked_signing_keys) | set(revoked_key_ids))
            if revoked != config.revoked_signing_keys:
                config = GatewayConfig.model_validate(config.model_dump() | {"revoked_signing_keys": revoked})
            problem = fits_the_gateway(config)
            if problem is not None:
                raise ValueError(problem)
        except ValueError as exc:
            outcome.invalid[place.gateway_id] = str(exc)
            if not refuse_invalid and row is not None and row.invalid != str(exc)[:_INVALID_CHARS]:
                row.invalid = str(exc)[:_INVALID_CHARS]
            continue
        if row is None:
            row = GatewayConfigRow(gateway_id=place.gateway_id, version=0)
            session.add(row)
        if _desire(row, place.village_id, config, now_ms):
            outcome.changed.append(place.gateway_id)
    if refuse_invalid and outcome.invalid:
        shown = "; ".join(f"gateway {g}: {why}" for g, why in sorted(outcome.invalid.items())[:_ERRORS_SHOWN])
        more = len(outcome.invalid) - _ERRORS_SHOWN
        raise InvalidRequestError(
            f"the change would leave {len(outcome.invalid)} gateways without a valid config: {shown}"
            + (f" (and {more} more)" if more > 0 else "")
        )
    return outcome


def _desire(row: GatewayConfigRow, village_id: str, config: GatewayConfig, now_ms: int) -> bool:
    """Make ``config`` the row's desired config; True if it must be (re)published."""
    row.invalid = None
    sha = digest(config)
    if sha != row.config_sha256:
        # Above anything the gateway reported, so it never ignores the new one as older than what it runs.
        row.version = max(row.version or 0, row.reported_version or 0) + 1
        row.config = canonical(config)
        row.config_sha256 = sha
    elif row.village_id == village_id:
        return False
    row.village_id = village_id
    row.changed_ms = now_ms
    row.published_ms = None
    row.signature = None
    row.key_id = None
    return True


def _unmanage(row: GatewayConfigRow, now_ms: int) -> None:
    """No layer reaches the gateway any more: the fleet stops pushing; it keeps running what it has.

    The version is kept, so that a layer reaching it later continues above it."""
    row.config = None
    row.config_sha256 = None
    row.invalid = None
    row.published_ms = None
    row.signature = None
    row.key_id = None
    row.changed_ms = now_ms


async def _rows(session: AsyncSession, gateway_ids: Sequence[str]) -> dict[str, GatewayConfigRow]:
    rows: dict[str, GatewayConfigRow] = {}
    for chunk in in_chunks(gateway_ids):
        found = await session.scalars(select(GatewayConfigRow).where(GatewayConfigRow.gateway_id.in_(chunk)))
        rows.update((row.gateway_id, row) for row in found)
    return rows


async def forget_removed_gateways(session: AsyncSession) -> int:
    """Drop the rows of gateways no longer in the registry; return how many."""
    gone = select(GatewayRow.id).where(GatewayRow.id == GatewayConfigRow.gateway_id).exists()
    result = await session.execute(delete(GatewayConfigRow).where(~gone))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


async def unpublished(session: AsyncSession, after: str, limit: int) -> list[Unpublished]:
    """Up to ``limit`` desired configs not yet taken by the broker, gateway ids after ``after``, in id order."""
    query = (
        select(
            GatewayConfigRow.gateway_id, GatewayConfigRow.village_id, GatewayConfigRow.version, GatewayConfigRow.config
        )
        .where(
            GatewayConfigRow.published_ms.is_(None),
            GatewayConfigRow.config.is_not(None),
            GatewayConfigRow.gateway_id > after,
        )
        .order_by(GatewayConfigRow.gateway_id)
        .limit(limit)
    )
    return [
        Unpublished(gateway_id, village_id, version, config)
        for gateway_id, village_id, version, config in (await session.execute(query)).all()
        if village_id is not None and config is not None
    ]


async def mark_published(session: AsyncSession, sent: Sequence[Published], now_ms: int) -> None:
    """Record that the broker took these, in one statement run for all of them; a row changed since is left."""
    if not sent:
        return
    table = GatewayConfigRow.__table__
    assert isinstance(table, Table)
    statement = (
        update(table)
        .where(
            and_(
                table.c.gateway_id == bindparam("g"),
                table.c.version == bindparam("v"),
                table.c.village_id == bindparam("vil"),
                table.c.published_ms.is_(None),
            )
        )
        .values(published_ms=now_ms, signature=bindparam("sig"), key_id=bindparam("kid"))
    )
    params = [
        {"g": s.gateway_id, "v": s.version, "vil": s.village_id, "sig": s.signature, "kid": s.key_id} for s in sent
    ]
    await session.execute(statement, params)


async def resign_all_but(session: AsyncSession, key_id: str) -> int:
    """Queue every config published under another key for publishing again (same version): a rotated key."""
    result = await session.execute(
        update(GatewayConfigRow)
        .where(GatewayConfigRow.key_id.is_not(None), GatewayConfigRow.key_id != key_id)
        .values(published_ms=None, signature=None, key_id=None)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
