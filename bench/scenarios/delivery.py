"""``delivery``: the engine alone. Every peer sends the same N pre-built messages over K
connections to a fresh smtp-sink; visitmail enqueues them into its durable outbox and its
worker drains it (once per database). The original benchmark (``bench.run``), unchanged.

Peers: ``nodemailer`` (pooled, TCP_NODELAY: the baseline), ``nodemailer-default`` (as
shipped, Nagle on), ``aiosmtplib-raw`` (no database: the ceiling for a Python sender),
``visitmail`` on each database. Target: visitmail >= 1.5x Nodemailer's msgs/s, per database.

Overrides (``--set delivery.NAME=VALUE``): ``messages``, ``connections``, ``peers``
(comma-separated), ``sink`` (auto, smtp-sink, aiosmtpd), ``verify_ids`` (0/1), ``timeout``.
"""

from __future__ import annotations

from dataclasses import dataclass

from bench.peers.registry import PEERS
from bench.run import BASELINE_PEER, DEFAULT_PEERS, BenchConfig
from bench.scenarios.base import Progress, ScenarioOptions, ScenarioResult, Target, judge
from bench.scenarios.peer_runs import find, run_peers, status_of
from bench.sink import SinkKind

GOAL = 1.5


def peer_names(text: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in text.replace("+", ",").split(",") if n.strip())
    unknown = [n for n in names if n not in PEERS]
    if unknown or not names:
        raise ValueError(f"unknown peer(s) {', '.join(unknown) or '(none)'}")
    return names


@dataclass(frozen=True)
class DeliveryScenario:
    name: str = "delivery"
    description: str = "N messages through each peer to smtp-sink (engine alone)"

    async def run(self, options: ScenarioOptions, progress: Progress) -> ScenarioResult:
        o = options.overrides
        names = peer_names(o["peers"]) if "peers" in o else DEFAULT_PEERS
        sink: SinkKind = o.get("sink", "auto")  # type: ignore[assignment]
        config = BenchConfig(
            messages=options.number("messages", smoke=50, full=2000),
            connections=options.number("connections", smoke=2, full=4),
            repeat=options.repeat,
            peers=names,
            database=options.databases[0] if options.databases else "sqlite",
            sink=sink,
            verify_message_ids=o.get("verify_ids", "1") != "0",
            run_timeout=float(o.get("timeout", "600")),
        )
        report, measurements, notes = await run_peers(config, names, options.databases, progress)
        targets: list[Target] = []
        if "visitmail" in names:
            for kind in options.databases:
                m = find(measurements, "visitmail", kind)
                targets.append(
                    judge(
                        f"delivery: visitmail >= {GOAL}x {BASELINE_PEER} msgs/s ({kind})",
                        m.ratio if m else None,
                        GOAL,
                        "higher",
                        options.size,
                    )
                )
        params = dict(report.params)
        params["databases"] = list(options.databases)
        params.pop("database", None)
        return ScenarioResult(
            scenario=self.name,
            status=status_of(report),
            params=params,
            measurements=measurements,
            targets=targets,
            notes=[
                f"ratio = msgs/s relative to {BASELINE_PEER} (pooled, TCP_NODELAY) in the same "
                "run; median over the repeats",
                *notes,
            ],
        )


SCENARIO = DeliveryScenario()
