"""Combine findings into one explosion risk per model.

Each finding carries its rule's estimate (`weight`) that this cause alone makes training
diverge. Per rule family the strongest finding is the evidence, as a hazard h = -ln(1 - w).
The risk is a logistic model over the families' hazards,

    risk = sigmoid(bias + sum_f a_f * h_f),    a_f >= 0,

fitted on the labelled corpus of real training runs (benchmarks/evaluate.py --fit) and shipped
as risk_model.json. The weights are kept non-negative, so the risk is monotone: a new finding,
or a stronger one, never lowers it. Without a fitted model, the families combine as a noisy-OR.
"""

from __future__ import annotations

import functools
import json
import math
import os
from collections.abc import Mapping, Sequence

from gradlint.findings import Finding

LEVELS = ((0.7, "high"), (0.3, "medium"), (0.0, "low"))
MODEL_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "risk_model.json")
_MAX_WEIGHT = 0.999  # a finding's weight of 1 would be an infinite hazard


def hazard(weight: float) -> float:
    return -math.log(1.0 - min(max(weight, 0.0), _MAX_WEIGHT))


def evidence(findings: Sequence[Finding]) -> dict[str, float]:
    """Family -> hazard of its strongest finding."""
    from gradlint.registry import rule_by_code

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


def fit(evidences: Sequence[Mapping[str, float]], labels: Sequence[bool], l2: float = 0.05) -> dict:
    """Logistic regression with non-negative feature weights: mean log-loss plus
    l2/2 * sum_f (sd_f * w_f)^2, minimized by L-BFGS-B with the weights bounded below by 0 (the
    bias is free).

    The corpus is small, so the L2 penalty keeps features from running away; evaluate.py picks its
    strength by cross-validation. The penalty is on the weights of standardized features (sd_f is
    the feature's standard deviation over these cases), as glmnet and the usual scale-then-fit
    pipeline do: a penalty on raw weights would shrink a feature by its units, and a cause that
    fires rarely but strongly (a division by a norm without eps) most of all. Runs in the
    benchmark only (numpy and scipy, which scikit-learn brings); predicting at lint time needs no
    solver, and the weights it returns apply to the raw features.
    """
    import numpy as np
    from scipy.optimize import minimize

    features = sorted({f for e in evidences for f in e})
    x = np.array([[e.get(f, 0.0) for f in features] for e in evidences], dtype=float).reshape(len(evidences), -1)
    y = np.array([1.0 if label else 0.0 for label in labels])
    variance = x.var(axis=0)
    variance[variance == 0.0] = 1.0  # a constant feature cannot be told from the bias: keep the plain penalty

    def objective(theta):
        z = theta[0] + x @ theta[1:]
        # log(1 + e^z) - y z, computed stably; its gradient is sigmoid(z) - y.
        loss = float(np.mean(np.logaddexp(0.0, z) - y * z)) + 0.5 * l2 * float(variance @ theta[1:] ** 2)
        residual = 1.0 / (1.0 + np.exp(-np.clip(z, -60, 60))) - y
        gradient = np.concatenate(([residual.mean()], x.T @ residual / len(y) + l2 * variance * theta[1:]))
        return loss, gradient

    bounds = [(None, None)] + [(0.0, None)] * len(features)
    result = minimize(objective, np.zeros(1 + len(features)), jac=True, method="L-BFGS-B", bounds=bounds)
    return {"bias": float(result.x[0]), "weights": dict(zip(features, result.x[1:].tolist())), "l2": l2,
            "cases": len(y), "positives": int(y.sum())}


def save(model: Mapping, path: str) -> None:
    rounded = {**model, "bias": round(model["bias"], 4),
               "weights": {f: round(w, 4) for f, w in sorted(model["weights"].items())}}
    with open(path, "w") as handle:
        json.dump(rounded, handle, indent=2)
        handle.write("\n")


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
