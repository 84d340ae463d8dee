"""Combine findings into one explosion risk per model.

Each finding carries its rule's estimate (`weight`) that this cause alone makes training
diverge. Per rule family the strongest finding is the evidence, as a hazard h = -ln(1 - w).
The risk is a logistic model over the families' hazards,

    risk = sigmoid(bias + sum_f a_f * h_f),    a_f >= 0,

fitted on the labelled corpus of real training runs (benchmarks/evaluate.py --fit, with the
solver in benchmarks/calibration.py) and shipped as risk_model.json. The weights are kept non-negative, so the risk is monotone: a new finding,
or a stronger one, never lowers it. Without a fitted model, the families combine as a noisy-OR.
"""

from __future__ import annotations

import functools
import json
import math
import os
from collections.abc import Mapping, Sequence

from gradlint.findings import Finding
from gradlint.registry import rule_by_code

LEVELS = ((0.7, "high"), (0.3, "medium"), (0.0, "low"))
MODEL_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "risk_model.json")
_MAX_WEIGHT = 0.999  # a finding's weight of 1 would be an infinite hazard


def hazard(weight: float) -> float:
    return -math.log(1.0 - min(max(weight, 0.0), _MAX_WEIGHT))


def evidence(findings: Sequence[Finding]) -> dict[str, float]:
    """Family -> hazard of its strongest finding."""
    result: dict[str, float] = {}
    for finding in findings:
        rule = rule_by_code(finding.code)
        family = rule.family if rule is not None else finding.code[:3]
        result[family] = max(result.get(family, 0.0), hazard(finding.weight))
    return result


def combine_evidence(evidence_by_family: Mapping[str, float]) -> float:
    """Noisy-OR over families: each family an independent cause."""
    return 1.0 - math.exp(-sum(evidence_by_family.values()))


def features(findings: Sequence[Finding], measured: Mapping[str, float] | None = None) -> dict[str, float]:
    """The risk model's inputs: each family's strongest finding as a hazard, plus the continuous
    measurements rules recorded (RuleContext.record), prefixed `m:`."""
    result = evidence(findings)
    result.update({f"m:{name}": value for name, value in (measured or {}).items()})
    return result


def weighs(rule: type) -> bool:
    """Whether the shipped calibration weighs this rule's evidence: a built-in rule whose family
    has a positive weight (the measurements rules record come from such families). Its absence
    from a run makes the risk incomplete; a third-party rule's never does, as no calibration
    saw it."""
    model = shipped_model()
    builtin = rule.__module__.startswith("gradlint.rules.")
    return builtin and (model is None or model["weights"].get(rule.family, 0.0) > 0.0)


def combine(findings: Sequence[Finding], measured: Mapping[str, float] | None = None) -> float:
    model = shipped_model()
    if model is None:
        return combine_evidence(evidence(findings))
    return predict(model, features(findings, measured))


@functools.cache
def shipped_model() -> dict | None:
    try:
        with open(MODEL_PATH) as handle:
            return json.load(handle)
    except FileNotFoundError:
        return None


def predict(model: Mapping, evidence_by_family: Mapping[str, float]) -> float:
    # A family the model never saw (a third-party rule) counts like an average fitted family;
    # a measurement it never saw counts for nothing.
    weights = model["weights"]
    families = [w for f, w in weights.items() if not f.startswith("m:")]
    default = sum(families) / len(families) if families else 1.0
    z = model["bias"] + sum(weights.get(f, 0.0 if f.startswith("m:") else default) * h
                            for f, h in evidence_by_family.items())
    return 1.0 / (1.0 + math.exp(-max(min(z, 60.0), -60.0)))


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
