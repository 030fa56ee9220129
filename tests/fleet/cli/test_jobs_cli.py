"""``outpost fleet jobs`` against the fleet's API served over real HTTP, on a county of enrolled gateways (and one
recorded but never enrolled) with an agent release ready: each option of ``create`` lands in the job request the
fleet stores, what the fleet or the command refuses is said in one line and creates nothing; jobs are listed and
shown as tables or as the fleet answered; pausing, resuming and cancelling (after a yes) move the job, are audited,
and are refused once it ended.

The fleet's job engine is not running (its commands would reach no broker): targets are moved through its store
where a test needs them somewhere other than queued."""

import asyncio
import json
import re
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any, Final

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from typer.testing import CliRunner, Result

from fleet.api.context import ApiContext
from fleet.cli.app import app
from fleet.jobs.spec import JobKind, JobRequest, Selector
from fleet.jobs.states import JobState, TargetState
from fleet.jobs.store import TargetChange
from protocol.config_signing import public_key_pem
from tests.fleet.api_client import ADMIN_TOKEN, api_context
from tests.fleet.cli.busy_county import outpost_fleet, words_of
from tests.fleet.helpers import FakeClock
from tests.fleet.releases.parts import make_release, release_store
from tests.fleet.served_api import served_api

SITES: Final = (
    ("/counties", {"id": "lishui", "name": "Lishui"}),
    ("/counties", {"id": "qingtian", "name": "Qingtian"}),
    ("/towns", {"id": "shuinan", "county_id": "lishui", "name": "Shuinan"}),
    ("/towns", {"id": "biyu", "county_id": "lishui", "name": "Biyu"}),
    ("/towns", {"id": "wenxi", "county_id": "qingtian", "name": "Wenxi"}),
    ("/villages", {"id": "shiqiao", "town_id": "shuinan", "name": "Shiqiao"}),
    ("/villages", {"id": "lianhe", "town_id": "shuinan", "name": "Lianhe"}),
    ("/villages", {"id": "xiaba", "town_id": "biyu", "name": "Xiaba"}),
    ("/villages", {"id": "gangtou", "town_id": "wenxi", "name": "Gangtou"}),
)
GATEWAYS: Final = {  # enrolled: (village, the agent version it runs)
    "gw-shiqiao-1": ("shiqiao", "0.1.0"),
    "gw-shiqiao-2": ("shiqiao", "0.2.0"),
    "gw-lianhe-1": ("lianhe", "0.1.0"),
    "gw-xiaba-1": ("xiaba", "0.2.0"),
    "gw-gangtou-1": ("gangtou", "1.2.0"),
}
NEVER_ENROLLED: Final = "gw-xiaba-2"
"""Recorded in xiaba, never enrolled: no job reaches it."""
WITH_PANIC_BUTTON: Final = "gw-lianhe-1"
READY: Final = "1.2.0"
"""The agent release the fleet keeps ready."""
CREATED: Final = "2023-11-14 22:13:20 UTC"
"""The fake clock's instant (1_700_000_000_000) in UTC …"""
CREATED_IN_SHANGHAI: Final = "2023-11-15 06:13:20 CST"
"""… and in Asia/Shanghai."""
REASON: Final = "fix the clock drift"


@pytest.fixture
def context(sessions: async_sessionmaker[AsyncSession], clock: FakeClock, tmp_path: Path) -> ApiContext:
    return replace(api_context(sessions, clock), releases=release_store(sessions, clock, tmp_path / "releases"))


@pytest.fixture
async def fleet(context: ApiContext) -> AsyncIterator[str]:
    async with served_api(context) as url:
        yield url


@pytest.fixture
async def api(fleet: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=fleet, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}) as client:
        yield client


