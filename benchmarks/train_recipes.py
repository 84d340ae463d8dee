"""Train the standard recipes (benchmarks/recipes/) on CPU to confirm that each one trains.

    python benchmarks/train_recipes.py [--only NAME ...] [--seeds 0 1 2] [--size train|full|small]
                                       [--steps N] [--out benchmarks/recipes_training.json]

Each recipe file is imported with `SIZE = "train"` (the published architecture, narrowed where a
CPU run needs it, as its docstring says; `--size full` trains the published size, recorded as
`NAME@full`) and trained for its TRAIN_STEPS steps (`--steps` for another count) on its synthetic
`make_batch(step)`, with its own `configure_optimizers` and `gradient_clip_val`, for each seed:
loss -> backward -> global grad norm (clipped when the recipe clips) -> optimizer step. A
scheduler with Lightning's interval "step" steps after every optimizer step, one with interval
"epoch" every EPOCH_STEPS steps (a synthetic task has no epochs; this one makes a 5-epoch warmup
125 steps long). Each run is judged by the corpus's protocol (benchmarks/truth.py: DIVERGED,
TRAINED or STALLED, the seeds voting).

Like truth.py, this file does not import gradlint: it measures what training does. One thread,
as the corpus was trained.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import sys
import time
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent
RECIPES = BENCHMARKS / "recipes"
sys.path.insert(0, str(BENCHMARKS))

import truth  # noqa: E402  (benchmarks/: the protocol's thresholds and verdicts)

EPOCH_STEPS = 25


def load(path: Path, size: str):
    spec = importlib.util.spec_from_file_location(f"recipe_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.SIZE = size  # read when the model and batches are built, not at import
    return module


def unpack(configured):
    """(optimizer, [(scheduler, interval)]) from a Lightning-style configure_optimizers result."""
    import torch

    if isinstance(configured, torch.optim.Optimizer):
        return configured, []
    if isinstance(configured, dict):
        scheduler = configured.get("lr_scheduler")
        if isinstance(scheduler, dict):
            return configured["optimizer"], [(scheduler["scheduler"], scheduler.get("interval", "epoch"))]
        return configured["optimizer"], [(scheduler, "epoch")] if scheduler is not None else []
    raise TypeError(f"configure_optimizers returned {type(configured).__name__}")


def train(recipe, seed: int, steps: int) -> dict:
    import torch

    torch.manual_seed(seed)
    model = recipe.build_model()
    model.train()
    optimizer, schedulers = unpack(recipe.configure_optimizers(model))
    clip = getattr(recipe, "gradient_clip_val", None)
    params = list({id(p): p for p in model.parameters() if p.requires_grad}.values())
    losses, norms, reason = [], [], None
    start = time.perf_counter()
    for step in range(steps):
        inputs, targets = recipe.make_batch(step)
        loss = recipe.loss_fn(model(*inputs), targets)
        losses.append(float(loss.detach()))
        if not math.isfinite(losses[-1]):
            reason = truth.immediate_divergence(step, losses[-1], None, losses[0], None)
            break
        loss.backward()
        norms.append(truth.grad_norm(params, clip))
        reason = truth.immediate_divergence(step, losses[-1], norms[-1], losses[0], norms[0])
        if reason:
            break
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        for scheduler, interval in schedulers:
            if interval == "step" or (step + 1) % EPOCH_STEPS == 0:
                scheduler.step()
    outcome, reason = ("DIVERGED", reason) if reason else truth.judge_completed(losses)
    tail = losses[-truth.TRAINED_WINDOW:]
    return {"seed": seed, "outcome": outcome, "reason": reason, "steps_run": len(losses),
            "loss_0": round(losses[0], 4), "final_loss": round(sum(tail) / len(tail), 4),
            "max_grad_norm": round(max(norms), 4) if norms else None,
            "loss_every_25_steps": [round(loss, 3) for loss in losses[::25]],
            "seconds_per_step": round((time.perf_counter() - start) / len(losses), 3)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", metavar="NAME")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--size", choices=("train", "full", "small"), default="train")
    parser.add_argument("--steps", type=int, help="instead of each recipe's TRAIN_STEPS")
    parser.add_argument("--out", type=Path, default=BENCHMARKS / "recipes_training.json")
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    paths = [p for p in sorted(RECIPES.glob("*.py")) if not p.name.startswith("_")]
    if args.only:
        paths = [p for p in paths if p.stem in args.only]
    results = {}
    if args.only and args.out.exists():
        results = json.loads(args.out.read_text())["recipes"]
    print(f"| recipe | parameters ({args.size} size) | steps | loss at step 0 | final loss (mean of last 10) | label | seeds |")
    print("|---|---|---|---|---|---|---|")
    for path in paths:
        recipe = load(path, args.size)
        key = path.stem if args.size == "train" else f"{path.stem}@{args.size}"
        parameters = sum(p.numel() for p in {id(p): p for p in recipe.build_model().parameters()}.values())
        steps = args.steps or int(recipe.TRAIN_STEPS)
        runs = [train(recipe, seed, steps) for seed in args.seeds]
        outcomes = [run["outcome"] for run in runs]
        results[key] = {"label": truth.majority(outcomes), "parameters": parameters,
                        "train_steps": steps, "size": recipe.SIZES[args.size], "seeds": runs}
        first = runs[0]
        print(f"| {key} | {parameters / 1e6:.2f}M | {steps} | {first['loss_0']:.3f} | "
              f"{' / '.join(format(run['final_loss'], '.3f') for run in runs)} | {results[key]['label']} | "
              f"{' '.join(o[0] for o in outcomes)} |", flush=True)
    args.out.write_text(json.dumps({"protocol": {"rules": truth.RULES, "epoch_steps": EPOCH_STEPS,
                                                 "torch": torch.__version__},
                                    "recipes": results}, indent=1) + "\n")
    return 0 if all(r["label"] == "TRAINED" for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
