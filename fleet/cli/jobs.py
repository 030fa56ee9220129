"""``outpost fleet jobs create|list|show|pause|resume|cancel``: jobs from a terminal. A job installs an agent release
on many gateways, or restarts their agents, or has them run diagnostics, wave by wave (admins create and control
them; any reader lists and shows them).

``create`` turns its options into the fleet's job request: which gateways (``--everywhere``, or places, gateways,
the agent version they run, a kind of device they have), how the job spreads (a canary wave first, then growing
shares of the targets), when it stops by itself, and how long it may take; what is not given is the fleet's
default, which ``--help`` shows. The fleet refuses a job that selects no gateway, or an update to a release it does
not keep ready; that refusal is printed with the fleet's reason and the command exits 1.

Waves are numbered from 1 here, wave 1 being the canary (``--json`` shows the fleet's numbers, from 0).
"""

import math
from datetime import tzinfo
from typing import Annotated, Any, Final

import typer

from fleet.cli.client import DEFAULT_FLEET_URL, CaFile, FleetApi, FleetUrl, Token, connect
from fleet.cli.formats import DURATION_HELP, AsJson, TimeZone, confirmed, duration, print_json, short, table, when
from fleet.jobs.spec import AbortPolicy, JobKind, JobRequest, Waves
from fleet.jobs.states import JobState, TargetState
from protocol.durations import format_duration_ms
from protocol.gateway_config import DeviceKind
from protocol.updates import RELEASE_VERSION_RE

jobs = typer.Typer(
    help="Jobs: an agent update, restart or diagnostics for many gateways, wave by wave: create, list, show, pause, "
    "resume, cancel.",
    no_args_is_help=True,
)

_WAVES: Final = Waves()
_ABORT: Final = AbortPolicy()
_SUMMARY_ORDER: Final = (
    TargetState.SUCCEEDED,
    TargetState.FAILED,
    TargetState.ROLLED_BACK,
    TargetState.REVERTED,
    TargetState.REVERT_FAILED,
    TargetState.SKIPPED,
    TargetState.REVERTING,
    TargetState.HEALTH_CHECK,
    TargetState.INSTALLING,
    TargetState.VERIFYING,
    TargetState.DOWNLOADING,
    TargetState.DEFERRED,
    TargetState.SENT,
    TargetState.QUEUED,
)
"""How a job's gateways are counted at a glance: the furthest along first."""
_REASON_WIDTH: Final = 60

JobId = Annotated[
    str, typer.Argument(metavar="JOB", help="The job's id, as `create` and `list` show it (job-1a2b3c4d).")
]


def _version(text: str) -> str:
    if RELEASE_VERSION_RE.fullmatch(text) is None:
        raise typer.BadParameter(f"{text!r} is no release version: letters, digits and . + ! _ - (like 0.2.0)")
    return text


def _seconds(field: str) -> tuple[int, int, int]:
    """The least, the most and the default number of seconds the fleet takes for ``field`` of a job request."""
    info = JobRequest.model_fields[field]
    least = next(bound.ge for bound in info.metadata if hasattr(bound, "ge"))
    most = next(bound.le for bound in info.metadata if hasattr(bound, "le"))
    return int(least), int(most), int(info.default)


def _duration_option(field: str, what: str) -> Any:
    least, most, default = _seconds(field)
    return typer.Option(
        parser=duration(at_least_ms=least * 1000, at_most_ms=most * 1000, whole_seconds=True),
        metavar="DURATION",
        show_default=format_duration_ms(default * 1000),
        help=f"{what}, {format_duration_ms(least * 1000)} to {format_duration_ms(most * 1000)}. {DURATION_HELP}",
    )


