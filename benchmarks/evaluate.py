"""Check gradlint's risk against real training runs: the labelled corpus in benchmarks/cases.

    python benchmarks/evaluate.py [--truth benchmarks/truth.json] [--out benchmarks/evaluation.json]
                                  [--fit gradlint/risk_model.json]

For every case it runs gradlint exactly as a user would (the model file's conventions only: it
never reads `make_batch` or `TRAIN_STEPS`), and, in the same run on the same example batch, three
baselines:
  - AUTOTRAINER's rule: ||grad W_first|| / ||grad W_last|| > 70 (monitor.py, ICSE'21);
  - a global gradient norm above 100 at init (torch-audit TA102, trainpulse);
  - a dry run: 10 real optimizer steps on the example batch, judged by the corpus's own
    divergence criteria (non-finite, grad norm > 1000x step 0 or > 1e6, loss > 10x step 0).
It prints AUROC of each score against DIVERGED (and against DIVERGED or STALLED), precision,
recall and false-positive rate at each default threshold, per-rule precision, and per rule and
severity the share of flagged cases that failed to train (benchmarks/severities.py).

gradlint's risk is a logistic calibration of its rules' evidence (gradlint/risk_model.json).
Its AUROC here is cross-validated: each case is scored by a model fitted without it and without
its twins (cases sharing a name stem or named in each other's docstrings: twin_groups), and by an
L2 strength chosen by an inner cross-validation on the other cases (nested), so no case scores
itself. `--fit PATH` refits the shipped calibration on the whole corpus, writes it, and compares it
in-sample with the shipped one (with `--fit-only`, nothing else is computed). `--rescore` reuses the
per-case measurements of a previous run (--out) and only recomputes the calibration and the metrics.
"""

from __future__ import annotations

import argparse
import ast
import copy
import json
import math
import os
import re
import statistics
import sys
import time
from dataclasses import dataclass, field

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from gradlint.discover import Target  # noqa: E402
from gradlint.engine import Settings, lint_spec  # noqa: E402
from gradlint.load import load_target  # noqa: E402
from gradlint.optimizers import fresh_optimizer  # noqa: E402
from gradlint.losses import training_loss  # noqa: E402
from gradlint.registry import all_rules  # noqa: E402
from gradlint import risk as risk_model  # noqa: E402

import calibration  # noqa: E402  (benchmarks/, on sys.path above)
import severities as severity_precision  # noqa: E402

DRY_RUN_STEPS = 10
AUTOTRAINER_THRESHOLD = 70.0
GLOBAL_NORM_THRESHOLD = 100.0
DRY_RUN_TITLE = "dry run: 10 optimizer steps"  # the strongest baseline, which gradlint's lead is measured against
MAX_FPR = 0.1  # the target: recall >= 0.9 at a false-positive rate <= 0.1


@dataclass
class CaseResult:
    name: str
    label: str
    diverged_fraction: float
    risk: float = float("nan")
    evidence: dict = field(default_factory=dict)  # the risk model's features (gradlint.risk.features)
    codes: list = field(default_factory=list)
    severities: dict = field(default_factory=dict)  # rule code -> the highest severity of its findings
    passes: dict = field(default_factory=dict)
    seconds: float = 0.0
    autotrainer_ratio: float = float("nan")
    init_grad_norm: float = float("nan")
    dry_run_score: float = float("nan")
    error: str | None = None


def lint_case(path: str, result: CaseResult, seed: int = 0) -> None:
    start = time.perf_counter()
    spec = load_target(Target(path))
    report = lint_spec(spec, Settings(rules=all_rules(), seed=seed))
    result.seconds = time.perf_counter() - start
    result.risk = report.risk
    result.evidence = dict(report.evidence)
    result.codes = sorted({f.code for f in report.findings})
    result.severities = severity_precision.highest_severities(report.findings)
    result.passes = dict(report.passes)


def baselines(path: str, result: CaseResult) -> None:
    """The three baselines, on a freshly loaded model (the same seed and example batch)."""
    spec = load_target(Target(path))
    model = spec.model
    model.train()
    loss, _ = training_loss(model(*spec.inputs, **spec.input_kwargs), spec.targets, spec.loss_fn,
                            inputs=spec.inputs)
    loss.backward()
    weights = [p for name, p in model.named_parameters() if p.dim() >= 2 and p.grad is not None]
    norms = [float(p.grad.norm()) for p in weights]
    result.autotrainer_ratio = norms[0] / norms[-1] if norms and norms[-1] > 0 else float("inf")
    total = math.sqrt(sum(float(p.grad.norm()) ** 2 for p in model.parameters() if p.grad is not None))
    result.init_grad_norm = total if math.isfinite(total) else float("inf")
    model.zero_grad(set_to_none=True)
    result.dry_run_score = dry_run(spec)


