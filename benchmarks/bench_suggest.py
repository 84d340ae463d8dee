"""Does the learning-rate suggestion train, and how close is it to the largest rate that does?

    python benchmarks/bench_suggest.py [--only NAME ...] [--jobs 2] [--out benchmarks/suggestion.json]

For every labelled corpus case (benchmarks/truth.json), in a worker of its own:

1. gradlint's suggestion: the case linted twice in-process (engine.lint_target, as `gradlint` runs
   it), with and without the suggestion, for the suggested lr and what it costs (passes, seconds);
2. training at the suggestion: the corpus protocol (benchmarks/truth.py: 3 seeds, its divergence
   and "trained" rules), with every lr of the case (its schedule too) scaled by suggested/configured;
3. the largest rate that trains: 1 seed at the suggestion times 2, 4, ... while it trains, or
   divided by 2, 4, ... until it does (at most SWEEP_STEPS each way; "trains" is the protocol's
   TRAINED), on the grid a factor of 2 apart that the suggestion itself lies on;
4. the baseline, the LR range test (Smith 2017, "Cyclical learning rates", sec. 3.3; fastai's
   `lr_find`): the lr grows exponentially from 1e-7 to 10 over 100 steps of the case's own training
   stream (make_batch), the loss smoothed with an exponential moving average (beta 0.98) and the
   test stopped once it exceeds 4x the best; its two suggestions, the lr at the steepest descent of
   the smoothed loss against log lr and the lr of the minimum loss divided by 10, each trained under
   the protocol (3 seeds), with the range test's cost (100 forward and backward passes at most).

truth.py's protocol is imported, never gradlint's rules: what trains is measured by training.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import statistics
import sys
import time
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCHMARKS))

import truth  # noqa: E402  (benchmarks/truth.py: the corpus's training protocol)

SWEEP_STEPS = 6
RANGE_START, RANGE_END, RANGE_STEPS = 1e-7, 10.0, 100
RANGE_BETA, RANGE_STOP = 0.98, 4.0
LR_KEYS = ("lr", "initial_lr", "max_lr", "min_lr")  # what schedulers keep per param group


class Scaled:
    """A corpus case whose every learning rate is `factor` times the file's (optimizer groups,
    schedulers' base rates, OneCycleLR's max and min), set before the first step; with `clip`,
    trained with that gradient_clip_val instead of the file's."""

    def __init__(self, case, factor: float, clip: float | None = None) -> None:
        self.case, self.factor = case, factor
        if clip is not None:
            self.gradient_clip_val = clip

    def __getattr__(self, name):
        return getattr(self.case, name)

    def configure_optimizers(self, model):
        configured = self.case.configure_optimizers(model)
        optimizer, schedulers = truth.unpack_optimizers(configured)
        for group in optimizer.param_groups:
            for key in LR_KEYS:
                if isinstance(group.get(key), (int, float)):
                    group[key] = group[key] * self.factor
        for scheduler in schedulers:
            _scale_scheduler(scheduler, self.factor)
        return configured


def _scale_scheduler(scheduler, factor: float) -> None:
    for attribute in ("base_lrs", "_last_lr"):
        values = getattr(scheduler, attribute, None)
        if isinstance(values, list):
            setattr(scheduler, attribute, [v * factor for v in values])
    for inner in getattr(scheduler, "_schedulers", ()):  # SequentialLR, ChainedScheduler
        _scale_scheduler(inner, factor)


def train(case, factor: float, seeds=truth.SEEDS, clip: float | None = None) -> dict:
    outcomes = [truth.train_one(Scaled(case, factor, clip), seed)["outcome"] for seed in seeds]
    return {"label": truth.majority(outcomes), "outcomes": outcomes}


def suggestion_of(path: Path) -> dict:
    """gradlint's suggestion for the case, and its cost: the passes and seconds the default run
    spends with it beyond the same run without it."""
    from gradlint.discover import Target
    from gradlint.engine import Settings, lint_target
    from gradlint.overrides import Overrides
    from gradlint.registry import all_rules

    rules = tuple(all_rules())
    timed = {}
    for suggest in (False, True, False):  # the first run also pays for imports: the faster of the two without
        start = time.perf_counter()
        report = lint_target(Target(str(path)), Settings(rules=rules, suggest_lr=suggest), Overrides())
        seconds = time.perf_counter() - start
        if suggest not in timed or seconds < timed[suggest][0]:
            timed[suggest] = (seconds, report)
    report = timed[True][1]
    passes = {k: report.passes.get(k, 0) - timed[False][1].passes.get(k, 0) for k in ("forward", "backward")}
    return {"risk": report.risk, "suggestion": None if report.suggestion is None else report.suggestion.to_dict(),
            "extra_passes": passes, "seconds": round(timed[False][0], 3),
            "extra_seconds": round(timed[True][0] - timed[False][0], 3)}


