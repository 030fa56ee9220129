"""How every ``outpost fleet`` command reads and writes values: durations, instants, time zones, tables, JSON.

- **Durations** are read in one grammar (:mod:`protocol.durations`: ``90s``, ``30m``, ``2h``, ``7d``,
  ``1h30m``, a plain number of seconds) by every option that takes one (``--ttl``, ``--timeout``,
  ``--older-than``, ``--step``), through :func:`duration`.
- **Instants** (``--since``, ``--until``) are a duration back from now or a date/time; a date/time without an
  offset is read in the time zone the times are shown in (:func:`parse_instant_ms`).
- **Times** are shown in one zone: ``--tz`` or ``OUTPOST_TZ`` (an IANA name, ``UTC`` or ``local``), by default
  this machine's (:data:`TimeZone`, :func:`when`).
- **Output** is a table for people, or with ``--json`` (:data:`AsJson`) exactly what the fleet answered.
"""

import json
import sys
import tomllib
from collections.abc import Callable
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Annotated, Any, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import typer

from protocol.durations import EXAMPLES, DurationError, format_duration_ms, parse_duration_ms

AsJson = Annotated[
    bool, typer.Option("--json", help="Print exactly what the fleet answered, as JSON (for scripts), not a table.")
]

TIME_FORMAT: Final = "%Y-%m-%d %H:%M:%S %Z"
INSTANT_HELP: Final = "a duration back from now (30m, 2h, 7d) or a date/time (2024-05-01, 2024-05-01T08:00; in --tz)"


def parse_zone(text: str | tzinfo) -> tzinfo:
    """``--tz``: an IANA zone (``Asia/Shanghai``), ``UTC``, or ``local`` (this machine's zone)."""
    if isinstance(text, tzinfo):  # click hands a default through the parser too
        return text
    name = text.strip()
    if name.lower() == "local":
        return local_zone()
    if name.upper() in ("UTC", "Z"):
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise typer.BadParameter(
            f"{text!r} is no time zone this machine knows: give an IANA name like Asia/Shanghai, UTC, or local"
        ) from None


def local_zone() -> tzinfo:
    """This machine's time zone (``TZ``, else ``/etc/localtime``)."""
    zone = datetime.now().astimezone().tzinfo
    return UTC if zone is None else zone


TimeZone = Annotated[
    tzinfo | None,
    typer.Option(
        "--tz",
        envvar="OUTPOST_TZ",
        parser=parse_zone,
        metavar="ZONE",
        show_default=False,
        help="Show times (and read dates without an offset) in this zone: an IANA name like Asia/Shanghai, UTC, or "
        "local. Default: this machine's.",
    ),
]


def when(ms: int | None, tz: tzinfo | None) -> str:
    """An instant (epoch milliseconds) as a person reads it, in ``tz`` (None: this machine's zone); blank for None."""
    if ms is None:
        return ""
    return datetime.fromtimestamp(ms / 1000, tz or local_zone()).strftime(TIME_FORMAT)


