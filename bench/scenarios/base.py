"""What a benchmark scenario is and what it reports.

A scenario (``delivery``, ``bulk``, ``capture``, ``latency``, ``relay``, ``scale``,
``history``, ``memory``) measures one path a user waits for, with its peers **in the same
run**, and returns a :class:`ScenarioResult`: one :class:`Measurement` per peer and metric
(and database, where it matters) and the issue's :class:`Target` s, each marked met or not.
The runner (``bench.cli``) prints every result as a table, writes them all to one JSON file
and draws one chart image.

``ScenarioOptions.size`` is ``"smoke"`` for the tiny runs ``make test`` does (seconds, to
prove the scenario works end to end; its targets are reported but never judged) and
``"full"`` for ``make bench``. A scenario that cannot run here (a tool is missing) returns
status ``n/a`` with the reason; one whose run lost or duplicated messages returns
``failed`` — never a fast number.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, Protocol

DatabaseKind = Literal["sqlite", "postgresql"]
Size = Literal["smoke", "full"]
Status = Literal["ok", "failed", "n/a"]
Better = Literal["higher", "lower"]
Progress = Callable[[str], None]


@dataclass(frozen=True)
class ScenarioOptions:
    """What every scenario gets from the command line."""

    size: Size = "full"
    databases: tuple[DatabaseKind, ...] = ("sqlite", "postgresql")
    repeat: int = 3
    # Free-form per-scenario overrides from ``--set name=value`` (e.g. messages=500).
    overrides: dict[str, str] = field(default_factory=dict)

    def number(self, name: str, *, smoke: int, full: int) -> int:
        """``overrides[name]`` if given, else the default for this size."""
        if name in self.overrides:
            return int(self.overrides[name])
        return smoke if self.size == "smoke" else full


@dataclass(frozen=True)
class Measurement:
    """One figure: ``peer`` (``visitmail``, ``nodemailer``, ...) on ``database`` (None when
    the peer has none) measured ``value`` in ``unit`` (``msgs/s``, ``ms``, ``MB``, ...) for
    ``metric`` (``throughput``, ``p50``, ``p99``, ``peak_rss``, ...). ``ratio`` is the
    value relative to the scenario's baseline peer (>1 means better when ``better`` is
    ``higher``), None when there is no baseline."""

    peer: str
    metric: str
    value: float | None
    unit: str
    better: Better = "higher"
    database: DatabaseKind | None = None
    ratio: float | None = None
    samples: tuple[float, ...] = ()
    note: str = ""


@dataclass(frozen=True)
class Target:
    """A goal of issue 9, e.g. ``bulk msgs/s >= 1000 (sqlite)``: ``measured`` against
    ``goal`` in the direction of ``better``. ``met`` is None when not judged (smoke runs,
    or nothing measured)."""

    description: str
    measured: float | None
    goal: float
    better: Better
    met: bool | None


def judge(
    description: str, measured: float | None, goal: float, better: Better, size: Size
) -> Target:
    """A :class:`Target`, judged only on full runs with a measurement."""
    met: bool | None = None
    if size == "full" and measured is not None:
        met = measured >= goal if better == "higher" else measured <= goal
    return Target(description, measured, goal, better, met)


@dataclass
class ScenarioResult:
    """Everything a scenario reports. ``params`` are its effective parameters (sizes,
    rates, connections); ``notes`` are lines for the reader (which sink ran, why a peer is
    n/a, where a profile is)."""

    scenario: str
    status: Status
    params: dict[str, Any] = field(default_factory=dict)
    measurements: list[Measurement] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    reason: str | None = None
    seconds: float = 0.0  # wall time of the whole scenario

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class Scenario(Protocol):
    """One benchmark scenario. ``run`` sets up everything it needs (sinks, databases,
    servers, peers), measures, tears everything down (also on error) and returns the
    result; it reports progress lines through ``progress``."""

    @property
    def name(self) -> str: ...

    @property
    def description(self) -> str: ...

    async def run(self, options: ScenarioOptions, progress: Progress) -> ScenarioResult: ...
