"""Every registered scenario at size smoke, through the entry point ``make bench`` uses
(``bench.cli.main``, i.e. ``visitmail bench``): each reports ok with a positive figure for
every peer it measures, the JSON is written and parses, the chart is a PNG. One suite run
for the module (worker processes and Node start slowly); no timing is asserted."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bench.cli import main
from bench.scenarios.registry import NOT_BUILT, ORDER, SCENARIOS, is_built

pytestmark = pytest.mark.xdist_group("bench")

# The peers (and databases) the scenarios built on this branch must report.
EXPECTED: dict[str, set[tuple[str, str | None]]] = {
    "delivery": {
        ("nodemailer", None),
        ("nodemailer-default", None),
        ("aiosmtplib-raw", None),
        ("visitmail", "sqlite"),
        ("visitmail", "postgresql"),
    },
    "relay": {("nodemailer", None), ("visitmail", "sqlite"), ("visitmail", "postgresql")},
    "scale": {("1 worker", "postgresql"), ("2 workers", "postgresql")},
    "memory": {("visitmail", "postgresql")},
}


class SuiteRun:
    def __init__(self, code: int, report: dict[str, Any], chart: Path) -> None:
        self.code = code
        self.report = report
        self.chart = chart

    def result(self, name: str) -> dict[str, Any]:
        return next(s for s in self.report["scenarios"] if s["scenario"] == name)


@pytest.fixture(scope="module")
def suite(tmp_path_factory: pytest.TempPathFactory) -> SuiteRun:
    out = tmp_path_factory.mktemp("bench")
    json_path, chart = out / "bench.json", out / "bench.png"
    code = main(["--size", "smoke", "--json", str(json_path), "--chart", str(chart)])
    return SuiteRun(code, json.loads(json_path.read_text()), chart)


def test_the_run_succeeds_and_reports_every_scenario_in_order(suite: SuiteRun) -> None:
    assert suite.code == 0, [
        (s["scenario"], s["reason"]) for s in suite.report["scenarios"] if s["status"] != "ok"
    ]
    assert [s["scenario"] for s in suite.report["scenarios"]] == list(ORDER)
    assert suite.report["options"]["size"] == "smoke"
    assert suite.report["options"]["databases"] == ["sqlite", "postgresql"]
    assert suite.report["machine"]["cpu_count"] >= 1
    assert suite.report["machine"]["node"].startswith("v")


def test_the_chart_is_a_png(suite: SuiteRun) -> None:
    assert suite.chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_smoke_targets_are_listed_but_not_judged(suite: SuiteRun) -> None:
    targets = suite.report["targets"]
    assert {t["scenario"] for t in targets} >= {n for n in EXPECTED}
    assert all(t["met"] is None for t in targets)


@pytest.mark.parametrize("name", ORDER)
def test_scenario_measures_every_peer(suite: SuiteRun, name: str) -> None:
    result = suite.result(name)
    if not is_built(name):
        assert (result["status"], result["reason"]) == ("n/a", NOT_BUILT)
        pytest.skip(f"{name}: {NOT_BUILT} (bench/scenarios/{name}.py is missing)")
    assert result["status"] == "ok", result["reason"] or result["notes"]
    measurements = result["measurements"]
    assert measurements, f"{name} measured nothing"
    for m in measurements:
        assert m["value"] is not None and m["value"] > 0, m
    if name in EXPECTED:
        seen = {(m["peer"], m["database"]) for m in measurements}
        assert seen == EXPECTED[name]
    assert result["seconds"] > 0
    assert SCENARIOS[name].name == name
