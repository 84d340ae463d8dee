"""Fitting the risk calibration that gradlint ships (gradlint/risk_model.json), offline, on the
labelled corpus: benchmarks/evaluate.py calls `fit` in its cross-validation and `save` for --fit.
gradlint itself only predicts with the fitted weights (gradlint.risk), so numpy and scipy are
needed here and never at lint time.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence


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
