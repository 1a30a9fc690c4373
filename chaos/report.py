"""The summary table of a chaos run: what was injected, what the checker found."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from chaos.checker import Findings

EXIT_PASSED = 0
EXIT_MISMATCH = 1
"""Something was lost, duplicated, wrong, over capacity or mismatched (or unmodelled)."""
EXIT_NOT_SETTLED = 2
"""The run did not finish: the service never caught up (the checker still ran)."""


@dataclass
class Faults:
    """What the driver did to the service, and when (seconds since the feed started)."""

    kills: int = 0
    restarts: int = 0
    rebalances: int = 0
    broker_restarts: int = 0
    broker_kills: int = 0
    unexpected_exits: int = 0
    producer_retries: int = 0
    log: list[dict[str, Any]] = field(default_factory=list)

    def note(self, at: float, what: str, **details: Any) -> None:
        self.log.append({"at_s": round(at, 2), "what": what, **details})


def table(rows: list[tuple[str, str]]) -> str:
    width = max(len(name) for name, _ in rows)
    value_width = max(len(value) for _, value in rows)
    rule = f"+-{'-' * width}-+-{'-' * value_width}-+"
    lines = [rule]
    for name, value in rows:
        lines.append(f"| {name.ljust(width)} | {value.rjust(value_width)} |")
    lines.append(rule)
    return "\n".join(lines)


def summary(
    title: str, findings: Findings, faults: Faults, settled: bool, seconds: float
) -> tuple[str, int]:
    """The table and the exit code: 0 only when every problem count is 0."""
    injected = [
        ("SIGKILLs of service processes", faults.kills),
        ("service restarts", faults.restarts),
        ("rebalances forced (instance started/stopped)", faults.rebalances),
        ("broker restarts", faults.broker_restarts),
        ("brokers killed mid-stream", faults.broker_kills),
        ("unexpected exits (restarted)", faults.unexpected_exits),
        ("producer retries", faults.producer_retries),
    ]
    counts = findings.counts()
    problems = len(counts) - len(findings.problems())
    counts[problems:problems] = injected
    rows = [(name, f"{value:,}") for name, value in counts]
    rows.append(("settled", "yes" if settled else "NO"))
    rows.append(("seconds", f"{seconds:,.0f}"))
    code = EXIT_PASSED
    if not findings.ok:
        code = EXIT_MISMATCH
    elif not settled:
        code = EXIT_NOT_SETTLED
    rows.append(("result", "PASS" if code == EXIT_PASSED else "FAIL"))
    lines = [title, table(rows)]
    examples = findings.examples()
    if examples:
        lines.append("first findings:")
        lines.extend(f"  {line}" for line in examples)
    return "\n".join(lines), code