def _shares(text: str) -> list[float]:
    """``--steps 0.1,0.5,1``: the shares as numbers; whether they grow to 1 is the fleet's to say."""
    try:
        shares = [float(part) for part in text.split(",")]
    except ValueError:
        shares = []
    if not shares or not all(math.isfinite(share) for share in shares):
        typer.echo(
            f"--steps {text!r}: give the cumulative shares of the targets separated by commas, like 0.1,0.5,1", err=True
        )
        raise typer.Exit(2)
    return shares


def _share_text(share: float) -> str:
    return f"{round(share * 100, 2):g}%"


def _gateways(count: int) -> str:
    return f"{count} gateway" if count == 1 else f"{count} gateways"


def counts_text(counts: dict[str, int]) -> str:
    """How many gateways stand where, the furthest along first: ``5 succeeded, 1 failed, 3 queued``."""
    known = [f"{counts[state]} {state}" for state in _SUMMARY_ORDER if counts.get(state)]
    others = [f"{count} {state}" for state, count in sorted(counts.items()) if state not in _SUMMARY_ORDER and count]
    return ", ".join(known + others) or "no gateways"


def _wave_text(job: dict[str, Any]) -> str:
    return f"{job['wave'] + 1}/{job['waves']}"


def _what(job: dict[str, Any]) -> str:
    return f"{job['kind']} {job['version']}" if job["version"] else str(job["kind"])


def _selector(
    everywhere: bool,
    counties: list[str],
    towns: list[str],
    villages: list[str],
    gateways: list[str],
    versions: list[str],
    device_kind: DeviceKind | None,
) -> dict[str, Any]:
    selector: dict[str, Any] = {
        "everywhere": everywhere or None,
        "counties": counties,
        "towns": towns,
        "villages": villages,
        "gateways": gateways,
        "agent_versions": versions,
        "device_kind": device_kind.value if device_kind else None,
    }
    selector = {key: value for key, value in selector.items() if value not in (None, [])}
    if not selector:
        typer.echo(
            "say which gateways: --county, --town, --village, --gateway, --on-version, --device-kind, or --everywhere "
            "for the whole fleet",
            err=True,
        )
        raise typer.Exit(2)
    return selector


def _given(**values: Any) -> dict[str, Any]:
    return {key: value for key, value in values.items() if value is not None}