async def enroll(fleet: str, api: httpx.AsyncClient, gateway_id: str, village_id: str, agent_version: str) -> None:
    """Enroll ``gateway_id`` in ``village_id`` as a gateway does: a token bound to its id, then its public key."""
    issued = await api.post("/enrollment-tokens", json={"village_id": village_id, "gateway_id": gateway_id})
    assert issued.status_code == 201, issued.text
    request = {
        "schema_version": 1,
        "token": issued.json()["secret"],
        "public_key_pem": public_key_pem(Ed25519PrivateKey.generate().public_key()),
        "hostname": "pi",
        "agent_version": agent_version,
    }
    async with httpx.AsyncClient(base_url=fleet) as anonymous:
        enrolled = await anonymous.post("/enroll", json=request)
    assert enrolled.status_code == 200, enrolled.text
    assert enrolled.json()["gateway_id"] == gateway_id


@pytest.fixture(autouse=True)
async def county(fleet: str, api: httpx.AsyncClient, tmp_path: Path) -> None:
    """The sites, the gateways (one with a panic button, one never enrolled) and agent release 1.2.0, ready."""
    for path, body in SITES:
        assert (await api.post(path, json=body)).status_code == 201, body
    for gateway_id, (village_id, version) in GATEWAYS.items():
        await enroll(fleet, api, gateway_id, village_id, version)
    assert (await api.post("/gateways", json={"id": NEVER_ENROLLED, "village_id": "xiaba"})).status_code == 201
    device = {"kind": "panic_button", "name": "well"}
    assert (await api.put(f"/gateways/{WITH_PANIC_BUTTON}/devices/panic-1", json=device)).status_code == 200
    files = {"constraints.txt": b"outpost==1.2.0\n"}
    release = make_release(tmp_path / "built", files, version=READY)
    assert (await api.post("/releases", json=release.model_dump(mode="json"))).status_code == 201
    uploaded = await api.put(f"/releases/agent/{READY}/files/constraints.txt", content=files["constraints.txt"])
    assert uploaded.json()["state"] == "ready"


async def created(fleet: str, *args: str) -> dict[str, Any]:
    """``outpost fleet jobs create ARGS --reason … --json``: the job the fleet answered."""
    result = await outpost_fleet(fleet, "jobs", "create", *args, "--reason", REASON, "--json")
    assert result.exit_code == 0, result.output
    job: dict[str, Any] = json.loads(result.stdout)
    return job


async def targets_of(context: ApiContext, job_id: str) -> dict[str, str]:
    """Each gateway of the job and its state, as the fleet's database holds them."""
    return {row.gateway_id: row.state for row in await context.jobs.store.targets(job_id)}


async def answering(fleet: str, answer: str, *args: str) -> Result:
    """``outpost fleet ARGS`` with ``answer`` typed at its question (empty: stdin closed, as in a script)."""
    env = {"OUTPOST_FLEET_URL": fleet, "OUTPOST_TOKEN": ADMIN_TOKEN, "OUTPOST_TZ": None}
    runner = CliRunner()
    return await asyncio.to_thread(runner.invoke, app, list(args), input=answer, env=env, catch_exceptions=False)


def rows_of(result: Result) -> list[list[str]]:
    """The table's cells, split on its column gaps (two spaces or more)."""
    assert result.exit_code == 0, result.output
    return [[cell.strip() for cell in re.split(r"\s{2,}", line) if cell.strip()] for line in result.stdout.splitlines()]


def header_of(result: Result) -> dict[str, str]:
    """``show``'s header: each label and its value, up to the blank line before the gateways' table."""
    assert result.exit_code == 0, result.output
    head = result.stdout.split("\n\n", 1)[0]
    return dict(re.split(r"\s{2,}", line, maxsplit=1) for line in head.splitlines())


def table_of(result: Result) -> list[list[str]]:
    """``show``'s table of gateways, after the blank line."""
    assert result.exit_code == 0, result.output
    body = result.stdout.split("\n\n", 1)[1]
    return [[cell.strip() for cell in re.split(r"\s{2,}", line) if cell.strip()] for line in body.splitlines()]


def one_line_refusal(result: Result, code: int = 1) -> str:
    """What a refused command said: nothing on stdout, one line on stderr."""
    assert result.exit_code == code, result.output
    assert result.stdout == ""
    [line] = result.stderr.splitlines()
    return line