def dry_run(spec) -> float:
    """Ten real optimizer steps on the example batch; score = worst growth of loss or grad norm."""
    model = copy.deepcopy(spec.model)
    optimizer = fresh_optimizer(spec.optimizer_object, model.parameters())
    loss0 = grad0 = None
    worst = 0.0
    for _ in range(DRY_RUN_STEPS):
        loss, _ = training_loss(model(*spec.inputs, **spec.input_kwargs), spec.targets, spec.loss_fn,
                                inputs=spec.inputs)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        max_norm = spec.gradient_clip_val or float("inf")
        grad = float(torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm))
        value = float(loss.detach())
        if not (math.isfinite(value) and math.isfinite(grad)):
            return float("inf")
        if loss0 is None:
            loss0, grad0 = abs(value) or 1e-12, grad or 1e-12
        # Normalized so 1.0 is the protocol's divergence line: grad x1000, loss x10, grad 1e6.
        worst = max(worst, grad / grad0 / 1000, abs(value) / loss0 / 10, grad / 1e6)
        optimizer.step()
    return worst


# --------------------------------------------------------------------------- metrics

def auroc(scores, labels) -> float:
    from sklearn.metrics import roc_auc_score

    scores = np.nan_to_num(np.asarray(scores, float), nan=0.0, posinf=1e300)
    return float(roc_auc_score(labels, scores)) if 0 < sum(labels) < len(labels) else float("nan")


BOOTSTRAP_DRAWS = 2000


def bootstrap_auroc(scores, labels, groups, baseline, draws: int = BOOTSTRAP_DRAWS, seed: int = 0) -> dict:
    """A 95% interval for the AUROC, and for its lead over `baseline` (scores of the same cases),
    from resampling twin groups with replacement: twins share everything but one factor, so
    resampling cases alone would count them as independent evidence and narrow the interval. The
    scores stay fixed (the calibration is not refitted per draw), so the interval shows how much
    the number owes to which cases the corpus holds, not the fitting's own variance."""
    scores, baseline, labels = np.asarray(scores, float), np.asarray(baseline, float), np.asarray(labels, bool)
    members = {}
    for i, group in enumerate(groups):
        members.setdefault(group, []).append(i)
    blocks = list(members.values())
    rng = np.random.default_rng(seed)
    values, leads = [], []
    for _ in range(draws):
        index = np.concatenate([blocks[k] for k in rng.integers(0, len(blocks), len(blocks))])
        value = auroc(scores[index], labels[index])
        if math.isnan(value):  # a draw with only one label has no AUROC
            continue
        values.append(value)
        leads.append(value - auroc(baseline[index], labels[index]))
    return {"auroc_95": [float(np.percentile(values, 2.5)), float(np.percentile(values, 97.5))],
            "lead_95": [float(np.percentile(leads, 2.5)), float(np.percentile(leads, 97.5))]}


def confusion(predicted, labels) -> dict:
    tp = sum(p and y for p, y in zip(predicted, labels))
    fp = sum(p and not y for p, y in zip(predicted, labels))
    fn = sum((not p) and y for p, y in zip(predicted, labels))
    tn = sum((not p) and (not y) for p, y in zip(predicted, labels))
    return {"precision": tp / (tp + fp) if tp + fp else float("nan"), "recall": tp / (tp + fn) if tp + fn else float("nan"),
            "fpr": fp / (fp + tn) if fp + tn else float("nan"), "tp": tp, "fp": fp, "fn": fn, "tn": tn}


def twin_groups(names: list[str], cases_dir: str) -> list[str]:
    """The group each case is left out with, so that no twin can leak its label into the
    calibration that scores it. Cases are joined when they share everything but their last name
    part (mlp_relu_sgd_lr0p3 and mlp_relu_sgd_lr0p15), or when one's docstring names the other
    (its "Twin:", "Boundary twins:" or "Related:" line: cnn_deep_kaiming and
    cnn_deep_normal_init), and groups are the connected components of those links, named by
    their alphabetically first case. Name stems alone missed 26 declared twin pairs."""
    parent = {name: name for name in names}

    def root(name: str) -> str:
        while parent[name] != name:
            parent[name] = parent[parent[name]]
            name = parent[name]
        return name

    def join(a: str, b: str) -> None:
        ra, rb = root(a), root(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)

    by_stem: dict[str, str] = {}
    for name in names:
        join(name, by_stem.setdefault(name.rsplit("_", 1)[0], name))
    for name in names:
        with open(os.path.join(cases_dir, name + ".py")) as source:
            words = set(re.findall(r"\w+", ast.get_docstring(ast.parse(source.read())) or ""))
        for other in words & parent.keys():
            join(name, other)
    return [root(name) for name in names]


