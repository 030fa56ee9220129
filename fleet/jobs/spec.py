"""What a job is asked to do, to whom, and how carefully: the request staff send, checked before anything runs."""

from enum import StrEnum
from typing import Annotated, Self

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from protocol.gateway_config import DeviceKind
from protocol.identifiers import Identifier
from protocol.updates import ReleaseVersion

Reason = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=256)]
MAX_TARGETS = 20_000
"""Gateways one job may reach: a city (about 1,100 villages) many times over."""


class JobKind(StrEnum):
    UPDATE_AGENT = "update_agent"
    RESTART_AGENT = "restart_agent"
    DIAGNOSTICS = "diagnostics"


class Selector(BaseModel):
    """Which gateways: all of these that are given (a list matches any of its entries); ``everywhere`` for the
    whole fleet, so that forgetting every filter never reaches every gateway."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    everywhere: bool = False
    counties: list[Identifier] = Field(default_factory=list, max_length=1_000)
    towns: list[Identifier] = Field(default_factory=list, max_length=5_000)
    villages: list[Identifier] = Field(default_factory=list, max_length=20_000)
    gateways: list[Identifier] = Field(default_factory=list, max_length=MAX_TARGETS)
    agent_versions: list[ReleaseVersion] = Field(
        default_factory=list, max_length=100, description="Gateways running one of these agent versions now."
    )
    device_kind: DeviceKind | None = Field(default=None, description="Gateways with at least one such device.")

    @model_validator(mode="after")
    def _says_whom(self) -> Self:
        narrowed = self.counties or self.towns or self.villages or self.gateways or self.agent_versions
        if not self.everywhere and not narrowed and self.device_kind is None:
            raise ValueError("say which gateways (counties, towns, villages, gateways, versions, a device kind), "
                             "or everywhere: true for the whole fleet")  # fmt: skip
        return self


class Waves(BaseModel):
    """How the job spreads: a canary wave of ``canary`` gateways first, then waves up to each share of all the
    targets in ``steps`` (cumulative, the last 1.0), each started only once the one before has ended."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    canary: int = Field(default=1, ge=1, le=1_000)
    steps: list[Annotated[float, Field(gt=0, le=1)]] = Field(default_factory=lambda: [0.1, 0.5, 1.0], max_length=20)
    max_in_flight: int = Field(default=50, ge=1, le=5_000, description="Gateways busy with the job at once.")
    per_second: float = Field(default=20.0, gt=0, le=1_000, description="Commands sent a second, at most.")

    @model_validator(mode="after")
    def _steps_grow_to_all(self) -> Self:
        if any(later <= earlier for earlier, later in zip(self.steps, self.steps[1:], strict=False)):
            raise ValueError("waves.steps must grow (cumulative shares of the targets)")
        if not self.steps or self.steps[-1] != 1.0:
            raise ValueError("waves.steps must end with 1.0: the last wave reaches every target")
        return self


class AbortPolicy(BaseModel):
    """When the job stops by itself: after ``failures`` gateways failed or rolled back, or once the failed share of
    those finished reaches ``failure_share`` (after at least ``min_finished`` finished). Unset: that limit is off;
    ``failures`` defaults to 1 unless a ``failure_share`` is given."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _a_share_alone_is_the_limit(cls, values: object) -> object:
        if isinstance(values, dict) and values.get("failure_share") is not None and "failures" not in values:
            return {**values, "failures": None}
        return values

    failures: int | None = Field(default=1, ge=1, description="Default: the first failure stops it.")
    failure_share: float | None = Field(default=None, gt=0, le=1)
    min_finished: int = Field(default=1, ge=1)
    revert: bool = Field(
        default=True, description="update_agent: put the gateways it already updated back on their earlier version."
    )


class JobRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: JobKind
    version: ReleaseVersion | None = Field(default=None, description="update_agent: the agent release to install.")
    target: Selector
    waves: Waves = Field(default_factory=Waves)
    abort: AbortPolicy = Field(default_factory=AbortPolicy)
    deadline_s: int = Field(
        default=7 * 86_400,
        ge=60,
        le=90 * 86_400,
        description="How long gateways that are offline may still get it; past it they are skipped.",
    )
    step_timeout_s: int = Field(
        default=8 * 3_600,
        ge=60,
        le=7 * 86_400,
        description="How long one gateway may take once it got the job: more than a gateway puts an update off for "
        "an alarm (6 h) and a slow link's download.",
    )
    reason: Reason

    @model_validator(mode="after")
    def _update_names_its_release(self) -> Self:
        if (self.kind is JobKind.UPDATE_AGENT) != (self.version is not None):
            raise ValueError("version is given for update_agent jobs, and for them only")
        return self