# --- create ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "selector", "reached"),
    [
        (["--everywhere"], {"everywhere": True}, set(GATEWAYS)),
        (["--county", "qingtian"], {"counties": ["qingtian"]}, {"gw-gangtou-1"}),
        (["--county", "qingtian", "--county", "lishui"], {"counties": ["qingtian", "lishui"]}, set(GATEWAYS)),
        (["--town", "shuinan"], {"towns": ["shuinan"]}, {"gw-shiqiao-1", "gw-shiqiao-2", "gw-lianhe-1"}),
        (
            ["--village", "shiqiao", "--village", "xiaba"],
            {"villages": ["shiqiao", "xiaba"]},
            {"gw-shiqiao-1", "gw-shiqiao-2", "gw-xiaba-1"},
        ),
        (
            ["--gateway", "gw-xiaba-1", "--gateway", "gw-gangtou-1"],
            {"gateways": ["gw-xiaba-1", "gw-gangtou-1"]},
            {"gw-xiaba-1", "gw-gangtou-1"},
        ),
        (["--on-version", "0.2.0"], {"agent_versions": ["0.2.0"]}, {"gw-shiqiao-2", "gw-xiaba-1"}),
        (
            ["--on-version", "0.1.0", "--on-version", "1.2.0"],
            {"agent_versions": ["0.1.0", "1.2.0"]},
            {"gw-shiqiao-1", "gw-lianhe-1", "gw-gangtou-1"},
        ),
        (["--device-kind", "panic_button"], {"device_kind": "panic_button"}, {WITH_PANIC_BUTTON}),
        (
            ["--county", "lishui", "--on-version", "0.1.0"],
            {"counties": ["lishui"], "agent_versions": ["0.1.0"]},
            {"gw-shiqiao-1", "gw-lianhe-1"},
        ),
        (
            ["--town", "wenxi", "--village", "lianhe", "--device-kind", "panic_button"],
            {"towns": ["wenxi"], "villages": ["lianhe"], "device_kind": "panic_button"},
            {WITH_PANIC_BUTTON},
        ),
    ],
    ids=[
        "everywhere",
        "county",
        "counties",
        "town",
        "villages",
        "gateways",
        "version",
        "versions",
        "device kind",
        "place and version",
        "places and device",
    ],
)
async def test_each_target_option_lands_in_the_request_and_selects_its_gateways(
    fleet: str,
    api: httpx.AsyncClient,
    context: ApiContext,
    options: list[str],
    selector: dict[str, Any],
    reached: set[str],
) -> None:
    job = await created(fleet, "restart_agent", *options)

    stored = (await api.get(f"/jobs/{job['id']}")).json()
    assert stored["request"]["target"] == Selector.model_validate(selector).model_dump(mode="json")
    assert set(await targets_of(context, job["id"])) == reached
    assert NEVER_ENROLLED not in reached


async def test_waves_abort_and_durations_land_in_the_request(
    fleet: str, api: httpx.AsyncClient, context: ApiContext
) -> None:
    given = await created(
        fleet, "update_agent", "--version", READY, "--village", "shiqiao",
        "--canary", "2", "--steps", "0.25, 0.5,1", "--max-in-flight", "3", "--per-second", "0.5",
        "--abort-after", "2", "--abort-share", "0.25", "--abort-min-finished", "4", "--no-revert",
        "--deadline", "2d", "--step-timeout", "1h30m",
    )  # fmt: skip
    defaults = await created(fleet, "diagnostics", "--gateway", "gw-xiaba-1")
    share_alone = await created(fleet, "diagnostics", "--everywhere", "--abort-share", "0.2")

    asked = JobRequest(
        kind=JobKind.UPDATE_AGENT,
        version=READY,
        target=Selector(villages=["shiqiao"]),
        waves={"canary": 2, "steps": [0.25, 0.5, 1.0], "max_in_flight": 3, "per_second": 0.5},
        abort={"failures": 2, "failure_share": 0.25, "min_finished": 4, "revert": False},
        deadline_s=2 * 86_400,
        step_timeout_s=5_400,
        reason=REASON,
    )
    assert (await api.get(f"/jobs/{given['id']}")).json()["request"] == asked.model_dump(mode="json")
    assert given["deadline_ms"] == given["created_ms"] + 2 * 86_400_000
    unsaid = JobRequest(kind=JobKind.DIAGNOSTICS, target=Selector(gateways=["gw-xiaba-1"]), reason=REASON)
    assert (await api.get(f"/jobs/{defaults['id']}")).json()["request"] == unsaid.model_dump(mode="json")
    share = (await api.get(f"/jobs/{share_alone['id']}")).json()["request"]["abort"]
    assert (share["failures"], share["failure_share"]) == (None, 0.2), "the share alone decides"


