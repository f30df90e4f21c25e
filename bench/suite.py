"""The suite runner: the chosen scenarios one after the other, each isolated from the
others' failures, into one :class:`SuiteReport` (machine facts, options, every
``ScenarioResult``, every target).

A scenario that raises is reported as ``failed`` with the error, and the next one runs; a
scenario that cannot run here says ``n/a`` itself. ``--set NAME=VALUE`` overrides reach
every scenario; ``--set SCENARIO.NAME=VALUE`` only that one (and wins over the former).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

from bench.peers.base import PeerUnavailable
from bench.run import machine_facts
from bench.scenarios.base import Progress, ScenarioOptions, ScenarioResult
from bench.scenarios.registry import ORDER, SCENARIOS


@dataclass
class SuiteReport:
    machine: dict[str, Any]
    options: dict[str, Any]
    results: list[ScenarioResult]

    @property
    def failed(self) -> bool:
        return any(r.status == "failed" for r in self.results)

    def to_json(self) -> dict[str, Any]:
        return {
            "machine": self.machine,
            "options": self.options,
            "scenarios": [r.to_json() for r in self.results],
            "targets": [
                {"scenario": r.scenario, **asdict(t)} for r in self.results for t in r.targets
            ],
        }


def scoped(options: ScenarioOptions, scenario: str) -> ScenarioOptions:
    """``options`` as ``scenario`` sees them: unscoped overrides, then its own
    (``scenario.name=value``), without the other scenarios' ones."""
    overrides: dict[str, str] = {}
    own: dict[str, str] = {}
    for key, value in options.overrides.items():
        head, dot, rest = key.partition(".")
        if not dot:
            overrides[key] = value
        elif head == scenario:
            own[rest] = value
    return replace(options, overrides=overrides | own)


def parse_overrides(pairs: Sequence[str]) -> dict[str, str]:
    """``["a=1", "relay.messages=200"]`` -> a dict; raises ``ValueError`` on a bad pair or
    an unknown scenario prefix."""
    overrides: dict[str, str] = {}
    for pair in pairs:
        name, eq, value = pair.partition("=")
        name = name.strip()
        if not eq or not name:
            raise ValueError(f"--set wants NAME=VALUE, got {pair!r}")
        head, dot, _ = name.partition(".")
        if dot and head not in ORDER:
            raise ValueError(f"--set {name}: no scenario {head!r}")
        overrides[name] = value.strip()
    return overrides


def _describe(error: BaseException) -> str:
    if isinstance(error, BaseExceptionGroup) and error.exceptions:
        return _describe(error.exceptions[0])
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


async def run_suite(
    names: Sequence[str],
    options: ScenarioOptions,
    progress: Progress,
    *,
    after_each: Callable[[SuiteReport], None] | None = None,
) -> SuiteReport:
    """Run the scenarios ``names`` (in the order given) and collect their results.
    ``after_each`` gets the report so far after every scenario (the CLI writes the JSON
    then, so an interrupted long run keeps what it measured)."""
    results: list[ScenarioResult] = []
    machine = machine_facts()
    for name in names:
        scenario = SCENARIOS[name]

        def say(line: str, name: str = name) -> None:
            progress(f"[{name}] {line}")

        say(f"{scenario.description} (size {options.size})")
        started = time.perf_counter()
        try:
            result = await scenario.run(scoped(options, name), say)
        except PeerUnavailable as e:
            result = ScenarioResult(name, "n/a", reason=e.reason)
        except Exception as e:
            result = ScenarioResult(name, "failed", reason=_describe(e))
        result.seconds = time.perf_counter() - started
        say(
            f"{result.status} in {result.seconds:.1f} s"
            + (f": {result.reason}" if result.reason else "")
        )
        results.append(result)
        if after_each is not None:
            after_each(SuiteReport(machine, options_json(names, options), list(results)))
    return SuiteReport(machine, options_json(names, options), results)


def options_json(names: Sequence[str], options: ScenarioOptions) -> dict[str, Any]:
    return {
        "scenarios": list(names),
        "size": options.size,
        "databases": list(options.databases),
        "repeat": options.repeat,
        "overrides": dict(options.overrides),
    }


def targets_by_state(report: SuiteReport) -> Mapping[str, int]:
    counts = {"met": 0, "missed": 0, "not judged": 0}
    for result in report.results:
        for target in result.targets:
            state = "not judged" if target.met is None else ("met" if target.met else "missed")
            counts[state] += 1
    return counts
