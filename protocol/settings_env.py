"""Environment variables checked against the settings they claim to set.

pydantic-settings reads the variables it knows and ignores the rest, so a typo (``OUTPOST_FLEET_DATABSE_URL``)
would leave a setting at its default without a word. :class:`KnownVariablesOnly` is the environment source both
services use instead: every variable with the service's prefix must name a setting (a field, a section's field,
or any key under a mapping), or the start stops naming each unknown one and the closest setting's name, never
its value (it may be a password).
"""

import difflib
import os
from collections.abc import Iterator, Mapping
from types import UnionType
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError
from pydantic_core import InitErrorDetails, PydanticCustomError
from pydantic_settings import BaseSettings, EnvSettingsSource

from protocol.identifiers import IDENTIFIER_PATTERN, IDENTIFIER_RULE

# What an environment variable may name below a setting: a model's fields (by lower-case name, each with what
# may follow it), or None for anything (a dict's keys).
_Names = dict[str, "_Names | None"]


class KnownVariablesOnly(EnvSettingsSource):
    """The environment, refusing every variable with the settings' prefix that names no setting (except
    ``not_settings``: variables of the same prefix that belong to something else)."""

    def __init__(self, settings_cls: type[BaseSettings], not_settings: frozenset[str] = frozenset()) -> None:
        super().__init__(settings_cls)
        self._not_settings = frozenset(name.upper() for name in not_settings)

    def __call__(self) -> dict[str, Any]:
        prefix, delimiter = self.env_prefix.upper(), self.env_nested_delimiter or "__"
        names = _names(self.settings_cls) or {}
        known = list(_paths(names, delimiter))
        unknown: list[InitErrorDetails] = []
        for variable in sorted(os.environ):
            if not variable.upper().startswith(prefix) or variable.upper() in self._not_settings:
                continue
            path = variable[len(prefix) :].lower()
            if _names_a_setting(names, path.split(delimiter)):
                continue
            close = difflib.get_close_matches(path, known, n=1)
            hint = f"did you mean {prefix}{close[0].upper()}?" if close else "no setting has a name like it"
            error = PydanticCustomError("unknown_environment_variable", "unknown setting: {hint}", {"hint": hint})
            unknown.append({"type": error, "loc": (variable,), "input": variable})
        if unknown:
            raise ValidationError.from_exception_data(self.settings_cls.__name__, unknown, hide_input=True)
        return super().__call__()


def _names(annotation: Any, seen: frozenset[type] = frozenset()) -> _Names | None:
    """What an environment variable may name below a setting of this type: nothing below a plain value."""
    origin = get_origin(annotation)
    if origin is Annotated:
        return _names(get_args(annotation)[0], seen)
    if origin in (Union, UnionType):
        merged: _Names = {}
        for member in get_args(annotation):
            names = _names(member, seen)
            if names is None:
                return None
            merged |= names
        return merged
    if annotation is dict or (isinstance(origin, type) and issubclass(origin, Mapping)) or annotation in seen:
        return None
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        inside = seen | {annotation}
        return {name.lower(): _names(field.annotation, inside) for name, field in annotation.model_fields.items()}
    return {}


def _names_a_setting(names: _Names | None, path: list[str]) -> bool:
    for part in path:
        if names is None:
            return True
        if part not in names:
            return False
        names = names[part]
    return True


def _paths(names: _Names, delimiter: str, above: str = "") -> Iterator[str]:
    for name, below in names.items():
        yield above + name
        if below:
            yield from _paths(below, delimiter, above + name + delimiter)


def settings_problems(exc: ValidationError, env_prefix: str, file: str | None = None) -> str:
    """Each problem of a service's settings on a line of its own, ``where: what``, never with the value given (a
    password may be among them). A missing setting says how to give it: in ``file`` (e.g. "the --config file")
    or as the ``env_prefix`` variable."""
    lines = []
    for error in exc.errors(include_url=False, include_input=False):
        where = ".".join(str(part) for part in error["loc"]) or "settings"
        if error["type"] == "missing":
            named = all(isinstance(part, str) for part in error["loc"])  # an environment variable can say it
            variable = env_prefix + "__".join(map(str, error["loc"])).upper() if named else None
            ways = [way for way in (f"in {file}" if file else None, f"as {variable}" if variable else None) if way]
            problem = f"missing: set it {' or '.join(ways)}" if ways else "missing"
        elif error["type"] == "string_pattern_mismatch" and error.get("ctx", {}).get("pattern") == IDENTIFIER_PATTERN:
            problem = f"not an id: {IDENTIFIER_RULE}"
        elif error["type"] == "extra_forbidden":
            problem = "not a setting (check its spelling and section)"
        else:
            problem = error["msg"]
        lines.append(f"  {where}: {problem}")
    return "\n".join(lines)