async def test_create_says_which_job_how_many_waves_and_where_its_gateways_stand(
    fleet: str, context: ApiContext
) -> None:
    result = await outpost_fleet(fleet, "jobs", "create", "update_agent", "--version", READY, "--everywhere",
                                 "--reason", REASON)  # fmt: skip

    assert result.exit_code == 0, result.output
    [job] = await context.jobs.store.jobs()
    assert (
        result.stdout == f"created job {job.id}: update_agent 1.2.0 on 5 gateways in 3 waves (1 succeeded, 4 queued)\n"
    )
    assert result.stderr == f"follow it with: outpost fleet jobs show {job.id}\n"
    assert (await targets_of(context, job.id))["gw-gangtou-1"] == "succeeded", "it runs 1.2.0 already"


NO_GATEWAY: Final = "refused (422): the target selects no enrolled, unrevoked gateway"


@pytest.mark.parametrize(
    ("args", "code", "said"),
    [
        pytest.param(
            ["restart_agent", "--everywhere", "--steps", "0.1,half"],
            2,
            "--steps '0.1,half': give the cumulative shares of the targets separated by commas",
            id="steps not numbers",
        ),
        pytest.param(
            ["restart_agent", "--everywhere", "--steps", "0.5,nan,1"],
            2,
            "--steps '0.5,nan,1': give the cumulative shares",
            id="steps not finite",
        ),
        pytest.param(
            ["restart_agent", "--everywhere", "--steps", "0.5,0.2,1"],
            1,
            "refused (422): waves: Value error, waves.steps must grow",
            id="steps shrink",
        ),
        pytest.param(
            ["restart_agent", "--everywhere", "--steps", "0.1,0.5"],
            1,
            "refused (422): waves: Value error, waves.steps must end with 1.0",
            id="steps short of all",
        ),
        pytest.param(
            ["update_agent", "--everywhere"],
            2,
            "update_agent needs --version: the agent release to install",
            id="update without version",
        ),
        pytest.param(
            ["restart_agent", "--version", READY, "--everywhere"],
            2,
            "--version is for update_agent jobs only",
            id="version without update",
        ),
        pytest.param(["restart_agent"], 2, "say which gateways: --county, --town, --village, ", id="no target"),
        pytest.param(
            ["update_agent", "--version", "9.9.9", "--everywhere"],
            1,
            "refused (422): the fleet keeps no ready agent release 9.9.9: upload it first",
            id="no such release",
        ),
        pytest.param(["diagnostics", "--village", "nowhere"], 1, NO_GATEWAY, id="no such village"),
        pytest.param(["diagnostics", "--gateway", NEVER_ENROLLED], 1, NO_GATEWAY, id="never enrolled"),
        pytest.param(
            ["diagnostics", "--everywhere", "--canary", "0"],
            1,
            "refused (422): waves.canary: Input should be greater than or equal to 1",
            id="no canary",
        ),
        pytest.param(
            ["diagnostics", "--town", "Not An Id"], 1, "refused (422): target.towns.0: not an id", id="not an id"
        ),
    ],
)
async def test_a_job_refused_is_said_in_one_line_and_nothing_is_created(
    fleet: str, context: ApiContext, args: list[str], code: int, said: str
) -> None:
    result = await outpost_fleet(fleet, "jobs", "create", *args, "--reason", REASON)

    assert one_line_refusal(result, code).startswith(said)
    assert await context.jobs.store.jobs() == []


