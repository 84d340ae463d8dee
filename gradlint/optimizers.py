"""The optimizer training will use: building, reading, describing and copying it, and its LR
schedule's peak.

- Building: gradlint's default, AdamW(lr=DEFAULT_LR), or the torch.optim class --optimizer names
  (`make_optimizer`); for a spec that holds only an OptimizerInfo, one from its hyper-parameters
  (`optimizer_from_info`).
- Reading: what a model file's configure_optimizers returned, in every shape PyTorch Lightning
  accepts, checked (`resolve_optimizer`): the optimizer must hold some of the model's parameters,
  every lr must be a finite number >= 0; gradient_clip_val likewise (`check_gradient_clip`).
- Describing: OptimizerInfo, the hyper-parameters the rules read (`describe_optimizer`).
- Copying: the optimizer rules step copies, never the user's optimizer (`fresh_optimizer`), at
  the lr they check (`at_checked_lr`).
- The schedule's peak: a warm-up or one-cycle schedule starts far below the lr it reaches later
  (OneCycleLR starts at max_lr / 25), so the lr of step 0 says little about stability. gradlint
  steps a copy of the scheduler, over a copy of the optimizer that shares the model's parameters
  (nothing the user owns changes), and takes the largest lr of the steps the risk covers.

Lightning's configure_optimizers may return a scheduler in every shape it accepts:
`{"optimizer": o, "lr_scheduler": s}`, `{"lr_scheduler": {"scheduler": s, "interval": "step"}}`,
`([o], [s])` and lists of such dicts. Lightning steps a scheduler once per epoch unless its
interval is "step", every `frequency` intervals; gradlint cannot know the epoch length, so an
epoch schedule is followed for EPOCH_HORIZON epochs.

torch is imported inside the functions that use it: the command line, the config and the rules
import this module on runs that never build a model.
"""

from __future__ import annotations

import copy
import inspect
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from gradlint.errors import LoadError
from gradlint.overrides import Overrides
from gradlint.spec import OptimizerInfo

DEFAULT_LR = 1e-3  # of gradlint's default optimizer, AdamW, when a file has no configure_optimizers

# What configure_optimizers may return, as its errors say it.
OPTIMIZER_SHAPES = "return an optimizer, a list, a dict with 'optimizer', or (optimizers, schedulers)"

# The risk covers a run's first few hundred steps (benchmarks/truth.py trains 100-300).
STEP_HORIZON = 300
EPOCH_HORIZON = 5


class UnsupportedOptimizer(Exception):
    """The optimizer cannot be stepped without the training loop (e.g. LBFGS needs a closure)."""


# -- the optimizer a model file configures ---------------------------------------------------------
def resolve_optimizer(configure: Callable[[], Any] | None, model: Any, overrides: Overrides,
                      assumptions: list[str]) -> tuple[Any, OptimizerInfo]:
    """The optimizer training will use and its description, after overrides: what `configure()`
    returns (it calls the file's configure_optimizers; None when the file has none), else the
    defaults. Appends what it assumes to `assumptions`."""
    if overrides.lr is not None:
        _check_lr(overrides.lr, f"--lr {_number(overrides.lr)}")
    optimizer = configured = None
    if overrides.optimizer is None and configure is not None:
        configured = configure()
        if configured is None:
            # Lightning would warn and train with no optimizer at all; checking gradlint's AdamW
            # default instead would report on a setup the file does not have.
            raise LoadError(f"configure_optimizers() returned None: {OPTIMIZER_SHAPES}")
        optimizer = first_optimizer(configured)
        _check_parameters(optimizer, model)
        if overrides.lr is None:  # --lr replaces whatever the file set
            _check_group_lrs(optimizer)
    if optimizer is None:
        name = overrides.optimizer or "AdamW"
        lr = overrides.lr if overrides.lr is not None else DEFAULT_LR
        optimizer = make_optimizer(name, model.parameters(), lr)
        if overrides.optimizer is None:
            assumptions.append(f"optimizer: AdamW(lr={lr:g}) (no configure_optimizers)")
    elif overrides.lr is not None:  # --lr replaces the schedule too
        for group in optimizer.param_groups:
            group["lr"] = overrides.lr
    info = describe_optimizer(optimizer)
    if configured is None and overrides.optimizer is None:  # the optimizer findings say it is gradlint's
        info = replace(info, assumed=True)
    if configured is not None and overrides.lr is None:
        info = _with_schedule_peak(info, configured, optimizer, assumptions)
    return optimizer, info


