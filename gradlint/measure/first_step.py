"""The optimizer's first update on the example batch, and the loss after it (a one-step lookahead).

The optimizer steps a copy of itself whose parameters are clones of the model's (or, lean, a
one-tensor copy per parameter): the model and the user's optimizer are never written. Gradient
clipping at `clip` applies first, as clip_grad_norm_ and Lightning's gradient_clip_val do.
Costs: 1 forward + 1 backward for the step (one more when a lean step needs the global gradient
norm for clipping); 1 forward per lookahead scale.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from gradlint.measure.surface import LossSurface
from gradlint.measure.vectors import flat_dot, norm, real, squared_norm
from gradlint.optimizers import UnsupportedOptimizer, at_checked_lr, fresh_optimizer, optimizer_from_info
from gradlint.probe import each_gradient


@dataclass(frozen=True)
class TensorUpdate:
    """One trainable parameter's share of the first step, in numbers: all a lean step keeps."""

    name: str  # parameter path, e.g. "encoder.layers.0.linear1.weight"
    dim: int
    weight_rms: float
    update_rms: float
    grad_sq: float  # ||g||^2, before clipping
    update_sq: float  # ||u||^2
    dot: float  # g . u, with g before clipping


@dataclass(frozen=True)
class FirstStep:
    """The optimizer's first update on the example batch, computed on copies of the parameters."""

    loss: float
    tensors: tuple  # TensorUpdate per trainable parameter
    grad_norm: float  # global L2 norm of the gradient, before clipping
    clip_scale: float  # min(1, clip / grad_norm): the factor clipping applied to the gradient (1 without clipping)
    # The whole vectors, per trainable parameter; None for a lean step (`first_step(lean=True)`),
    # which never holds more than one parameter's gradient and update at a time.
    gradient: tuple | None = None  # before clipping
    update: tuple | None = None  # the change the first optimizer step makes (zero if not optimized)

    @property
    def descent(self) -> float:
        """-g . update: the loss decrease a linear model predicts (positive for a descent step)."""
        return -sum(t.dot for t in self.tensors)


def first_step(surface: LossSurface, optimizer: Any, optimizer_info: Any = None,
               clip: float | None = None, lean: bool = False) -> FirstStep:
    """The update the optimizer's first step makes on the example batch, with global grad-norm
    clipping at `clip` applied first (g <- g * min(1, clip/||g||), as clip_grad_norm_ and
    Lightning's gradient_clip_val do). The optimizer steps a copy of itself on cloned parameters.

    `lean` keeps memory at one parameter's size: each tensor's update is computed the moment
    backward has accumulated its gradient, by a one-tensor copy of the optimizer, and only
    numbers are kept (torch.optim's first step is per tensor). It costs one more forward and
    backward when clipping needs the global gradient norm first."""
    if lean:
        return _lean_first_step(surface, optimizer, optimizer_info, clip)
    loss, gradient = surface.gradient()
    grad_norm = norm(gradient)
    clip_scale = _clip_scale(clip, grad_norm)
    clipped = tuple(g * clip_scale for g in gradient) if clip_scale < 1.0 else gradient
    update = _step_on_copies(optimizer, optimizer_info, surface.params, clipped)
    tensors = tuple(_tensor_update(name, p, g, u)
                    for name, p, g, u in zip(surface.names, surface.params, gradient, update))
    return FirstStep(loss=float(loss), tensors=tensors, grad_norm=grad_norm, clip_scale=clip_scale,
                     gradient=gradient, update=update)


def _clip_scale(clip: float | None, grad_norm: float) -> float:
    return min(1.0, clip / (grad_norm + 1e-6)) if clip else 1.0


def _tensor_update(name: str, parameter: Any, gradient: Any, update: Any) -> TensorUpdate:
    """The numbers of one tensor's whole step."""
    return _numbers(name, parameter, squared_norm(gradient), squared_norm(update),
                    flat_dot(real(gradient.detach()), real(update)))


def _numbers(name: str, parameter: Any, grad_sq: float, update_sq: float, dot: float) -> TensorUpdate:
    count = max(parameter.numel(), 1)
    return TensorUpdate(name=name, dim=parameter.dim(), weight_rms=math.sqrt(squared_norm(parameter) / count),
                        update_rms=math.sqrt(update_sq / count), grad_sq=grad_sq, update_sq=update_sq, dot=dot)


def _lean_first_step(surface: LossSurface, optimizer: Any, info: Any, clip: float | None) -> FirstStep:
    index = {id(p): i for i, p in enumerate(surface.params)}
    grad_sq = [0.0] * len(surface.params)

    def add_norm(parameter: Any) -> None:
        grad_sq[index[id(parameter)]] = squared_norm(parameter.grad)

    clip_scale = 1.0
    if clip:  # the scale every tensor's gradient gets needs the global norm: one pass first
        _stream_gradients(surface, add_norm)
        clip_scale = _clip_scale(clip, math.sqrt(sum(grad_sq)))
    tensors: list[TensorUpdate | None] = [None] * len(surface.params)

    def step_tensor(parameter: Any) -> None:
        i = index[id(parameter)]
        tensors[i] = _lean_tensor_update(surface.names[i], optimizer, info, parameter, parameter.grad.detach(),
                                         clip_scale)

    loss = _stream_gradients(surface, step_tensor)
    for i, parameter in enumerate(surface.params):
        if tensors[i] is None:  # backward never reached it (an unused parameter): no gradient, no update
            tensors[i] = _numbers(surface.names[i], parameter, 0.0, 0.0, 0.0)
    grad_norm = math.sqrt(sum(t.grad_sq for t in tensors))
    return FirstStep(loss=loss, tensors=tuple(tensors), grad_norm=grad_norm, clip_scale=clip_scale)


