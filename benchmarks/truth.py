"""Ground-truth labels for the gradlint corpus: train every case and record whether it diverged.

    python benchmarks/truth.py [--cases benchmarks/cases] [--out benchmarks/truth.json]
                               [--only NAME ...] [--jobs 2]

Protocol: for seeds 0, 1, 2, `torch.manual_seed(seed)`, build the
model (train mode), take its optimizer from `configure_optimizers`, and run TRAIN_STEPS steps on
`make_batch(step)`: loss -> backward -> global grad norm g (pre-clip; clipped to
`gradient_clip_val` when the case sets it) -> optimizer step -> scheduler steps -> zero_grad.
How a run is judged and how the seeds vote: RULES (also the JSON's protocol.rules). This file
must not import gradlint: it measures what really happens, independently of the linter.

A case that cannot be imported, built or trained is reported and makes the exit status 1;
the other cases are still labelled and written.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import multiprocessing
import re
import sys
import time
import traceback
from collections import Counter
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent
SEEDS = (0, 1, 2)
MAX_POINTS = 50  # loss / grad-norm curves are subsampled to this many points in the JSON

# Thresholds of the divergence rules (all relative to the step-0 loss_0 and grad norm g_0).
GRAD_RATIO = 1000.0
GRAD_ABS = 1e6
LOSS_RATIO = 10.0
LOSS_RATIO_SUSTAINED = 3.0
TAIL_FRACTION = 0.1
TRAINED_RATIO = 0.9
TRAINED_WINDOW = 10
LABEL_PRIORITY = ("DIVERGED", "STALLED", "TRAINED")  # breaks a three-way split of the seeds

RULES = {
    "diverged": [
        "loss or grad norm is non-finite (the run stops there)",
        f"grad norm > {GRAD_RATIO:g} x g_0 or > {GRAD_ABS:g} (the run stops there)",
        f"loss > {LOSS_RATIO:g} x |loss_0| (the run stops there)",
        f"loss > {LOSS_RATIO_SUSTAINED:g} x |loss_0| at some step and every loss of the last "
        f"{TAIL_FRACTION:.0%} of steps > loss_0 (checked at the end)",
    ],
    "trained": f"not diverged and mean loss of the last {TRAINED_WINDOW} steps < loss_0 - "
               f"{1 - TRAINED_RATIO:.1f} x |loss_0| (= {TRAINED_RATIO} x loss_0 for a positive loss_0)",
    "stalled": "neither diverged nor trained",
    "abs": "ratio tests use |loss_0| so a negative step-0 loss cannot invert them; "
           "when g_0 == 0 only the absolute grad-norm test applies",
    "label": f"majority over seeds {list(SEEDS)}; if all three differ, the first of {list(LABEL_PRIORITY)}",
    "curves": f"loss and grad_norm subsampled to <= {MAX_POINTS} points (steps listed in 'steps'), "
              "4 significant figures; null marks a non-finite or unrecorded value",
}

FAMILIES = ("mlp", "cnn", "resnet", "rnn", "transformer", "hf")  # a case's family is its file-name prefix


# --------------------------------------------------------------------------- loading a case

def load_case(path: Path):
    """Import a case file as a module (benchmarks/ is on sys.path so `import _casekit` works)."""
    if str(BENCHMARKS) not in sys.path:
        sys.path.insert(0, str(BENCHMARKS))
    spec = importlib.util.spec_from_file_location(f"gradlint_case_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    missing = [n for n in ("build_model", "configure_optimizers", "loss_fn", "make_batch", "TRAIN_STEPS")
               if not hasattr(module, n)]
    if missing:
        raise AttributeError(f"case does not define {', '.join(missing)}")
    return module


def family_of(name: str) -> str:
    """Family from the file-name prefix (mlp_, cnn_, resnet_, rnn_, transformer_, hf_)."""
    prefix = name.split("_", 1)[0]
    if prefix not in FAMILIES:
        raise ValueError(f"case name {name!r} must start with one of {', '.join(FAMILIES)} and '_'")
    return prefix


def unpack_optimizers(configured):
    """(optimizer, [schedulers]) from the shapes configure_optimizers may return (Lightning's too)."""
    import torch

    schedulers = []
    if isinstance(configured, dict):  # {"optimizer": opt, "lr_scheduler": sched or {"scheduler": sched}}
        schedulers = [configured["lr_scheduler"]] if configured.get("lr_scheduler") is not None else []
        configured = configured["optimizer"]
    elif (isinstance(configured, (list, tuple)) and len(configured) == 2
          and all(isinstance(part, (list, tuple)) for part in configured)):  # ([opts], [scheds])
        configured, schedulers = configured[0], list(configured[1])
    if isinstance(configured, (list, tuple)):  # several optimizers: the first one trains here
        configured = configured[0]
    if not isinstance(configured, torch.optim.Optimizer):
        raise TypeError(f"configure_optimizers returned {type(configured).__name__}, not an optimizer")
    schedulers = [s["scheduler"] if isinstance(s, dict) else s for s in schedulers]
    return configured, schedulers


# --------------------------------------------------------------------------- one training run

def grad_norm(params, clip) -> float:
    """Global L2 norm of the gradients before clipping; clips in place when `clip` is set."""
    import torch

    params = [p for p in params if p.grad is not None]
    if not params:
        return 0.0
    if clip is not None:
        return float(torch.nn.utils.clip_grad_norm_(params, max_norm=float(clip)))
    return float(torch.linalg.vector_norm(torch.stack([p.grad.detach().norm(2) for p in params])))


def immediate_divergence(step: int, loss: float, g: float | None,
                         loss_0: float, g_0: float | None) -> str | None:
    """The reason a step diverges the run at once (rules 1-3), or None."""
    if not math.isfinite(loss):
        return f"loss is {loss} at step {step}"
    if g is None:
        return None
    if not math.isfinite(g):
        return f"grad norm is {g} at step {step}"
    if g > GRAD_ABS:
        return f"grad norm {g:.3g} > {GRAD_ABS:g} at step {step}"
    if g_0 and g > GRAD_RATIO * g_0:
        return f"grad norm {g:.3g} > {GRAD_RATIO:g} x g_0 ({g_0:.3g}) at step {step}"
    if step > 0 and loss > LOSS_RATIO * abs(loss_0):
        return f"loss {loss:.4g} > {LOSS_RATIO:g} x loss_0 ({loss_0:.4g}) at step {step}"
    return None


def judge_completed(losses: list[float]) -> tuple[str, str]:
    """Outcome and reason of a run that finished all its steps (rule 4, then trained/stalled)."""
    loss_0 = losses[0]
    peak = max(losses)
    tail = losses[-max(1, math.ceil(TAIL_FRACTION * len(losses))):]
    if peak > LOSS_RATIO_SUSTAINED * abs(loss_0) and min(tail) > loss_0:
        return "DIVERGED", (f"loss peaked at {peak:.4g} > {LOSS_RATIO_SUSTAINED:g} x loss_0 ({loss_0:.4g}) "
                            f"and the last {len(tail)} losses stay above loss_0")
    final = sum(losses[-TRAINED_WINDOW:]) / len(losses[-TRAINED_WINDOW:])
    if final < loss_0 - (1 - TRAINED_RATIO) * abs(loss_0):
        return "TRAINED", f"final loss {final:.4g} vs loss_0 {loss_0:.4g}"
    return "STALLED", f"final loss {final:.4g} vs loss_0 {loss_0:.4g} (not below {TRAINED_RATIO} x loss_0)"


def train_one(case, seed: int) -> dict:
    """Train one seed of a case under the protocol; return its outcome and curves."""
    import torch

    torch.manual_seed(seed)
    model = case.build_model()
    model.train()
    optimizer, schedulers = unpack_optimizers(case.configure_optimizers(model))
    clip = getattr(case, "gradient_clip_val", None)
    params = [p for group in optimizer.param_groups for p in group["params"]] + list(model.parameters())
    params = list({id(p): p for p in params}.values())  # every trainable tensor once

    losses: list[float] = []
    norms: list[float | None] = []
    reason = None
    for step in range(int(case.TRAIN_STEPS)):
        inputs, targets = case.make_batch(step)
        loss = case.loss_fn(model(*inputs), targets)
        losses.append(float(loss.detach()))
        if not math.isfinite(losses[-1]):  # no backward through a non-finite loss
            norms.append(None)
            reason = immediate_divergence(step, losses[-1], None, losses[0], None)
            break
        loss.backward()
        norms.append(grad_norm(params, clip))
        reason = immediate_divergence(step, losses[-1], norms[-1], losses[0], norms[0])
        if reason:
            break
        optimizer.step()
        for scheduler in schedulers:
            scheduler.step()
        optimizer.zero_grad(set_to_none=True)

    outcome, reason = ("DIVERGED", reason) if reason else judge_completed(losses)
    steps, loss_curve, norm_curve = subsample(losses, norms)
    return {"seed": seed, "outcome": outcome, "reason": reason, "steps_run": len(losses),
            "steps": steps, "loss": loss_curve, "grad_norm": norm_curve}


def subsample(losses, norms):
    """At most MAX_POINTS evenly spaced steps (always the first and the last), 4 sig. figures."""
    n = len(losses)
    if n > MAX_POINTS:
        steps = sorted({round(i * (n - 1) / (MAX_POINTS - 1)) for i in range(MAX_POINTS)})
    else:
        steps = list(range(n))

    def fmt(x):
        return float(f"{x:.4g}") if x is not None and math.isfinite(x) else None

    return steps, [fmt(losses[i]) for i in steps], [fmt(norms[i]) for i in steps]


def majority(outcomes: list[str]) -> str:
    (top, count), = Counter(outcomes).most_common(1)
    if count > 1:
        return top
    return next(label for label in LABEL_PRIORITY if label in outcomes)


# --------------------------------------------------------------------------- one case (worker)

def init_worker() -> None:
    import torch

    torch.set_num_threads(1)  # one core per worker; --jobs workers run side by side
    if str(BENCHMARKS) not in sys.path:
        sys.path.insert(0, str(BENCHMARKS))


def run_case(path_str: str) -> tuple[str, dict | None, str | None]:
    """(name, result, error): exactly one of result and error is set."""
    path = Path(path_str)
    start, start_cpu = time.perf_counter(), time.process_time()
    try:
        family = family_of(path.stem)
        case = load_case(path)
        seeds = [train_one(case, seed) for seed in SEEDS]
    except Exception:  # report any failure of a case; the run continues with the others
        return path.stem, None, traceback.format_exc(limit=6)
    outcomes = [s["outcome"] for s in seeds]
    result = {"label": majority(outcomes),
              "diverged_fraction": round(outcomes.count("DIVERGED") / len(SEEDS), 4),
              "family": family, "seconds": round(time.perf_counter() - start, 2),
              "cpu_seconds": round(time.process_time() - start_cpu, 2),  # wall time suffers on a busy machine
              "seeds": seeds}
    return path.stem, result, None


# --------------------------------------------------------------------------- driver

def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=Path, default=BENCHMARKS / "cases")
    parser.add_argument("--out", type=Path, default=BENCHMARKS / "truth.json")
    parser.add_argument("--only", nargs="+", metavar="NAME",
                        help="retrain only these cases (file stems) and merge into the existing --out")
    parser.add_argument("--jobs", type=int, default=2)
    return parser.parse_args(argv)