async def test_options_out_of_bounds_are_usage_errors_before_calling_the_fleet(fleet: str, context: ApiContext) -> None:
    long_deadline = await outpost_fleet(fleet, "jobs", "create", "diagnostics", "--everywhere", "--deadline", "91d",
                                        "--reason", REASON)  # fmt: skip
    short_step = await outpost_fleet(fleet, "jobs", "create", "diagnostics", "--everywhere", "--step-timeout", "30s",
                                     "--reason", REASON)  # fmt: skip
    bad_version = await outpost_fleet(fleet, "jobs", "create", "update_agent", "--version", "../x", "--everywhere",
                                      "--reason", REASON)  # fmt: skip
    no_kind = await outpost_fleet(fleet, "jobs", "create", "reboot", "--everywhere", "--reason", REASON)
    no_reason = await outpost_fleet(fleet, "jobs", "create", "diagnostics", "--everywhere")

    assert long_deadline.exit_code == 2
    assert "'91d' is longer than 90d" in words_of(long_deadline)
    assert short_step.exit_code == 2
    assert "'30s' is shorter than 1m" in words_of(short_step)
    assert bad_version.exit_code == 2
    assert "is no release version" in words_of(bad_version)
    assert no_kind.exit_code == 2
    assert no_reason.exit_code == 2
    assert "Missing option '--reason'" in words_of(no_reason)
    assert await context.jobs.store.jobs() == []


async def test_only_an_admin_creates_or_controls_a_job_and_any_reader_follows_it(
    fleet: str, api: httpx.AsyncClient, context: ApiContext
) -> None:
    staff = (await api.post("/tokens", json={"name": "desk", "role": "command_staff"})).json()["secret"]
    job = await created(fleet, "restart_agent", "--everywhere")

    refused = await outpost_fleet(fleet, "jobs", "create", "restart_agent", "--everywhere", "--reason", REASON,
                                  token=staff)  # fmt: skip
    paused = await outpost_fleet(fleet, "jobs", "pause", job["id"], token=staff)
    listed = await outpost_fleet(fleet, "jobs", "list", token=staff)
    shown = await outpost_fleet(fleet, "jobs", "show", job["id"], token=staff)

    assert one_line_refusal(refused) == "refused (403): role command_staff may not administer"
    assert one_line_refusal(paused) == "refused (403): role command_staff may not administer"
    assert [row[0] for row in rows_of(listed)[1:]] == [job["id"]]
    assert header_of(shown)["state"] == "running"
    assert len(await context.jobs.store.jobs()) == 1


# --- list and show ---------------------------------------------------------------------------------------------


@pytest.fixture
async def two_jobs(fleet: str, context: ApiContext, clock: FakeClock) -> tuple[str, str]:
    """A diagnostics job on shuinan, ended: its canary succeeded, one gateway failed, one was skipped; then, a
    minute later, an update everywhere in its second wave: three gateways along, one queued (and one on 1.2.0
    already)."""
    done = (await created(fleet, "diagnostics", "--town", "shuinan"))["id"]
    store = context.jobs.store
    await store.apply(
        [
            TargetChange(done, "gw-shiqiao-1", TargetState.SUCCEEDED),
            TargetChange(done, "gw-shiqiao-2", TargetState.FAILED, "diagnostics timed out"),
            TargetChange(done, "gw-lianhe-1", TargetState.SKIPPED, "offline until the deadline"),
        ],
        final=frozenset(),
    )
    await store.open_wave(done, 2)
    await store.set_state(done, JobState.DONE, None)
    clock.now_ms += 60_000
    update = (await created(fleet, "update_agent", "--version", READY, "--everywhere"))["id"]
    await store.apply(
        [
            TargetChange(update, "gw-shiqiao-1", TargetState.SUCCEEDED),
            TargetChange(update, "gw-shiqiao-2", TargetState.INSTALLING, values={"sent_ms": clock.now_ms}),
            TargetChange(update, "gw-xiaba-1", TargetState.DEFERRED, "the siren is sounding"),
        ],
        final=frozenset(),
    )
    await store.open_wave(update, 1)
    return done, update


