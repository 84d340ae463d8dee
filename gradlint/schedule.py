"""The learning-rate schedule's peak: the lr the optimizer rules check.

A warm-up or one-cycle schedule starts far below the lr it reaches later (OneCycleLR starts at
max_lr / 25), so the lr of step 0 says little about stability. gradlint steps a copy of the
scheduler, over a copy of the optimizer that shares the model's parameters (nothing the user
owns changes), and takes the largest lr of the steps the risk covers.

Lightning's configure_optimizers may return a scheduler in every shape it accepts:
`{"optimizer": o, "lr_scheduler": s}`, `{"lr_scheduler": {"scheduler": s, "interval": "step"}}`,
`([o], [s])` and lists of such dicts. Lightning steps a scheduler once per epoch unless its
interval is "step", every `frequency` intervals; gradlint cannot know the epoch length, so an
epoch schedule is followed for EPOCH_HORIZON epochs.
"""

from __future__ import annotations

import copy
import warnings
from dataclasses import dataclass
from typing import Any

# The risk covers a run's first few hundred steps (benchmarks/truth.py trains 100-300).
STEP_HORIZON = 300
EPOCH_HORIZON = 5


@dataclass(frozen=True)
class Peak:
    lr: float  # the largest lr of the first param group over the horizon
    step: int  # the training step (or epoch) that reaches it
    scheduler: str  # the scheduler's class name
    interval: str  # "step" or "epoch"

    def describe(self) -> str:
        return f"the {self.scheduler} peak at {self.interval} {self.step}"


def find_scheduler(configured: Any) -> tuple[Any, str, int] | None:
    """(scheduler, interval, frequency) of the first scheduler in a configure_optimizers result:
    Lightning steps it every `frequency` intervals."""
    import torch

    if isinstance(configured, dict):
        if "scheduler" in configured:  # Lightning's scheduler config
            scheduler = configured["scheduler"]
            if not _is_scheduler(scheduler):
                return None
            return scheduler, configured.get("interval", "epoch"), max(1, int(configured.get("frequency", 1)))
        return find_scheduler(configured.get("lr_scheduler"))
    if isinstance(configured, (list, tuple)):
        found = (find_scheduler(item) for item in configured if not isinstance(item, torch.optim.Optimizer))
        return next((f for f in found if f is not None), None)
    return (configured, "epoch", 1) if _is_scheduler(configured) else None


def _is_scheduler(value: Any) -> bool:
    import torch

    return isinstance(value, (torch.optim.lr_scheduler.LRScheduler, torch.optim.lr_scheduler.ReduceLROnPlateau))


def peak_of(scheduler: Any, interval: str, frequency: int, optimizer: Any) -> Peak | None:
    """The schedule's largest lr over the horizon, when it exceeds the optimizer's current one;
    None when it does not, or the scheduler cannot be stepped without a training loop
    (ReduceLROnPlateau wants a metric, and only ever lowers the lr)."""
    import torch

    if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau) or scheduler.optimizer is not optimizer:
        return None
    # Copy the optimizer and scheduler together, but not the parameters they point at.
    memo = {id(p): p for group in optimizer.param_groups for p in group["params"]}
    try:
        twin_optimizer, twin = copy.deepcopy((optimizer, scheduler), memo)
    except Exception:  # a scheduler holding something uncopyable
        return None
    start = best = _lr(twin_optimizer)
    best_step = 0
    horizon = (STEP_HORIZON if interval == "step" else EPOCH_HORIZON) // frequency
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "scheduler.step() before optimizer.step()": no training here
        for step in range(1, horizon + 1):
            try:
                twin.step()
            except Exception:  # the schedule ended (OneCycleLR raises past total_steps) or needs more
                break
            lr = _lr(twin_optimizer)
            if lr > best:
                best, best_step = lr, step * frequency
    if best <= start:
        return None
    return Peak(best, best_step, type(scheduler).__name__, interval)


def _lr(optimizer: Any) -> float:
    lr = optimizer.param_groups[0]["lr"]
    return float(lr.item() if hasattr(lr, "item") else lr)