def select_cases(cases_dir: Path, only: list[str] | None) -> list[Path]:
    paths = {p.stem: p for p in sorted(cases_dir.glob("*.py")) if not p.name.startswith("_")}
    if only is None:
        return list(paths.values())
    names = [Path(n).stem for n in only]  # accept "name", "name.py" or a path
    unknown = [n for n in names if n not in paths]
    if unknown:
        sys.exit(f"truth.py: no such case(s) in {cases_dir}: {', '.join(unknown)}")
    return [paths[n] for n in names]


def run_all(paths: list[Path], jobs: int):
    """Yield (name, result, error) as cases finish. Hugging Face cases go first: they are the slowest."""
    ordered = sorted(paths, key=lambda p: (not p.stem.startswith("hf_"), p.stem))
    if jobs <= 1:
        init_worker()
        yield from map(run_case, map(str, ordered))
        return
    # spawn: each worker starts clean (no forked torch thread pools).
    with multiprocessing.get_context("spawn").Pool(jobs, initializer=init_worker, maxtasksperchild=8) as pool:
        yield from pool.imap_unordered(run_case, map(str, ordered))


def describe(name: str, result: dict) -> str:
    votes = " ".join(s["outcome"][0] for s in result["seeds"])
    first_reason = next((s["reason"] for s in result["seeds"] if s["outcome"] == result["label"]), "")
    return (f"{name:<44} {result['family']:<11} {result['label']:<8} [{votes}] "
            f"{result['seconds']:6.1f}s  {first_reason}")


