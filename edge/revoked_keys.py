"""The fleet signing keys this gateway will never trust again, kept on its disk for good.

A config signed by a trusted key may name keys to revoke (``revoked_signing_keys``, from the fleet's
``configs.revoked_key_ids``): once it is accepted they are added here (``revoked-signing-keys.json`` in the
state directory, written whole and fsynced before the config runs) and from then on nothing signed by
them runs, configs or commands, even though the key file still lists them. The set only grows. An
unreadable file stops the agent: starting without it would trust a key the fleet revoked.

:meth:`RevokedKeys.add` blocks (disk and fsync): call it on a worker thread.
"""

import json
import re
from collections.abc import Collection
from pathlib import Path
from typing import Final

from edge.durable_file import replace_durably
from edge.errors import EdgeConfigError
from protocol.identifiers import KEY_ID_PATTERN

REVOKED_KEYS_NAME: Final = "revoked-signing-keys.json"


class RevokedKeys:
    def __init__(self, path: Path | None) -> None:
        """``path`` None: nothing is kept (a key-less development gateway, or a test)."""
        self.path = path
        self.ids: frozenset[str] = self._read()

    def add(self, key_ids: Collection[str]) -> None:
        """Revoke ``key_ids`` for good; raises OSError if that cannot be kept (the config naming them must not run)."""
        new = frozenset(key_ids) - self.ids
        if not new:
            return
        ids = self.ids | new
        if self.path is not None:
            replace_durably(self.path, json.dumps({"revoked": sorted(ids)}))
        self.ids = ids

    def _read(self) -> frozenset[str]:
        if self.path is None:
            return frozenset()
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return frozenset()
        except (OSError, UnicodeDecodeError) as exc:
            raise EdgeConfigError(f"cannot read the revoked signing keys {self.path}: {exc}") from exc
        try:
            ids = json.loads(text)["revoked"]
        except (ValueError, KeyError, TypeError) as exc:
            raise EdgeConfigError(f"the revoked signing keys {self.path} are damaged ({exc}); re-enroll") from exc
        if not isinstance(ids, list) or not all(isinstance(i, str) and re.fullmatch(KEY_ID_PATTERN, i) for i in ids):
            raise EdgeConfigError(f"the revoked signing keys {self.path} hold something other than key ids")
        return frozenset(ids)
