"""Every scenario ``visitmail bench`` knows, in run order.

``bulk``, ``capture``, ``latency`` and ``history`` live in modules of their own
(``bench/scenarios/<name>.py``, each exposing ``SCENARIO``) that may not exist yet in a
checkout; a missing one is listed all the same and reports ``n/a`` ("not built yet"), so
the runner, the table and the JSON always show every scenario of issue 9.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from bench.scenarios.base import Progress, Scenario, ScenarioOptions, ScenarioResult

ORDER = ("delivery", "bulk", "capture", "latency", "relay", "scale", "history", "memory")
NOT_BUILT = "not built yet"


@dataclass(frozen=True)
class NotBuilt:
    """Stands in for a scenario whose module is missing."""

    name: str
    description: str = NOT_BUILT

    async def run(self, options: ScenarioOptions, progress: Progress) -> ScenarioResult:
        return ScenarioResult(self.name, "n/a", reason=NOT_BUILT)


def _load(name: str) -> Scenario:
    try:
        module = importlib.import_module(f"bench.scenarios.{name}")
    except ModuleNotFoundError as e:
        if e.name != f"bench.scenarios.{name}":
            raise  # the module exists but something it imports is missing: a real error
        return NotBuilt(name)
    scenario: Scenario = module.SCENARIO
    return scenario


SCENARIOS: dict[str, Scenario] = {name: _load(name) for name in ORDER}


def is_built(name: str) -> bool:
    return not isinstance(SCENARIOS[name], NotBuilt)