@jobs.command("create")
def create(
    kind: Annotated[
        JobKind,
        typer.Argument(
            metavar="KIND",
            help="update_agent (install --version), restart_agent or diagnostics.",
            show_default=False,
        ),
    ],
    reason: Annotated[str, typer.Option(help="Why, for the audit log and whoever reads the job.")],
    version: Annotated[
        str | None,
        typer.Option(
            parser=_version,
            metavar="VERSION",
            help="update_agent: the agent release to install (ready on the fleet), e.g. 1.2.0.",
        ),
    ] = None,
    everywhere: Annotated[
        bool, typer.Option("--everywhere", help="Every enrolled gateway of the fleet (instead of the filters).")
    ] = False,
    county: Annotated[
        list[str] | None, typer.Option(help="Gateways in this county's villages; repeat for several.")
    ] = None,
    town: Annotated[
        list[str] | None, typer.Option(help="Gateways in this town's villages; repeat for several.")
    ] = None,
    village: Annotated[list[str] | None, typer.Option(help="Gateways in this village; repeat for several.")] = None,
    gateway: Annotated[list[str] | None, typer.Option(help="This gateway; repeat for several.")] = None,
    on_version: Annotated[
        list[str] | None,
        typer.Option(
            parser=_version, help="Only gateways running this agent version now; repeat for several.", metavar="VERSION"
        ),
    ] = None,
    device_kind: Annotated[
        DeviceKind | None, typer.Option(help="Only gateways with at least one device of this kind.", show_default=False)
    ] = None,
    canary: Annotated[
        int | None, typer.Option(help="Gateways in the first wave, the canary.", show_default=str(_WAVES.canary))
    ] = None,
    steps: Annotated[
        str | None,
        typer.Option(
            metavar="SHARES",
            help="The waves after the canary: cumulative shares of the targets, growing to 1, separated by commas.",
            show_default=",".join(f"{share:g}" for share in _WAVES.steps),
        ),
    ] = None,
    max_in_flight: Annotated[
        int | None, typer.Option(help="Gateways busy with the job at once.", show_default=str(_WAVES.max_in_flight))
    ] = None,
    per_second: Annotated[
        float | None, typer.Option(help="Commands sent a second, at most.", show_default=f"{_WAVES.per_second:g}")
    ] = None,
    abort_after: Annotated[
        int | None,
        typer.Option(
            help="Stop the job once this many gateways failed (or rolled back).", show_default=str(_ABORT.failures)
        ),
    ] = None,
    abort_share: Annotated[
        float | None,
        typer.Option(
            help="Stop the job once this share (0.2: 20%) of the gateways finished failed. Without --abort-after, "
            "only the share counts.",
            show_default="off",
        ),
    ] = None,
    abort_min_finished: Annotated[
        int | None,
        typer.Option(
            help="--abort-share counts once at least this many gateways finished.",
            show_default=str(_ABORT.min_finished),
        ),
    ] = None,
    no_revert: Annotated[
        bool,
        typer.Option(
            "--no-revert",
            help="update_agent: when the job stops by itself, leave the gateways it updated on the new version "
            "(default: put them back on their earlier one).",
        ),
    ] = False,
    deadline: Annotated[
        int | None, _duration_option("deadline_s", "How long gateways that are offline may still get it")
    ] = None,
    step_timeout: Annotated[
        int | None, _duration_option("step_timeout_s", "How long one gateway may take once it got it")
    ] = None,
    fleet: FleetUrl = DEFAULT_FLEET_URL,
    token: Token = "",
    ca_file: CaFile = None,
    as_json: AsJson = False,
) -> None:
    """Start a job on every enrolled gateway the options select, wave by wave (audited): the canary wave first,
    each next wave once the one before has finished. An update needs its release ready on the fleet; gateways
    already running it count as succeeded at once.

    Restart every agent in Shuinan town, a fifth at a time after the canary:
    outpost fleet jobs create restart_agent --town shuinan --steps 0.2,0.4,0.6,0.8,1 --reason 'clock drift'"""
    if (kind is JobKind.UPDATE_AGENT) != (version is not None):
        said = (
            "update_agent needs --version: the agent release to install"
            if version is None
            else "--version is for update_agent jobs only"
        )
        typer.echo(said, err=True)
        raise typer.Exit(2)
    target = _selector(
        everywhere, county or [], town or [], village or [], gateway or [], on_version or [], device_kind
    )
    waves = _given(
        canary=canary,
        steps=None if steps is None else _shares(steps),
        max_in_flight=max_in_flight,
        per_second=per_second,
    )
    abort = _given(
        failures=abort_after,
        failure_share=abort_share,
        min_finished=abort_min_finished,
        revert=False if no_revert else None,
    )
    if abort_share is not None and abort_after is None:
        abort["failures"] = None  # the share alone decides: the default count (the first failure) would pre-empt it
    body = _given(
        kind=kind.value,
        version=version,
        target=target,
        waves=waves or None,
        abort=abort or None,
        deadline_s=None if deadline is None else deadline // 1000,
        step_timeout_s=None if step_timeout is None else step_timeout // 1000,
        reason=reason,
    )
    api = connect(fleet, token, ca_file)
    job = api.call("POST", "/jobs", json=body)
    if as_json:
        print_json(job)
        return
    total = sum(job["counts"].values())
    waves_text = "1 wave" if job["waves"] == 1 else f"{job['waves']} waves"
    typer.echo(
        f"created job {job['id']}: {_what(job)} on {_gateways(total)} in {waves_text} ({counts_text(job['counts'])})"
    )
    typer.echo(f"follow it with: outpost fleet jobs show {job['id']}", err=True)