# Strengths of the calibration's L2 penalty (on standardized features, calibration.fit) to choose
# from. The corpus is small: too strong a penalty mutes causes only a few cases show, too weak a
# one overfits. The inner CV has picked from 0.005 to 0.5 on the 117 and 133 cases.
L2_GRID = (0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0)


def _log_loss(model: dict, evidence: dict, label: bool) -> float:
    p = min(max(risk_model.predict(model, evidence), 1e-12), 1 - 1e-12)
    return -math.log(p if label else 1 - p)


def choose_l2(evidences: list, labels: list, groups: list) -> float:
    """The L2 strength with the lowest leave-one-twin-group-out log-loss on these cases."""
    def cv_loss(l2: float) -> float:
        total = 0.0
        for group in sorted(set(groups)):
            train = [j for j, g in enumerate(groups) if g != group]
            model = calibration.fit([evidences[j] for j in train], [labels[j] for j in train], l2=l2)
            total += sum(_log_loss(model, evidences[j], labels[j]) for j, g in enumerate(groups) if g == group)
        return total

    return min(L2_GRID, key=cv_loss)


def cross_validated_risk(results: list[CaseResult], groups: list[str]) -> tuple[list[float], list[float]]:
    """Each case's risk from a calibration fitted without its twin group, with the L2 strength
    chosen by an inner cross-validation on the remaining cases only (nested: neither the weights
    nor the penalty ever saw the case). Returns the risks and the L2 each case got."""
    labels = [r.label == "DIVERGED" for r in results]
    evidences = [r.evidence for r in results]
    scores, chosen = [0.0] * len(results), [0.0] * len(results)
    for group in sorted(set(groups)):
        held = [i for i, g in enumerate(groups) if g == group]
        train = [j for j, g in enumerate(groups) if g != group]
        l2 = choose_l2([evidences[j] for j in train], [labels[j] for j in train], [groups[j] for j in train])
        model = calibration.fit([evidences[j] for j in train], [labels[j] for j in train], l2=l2)
        for i in held:
            scores[i], chosen[i] = risk_model.predict(model, evidences[i]), l2
    return scores, chosen


def recall_at_fpr(scores, labels, max_fpr: float) -> dict:
    """The issue's operating point: the highest recall of any threshold whose false-positive rate
    stays at or below `max_fpr`, and that threshold."""
    scores, labels = np.asarray(scores, float), np.asarray(labels, bool)
    best = {"threshold": float("inf"), "recall": 0.0, "fpr": 0.0}
    for threshold in sorted(set(scores.tolist()), reverse=True):
        flagged = scores >= threshold
        fpr, recall = flagged[~labels].mean(), flagged[labels].mean()
        if fpr <= max_fpr and recall > best["recall"]:
            best = {"threshold": threshold, "recall": float(recall), "fpr": float(fpr)}
    return best


def calibration_table(risks: list[float], results: list[CaseResult]) -> dict:
    """How well the cross-validated risk reads as a probability: its Brier score, and per risk
    level (gradlint.risk.LEVELS, the words the report prints) the mean risk beside the share of
    cases that diverged and the share of training seeds that did."""
    diverged = np.array([r.label == "DIVERGED" for r in results], float)
    seeds = np.array([r.diverged_fraction for r in results], float)
    risks = np.asarray(risks, float)
    base = diverged.mean()
    levels, upper = [], 1.0
    for lower, word in risk_model.LEVELS:  # highest first: (0.7, high), (0.3, medium), (0.0, low)
        inside = (risks >= lower) & ((risks < upper) if upper < 1.0 else (risks <= upper))
        if inside.any():
            levels.append({"level": f"{word} ({lower:g}-{upper:g})", "cases": int(inside.sum()),
                           "mean_risk": float(risks[inside].mean()), "diverged": float(diverged[inside].mean()),
                           "seed_fraction": float(seeds[inside].mean())})
        upper = lower
    return {"brier": float(np.mean((risks - diverged) ** 2)), "brier_base_rate": float(np.mean((base - diverged) ** 2)),
            "base_rate": float(base), "levels": levels}


