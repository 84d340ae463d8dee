"""Combine findings into one explosion risk per model.

Each finding carries its rule's estimate (`weight`) that this cause alone makes training
diverge. Causes are treated as independent (noisy-OR): risk = 1 - prod(1 - w). The risk is
monotone: adding a finding, or making one stronger, never lowers it.
"""

from __future__ import annotations

from collections.abc import Sequence

from gradlint.findings import Finding

LEVELS = ((0.7, "high"), (0.3, "medium"), (0.0, "low"))


def combine(findings: Sequence[Finding]) -> float:
    survive = 1.0
    for finding in findings:
        survive *= 1.0 - finding.weight
    return 1.0 - survive


def level(risk: float) -> str:
    return next(name for threshold, name in LEVELS if risk >= threshold)


def top_causes(findings: Sequence[Finding], limit: int = 3) -> tuple[str, ...]:
    """The strongest distinct rules, as `CODE name`."""
    causes: list[str] = []
    for finding in sorted(findings, key=lambda f: -f.weight):
        label = f"{finding.code} {finding.name}"
        if finding.weight > 0 and label not in causes:
            causes.append(label)
    return tuple(causes[:limit])