def age_text(elapsed_ms: int) -> str:
    """How long ago, as a person reads it at a glance: ``45s``, ``4m``, ``2h05m``, ``3d04h`` (a duration the
    options read back)."""
    seconds = max(0, elapsed_ms) // 1000
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m"
    if seconds < 86400:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 86400}d{seconds % 86400 // 3600:02d}h"


def duration(
    *, at_least_ms: int = 0, at_most_ms: int | None = None, whole_seconds: bool = False
) -> Callable[[str | int], int]:
    """A Typer ``parser`` for an option that takes a duration: milliseconds, within the bounds given."""

    def parse(text: str | int) -> int:
        if isinstance(text, int):  # click hands a default through the parser too
            return text
        try:
            ms = parse_duration_ms(text)
        except DurationError as exc:
            raise typer.BadParameter(str(exc)) from None
        if ms < at_least_ms:
            raise typer.BadParameter(f"{text!r} is shorter than {format_duration_ms(at_least_ms)}")
        if at_most_ms is not None and ms > at_most_ms:
            raise typer.BadParameter(f"{text!r} is longer than {format_duration_ms(at_most_ms)}")
        if whole_seconds and ms % 1000:
            raise typer.BadParameter(f"{text!r}: give whole seconds")
        return ms

    return parse


DURATION_HELP: Final = f"A duration: {EXAMPLES}."


def parse_instant_ms(text: str, tz: tzinfo | None, now_ms: int, *, option: str = "--since") -> int:
    """``--since``/``--until``: a duration back from now (``30m``, ``2h``, ``1d``) or a date/time (``2024-05-01``,
    ``2024-05-01T08:00``, ``2024-05-01 08:00``) in ``tz`` unless it names its offset; epoch milliseconds."""
    try:
        return now_ms - parse_duration_ms(text)
    except DurationError:
        pass
    try:
        instant = datetime.fromisoformat(text.strip())
    except ValueError:
        raise typer.BadParameter(
            f"{text!r} is neither a duration ({EXAMPLES}) nor a date/time (2024-05-01T08:00)", param_hint=option
        ) from None
    if instant.tzinfo is None:
        instant = instant.replace(tzinfo=tz or local_zone())
    return round(instant.timestamp() * 1000)


def read_layer(source: str, keys: str) -> dict[str, Any]:
    """A layer of ``keys`` settings to send: a file (TOML if it ends in .toml, else JSON), or stdin (``-``, JSON)."""
    shown = "stdin" if source == "-" else source
    try:
        text = sys.stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
        document = tomllib.loads(text) if source.endswith(".toml") else json.loads(text)
    except (OSError, UnicodeDecodeError, ValueError) as exc:  # TOMLDecodeError and JSONDecodeError are ValueErrors
        typer.echo(f"cannot read {shown}: {exc}", err=True)
        raise typer.Exit(2) from exc
    if not isinstance(document, dict):
        typer.echo(f"{shown} must hold a JSON object (or a TOML table) of {keys} keys", err=True)
        raise typer.Exit(2)
    return document


def print_layer(layer: dict[str, Any], tz: tzinfo | None, *, as_json: bool) -> None:
    """A layer as stored (config or alert rules): its overrides as JSON on stdout, who set it and when on stderr;
    with ``as_json`` all the fleet answered."""
    if as_json:
        print_json(layer)
        return
    setter = f"set by {layer['updated_by']} at {when(layer['updated_ms'], tz)}"
    typer.echo(f"{layer['scope']} {layer['scope_id']}: {setter}", err=True)
    typer.echo(json.dumps(layer["overrides"], indent=2, sort_keys=True))


def confirmed(question: str) -> bool:
    """The user's yes to ``question`` (asked on stderr); no answer (stdin closed) is a no."""
    try:
        return typer.confirm(question, err=True)
    except typer.Abort:
        typer.echo("", err=True)
        return False


def print_json(data: Any) -> None:
    """What the fleet answered, as JSON on stdout."""
    typer.echo(json.dumps(data, indent=2, ensure_ascii=False))


def short(text: str | None, width: int) -> str:
    """``text`` cut to ``width`` characters, with an ellipsis when cut."""
    if text is None:
        return ""
    return text if len(text) <= width else text[: width - 1] + "…"


def table(rows: list[dict[str, Any]], columns: tuple[str, ...], *, empty: str = "nothing to show") -> None:
    """Rows as aligned columns under upper-case headings (None shows as blank); no rows: ``empty`` on stderr,
    nothing on stdout."""
    if not rows:
        typer.echo(empty, err=True)
        return
    cells = [[("" if row.get(c) is None else str(row[c])) for c in columns] for row in rows]
    widths = [max([len(c), *(len(r[i]) for r in cells)]) for i, c in enumerate(columns)]
    typer.echo("  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip())
    for row in cells:
        typer.echo("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())