def first_optimizer(configured: Any) -> Any:
    """Accept every shape PyTorch Lightning's configure_optimizers may return; the first
    optimizer is the one checked."""
    import torch

    if isinstance(configured, torch.optim.Optimizer):
        return configured
    if isinstance(configured, dict):
        if "optimizer" not in configured:
            raise LoadError(f"configure_optimizers() returned a dict without 'optimizer': {OPTIMIZER_SHAPES}")
        return first_optimizer(configured["optimizer"])
    if isinstance(configured, (list, tuple)):
        if not configured:
            raise LoadError(f"configure_optimizers() returned an empty {type(configured).__name__}: {OPTIMIZER_SHAPES}")
        return first_optimizer(configured[0])
    raise LoadError(f"configure_optimizers() returned {type(configured).__name__}; {OPTIMIZER_SHAPES}")


def _check_parameters(optimizer: Any, model: Any) -> None:
    """The optimizer must hold some of the model's parameters. A subset is fine (a frozen
    backbone), and so are tensors beside them (a loss's learnable weights, a temperature): the
    rules step the model's parameters and ignore the rest. An optimizer over none of them would
    have the rules measure a step that moves nothing they run."""
    tensors = [p for group in optimizer.param_groups for p in group["params"]]
    if not tensors:
        raise LoadError(f"configure_optimizers() returned {type(optimizer).__name__} over no parameters: "
                        "build it over model.parameters()")
    owned = {id(p) for p in model.parameters()}
    belong = sum(id(p) in owned for p in tensors)
    if belong == 0:
        raise LoadError(f"configure_optimizers() returned an optimizer over parameters that are not the model's "
                        f"({belong} of its {len(tensors)} tensors belong to the model)")


def _check_group_lrs(optimizer: Any) -> None:
    """Every param group's lr is a finite number >= 0. torch's constructors reject a negative lr
    (and all but SGD a NaN one), but accept inf, and nothing checks an lr written into
    param_groups afterwards or a custom optimizer's."""
    groups = optimizer.param_groups
    for index, group in enumerate(groups):
        where = f" in param group {index}" if len(groups) > 1 else ""
        _check_lr(group.get("lr", 0.0), f"configure_optimizers() returned {type(optimizer).__name__} with lr = "
                                        f"{_number(group.get('lr'))}{where}")


def _check_lr(lr: Any, what: str) -> None:
    """lr 0 is allowed: it takes no step, and the optimizer rules have nothing to check."""
    try:
        value = float(lr.item() if hasattr(lr, "item") else lr)
    except (TypeError, ValueError, RuntimeError):
        value = math.nan
    if not (math.isfinite(value) and value >= 0):
        raise LoadError(f"{what}: a learning rate must be a finite number >= 0")


def check_gradient_clip(clip: Any, where: str) -> None:
    """gradient_clip_val as Lightning reads it, with its silent failures made errors. None or 0
    means no clipping, as in Lightning (Trainer's default is None, and its precision plugin skips
    clipping when the value is <= 0), so both stay allowed. A negative value, which Lightning also
    skips without a word, is a mistake; NaN makes clip_grad_norm_ write NaN into every gradient;
    inf never clips; a bool is a number to Python (True clips at 1) but not what anyone means."""
    if clip is None:
        return
    if not isinstance(clip, (int, float)):
        raise LoadError(f"gradient_clip_val must be a number, not {type(clip).__name__}")
    if isinstance(clip, bool) or clip < 0 or not math.isfinite(clip):
        raise LoadError(f"gradient_clip_val = {_number(clip)} {where}: must be a positive finite number")


def _number(value: Any) -> str:
    """A number as a message shows it: -1, 0.001, nan, inf (a tensor by its value); else its repr."""
    value = value.item() if hasattr(value, "item") else value
    return f"{value:g}" if isinstance(value, (int, float)) and not isinstance(value, bool) else repr(value)