async def test_jobs_are_listed_newest_first_with_their_wave_and_where_their_gateways_stand(
    fleet: str, api: httpx.AsyncClient, two_jobs: tuple[str, str]
) -> None:
    done, update = two_jobs

    header, *rows = rows_of(await outpost_fleet(fleet, "jobs", "list", "--tz", "UTC"))
    [open_row] = rows_of(await outpost_fleet(fleet, "jobs", "list", "--open"))[1:]
    [newest] = rows_of(await outpost_fleet(fleet, "jobs", "list", "--limit", "1"))[1:]
    in_shanghai = rows_of(await outpost_fleet(fleet, "jobs", "list", env={"OUTPOST_TZ": "Asia/Shanghai"}))
    as_json = await outpost_fleet(fleet, "jobs", "list", "--json")
    open_json = await outpost_fleet(fleet, "jobs", "list", "--open", "--limit", "1", "--json")

    assert header == ["ID", "KIND", "VERSION", "STATE", "WAVE", "GATEWAYS", "CREATED", "BY"]
    assert rows == [
        [update, "update_agent", "1.2.0", "running", "2/3", "2 succeeded, 1 installing, 1 deferred, 1 queued",
         "2023-11-14 22:14:20 UTC", "bootstrap-admin"],
        [done, "diagnostics", "done", "3/3", "1 succeeded, 1 failed, 1 skipped", CREATED, "bootstrap-admin"],
    ]  # fmt: skip
    assert open_row[0] == update
    assert newest[0] == update
    assert in_shanghai[2][-2] == CREATED_IN_SHANGHAI
    assert json.loads(as_json.stdout) == (await api.get("/jobs")).json()
    assert json.loads(open_json.stdout) == (await api.get("/jobs", params={"open_only": True, "limit": 1})).json()


async def test_no_jobs_is_said_on_stderr(fleet: str) -> None:
    nothing = await outpost_fleet(fleet, "jobs", "list")
    nothing_open = await outpost_fleet(fleet, "jobs", "list", "--open")

    assert (nothing.exit_code, nothing.stdout, nothing.stderr) == (0, "", "no jobs\n")
    assert (nothing_open.exit_code, nothing_open.stdout, nothing_open.stderr) == (0, "", "no open jobs\n")


async def test_a_job_is_shown_with_what_was_asked_and_every_gateway(
    fleet: str, context: ApiContext, two_jobs: tuple[str, str]
) -> None:
    _, update = two_jobs
    waves = {row.gateway_id: row.wave + 1 for row in await context.jobs.store.targets(update)}

    shown = await outpost_fleet(fleet, "jobs", "show", update, "--tz", "UTC")

    assert header_of(shown) == {
        "job": update,
        "kind": "update_agent 1.2.0",
        "state": "running",
        "gateways": "5: 2 succeeded, 1 installing, 1 deferred, 1 queued",
        "target": "every enrolled gateway",
        "waves": "2 of 3 open; a canary of 1 gateway, then up to 10%, 50%, 100% of the targets; "
        "at most 50 at once, 20 a second",
        "stops": "after the first failure; updated gateways go back",
        "deadline": "2023-11-21 22:14:20 UTC (gateways offline until then are skipped)",
        "step timeout": "8h",
        "reason": REASON,
        "created": "2023-11-14 22:14:20 UTC by bootstrap-admin",
    }
    header, *rows = table_of(shown)
    assert header == ["GATEWAY", "VILLAGE", "WAVE", "STATE", "REASON", "CHANGED"]
    by_gateway = {row[0]: row for row in rows}
    assert sorted(by_gateway) == sorted(GATEWAYS)
    assert by_gateway["gw-xiaba-1"] == ["gw-xiaba-1", "xiaba", str(waves["gw-xiaba-1"]), "deferred",
                                        "the siren is sounding", "2023-11-14 22:14:20 UTC"]  # fmt: skip
    assert by_gateway["gw-gangtou-1"][3:5] == ["succeeded", "runs agent 1.2.0 already"]
    assert by_gateway["gw-lianhe-1"][1:4] == ["lianhe", str(waves["gw-lianhe-1"]), "queued"]
    assert [row[2] for row in rows] == sorted(row[2] for row in rows), "wave by wave"