@jobs.command("list")
def list_jobs(
    open_only: Annotated[bool, typer.Option("--open", help="Only jobs still going: running or paused.")] = False,
    limit: Annotated[int, typer.Option(min=1, max=500, help="At most this many, newest first.")] = 50,
    fleet: FleetUrl = DEFAULT_FLEET_URL,
    token: Token = "",
    ca_file: CaFile = None,
    tz: TimeZone = None,
    as_json: AsJson = False,
) -> None:
    """Jobs, newest first: what they do, where they stand, the wave they reached (1 is the canary), how many
    gateways stand where, and who created them when."""
    api = connect(fleet, token, ca_file)
    rows = api.call("GET", "/jobs", params={"open_only": open_only, "limit": limit})
    if as_json:
        print_json(rows)
        return
    shown = [
        row
        | {
            "wave": _wave_text(row),
            "gateways": counts_text(row["counts"]),
            "created": when(row["created_ms"], tz),
            "by": row["created_by"],
        }
        for row in rows
    ]
    columns = ("id", "kind", "version", "state", "wave", "gateways", "created", "by")
    table(shown, columns, empty="no open jobs" if open_only else "no jobs")


def _target_text(target: dict[str, Any]) -> str:
    if target.get("everywhere"):
        return "every enrolled gateway"
    labels = {"counties": "county", "towns": "town", "villages": "village", "gateways": "gateway"}
    places = [
        f"{label if len(target[key]) == 1 else key} {', '.join(target[key])}"
        for key, label in labels.items()
        if target.get(key)
    ]
    parts = [" or ".join(places)] if places else []
    if target.get("agent_versions"):
        parts.append(f"running agent {' or '.join(target['agent_versions'])}")
    if target.get("device_kind"):
        parts.append(f"with a {target['device_kind']}")
    return "; ".join(parts)


def _waves_text(job: dict[str, Any], waves: dict[str, Any]) -> str:
    steps = ", ".join(_share_text(share) for share in waves.get("steps", []))
    return (
        f"{job['wave'] + 1} of {job['waves']} open; a canary of {_gateways(waves.get('canary', 0))}, then up to "
        f"{steps} of the targets; at most {waves.get('max_in_flight')} at once, {waves.get('per_second'):g} a second"
    )


def _abort_text(job: dict[str, Any], abort: dict[str, Any]) -> str:
    limits = []
    if abort.get("failures") is not None:
        limits.append("after the first failure" if abort["failures"] == 1 else f"after {abort['failures']} failures")
    if abort.get("failure_share") is not None:
        limits.append(
            f"once {_share_text(abort['failure_share'])} of the finished failed "
            f"(from {_gateways(abort.get('min_finished', 1))} finished)"
        )
    text = " or ".join(limits) or "never by itself"
    if job["kind"] == JobKind.UPDATE_AGENT.value:
        text += "; updated gateways go back" if abort.get("revert", True) else "; updated gateways stay updated"
    return text


def _print_job(job: dict[str, Any], tz: tzinfo | None) -> None:
    request = job["request"]
    state = job["state"] + (f": {job['state_reason']}" if job["state_reason"] else "")
    lines: dict[str, str | None] = {
        "job": job["id"],
        "kind": _what(job),
        "state": state,
        "gateways": f"{sum(job['counts'].values())}: {counts_text(job['counts'])}",
        "target": _target_text(request.get("target", {})),
        "waves": _waves_text(job, request.get("waves", {})),
        "stops": _abort_text(job, request.get("abort", {})),
        "deadline": f"{when(job['deadline_ms'], tz)} (gateways offline until then are skipped)",
        "step timeout": format_duration_ms(int(request.get("step_timeout_s", 0)) * 1000),
        "reason": job["reason"],
        "created": f"{when(job['created_ms'], tz)} by {job['created_by']}",
        "finished": when(job["finished_ms"], tz) or None,
    }
    width = max(len(label) for label in lines)
    for label, value in lines.items():
        if value is not None:
            typer.echo(f"{label.ljust(width)}  {value}")


