"""``relay``: a relay far away. The same messages as ``delivery``, but every peer talks to
smtp-sink through ``bench.delay_proxy``, which delays each direction by 10 ms (a 20 ms
round trip): what counts is how few round trips a message costs (pipelining) and how well
the connections are kept busy (pooling), not CPU.

Peers: ``nodemailer`` (pooled, TCP_NODELAY: the baseline) and ``visitmail`` on each
database, with the same number of connections (8). Target: visitmail >= 1.8x Nodemailer's
msgs/s (per database). The proxy counts the connections each run really opened; the report
notes them.

Overrides (``--set relay.NAME=VALUE``): ``messages``, ``connections``, ``delay_ms``.
"""

from __future__ import annotations

from dataclasses import dataclass

from bench.run import BASELINE_PEER, BenchConfig
from bench.scenarios.base import Progress, ScenarioOptions, ScenarioResult, Target, judge
from bench.scenarios.peer_runs import find, run_peers, status_of

GOAL = 1.8
PEERS = ("nodemailer", "visitmail")


@dataclass(frozen=True)
class RelayScenario:
    name: str = "relay"
    description: str = "the delivery workload through a relay 10 ms away each direction"

    async def run(self, options: ScenarioOptions, progress: Progress) -> ScenarioResult:
        delay_ms = float(options.overrides.get("delay_ms", "10"))
        connections = options.number("connections", smoke=8, full=8)
        config = BenchConfig(
            messages=options.number("messages", smoke=40, full=2000),
            connections=connections,
            repeat=options.repeat,
            peers=PEERS,
            relay_delay=delay_ms / 1000,
        )
        report, measurements, notes = await run_peers(config, PEERS, options.databases, progress)
        targets: list[Target] = []
        for kind in options.databases:
            m = find(measurements, "visitmail", kind)
            targets.append(
                judge(
                    f"relay: visitmail >= {GOAL}x {BASELINE_PEER} msgs/s, {connections} "
                    f"connections, {delay_ms:g} ms each way ({kind})",
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
                f"each direction delayed {delay_ms:g} ms by bench/delay_proxy.py (its own "
                "process); a pipelined burst costs one delay",
                *notes,
            ],
        )


SCENARIO = RelayScenario()
