"""Shared measurements for the recurrent rules: spectral radii of the recurrent weights per gate
block, and the gradient of the loss with respect to each recurrent layer's input, per time step."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gradlint.measure.surface import loss_surface

if TYPE_CHECKING:
    from gradlint.rule import RuleContext

# Gate blocks of weight_hh, in PyTorch's row order, with the largest slope gamma of the
# nonlinearity each block feeds: Pascanu et al. 2013 show rho(W) > 1/gamma is necessary for
# the gradient through that path to explode (gamma = 1 for tanh and ReLU, 1/4 for sigmoid).
GATES = {
    "RNN_TANH": (("", 1.0),),
    "RNN_RELU": (("", 1.0),),
    "LSTM": (("input gate", 0.25), ("forget gate", 0.25), ("cell candidate", 1.0), ("output gate", 0.25)),
    "GRU": (("reset gate", 0.25), ("update gate", 0.25), ("new state", 1.0)),
}
# Exact eigenvalues up to this hidden size (O(H^3)); beyond, Gelfand's formula on matrix powers.
EXACT_EIGENVALUES_UP_TO = 1024
GELFAND_POWER = 64


@dataclass(frozen=True)
class GateRadius:
    """The spectral radius of one gate block of one recurrent weight."""

    parameter: str  # weight_hh_l0, weight_hh_l1_reverse, ...
    gate: str  # "" for plain RNNs
    radius: float
    gamma: float  # largest slope of the block's nonlinearity

    @property
    def gain(self) -> float:
        """rho * gamma: above 1 the necessary condition for explosion holds."""
        return self.radius * self.gamma

    @property
    def label(self) -> str:
        return f"{self.parameter} ({self.gate})" if self.gate else self.parameter


def recurrent_layers(model: Any) -> list[tuple[str, Any]]:
    """(path, module) of every nn.RNN / nn.LSTM / nn.GRU."""
    import torch.nn as nn

    return [(path, module) for path, module in model.named_modules() if isinstance(module, nn.RNNBase)]


def gate_radii(module: Any) -> list[GateRadius]:
    """Spectral radius of every gate block of every recurrent weight of an nn.RNNBase."""
    gates = GATES.get(module.mode)
    if gates is None:
        return []
    radii = []
    for name, weight in module.named_parameters():
        if not name.startswith("weight_hh"):
            continue
        projection = getattr(module, name.replace("weight_hh", "weight_hr"), None)
        for (gate, gamma), block in zip(gates, weight.detach().float().chunk(len(gates))):
            # With proj_size, h = W_hr (o * tanh(c)): the map from hidden to hidden is block @ W_hr.
            square = block @ projection.detach().float() if projection is not None else block
            if not bool(square.isfinite().all()):
                # NaN or Inf in the weight: no spectral radius to measure (GL501 reports the values),
                # and LAPACK's eigenvalue routine must never see them (MKL's crashes the process).
                continue
            radii.append(GateRadius(name, gate, spectral_radius(square), gamma))
    return radii


def spectral_radius(matrix: Any) -> float:
    """Largest |eigenvalue|: exact for moderate sizes, else Gelfand's ||W^k v||^(1/k)."""
    import torch

    if matrix.shape[0] <= EXACT_EIGENVALUES_UP_TO:
        return float(torch.linalg.eigvals(matrix.double()).abs().max())
    generator = torch.Generator().manual_seed(0)
    vectors = torch.randn(matrix.shape[0], 4, generator=generator, dtype=torch.float64)
    vectors /= vectors.norm()
    log_growth = 0.0
    for _ in range(GELFAND_POWER):  # renormalize every step so the powers never overflow
        vectors = matrix.double() @ vectors
        norm = float(vectors.norm())
        if norm == 0.0:
            return 0.0
        log_growth += math.log(norm)
        vectors /= norm
    return math.exp(log_growth / GELFAND_POWER)


@dataclass(frozen=True)
class TimeProfile:
    """||dloss/dx_t|| at each time step t of a recurrent layer's input."""

    norms: tuple[float, ...]

    @property
    def growth(self) -> float:
        """||dloss/dx_1|| / ||dloss/dx_T||: how much larger the gradient is after travelling back
        through all T - 1 steps than at the last step. NaN when the loss does not read the last
        step. Bidirectional layers are judged along their forward direction: at the input the
        reverse direction's gradient mixes in, and a large last/first ratio there usually means
        the forward direction vanishes, not that the reverse one explodes."""
        first, last = self.norms[0], self.norms[-1]
        return first / last if last > 0 else math.nan

    @property
    def per_step(self) -> float:
        return self.growth ** (1 / max(len(self.norms) - 1, 1))


def gradient_through_time(ctx: RuleContext) -> dict[str, TimeProfile]:
    """One forward+backward on the example batch: the loss gradient with respect to each
    recurrent layer's input sequence, per time step. Layers fed a PackedSequence are skipped."""
    import torch

    layers = recurrent_layers(ctx.model)
    if not layers:
        return {}
    captured: dict[str, tuple[Any, Any]] = {}

    def capture(path, module):
        def hook(_module, args):
            sequence = args[0] if args else None
            if path in captured or not isinstance(sequence, torch.Tensor) or not sequence.is_floating_point():
                return None
            if not sequence.requires_grad:  # the model's input: make it a leaf we can differentiate by
                sequence = sequence.detach().requires_grad_()
                args = (sequence, *args[1:])
            captured[path] = (sequence, module)
            return args
        return hook

    handles = [module.register_forward_pre_hook(capture(path, module)) for path, module in layers]
    try:
        with loss_surface(ctx.spec, ctx.device, ctx.seed) as surface:
            loss = surface.loss()
            ctx.count_passes(forward=1, backward=1)
            if not captured or not torch.isfinite(loss):
                return {}
            paths = list(captured)
            grads = torch.autograd.grad(loss, [captured[p][0] for p in paths], allow_unused=True)
    finally:
        for handle in handles:
            handle.remove()
    return {path: _profile(captured[path][1], captured[path][0], grad)
            for path, grad in zip(paths, grads) if grad is not None and captured[path][0].dim() >= 2}


def _profile(module: Any, sequence: Any, grad: Any) -> TimeProfile:
    time_dim = 1 if module.batch_first and sequence.dim() == 3 else 0
    steps = grad.detach().float().movedim(time_dim, 0).reshape(grad.shape[time_dim], -1)
    steps = steps.nan_to_num(nan=0.0, posinf=3e38, neginf=-3e38)
    return TimeProfile(tuple(float(n) for n in steps.norm(dim=1)))


def clipping_mitigates(ctx: RuleContext) -> str:
    clip = ctx.spec.gradient_clip_val
    return (f"; gradient_clip_val={clip:g} bounds each step's gradient norm, which contains the explosion "
            "(Pascanu et al. 2013)") if clip else ""
