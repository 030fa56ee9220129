"""Grafana uids: what Grafana accepts, and deriving one deterministically from a longer or freer name.

Grafana refuses a dashboard or folder uid longer than 40 characters or with characters other than
letters, digits, ``-`` and ``_`` (``util.IsValidShortUID``/``IsShortUIDTooLong``). Per-county
copies combine a dashboard's uid with a county id, which can break both rules; :func:`derive_uid`
keeps the readable combination when Grafana accepts it and otherwise shortens it with a hash of the
whole, so the same inputs always give the same uid (pushes stay idempotent) and different inputs
practically never collide.
"""

import hashlib
import re
from typing import Final

MAX_UID_LENGTH: Final = 40
_VALID: Final = re.compile(r"[A-Za-z0-9_-]{1,40}")
_INVALID_CHARACTERS: Final = re.compile(r"[^A-Za-z0-9_-]+")
_HASH_LENGTH: Final = 8


def is_valid_grafana_uid(uid: str) -> bool:
    """Whether Grafana accepts ``uid`` for a dashboard or folder."""
    return _VALID.fullmatch(uid) is not None


def derive_uid(*parts: str) -> str:
    """``parts`` joined with ``-`` if Grafana accepts that, else a readable prefix plus a hash of the whole.

    The fallback is ``<prefix>-<8 hex digits of SHA-256 of the joined parts>``, with the prefix the
    joined parts with every run of other characters replaced by ``-``, cut so the uid is 40 long.
    """
    if not parts or any(not part for part in parts):
        raise ValueError(f"a uid needs non-empty parts, got {parts!r}")
    joined = "-".join(parts)
    if is_valid_grafana_uid(joined):
        return joined
    digest = hashlib.sha256(joined.encode()).hexdigest()[:_HASH_LENGTH]
    prefix = _INVALID_CHARACTERS.sub("-", joined)[: MAX_UID_LENGTH - _HASH_LENGTH - 1].strip("-")
    return f"{prefix}-{digest}" if prefix else digest