def summarize(cases: dict) -> dict:
    labels = Counter(c["label"] for c in cases.values())
    return {"n": len(cases), **{label: labels.get(label, 0) for label in ("DIVERGED", "TRAINED", "STALLED")},
            "by_family": {fam: dict(Counter(c["label"] for c in cases.values() if c["family"] == fam))
                          for fam in sorted({c["family"] for c in cases.values()})},
            # Cases whose seeds disagree (boundary cases): their label is a 2-1 majority.
            "split": sorted(name for name, c in cases.items() if len({s["outcome"] for s in c["seeds"]}) > 1)}


def to_json(report: dict) -> str:
    """Indented JSON with every list of numbers on one line (curves stay readable in a diff)."""
    text = json.dumps(report, indent=1)
    flat_list = re.compile(r"\[\n\s*([^\[\]{}\"]*?)\n\s*\]")  # a list holding no string, list or dict
    return flat_list.sub(lambda m: "[" + re.sub(r",\n\s*", ", ", m.group(1)) + "]", text) + "\n"


def transformers_version() -> str | None:
    try:
        from importlib.metadata import version

        return version("transformers")
    except Exception:  # not installed: the hf_ cases then fail and are reported
        return None


def main(argv=None) -> int:
    args = parse_args(argv)
    import torch

    paths = select_cases(args.cases, args.only)
    cases: dict = {}
    if args.only and args.out.exists():
        cases = json.loads(args.out.read_text())["cases"]
        present = {p.stem for p in args.cases.glob("*.py")}
        for stale in sorted(set(cases) - present):
            print(f"dropping {stale}: its case file is gone")
            del cases[stale]

    start = time.perf_counter()
    errors: dict[str, str] = {}
    done: list[str] = []
    for name, result, error in run_all(paths, args.jobs):
        if error:
            errors[name] = error
            cases.pop(name, None)
            print(f"{name:<44} ERROR\n{error}", flush=True)
        else:
            cases[name] = result
            done.append(name)
            print(describe(name, result), flush=True)
    elapsed = time.perf_counter() - start

    cases = dict(sorted(cases.items()))
    report = {"protocol": {"description": __doc__.split("\n\n")[2].replace("\n", " "), "seeds": list(SEEDS),
                           "rules": RULES},
              "torch_version": torch.__version__, "transformers_version": transformers_version(),
              "cases": cases, "summary": summarize(cases)}
    if errors:
        report["errors"] = errors
    args.out.write_text(to_json(report))

    s = report["summary"]
    cpu = sum(cases[name]["cpu_seconds"] for name in done)
    print(f"\n{len(done)} case(s) trained in {elapsed:.0f}s wall ({cpu:.0f}s CPU in workers) "
          f"with {args.jobs} job(s); corpus now n={s['n']}: "
          f"DIVERGED {s['DIVERGED']}, TRAINED {s['TRAINED']}, STALLED {s['STALLED']}; written to {args.out}")
    if errors:
        print(f"{len(errors)} case(s) FAILED: {', '.join(sorted(errors))}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