async def test_show_filters_the_gateways_by_state_and_answers_json_as_the_fleet_did(
    fleet: str, api: httpx.AsyncClient, context: ApiContext, two_jobs: tuple[str, str]
) -> None:
    done, update = two_jobs
    failed_wave = next(t.wave + 1 for t in await context.jobs.store.targets(done) if t.gateway_id == "gw-shiqiao-2")

    failed = await outpost_fleet(fleet, "jobs", "show", done, "--state", "failed", env={"OUTPOST_TZ": "Asia/Shanghai"})
    none_reverted = await outpost_fleet(fleet, "jobs", "show", done, "--state", "reverted")
    as_json = await outpost_fleet(fleet, "jobs", "show", update, "--json")
    succeeded_json = await outpost_fleet(fleet, "jobs", "show", update, "--state", "succeeded", "--json")
    bad_state = await outpost_fleet(fleet, "jobs", "show", update, "--state", "exploded")
    unknown = await outpost_fleet(fleet, "jobs", "show", "job-00000000")

    head = header_of(failed)
    assert head["state"] == "done"
    assert head["gateways"] == "3: 1 succeeded, 1 failed, 1 skipped", "the counts stay the whole job's"
    assert head["target"] == "town shuinan"
    assert head["created"] == f"{CREATED_IN_SHANGHAI} by bootstrap-admin"
    assert head["finished"] == CREATED_IN_SHANGHAI
    assert "updated gateways" not in head["stops"], "only an update reverts"
    assert [row[:5] for row in table_of(failed)[1:]] == [
        ["gw-shiqiao-2", "shiqiao", str(failed_wave), "failed", "diagnostics timed out"]
    ]
    assert (none_reverted.exit_code, none_reverted.stderr) == (0, f"no gateways of job {done} are reverted\n")
    assert json.loads(as_json.stdout) == (await api.get(f"/jobs/{update}")).json()
    answered = json.loads(succeeded_json.stdout)
    assert answered == (await api.get(f"/jobs/{update}", params={"state": "succeeded"})).json()
    assert sorted(t["gateway_id"] for t in answered["targets"]) == ["gw-gangtou-1", "gw-shiqiao-1"]
    assert bad_state.exit_code == 2
    assert one_line_refusal(unknown) == "refused (404): no job 'job-00000000'"


# --- pause, resume, cancel -------------------------------------------------------------------------------------


async def audited(api: httpx.AsyncClient, job_id: str) -> list[tuple[str, str | None]]:
    """The job's audit entries, oldest first: the action and the state it left the job in."""
    entries = (await api.get("/audit", params={"target_type": "job", "target_id": job_id})).json()
    return [(entry["action"], (entry["after"] or {}).get("state")) for entry in reversed(entries)]


async def test_a_job_is_paused_with_a_reason_and_resumed_each_audited(
    fleet: str, api: httpx.AsyncClient, context: ApiContext
) -> None:
    job = (await created(fleet, "restart_agent", "--town", "shuinan"))["id"]

    paused = await outpost_fleet(fleet, "jobs", "pause", job, "--reason", "market day: wait for tonight")
    while_paused = header_of(await outpost_fleet(fleet, "jobs", "show", job))
    resumed = await outpost_fleet(fleet, "jobs", "resume", job)
    after = header_of(await outpost_fleet(fleet, "jobs", "show", job))

    assert (paused.exit_code, paused.stderr) == (0, "")
    assert paused.stdout == f"job {job} is now paused (restart_agent: 3 queued)\n"
    assert while_paused["state"] == "paused: market day: wait for tonight"
    assert resumed.stdout == f"job {job} is now running (restart_agent: 3 queued)\n"
    assert after["state"] == "running"
    assert await audited(api, job) == [("job.create", "running"), ("job.pause", "paused"), ("job.resume", "running")]
    assert set((await targets_of(context, job)).values()) == {"queued"}, "pausing moves no gateway"


