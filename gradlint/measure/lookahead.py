"""A few real optimizer steps on a copy of the model, on the example batch repeated or on its rows
drawn with replacement at every step (gradlint.batches): the loss and gradient norm per step, as
training would see them. GL604 reads them; docs/architecture.md says why they are a measurement.

The copy gets a fresh optimizer with the configured hyper-parameters at the checked (schedule
peak) lr, and gradients are clipped at gradient_clip_val as training clips them. Cost: one
forward and backward per step, plus a copy of the model and of the optimizer's state. A FLOP
budget, counted on the first step (torch.utils.flop_counter) rather than timed so that a file
gets the same steps on any machine, cuts the steps of a large model, never below MIN_STEPS.
"""

from __future__ import annotations

import contextlib
import copy
import math
from collections.abc import Callable
from dataclasses import dataclass

from gradlint.batches import bootstrap_index, take_rows
from gradlint.losses import training_loss
from gradlint.optimizers import at_checked_lr, fresh_optimizer
from gradlint.probe import on_device
from gradlint.spec import ModelSpec

# Never fewer steps than the risk model's first feature window (GL604's FEATURE_WINDOWS), whatever
# the budget.
MIN_STEPS = 5


def affordable_steps(steps: int, flops_per_step: float, budget: float) -> int:
    """How many of `steps` lookahead steps fit in `budget` FLOPs, at least MIN_STEPS."""
    if flops_per_step <= 0:  # nothing the counter knows (e.g. an RNN's fused kernels): no reason to cut
        return steps
    return min(steps, max(MIN_STEPS, int(budget // flops_per_step)))


RESAMPLED = "rows resampled from the example batch"
REPEATED = "the example batch"


@dataclass(frozen=True)
class LookaheadRun:
    losses: list[float]  # per step; the run stops at the first non-finite loss or gradient norm
    grads: list[float]  # global gradient norms before clipping
    planned_steps: int  # asked_steps, or fewer where the FLOP budget cut them
    asked_steps: int  # the steps asked for
    flops_per_step: float = 0.0  # one step's forward and backward; 0 when not counted
    batches: str = REPEATED  # what the steps trained on, as the finding's message says it


def lookahead_run(spec: ModelSpec, device: str, seed: int, steps: int, flop_budget: float | None,
                  rows: int | None = None, counted: float | None = None,
                  count_passes: Callable[..., None] = lambda **_: None) -> LookaheadRun:
    """`steps` optimizer steps on a copy of the model, on the example batch or (given its `rows`) on
    its rows drawn with replacement at every step. With a budget, the first step's FLOPs are counted
    (unless `counted` gives them) and the steps cut to what the budget affords (affordable_steps)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    model = copy.deepcopy(spec.model).to(device)
    model.train()
    try:
        optimizer = at_checked_lr(fresh_optimizer(spec.optimizer_object, model.parameters()), spec.optimizer)
    except Exception:  # an optimizer that cannot be rebuilt from its hyper-parameters
        return LookaheadRun([], [], 0, steps)
    inputs = tuple(t.to(device) if isinstance(t, torch.Tensor) else t for t in spec.inputs)
    kwargs = on_device(spec.input_kwargs, device)
    targets = spec.targets.to(device) if isinstance(spec.targets, torch.Tensor) else spec.targets
    rows_drawn = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    losses, grads, flops, asked = [], [], counted or 0.0, steps
    if flop_budget is not None and counted:
        steps = affordable_steps(steps, counted, flop_budget)
    while len(losses) < steps:
        if rows is None:
            batch_inputs, batch_kwargs, batch_targets = inputs, kwargs, targets
        else:
            index = bootstrap_index(rows, rows_drawn)
            batch_inputs, batch_targets = take_rows(inputs, index, rows), take_rows(targets, index, rows)
            batch_kwargs = take_rows(kwargs, index, rows)
        counting = flop_budget is not None and not counted and not losses
        with FlopCounterMode(display=False) if counting else contextlib.nullcontext() as counter:
            loss, _ = training_loss(model(*batch_inputs, **batch_kwargs), batch_targets, spec.loss_fn, seed,
                                    kind=spec.loss, inputs=batch_inputs)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
        if counting:
            flops = float(counter.get_total_flops())
            steps = affordable_steps(steps, flops, flop_budget)
        count_passes(forward=1, backward=1)
        if spec.gradient_clip_val:
            norm = torch.nn.utils.clip_grad_norm_(model.parameters(), spec.gradient_clip_val)
        else:  # the same norm, without clip_grad_norm_'s multiply of every gradient by 1
            norm = torch.nn.utils.get_total_norm([p.grad for p in model.parameters() if p.grad is not None])
        losses.append(float(loss.detach()))
        grads.append(float(norm))
        if not (math.isfinite(losses[-1]) and math.isfinite(grads[-1])):
            break
        optimizer.step()
    return LookaheadRun(losses, grads, steps, asked, flops, REPEATED if rows is None else RESAMPLED)