def _stream_gradients(surface: LossSurface, visit: Any) -> float:
    """One forward and backward in which `visit(parameter)` sees each parameter's gradient as
    soon as backward has accumulated it (probe.each_gradient). Returns the loss."""
    for parameter in surface.params:
        parameter.grad = None
    with each_gradient(surface.params, visit):
        loss = surface.loss()
        surface.passes["backward"] += 1
        loss.backward()
    return float(loss.detach())


def lookahead(surface: LossSurface, step: FirstStep, scale: float = 1.0) -> float:
    """The example-batch loss after the first update scaled by `scale`. The first step of SGD,
    momentum and Adam(W) is linear in lr, so `scale` is exactly a learning-rate multiplier."""
    return surface.shifted_loss(step.update, scale)


def _step_on_copies(optimizer: Any, info: Any, params: Sequence[Any], grads: Sequence[Any]) -> tuple:
    """Step a copy of `optimizer` whose parameters are clones of `params`; the updates it made."""
    clones = {id(p): p.detach().clone().requires_grad_(p.requires_grad) for p in params}
    twin = at_checked_lr(_twin(optimizer, info, clones), info)
    for p, g in zip(params, grads):
        clones[id(p)].grad = g.detach().clone()
    _step(twin)
    return tuple(clones[id(p)].detach().sub_(p.detach()) for p in params)


# torch.optim classes whose first step treats every element on its own: a parameter can be
# stepped in slices, which bounds the lean step's memory by the slice (Adafactor's factored
# moments, and unknown optimizers, get whole tensors).
ELEMENTWISE = {"SGD", "ASGD", "Adam", "AdamW", "Adamax", "NAdam", "RAdam", "RMSprop", "Adagrad", "Adadelta", "Rprop"}
SLICE_ELEMENTS = 2**20


def _lean_tensor_update(name: str, optimizer: Any, info: Any, parameter: Any, gradient: Any,
                        clip_scale: float) -> TensorUpdate:
    """One parameter's first-step numbers, stepping it in slices where the optimizer allows."""
    state = optimizer.state.get(parameter) if optimizer is not None else None
    name_of_class = type(optimizer).__name__ if optimizer is not None else info.name
    whole = state or name_of_class not in ELEMENTWISE or not parameter.is_contiguous()
    values = parameter.detach() if whole else parameter.detach().reshape(-1)
    grads = gradient if whole else gradient.reshape(-1)
    size = values.numel() if whole else SLICE_ELEMENTS
    update_sq = dot = 0.0
    for start in range(0, max(values.numel(), 1), max(size, 1)):
        value, grad = (values, grads) if whole else (values[start:start + size], grads[start:start + size])
        update = _step_one_tensor(optimizer, info, parameter, value, grad * clip_scale if clip_scale < 1 else grad)
        update_sq += squared_norm(update)
        dot += flat_dot(real(grad), real(update))
    return _numbers(name, parameter, squared_norm(gradient), update_sq, dot)


def _step_one_tensor(optimizer: Any, info: Any, parameter: Any, value: Any, gradient: Any) -> Any:
    """The first update of `value` (`parameter` or a slice of it) alone: a new optimizer of the
    same class, with the hyper-parameters of the parameter's param group and its state, steps a
    clone of it."""
    clone = value.detach().clone().requires_grad_()
    # The gradient itself, not a copy: torch.optim's steps read it without writing it.
    clone.grad = gradient.detach()
    if optimizer is None:
        twin = optimizer_from_info(info, [clone])
    else:
        group = next((g for g in optimizer.param_groups if any(p is parameter for p in g["params"])),
                     optimizer.param_groups[0])
        try:
            twin = fresh_optimizer(optimizer, [clone], group)
        except Exception as error:  # a constructor that wants more than its param group holds
            raise UnsupportedOptimizer(f"cannot rebuild {type(optimizer).__name__} for one tensor: {error}") from error
        if optimizer.state.get(parameter):  # only whole tensors get here with state
            twin.state[clone] = copy.deepcopy(optimizer.state[parameter])
    _step(at_checked_lr(twin, info))
    return clone.detach().sub_(value.detach())


def _step(optimizer: Any) -> None:
    try:
        # The class's step, not the instance attribute: LR schedulers patch `optimizer.step`
        # with a wrapper bound to the original optimizer.
        type(optimizer).step(optimizer)
    except (TypeError, RuntimeError, ValueError) as error:  # e.g. LBFGS: step() needs a closure
        raise UnsupportedOptimizer(f"{type(optimizer).__name__}.step cannot run outside training: {error}") from error


def _twin(optimizer: Any, info: Any, clones: dict) -> Any:
    """A copy of `optimizer` over the cloned parameters, its state included."""
    if optimizer is not None:
        try:
            # deepcopy with a memo that maps each model parameter to its clone: the copy holds
            # the clones in its param groups and state; the user's optimizer is never touched.
            return copy.deepcopy(optimizer, memo=dict(clones))
        except Exception:  # an optimizer holding something uncopyable: same class and hyper-parameters
            pass
    return optimizer_from_info(info, list(clones.values()))