# -- building, describing and copying ---------------------------------------------------------------
def make_optimizer(name: str, parameters: Any, lr: float) -> Any:
    import torch

    classes = {n.lower(): getattr(torch.optim, n) for n in dir(torch.optim)
               if isinstance(getattr(torch.optim, n), type) and issubclass(getattr(torch.optim, n), torch.optim.Optimizer)}
    cls = classes.get(name.lower())
    if cls is None or cls is torch.optim.Optimizer:
        raise LoadError(f"unknown optimizer {name!r}; use a torch.optim class name such as SGD, Adam or AdamW")
    return cls(parameters, lr=lr)


def describe_optimizer(optimizer: Any) -> OptimizerInfo:
    group = optimizer.param_groups[0]
    betas = group.get("betas")
    lr = group.get("lr", 0.0)
    return OptimizerInfo(
        name=type(optimizer).__name__,
        lr=float(lr.item() if hasattr(lr, "item") else lr),
        momentum=float(group.get("momentum", 0.0) or 0.0),
        betas=tuple(float(b) for b in betas) if betas is not None else None,
        # Adafactor's eps is a pair (eps1, eps2), and may hold None: no single number to describe it.
        eps=float(group["eps"]) if isinstance(group.get("eps"), (int, float)) else None,
        weight_decay=float(group.get("weight_decay", 0.0) or 0.0),
        nesterov=bool(group.get("nesterov", False)),
    )


def fresh_optimizer(like: Any, parameters: Any, group: dict | None = None) -> Any:
    """A new optimizer of `like`'s class and hyper-parameters (those of `group`, by default its
    first param group) over `parameters`, for steps on copies. Only the constructor's own
    arguments are passed: param_groups also hold derived keys (AdamW's decoupled_weight_decay)
    that the constructor rejects."""
    accepted = inspect.signature(type(like)).parameters
    group = like.param_groups[0] if group is None else group
    return type(like)(parameters, **{k: v for k, v in group.items() if k in accepted and k != "params"})


def optimizer_from_info(info: OptimizerInfo | None, params: list) -> Any:
    """An optimizer built from OptimizerInfo alone (specs without an optimizer object)."""
    if info is None:
        raise UnsupportedOptimizer("no optimizer configured")
    optimizer = make_optimizer(info.name, params, info.lr)
    for group in optimizer.param_groups:
        for key, value in (("momentum", info.momentum), ("betas", info.betas), ("eps", info.eps),
                           ("weight_decay", info.weight_decay), ("nesterov", info.nesterov)):
            if key in group and value is not None:
                group[key] = value
    return optimizer


def at_checked_lr(optimizer: Any, info: OptimizerInfo | None) -> Any:
    """`optimizer` (a copy) with its lr raised to the LR schedule's peak (OptimizerInfo.peak_lr),
    every param group in proportion: the optimizer rules check the largest lr training reaches."""
    if info is None or info.peak_lr is None:
        return optimizer
    for group in optimizer.param_groups:
        group["lr"] = group["lr"] * (info.peak_lr / info.lr) if info.lr > 0 else info.peak_lr
    return optimizer


# -- the LR schedule's peak ------------------------------------------------------------------------
@dataclass(frozen=True)
class Peak:
    lr: float  # the largest lr of the first param group over the horizon
    step: int  # the training step (or epoch) that reaches it
    scheduler: str  # the scheduler's class name
    interval: str  # "step" or "epoch"

    def describe(self) -> str:
        return f"the {self.scheduler} peak at {self.interval} {self.step}"


def _with_schedule_peak(info: OptimizerInfo, configured: Any, optimizer: Any, assumptions: list[str]) -> OptimizerInfo:
    """`info` with the LR schedule's peak, which the optimizer rules check instead of lr."""
    found = find_scheduler(configured)
    peak = peak_of(*found, optimizer) if found is not None else None
    if peak is None:
        return info
    if not math.isfinite(peak.lr):  # a peak above every lr is one (a lambda that divides by 0, say)
        raise LoadError(f"configure_optimizers()'s {peak.scheduler} sets lr = {peak.lr:g} at {peak.interval} "
                        f"{peak.step}: a learning rate must be a finite number >= 0")
    if peak.interval == "epoch":
        assumptions.append(f"optimizer: {peak.scheduler} steps once per epoch (Lightning's default interval); "
                           "its peak over the first epochs is checked")
    return replace(info, peak_lr=peak.lr, schedule=peak.describe(), scheduler=peak.scheduler, peak_step=peak.step,
                   peak_interval=peak.interval)


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
