"""A kind of layered document: a layer checked on its own when written, and a chain of layers resolved.

A layer holds only the keys it sets (a partial model as JSON). Resolution is a deep merge: mappings merged key
by key, to any depth, and anything else (numbers, strings, null, lists) replaced whole by the later layer. Lists
are never merged element by element: a device list set at village level and another at gateway level would
otherwise mix two people's intentions. Merging starts from the defaults, so the result is the whole document,
and two layer sets that mean the same document (a layer repeating a default) resolve to the same value.

A layer is checked on its own when written: merged onto the defaults it must validate strictly, so unknown keys,
values of the wrong type or out of range are refused at any depth, with one line naming where.
"""

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Generic, TypeVar

from pydantic import BaseModel, ValidationError

from fleet.errors import InvalidRequestError
from fleet.layers.scope import LayerKey, Scope

M = TypeVar("M", bound=BaseModel)
Overrides = Mapping[str, Any]
_ERRORS_SHOWN: Final = 5


def deep_merge(base: Overrides, override: Overrides) -> dict[str, Any]:
    """``base`` with ``override`` on top: mappings merged recursively, every other value replaced whole."""
    merged = dict(base)
    for key, value in override.items():
        current = merged.get(key)
        if isinstance(value, Mapping) and isinstance(current, Mapping):
            merged[key] = deep_merge(current, value)
        else:
            merged[key] = value
    return merged


def summary(error: ValidationError) -> str:
    """A validation error in one line: ``where: what`` for its first problems."""
    details = error.errors(include_url=False, include_input=False, include_context=False)
    shown = "; ".join(f"{'.'.join(map(str, d['loc'])) or 'document'}: {d['msg']}" for d in details[:_ERRORS_SHOWN])
    more = f" (and {len(details) - _ERRORS_SHOWN} more)" if len(details) > _ERRORS_SHOWN else ""
    return shown + more


@dataclass(frozen=True, slots=True)
class Resolved(Generic[M]):
    """What a chain of layers makes: the value, the layers that contributed, and those left out and why."""

    value: M
    applied: tuple[LayerKey, ...] = ()
    ignored: dict[LayerKey, str] = field(default_factory=dict)


class LayeredModel(Generic[M]):
    """One kind of layered document: ``model`` with its ``defaults``, set at ``scopes``."""

    def __init__(
        self,
        noun: str,
        model: type[M],
        *,
        scopes: tuple[Scope, ...],
        max_bytes: int,
        max_depth: int,
        defaults: M | None = None,
        also_check: Callable[[M], str | None] = lambda value: None,
    ) -> None:
        """``noun`` names the kind in messages ("config layer"); ``also_check`` returns a problem the model alone
        does not catch (one line, where first), or None."""
        self.noun = noun
        self.model = model
        self.scopes = scopes
        self.max_bytes = max_bytes
        self.max_depth = max_depth
        self.defaults = defaults if defaults is not None else model()
        self._default_document = self.defaults.model_dump(mode="json")
        self._also_check = also_check

    def label(self, key: LayerKey) -> str:
        return f"{key[0].value} {self.noun} {key[1]!r}"

    def check(self, overrides: Overrides, key: LayerKey) -> dict[str, Any]:
        """``overrides`` as a layer at ``key`` may hold them, or :class:`InvalidRequestError` saying in one line
        what is wrong."""
        label = self.label(key)
        if key[0] not in self.scopes:
            names = [scope.value for scope in self.scopes]
            places = f"{', '.join(names[:-1])} or {names[-1]}" if len(names) > 1 else names[0]
            raise InvalidRequestError(f"{label}: a {self.noun} is set for a {places} only")
        if _depth(overrides) > self.max_depth:
            raise InvalidRequestError(f"{label} nests deeper than any valid one ({self.max_depth} levels)")
        try:
            size = len(json.dumps(overrides, allow_nan=False))
        except ValueError as exc:
            raise InvalidRequestError(f"{label} is not plain JSON: {exc}") from None
        if size > self.max_bytes:
            raise InvalidRequestError(f"{label} is {size} bytes of JSON, over the {self.max_bytes}-byte limit")
        try:
            self.validated(deep_merge(self._default_document, overrides))
        except ValueError as exc:
            raise InvalidRequestError(f"{label} is not valid: {exc}") from None
        return dict(overrides)

    def validated(self, document: Overrides) -> M:
        """``document`` as the model, validated strictly as JSON; :class:`ValueError` with a one-line summary."""
        try:
            text = json.dumps(document, allow_nan=False)
        except ValueError as exc:  # NaN or infinity: JSON cannot carry them
            raise ValueError(f"not valid JSON: {exc}") from None
        try:
            value = self.model.model_validate_json(text, strict=True)
        except ValidationError as exc:
            raise ValueError(summary(exc)) from None
        problem = self._also_check(value)
        if problem is not None:
            raise ValueError(problem)
        return value

    def merge(self, layers: Iterable[Overrides], base: M | None = None) -> dict[str, Any]:
        """``base`` (the defaults) with each layer merged on top, in order (the last one wins)."""
        merged: dict[str, Any] = base.model_dump(mode="json") if base is not None else dict(self._default_document)
        for layer in layers:
            merged = deep_merge(merged, layer)
        return merged

    def resolve(self, layers: Iterable[Overrides]) -> M:
        """What ``layers`` (most general first) make over the defaults; :class:`ValueError` if it is not valid."""
        return self.validated(self.merge(layers))

    def resolve_leniently(self, layers: Iterable[tuple[LayerKey, Overrides]], base: M | None = None) -> Resolved[M]:
        """What ``layers`` (most general first) make over ``base`` (the defaults), leaving out a layer that does not
        validate over those above it (stored before the model changed, or one that does not fit) and saying why.

        Never raises: a kind that must go on working (alerting) goes on by the best document at hand."""
        value = base if base is not None else self.defaults
        document: dict[str, Any] = value.model_dump(mode="json")
        applied: list[LayerKey] = []
        ignored: dict[LayerKey, str] = {}
        for key, overrides in layers:
            candidate = deep_merge(document, overrides)
            try:
                value = self.validated(candidate)
            except ValueError as exc:
                ignored[key] = str(exc)
                continue
            document = candidate
            applied.append(key)
        return Resolved(value, tuple(applied), ignored)


def _depth(value: object, level: int = 0, limit: int = 64) -> int:
    if level > limit:
        return level
    if isinstance(value, Mapping):
        return max((_depth(item, level + 1, limit) for item in value.values()), default=level + 1)
    if isinstance(value, list):
        return max((_depth(item, level + 1, limit) for item in value), default=level + 1)
    return level