@jobs.command("show")
def show(
    job_id: JobId,
    state: Annotated[TargetState | None, typer.Option(help="Only the gateways in this state.")] = None,
    fleet: FleetUrl = DEFAULT_FLEET_URL,
    token: Token = "",
    ca_file: CaFile = None,
    tz: TimeZone = None,
    as_json: AsJson = False,
) -> None:
    """One job: what it does and to whom, how it spreads and when it stops, where it stands; then each gateway:
    its village, its wave (1 is the canary), where it stands and why, and when that last changed."""
    api = connect(fleet, token, ca_file)
    job = api.call("GET", f"/jobs/{job_id}", params={"state": state.value} if state else None)
    if as_json:
        print_json(job)
        return
    _print_job(job, tz)
    typer.echo("")
    shown = [
        {
            "gateway": target["gateway_id"],
            "village": target["village_id"],
            "wave": target["wave"] + 1,
            "state": target["state"],
            "reason": short(target["reason"], _REASON_WIDTH),
            "changed": when(target["changed_ms"], tz),
        }
        for target in job["targets"]
    ]
    empty = f"no gateways of job {job['id']} are {state}" if state else f"job {job['id']} has no gateways"
    table(shown, ("gateway", "village", "wave", "state", "reason", "changed"), empty=empty)


def _control(api: FleetApi, job_id: str, action: str, reason: str | None) -> None:
    job = api.call("POST", f"/jobs/{job_id}/control", json=_given(action=action, reason=reason))
    typer.echo(f"job {job['id']} is now {job['state']} ({_what(job)}: {counts_text(job['counts'])})")


Reason = Annotated[str | None, typer.Option(help="Why, for the audit log and the job's state (optional).")]


@jobs.command("pause")
def pause(
    job_id: JobId,
    reason: Reason = None,
    fleet: FleetUrl = DEFAULT_FLEET_URL,
    token: Token = "",
    ca_file: CaFile = None,
) -> None:
    """Pause a job (audited): nothing new is sent until it is resumed; what was sent goes on."""
    _control(connect(fleet, token, ca_file), job_id, "pause", reason)


@jobs.command("resume")
def resume(
    job_id: JobId,
    fleet: FleetUrl = DEFAULT_FLEET_URL,
    token: Token = "",
    ca_file: CaFile = None,
) -> None:
    """Resume a paused job (audited): it goes on sending where it stopped."""
    _control(connect(fleet, token, ca_file), job_id, "resume", None)


@jobs.command("cancel")
def cancel(
    job_id: JobId,
    reason: Reason = None,
    yes: Annotated[bool, typer.Option("--yes", help="Cancel without asking first.")] = False,
    fleet: FleetUrl = DEFAULT_FLEET_URL,
    token: Token = "",
    ca_file: CaFile = None,
) -> None:
    """Cancel a job (audited): nothing more is sent, and the gateways it has not reached are skipped; those busy
    with it finish. Asks first, saying what the job is and where it stands, unless --yes."""
    api = connect(fleet, token, ca_file)
    if not yes:
        job = api.call("GET", f"/jobs/{job_id}", params={"state": TargetState.QUEUED.value})
        if JobState(job["state"]).open:  # an ended job: the fleet says why it cannot be cancelled
            about = f"{_what(job)}, {job['state']}, wave {_wave_text(job)}: {counts_text(job['counts'])}"
            unreached = _gateways(job["counts"].get(TargetState.QUEUED.value, 0))
            if not confirmed(f"cancel job {job['id']} ({about})? {unreached} not reached yet would be skipped"):
                typer.echo(f"job {job['id']} not cancelled (--yes cancels without asking)", err=True)
                raise typer.Exit(1)
    _control(api, job_id, "cancel", reason)