def largest_trainable(case, start: float, clip: float | None = None) -> dict:
    """The largest factor of 2 away from `start` that trains (1 seed), walking up while it trains or
    down until it does."""
    tried = {}

    def trains(factor: float) -> bool:
        tried[factor] = truth.train_one(Scaled(case, factor, clip), 0)["outcome"]
        return tried[factor] == "TRAINED"

    if trains(start):
        factor = start
        for _ in range(SWEEP_STEPS):
            if not trains(factor * 2):
                break
            factor *= 2
        else:
            return {"factor": factor, "capped": True, "tried": _keys(tried)}
        return {"factor": factor, "capped": False, "tried": _keys(tried)}
    factor = start
    for _ in range(SWEEP_STEPS):
        factor /= 2
        if trains(factor):
            return {"factor": factor, "capped": False, "tried": _keys(tried)}
    return {"factor": None, "capped": True, "tried": _keys(tried)}


def _keys(tried: dict) -> dict:
    return {f"{k:.6g}": v for k, v in sorted(tried.items())}


def range_test(case) -> dict:
    """The LR range test on the case's training stream: (steepest-descent lr, min-loss lr / 10),
    or None for each when the loss never fell."""
    import torch

    torch.manual_seed(0)
    model = case.build_model()
    model.train()
    optimizer, _ = truth.unpack_optimizers(case.configure_optimizers(model))
    base = optimizer.param_groups[0]["lr"] or 1.0
    ratios = [group["lr"] / base for group in optimizer.param_groups]
    growth = (RANGE_END / RANGE_START) ** (1 / (RANGE_STEPS - 1))
    lrs, smoothed, average, best = [], [], 0.0, math.inf
    for step in range(RANGE_STEPS):
        lr = RANGE_START * growth ** step
        for group, ratio in zip(optimizer.param_groups, ratios):
            group["lr"] = lr * ratio
        inputs, targets = case.make_batch(step)
        loss = case.loss_fn(model(*inputs), targets)
        value = float(loss.detach())
        if not math.isfinite(value):
            break
        average = RANGE_BETA * average + (1 - RANGE_BETA) * value
        debiased = average / (1 - RANGE_BETA ** (step + 1))
        lrs.append(lr)
        smoothed.append(debiased)
        best = min(best, debiased)
        if step > 0 and debiased > RANGE_STOP * best:
            break
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        clip = getattr(case, "gradient_clip_val", None)
        if clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        optimizer.step()
    if len(smoothed) < 3:
        return {"steepest": None, "min_over_10": None, "steps": len(smoothed)}
    slopes = [(smoothed[i + 1] - smoothed[i - 1]) / (math.log(lrs[i + 1]) - math.log(lrs[i - 1]))
              for i in range(1, len(smoothed) - 1)]
    steepest = lrs[1 + min(range(len(slopes)), key=slopes.__getitem__)]
    minimum = lrs[min(range(len(smoothed)), key=smoothed.__getitem__)] / 10
    return {"steepest": steepest, "min_over_10": minimum, "steps": len(smoothed)}


def run_case(path_str: str) -> tuple[str, dict | None, str | None]:
    import traceback

    path = Path(path_str)
    try:
        case = truth.load_case(path)
        result = suggestion_of(path)
        suggestion = result["suggestion"]
        if suggestion is not None and suggestion["lr"] is not None:
            factor = suggestion["lr"] / suggestion["configured_lr"]
            clip = suggestion["gradient_clip_val"]  # the case's own, or the one suggested with the lr
            result["at_suggestion"] = train(case, factor, clip=clip)
            result["largest"] = largest_trainable(case, factor, clip)
        if NO_RANGE_TEST:
            return path.stem, result, None
        start = time.perf_counter()
        found = range_test(case)
        found["seconds"] = round(time.perf_counter() - start, 3)
        configured = _configured_lr(case)
        for key in ("steepest", "min_over_10"):
            if found[key] is not None:
                found[f"at_{key}"] = train(case, found[key] / configured)
        result["range_test"] = found
        result["configured_lr"] = configured
    except Exception:
        return path.stem, None, traceback.format_exc(limit=8)
    return path.stem, result, None


def _configured_lr(case) -> float:
    """The lr the case's first param group starts at (what the range test's rates replace)."""
    import torch

    torch.manual_seed(0)
    optimizer, _ = truth.unpack_optimizers(case.configure_optimizers(case.build_model()))
    return optimizer.param_groups[0]["lr"]


NO_RANGE_TEST = False


def init_worker(no_range_test: bool = False) -> None:
    global NO_RANGE_TEST
    NO_RANGE_TEST = no_range_test
    truth.init_worker()


