"""The risk model: hazards, the fitted logistic calibration, and its guarantees (monotone in
the evidence, non-negative weights)."""

from __future__ import annotations

import math
import random
import sys
from pathlib import Path

import pytest

from gradlint import risk
from gradlint.findings import Finding, Location, Severity
from gradlint.registry import all_rules

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import calibration  # noqa: E402  (benchmarks/calibration.py: the offline fit of the shipped calibration)


def _finding(code: str, weight: float) -> Finding:
    return Finding(code=code, name="x", severity=Severity.WARNING, message="m", location=Location("m.py", 1, 1),
                   weight=weight)


def test_hazard_is_the_weight_as_an_additive_rate():
    assert risk.hazard(0.0) == 0.0
    assert risk.hazard(0.5) == pytest.approx(math.log(2))
    assert math.isfinite(risk.hazard(1.0))  # capped: one finding cannot make the risk exactly 1


def test_evidence_keeps_each_familys_strongest_finding():
    evidence = risk.evidence([_finding("GL601", 0.3), _finding("GL602", 0.6), _finding("GL201", 0.2)])
    assert evidence == {"optimizer": pytest.approx(risk.hazard(0.6)), "init": pytest.approx(risk.hazard(0.2))}


def test_noisy_or_without_a_fitted_model():
    assert risk.combine_evidence({"a": risk.hazard(0.5), "b": risk.hazard(0.5)}) == pytest.approx(0.75)


MODEL = {"bias": -2.0, "weights": {"optimizer": 1.0, "init": 0.5, "m:lookahead_growth": 0.8}}


def test_predict_is_monotone_in_every_feature():
    base = {"optimizer": 0.5, "m:lookahead_growth": 0.2}
    for feature in ("optimizer", "init", "m:lookahead_growth", "attention"):
        raised = dict(base, **{feature: base.get(feature, 0.0) + 1.0})
        assert risk.predict(MODEL, raised) >= risk.predict(MODEL, base)


def test_unknown_family_counts_as_an_average_family_and_unknown_measurement_as_nothing():
    assert risk.predict(MODEL, {"thirdparty": 1.0}) == pytest.approx(1 / (1 + math.exp(2.0 - 0.75)))
    assert risk.predict(MODEL, {"m:unknown": 5.0}) == risk.predict(MODEL, {})


def test_fit_learns_an_informative_feature_and_clamps_a_misleading_one_at_zero():
    pytest.importorskip("scipy")
    rng = random.Random(0)
    evidences, labels = [], []
    for _ in range(200):
        label = rng.random() < 0.5
        evidences.append({"signal": rng.gauss(2.0 if label else 0.5, 0.5),  # higher when it diverges
                          "m:misleading": rng.gauss(0.5 if label else 2.0, 0.5)})  # lower when it diverges
        labels.append(label)
    model = calibration.fit(evidences, labels, l2=0.01)
    assert model["weights"]["signal"] > 1.0
    assert model["weights"]["m:misleading"] == 0.0  # a negative weight would make the risk non-monotone
    weaker = calibration.fit(evidences, labels, l2=1.0)
    assert 0.0 < weaker["weights"]["signal"] < model["weights"]["signal"]
    assert (model["cases"], model["positives"]) == (200, sum(labels))


def test_fit_does_not_depend_on_a_feature_s_units():
    # The penalty is on standardized features: a feature measured in other units (here x10)
    # gets the weight that gives the same risks, where a raw-weight penalty would shrink it less.
    pytest.importorskip("scipy")
    rng = random.Random(1)
    evidences, labels = [], []
    for _ in range(120):
        label = rng.random() < 0.4
        evidences.append({"signal": max(0.0, rng.gauss(1.5 if label else 0.5, 0.7)),
                          "rare": 2.0 if label and rng.random() < 0.1 else 0.0})
        labels.append(label)
    model = calibration.fit(evidences, labels, l2=0.1)
    scaled = calibration.fit([{"signal": 10 * e["signal"], "rare": e["rare"]} for e in evidences], labels, l2=0.1)
    assert scaled["weights"]["signal"] == pytest.approx(model["weights"]["signal"] / 10, rel=1e-3)
    assert scaled["weights"]["rare"] == pytest.approx(model["weights"]["rare"], rel=1e-3)
    assert scaled["bias"] == pytest.approx(model["bias"], rel=1e-3)


def test_levels():
    assert [risk.level(v) for v in (0.0, 0.29, 0.3, 0.69, 0.7, 1.0)] == ["low", "low", "medium", "medium", "high",
                                                                        "high"]


def test_the_shipped_model_is_monotone_and_names_known_features():
    model = risk.shipped_model()
    assert model is not None and model["cases"] >= 60
    families = {rule.family for rule in all_rules()}
    for feature, weight in model["weights"].items():
        assert weight >= 0.0, feature
        assert feature.startswith("m:") or feature in families, feature
