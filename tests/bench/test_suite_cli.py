"""The suite's command line: scenario and option parsing, scoped overrides, the old
delivery-only options, missing scenarios shown as n/a, a crashing scenario reported as
failed while the others run."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import pytest

from bench.cli import build_parser, main, suite_options
from bench.scenarios.base import Progress, ScenarioOptions, ScenarioResult
from bench.scenarios.registry import NOT_BUILT, ORDER, SCENARIOS, NotBuilt
from bench.suite import parse_overrides, run_suite, scoped


def options(*argv: str) -> tuple[tuple[str, ...], ScenarioOptions]:
    return suite_options(build_parser().parse_args(list(argv)))


def test_defaults_are_every_scenario_full_on_both_databases() -> None:
    names, opts = options()
    assert names == ORDER
    assert (opts.size, opts.databases, opts.repeat) == ("full", ("sqlite", "postgresql"), 3)


def test_smoke_repeats_once_unless_told() -> None:
    assert options("--size", "smoke")[1].repeat == 1
    assert options("--size", "smoke", "--repeat", "2")[1].repeat == 2


def test_scenarios_and_databases_are_chosen_by_comma_lists() -> None:
    names, opts = options("--scenario", "relay,delivery", "--databases", "postgresql")
    assert names == ("relay", "delivery")
    assert opts.databases == ("postgresql",)


def test_delivery_options_with_suite_options_become_delivery_overrides() -> None:
    _, opts = options("--scenario", "delivery", "--messages", "300", "--peers", "nodemailer")
    assert opts.overrides == {"delivery.messages": "300", "delivery.peers": "nodemailer"}
    assert scoped(opts, "delivery").overrides == {"messages": "300", "peers": "nodemailer"}
    assert scoped(opts, "relay").overrides == {}


def test_a_scoped_override_wins_over_an_unscoped_one() -> None:
    opts = ScenarioOptions(overrides=parse_overrides(["messages=10", "relay.messages=20"]))
    assert scoped(opts, "relay").number("messages", smoke=1, full=2) == 20
    assert scoped(opts, "scale").number("messages", smoke=1, full=2) == 10


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--scenario", "nope"], "unknown scenario(s) nope"),
        (["--databases", "mysql"], "databases: sqlite, postgresql"),
        (["--set", "messages"], "--set wants NAME=VALUE"),
        (["--set", "nope.messages=3"], "no scenario 'nope'"),
    ],
)
def test_bad_options_are_usage_errors(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_every_scenario_of_the_issue_is_registered_in_run_order() -> None:
    assert list(SCENARIOS) == list(ORDER)
    assert ORDER == (
        "delivery",
        "bulk",
        "capture",
        "latency",
        "relay",
        "scale",
        "history",
        "memory",
    )


async def test_a_missing_scenario_is_na_not_built_yet() -> None:
    result = await NotBuilt("bulk").run(ScenarioOptions(), lambda _line: None)
    assert (result.status, result.reason) == ("n/a", NOT_BUILT)


@dataclass(frozen=True)
class Crashing:
    name: str = "delivery"
    description: str = "crashes"

    async def run(self, options: ScenarioOptions, progress: Progress) -> ScenarioResult:
        raise RuntimeError("boom")


def test_a_crashing_scenario_is_failed_and_the_next_one_still_runs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(SCENARIOS, "delivery", Crashing())
    monkeypatch.setitem(SCENARIOS, "bulk", NotBuilt("bulk"))
    lines: list[str] = []
    report = asyncio.run(run_suite(["delivery", "bulk"], ScenarioOptions(), lines.append))
    crashed, missing = report.results
    assert (crashed.status, crashed.reason) == ("failed", "RuntimeError: boom")
    assert missing.status == "n/a"
    assert report.failed
    assert "[delivery] failed" in "\n".join(lines)


def test_a_report_renders_as_markdown_for_the_docs() -> None:
    from bench.markdown import render
    from bench.scenarios.base import Measurement, judge
    from bench.suite import SuiteReport

    result = ScenarioResult(
        "relay",
        "ok",
        measurements=[
            Measurement("nodemailer", "throughput", 150.0, "msgs/s", ratio=1.0),
            Measurement("visitmail", "throughput", 300.0, "msgs/s", database="sqlite", ratio=2.0),
        ],
        targets=[judge("relay: visitmail >= 1.8x nodemailer (sqlite)", 2.0, 1.8, "higher", "full")],
    )
    machine = {
        "cpu_count": 2,
        "machine": "x86_64",
        "platform": "Linux",
        "python": "3.11",
        "node": "v20",
    }
    report = SuiteReport(machine, {"size": "full", "databases": ["sqlite"], "repeat": 3}, [result])
    text = render(report.to_json())
    assert "| relay | visitmail | sqlite | throughput | 300 | msgs/s | 2.00x |" in text
    assert "| relay: visitmail >= 1.8x nodemailer (sqlite) | 2.00 | >= 1.80 | met |" in text