async def test_a_job_is_cancelled_only_after_a_yes_or_with_yes(
    fleet: str, api: httpx.AsyncClient, context: ApiContext
) -> None:
    job = (await created(fleet, "update_agent", "--version", READY, "--everywhere"))["id"]
    other = (await created(fleet, "diagnostics", "--county", "qingtian"))["id"]
    await context.jobs.store.apply([TargetChange(job, "gw-xiaba-1", TargetState.DOWNLOADING)], final=frozenset())

    declined = await answering(fleet, "n\n", "jobs", "cancel", job)
    unanswered = await answering(fleet, "", "jobs", "cancel", job)
    still = await targets_of(context, job)
    confirmed = await answering(fleet, "y\n", "jobs", "cancel", job, "--reason", "wrong release")
    unasked = await answering(fleet, "", "jobs", "cancel", other, "--yes")

    for kept in (declined, unanswered):
        assert kept.exit_code == 1
        assert (
            f"cancel job {job} (update_agent 1.2.0, running, wave 1/3: 1 succeeded, 1 downloading, 3 queued)? "
            "3 gateways not reached yet would be skipped" in kept.stderr
        )
        assert f"job {job} not cancelled (--yes cancels without asking)" in kept.stderr
        assert "is now" not in kept.stdout  # the runner echoes the answer typed there
    assert list(still.values()).count("queued") == 3
    assert confirmed.exit_code == 0, confirmed.output
    assert confirmed.stdout.endswith(
        f"job {job} is now cancelled (update_agent 1.2.0: 1 succeeded, 3 skipped, 1 downloading)\n"
    )
    assert (unasked.exit_code, unasked.stderr) == (0, "")
    assert unasked.stdout == f"job {other} is now cancelled (diagnostics: 1 skipped)\n"
    shown = await outpost_fleet(fleet, "jobs", "show", job, "--state", "skipped")
    assert header_of(shown)["state"] == "cancelled: wrong release"
    assert {row[4] for row in table_of(shown)[1:]} == {"job cancelled by bootstrap-admin"}
    assert (await targets_of(context, job))["gw-xiaba-1"] == "downloading", "what was sent goes on"
    assert await audited(api, job) == [("job.create", "running"), ("job.cancel", "cancelled")]


async def test_a_job_that_ended_is_neither_paused_resumed_nor_cancelled(
    fleet: str, api: httpx.AsyncClient, context: ApiContext
) -> None:
    job = (await created(fleet, "restart_agent", "--village", "shiqiao"))["id"]
    assert (await outpost_fleet(fleet, "jobs", "cancel", job, "--yes")).exit_code == 0

    paused = await outpost_fleet(fleet, "jobs", "pause", job)
    resumed = await outpost_fleet(fleet, "jobs", "resume", job)
    cancelled = await answering(fleet, "", "jobs", "cancel", job)  # nothing to ask: the fleet says why not
    unknown = await outpost_fleet(fleet, "jobs", "pause", "job-00000000")

    assert one_line_refusal(paused) == f"refused (409): job {job} is cancelled: it cannot be paused"
    assert one_line_refusal(resumed) == f"refused (409): job {job} is cancelled: it cannot be resumed"
    assert one_line_refusal(cancelled).startswith(f"refused (409): job {job} is cancelled: it cannot be cancel")
    assert one_line_refusal(unknown) == "refused (404): no job 'job-00000000'"
    assert await audited(api, job) == [("job.create", "running"), ("job.cancel", "cancelled")]


# --- help --------------------------------------------------------------------------------------------------------


async def test_the_help_names_every_command_and_the_fleets_defaults() -> None:
    runner = CliRunner()
    group = runner.invoke(app, ["jobs", "--help"], env={"COLUMNS": "160"})
    create = runner.invoke(app, ["jobs", "create", "--help"], env={"COLUMNS": "200"})

    assert group.exit_code == 0
    for command in ("create", "list", "show", "pause", "resume", "cancel"):
        assert f"│ {command} " in group.stdout
    assert create.exit_code == 0
    words = words_of(create)
    for option, default in (("--deadline", "7d"), ("--step-timeout", "8h"), ("--steps", "0.1,0.5,1"),
                            ("--canary", "1"), ("--max-in-flight", "50"), ("--per-second", "20")):  # fmt: skip
        assert re.search(rf"{option} .*?\[default: \({re.escape(default)}\)\]", words), option
    assert "1m to 90d" in words