def _counts(values: list) -> str:
    return ", ".join(f"{v:g} x{values.count(v)}" for v in sorted(set(values)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--truth", default=os.path.join(HERE, "truth.json"))
    parser.add_argument("--cases", default=os.path.join(HERE, "cases"))
    parser.add_argument("--out", default=os.path.join(HERE, "evaluation.json"))
    parser.add_argument("--fit", metavar="PATH", help="refit the calibration on all cases and write it here")
    parser.add_argument("--only", nargs="*")
    parser.add_argument("--seed", type=int, default=0,
                        help="gradlint's --seed (GL604's resampled rows); the shipped calibration uses 0")
    parser.add_argument("--rescore", action="store_true",
                        help="reuse the measurements in --out instead of linting every case again")
    parser.add_argument("--fit-only", action="store_true",
                        help="with --fit: refit and compare with the shipped calibration, without the metrics")
    args = parser.parse_args()
    torch.set_num_threads(1)

    truth = json.load(open(args.truth))["cases"]
    results = rescored(args.out, truth) if args.rescore else lint_corpus(truth, args)
    if args.fit and args.fit_only:
        refit([r for r in results if r.error is None], args)
        return
    report(results, args)


def rescored(path: str, truth: dict) -> list[CaseResult]:
    """The CaseResults of a previous run, relabelled from the current truth."""
    fields = set(CaseResult.__dataclass_fields__)
    results = []
    for case in json.load(open(path))["cases"]:
        if case["name"] in truth:
            result = CaseResult(**{k: v for k, v in case.items() if k in fields})
            result.label, result.diverged_fraction = truth[case["name"]]["label"], truth[case["name"]]["diverged_fraction"]
            results.append(result)
    return results


def lint_corpus(truth: dict, args) -> list[CaseResult]:
    results = []
    for name in sorted(truth):
        if args.only and name not in args.only:
            continue
        entry = truth[name]
        result = CaseResult(name, entry["label"], entry["diverged_fraction"])
        path = os.path.join(args.cases, name + ".py")
        try:
            lint_case(path, result, args.seed)
            baselines(path, result)
        except Exception as error:  # reported, and counted against gradlint below
            result.error = f"{type(error).__name__}: {error}"
        results.append(result)
        print(f"{name:38s} {result.label:9s} risk {result.risk:5.2f}  {','.join(result.codes) or '-':40s}"
              f" {result.seconds:5.2f}s {result.error or ''}", flush=True)
    return results


def report(results: list[CaseResult], args) -> None:
    ok = [r for r in results if r.error is None]
    labels = [r.label == "DIVERGED" for r in ok]
    fails = [r.label != "TRAINED" for r in ok]
    groups = twin_groups([r.name for r in ok], args.cases)
    print(f"{len(set(groups))} twin groups (left out together, resampled together)")
    cv, cv_l2 = cross_validated_risk(ok, groups)
    scores = {
        "gradlint risk (cross-validated)": (cv, 0.5),
        "gradlint noisy-OR of rule weights (no fitting)":
            ([risk_model.combine_evidence({f: h for f, h in r.evidence.items() if not f.startswith("m:")})
              for r in ok], 0.5),
        "AUTOTRAINER grad ratio first/last > 70": ([r.autotrainer_ratio for r in ok], AUTOTRAINER_THRESHOLD),
        "global grad norm at init > 100": ([r.init_grad_norm for r in ok], GLOBAL_NORM_THRESHOLD),
        DRY_RUN_TITLE: ([r.dry_run_score for r in ok], 1.0),
    }
    print(f"\n{len(ok)} cases ({sum(labels)} DIVERGED, {sum(r.label == 'STALLED' for r in ok)} STALLED, "
          f"{sum(r.label == 'TRAINED' for r in ok)} TRAINED); {len(results) - len(ok)} failed to run\n")
    print("| predictor | AUROC (diverged) | AUROC (fails to train) | precision | recall | FPR |")
    print("|---|---|---|---|---|---|")
    summary = {}
    for title, (values, threshold) in scores.items():
        c = confusion([v >= threshold for v in np.nan_to_num(values, nan=0.0)], labels)
        row = {"auroc": auroc(values, labels), "auroc_fails_to_train": auroc(values, fails), **c}
        summary[title] = row
        print(f"| {title} | {row['auroc']:.3f} | {row['auroc_fails_to_train']:.3f} | {row['precision']:.2f} | "
              f"{row['recall']:.2f} | {row['fpr']:.2f} |")

    operating = recall_at_fpr(cv, labels, MAX_FPR)
    print(f"\ngradlint's best threshold with FPR <= {MAX_FPR:g}: risk >= {operating['threshold']:.3f} "
          f"finds {operating['recall']:.2f} of the divergences at FPR {operating['fpr']:.3f}")
    summary["gradlint risk (cross-validated)"]["at_max_fpr"] = operating

    spread = bootstrap_auroc(cv, labels, groups, baseline=scores[DRY_RUN_TITLE][0])
    print(f"95% interval over twin groups drawn with replacement ({BOOTSTRAP_DRAWS} draws): AUROC "
          f"{spread['auroc_95'][0]:.3f}-{spread['auroc_95'][1]:.3f}; lead over the {DRY_RUN_TITLE} "
          f"{spread['lead_95'][0]:+.3f} to {spread['lead_95'][1]:+.3f}")
    summary["gradlint risk (cross-validated)"].update(spread)

    print("\n| rule | fires on | of which DIVERGED | precision |")
    print("|---|---|---|---|")
    per_rule = {}
    for rule in all_rules():
        fired = [r for r in ok if rule.code in r.codes]
        if fired:
            hits = sum(r.label == "DIVERGED" for r in fired)
            per_rule[rule.code] = {"fires": len(fired), "diverged": hits, "precision": hits / len(fired)}
            print(f"| {rule.code} {rule.name} | {len(fired)} | {hits} | {hits / len(fired):.2f} |")

    print("\nPer rule and severity, the cases flagged and how many failed to train (DIVERGED or STALLED):\n")
    by_severity = severity_precision.severity_table(
        [{"name": r.name, "label": r.label, "severities": r.severities} for r in ok])
    print(severity_precision.markdown(by_severity, [{"label": r.label, "severities": r.severities} for r in ok]))

    print("\n| risk feature, alone | cases where > 0 | AUROC (diverged) |")
    print("|---|---|---|")
    features = {}
    for name in sorted({k for r in ok for k in r.evidence}):
        values = [r.evidence.get(name, 0.0) for r in ok]
        features[name] = {"nonzero": sum(v > 0 for v in values), "auroc": auroc(values, labels)}
        print(f"| {name} | {features[name]['nonzero']} | {features[name]['auroc']:.3f} |")

    levels = calibration_table(cv, ok)  # not `calibration`: that is the module --fit calls
    print(f"\nIs the risk a probability? Brier score {levels['brier']:.3f} against DIVERGED "
          f"({levels['brier_base_rate']:.3f} for always predicting the base rate "
          f"{levels['base_rate']:.2f}); by gradlint's risk levels:\n")
    print("| risk level | cases | mean risk | diverged (label) | diverged (fraction of seeds) |")
    print("|---|---|---|---|---|")
    for row in levels["levels"]:
        print(f"| {row['level']} | {row['cases']} | {row['mean_risk']:.2f} | {row['diverged']:.2f} | "
              f"{row['seed_fraction']:.2f} |")

    print(f"\nL2 strength chosen by the inner cross-validation: {_counts(cv_l2)}")
    seconds = [r.seconds for r in ok]
    print(f"\ngradlint time per case: median {statistics.median(seconds):.2f} s, max {max(seconds):.2f} s")
    json.dump({"summary": summary, "per_rule": per_rule, "per_rule_severity": by_severity, "features": features,
               "calibration": levels,
               "cases": [dict(vars(r), cv_risk=s, cv_l2=l2) for r, s, l2 in zip(ok, cv, cv_l2)] + [vars(r) for r in results if r.error]},
              open(args.out, "w"), indent=1, default=float)
    if args.fit:
        refit(ok, args)


def refit(ok: list[CaseResult], args) -> None:
    """Fit the calibration on every case, write it to args.fit, and compare it in-sample with the
    shipped one on the same measurements: whether the features moved enough to need a refit."""
    labels = [r.label == "DIVERGED" for r in ok]
    evidences = [r.evidence for r in ok]
    l2 = choose_l2(evidences, labels, twin_groups([r.name for r in ok], args.cases))
    model = calibration.fit(evidences, labels, l2=l2)
    calibration.save(model, args.fit)
    print(f"calibration written to {args.fit} (L2 {l2:g})")
    for title, fitted in (("shipped gradlint/risk_model.json", risk_model.shipped_model()), ("refit", model)):
        if fitted is None:
            continue
        scores = [risk_model.predict(fitted, e) for e in evidences]
        brier = statistics.fmean((s - y) ** 2 for s, y in zip(scores, labels))
        print(f"in-sample on these measurements, {title}: AUROC {auroc(scores, labels):.3f}, Brier {brier:.3f}")


if __name__ == "__main__":
    main()