def summarize(results: dict, labels: dict) -> str:
    """The Markdown tables BENCHMARKS.md quotes."""
    lines = []
    made = {n: r for n, r in results.items() if r["suggestion"] and r["suggestion"]["lr"] is not None}
    diverged = [n for n in made if labels[n] == "DIVERGED"]
    healthy = [n for n in made if labels[n] == "TRAINED"]
    none = sorted(n for n, r in results.items() if not (r["suggestion"] and r["suggestion"]["lr"] is not None))

    def share(names, test) -> str:
        hits = sum(1 for n in names if test(results[n]))
        return f"{hits}/{len(names)} ({hits / len(names):.0%})" if names else "-"

    def trains(result, key="at_suggestion") -> bool:
        return result.get(key, {}).get("label") == "TRAINED"

    lines.append(f"{len(results)} cases, {len(made)} with a suggested lr ({len(none)} without: {', '.join(none)})")
    lines.append("")
    lines.append("| | gradlint's suggestion | range test, steepest | range test, min/10 |")
    lines.append("|---|---|---|---|")
    for title, names in (("diverged as configured: trains at the suggestion", diverged),
                         ("trained as configured: still trains at it", healthy),
                         ("every case with a suggestion: trains at it", list(made))):
        lines.append(f"| {title} | {share(names, trains)} | "
                     f"{share(names, lambda r: trains(r.get('range_test', {}), 'at_steepest'))} | "
                     f"{share(names, lambda r: trains(r.get('range_test', {}), 'at_min_over_10'))} |")
    ratios = [made[n]["suggestion"]["lr"] / made[n]["suggestion"]["configured_lr"] / made[n]["largest"]["factor"]
              for n in made if made[n].get("largest", {}).get("factor")]
    within = sum(1 for r in ratios if r >= 1 / 4)
    lines.append("")
    lines.append(f"suggestion / largest rate that trains (1 seed, factor-2 grid), {len(ratios)} cases: median "
                 f"{statistics.median(ratios):.3g}, within 4x in {within}/{len(ratios)} ({within / len(ratios):.0%}); "
                 f"above it in {sum(1 for r in ratios if r > 1)}")
    timid = [n for n in healthy if made[n]["suggestion"]["lr"] < made[n]["suggestion"]["configured_lr"] / 2]
    lines.append(f"trained as configured, suggestion below half the configured lr: {len(timid)}/{len(healthy)}"
                 f" ({', '.join(sorted(timid))})")
    extra = [r["extra_seconds"] / r["seconds"] for r in results.values() if r["seconds"] > 0]
    passes = [r["extra_passes"]["forward"] for r in results.values()]
    range_passes = [r["range_test"]["steps"] for r in results.values() if "range_test" in r] or [0]
    lines.append(f"cost of the suggestion: median {statistics.median(extra):.0%} of the default run's time "
                 f"(max {max(extra):.0%}), median {statistics.median(passes):g} extra forward passes; "
                 f"the range test: median {statistics.median(range_passes):g} forward and backward passes")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=Path, default=BENCHMARKS / "cases")
    parser.add_argument("--truth", type=Path, default=BENCHMARKS / "truth.json")
    parser.add_argument("--out", type=Path, default=BENCHMARKS / "suggestion.json")
    parser.add_argument("--only", nargs="+", metavar="NAME")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--summary", action="store_true", help="only print the summary of --out")
    parser.add_argument("--no-range-test", action="store_true", help="skip the LR range test baseline")
    options = parser.parse_args(argv)
    labels = {name: case["label"] for name, case in json.loads(options.truth.read_text())["cases"].items()}
    if options.summary:
        print(summarize(json.loads(options.out.read_text())["cases"], labels))
        return 0
    names = [n for n in sorted(labels) if options.only is None or n in options.only]
    # Families interleaved, so that a run cut short covers every family.
    rank = {}
    for name in names:  # its place within its family
        rank[name] = sum(1 for other in names if truth.family_of(other) == truth.family_of(name) and other < name)
    names.sort(key=lambda n: (rank[n], n))
    paths = [str(options.cases / f"{name}.py") for name in names]
    results, errors = {}, {}
    with multiprocessing.get_context("spawn").Pool(options.jobs, initializer=init_worker,
                                                   initargs=(options.no_range_test,)) as pool:
        for name, result, error in pool.imap_unordered(run_case, paths):
            if error:
                errors[name] = error
                print(f"{name}: FAILED\n{error}", file=sys.stderr)
            else:
                results[name] = result
                # Written after every case, so that a run cut short still leaves what it measured.
                options.out.write_text(json.dumps({"cases": dict(sorted(results.items())), "errors": errors},
                                                  indent=1) + "\n")
                suggestion = result["suggestion"] or {}
                print(f"{name}: suggested {suggestion.get('lr')} -> "
                      f"{result.get('at_suggestion', {}).get('label')}", file=sys.stderr, flush=True)
    options.out.write_text(json.dumps({"cases": dict(sorted(results.items())), "errors": errors}, indent=1) + "\n")
    print(summarize(results, labels))
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
