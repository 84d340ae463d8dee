"""The measurements behind a model's verdict, as plain numbers a report can plot and a JSON
document can carry (`models[].measurements`, docs/measurements.md).

Read once per model after the rules ran, from what the run already holds: the recorded forward
pass, the probe's backward signal, and the lookahead runs and Hessian eigenvalue that rules cached
on the context. Nothing here runs the model: a measurement no rule took is absent, never
estimated afterwards, so exporting cannot change a finding, the risk or the passes counted. Every
value is a Python float, str or tuple, so the result pickles across the worker boundary.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from gradlint.measure.gradients import backward_profile, observed
from gradlint.measure.graph import residual_chains
from gradlint.measure.lookahead import REPEATED, LookaheadRun
from gradlint.measure.optimizer import stability_bound
from gradlint.trace import RELU_LIKE, SATURATING

MODEL = "(model)"  # the name of a layer or op at the model's root, whose module path is empty


@dataclass(frozen=True)
class LayerProfile:
    """Per weighted layer (Linear, Conv, Embedding, RNN, attention) the backward signal reached, in
    forward order: the L2 norm over the batch of dloss/dh at its output, and its output's RMS."""

    names: tuple[str, ...]
    kinds: tuple[str, ...]
    grad_norm: tuple[float, ...]
    activation_rms: tuple[float, ...]

    def to_dict(self) -> dict:
        return {"names": list(self.names), "kinds": list(self.kinds), "grad_norm": _digits(self.grad_norm),
                "activation_rms": _digits(self.activation_rms)}


@dataclass(frozen=True)
class ActivationProfile:
    """Per call of a saturating (tanh, sigmoid, ...) or ReLU-like activation, in forward order: the
    fraction of outputs in the flat tails, or of units zero for the whole batch; None where the
    measure does not apply to that activation."""

    names: tuple[str, ...]
    kinds: tuple[str, ...]
    saturated_fraction: tuple[float | None, ...]
    dead_fraction: tuple[float | None, ...]

    def to_dict(self) -> dict:
        return {"names": list(self.names), "kinds": list(self.kinds),
                "saturated_fraction": _digits(self.saturated_fraction), "dead_fraction": _digits(self.dead_fraction)}


@dataclass(frozen=True)
class ResidualStream:
    """One residual stream x_{k+1} = x_k + f_k(x_k): its mean square where it enters the first
    block, then after each block's add (one more value than blocks)."""

    start: str
    blocks: tuple[str, ...]
    mean_square: tuple[float | None, ...]  # None: not finite

    def to_dict(self) -> dict:
        return {"start": self.start, "blocks": list(self.blocks), "mean_square": _digits(self.mean_square)}


@dataclass(frozen=True)
class LookaheadCurve:
    """One lookahead run: the loss and the global gradient norm (before clipping) at each step."""

    batches: str  # "repeated" (the example batch every step) or "resampled" (its rows drawn anew)
    losses: tuple[float | None, ...]  # None: not finite, and the run stopped there
    grad_norms: tuple[float | None, ...]
    asked_steps: int
    planned_steps: int  # fewer than asked when the FLOP budget cut the run
    clip: float | None  # gradient_clip_val: norms above it were clipped before the step

    def to_dict(self) -> dict:
        return {"batches": self.batches, "losses": _digits(self.losses), "grad_norms": _digits(self.grad_norms),
                "asked_steps": self.asked_steps, "planned_steps": self.planned_steps, "clip": self.clip}


@dataclass(frozen=True)
class Curvature:
    """The top Hessian eigenvalue of the example-batch loss against the optimizer's stability bound:
    lr * lambda must stay below `bound` (2 for plain SGD, 2 + 2*momentum with heavy-ball momentum),
    so the largest stable eigenvalue is bound / lr."""

    top_eigenvalue: float
    lr: float
    bound: float
    optimizer: str
    iterations: int

    @property
    def max_stable_eigenvalue(self) -> float:
        return self.bound / self.lr

    @property
    def ratio(self) -> float:
        """lr * lambda over the bound: above 1 the top direction's error grows every step."""
        return self.lr * self.top_eigenvalue / self.bound

    def to_dict(self) -> dict:
        return {"top_eigenvalue": _digit(self.top_eigenvalue), "lr": self.lr, "bound": _digit(self.bound),
                "max_stable_eigenvalue": _digit(self.max_stable_eigenvalue), "ratio": _digit(self.ratio),
                "optimizer": self.optimizer, "iterations": self.iterations}


@dataclass(frozen=True)
class Measurements:
    layers: LayerProfile | None = None
    activations: ActivationProfile | None = None
    residual_streams: tuple[ResidualStream, ...] = ()
    lookahead: tuple[LookaheadCurve, ...] = ()
    curvature: Curvature | None = None

    def __bool__(self) -> bool:
        return any((self.layers, self.activations, self.residual_streams, self.lookahead, self.curvature))

    def to_dict(self) -> dict:
        """Only the measurements taken: a key that is absent was not measured on this run."""
        document: dict[str, Any] = {}
        if self.layers is not None:
            document["layers"] = self.layers.to_dict()
        if self.activations is not None:
            document["activations"] = self.activations.to_dict()
        if self.residual_streams:
            document["residual_streams"] = [s.to_dict() for s in self.residual_streams]
        if self.lookahead:
            document["lookahead"] = [c.to_dict() for c in self.lookahead]
        if self.curvature is not None:
            document["curvature"] = self.curvature.to_dict()
        return document


def measurements(ctx: Any) -> Measurements | None:
    """What the run measured on this model (a RuleContext after its rules ran), or None when it
    measured nothing a report plots (static rules only)."""
    if ctx.trace is None:
        return None
    renamed = ctx.spec.node_names
    found = Measurements(_layers(ctx, renamed), _activations(ctx.trace, renamed), _streams(ctx, renamed),
                         _lookahead(ctx), _curvature(ctx))
    return found or None


def _layers(ctx: Any, renamed: dict[str, str]) -> LayerProfile | None:
    if ctx.probe is None:  # the trace alone has activations but no backward signal
        return None
    profile = backward_profile(observed(ctx))
    if not profile:
        return None
    return LayerProfile(tuple(_name(s.node, renamed) for s in profile), tuple(s.node.name for s in profile),
                        tuple(s.delta for s in profile), tuple(s.node.stats.rms for s in profile))


def _activations(trace: Any, renamed: dict[str, str]) -> ActivationProfile | None:
    nodes = [n for n in trace.forward_nodes if n.stats is not None and n.name in RELU_LIKE | SATURATING
             and (n.stats.saturated_fraction is not None or n.stats.dead_fraction is not None)]
    if not nodes:
        return None
    return ActivationProfile(_unique(_name(n, renamed) for n in nodes), tuple(n.name for n in nodes),
                             tuple(n.stats.saturated_fraction for n in nodes),
                             tuple(n.stats.dead_fraction for n in nodes))


def _streams(ctx: Any, renamed: dict[str, str]) -> tuple[ResidualStream, ...]:
    # residual_chains is a pure function of the trace; the rules that read it cached it already.
    chains = ctx.shared["residual_chains"] if "residual_chains" in ctx.shared else residual_chains(ctx.trace)
    return tuple(ResidualStream(_name(chain.start, renamed), _unique(_name(add, renamed) for add in chain.adds),
                                tuple(_finite(n.stats.rms ** 2) if n.stats is not None else None
                                      for n in (chain.start, *chain.adds)))
                 for chain in chains)


def _lookahead(ctx: Any) -> tuple[LookaheadCurve, ...]:
    """The lookahead runs rules took (cached by their steps, budget and rows), the repeated batch first."""
    taken = sorted(((k, v) for k, v in ctx.shared.items() if isinstance(k, tuple) and k[0] == "lookahead"),
                   key=lambda item: (item[0][3] is not None, item[0][1]))
    runs: list[LookaheadRun] = [run for _, run in taken if run.losses]
    clip = ctx.spec.gradient_clip_val or None
    return tuple(LookaheadCurve("repeated" if run.batches == REPEATED else "resampled",
                                tuple(_finite(v) for v in run.losses), tuple(_finite(v) for v in run.grads),
                                run.asked_steps, run.planned_steps, clip) for run in runs)


def _curvature(ctx: Any) -> Curvature | None:
    """GL602's eigenvalue (the estimate with the most Lanczos iterations, when several were taken)."""
    taken = [(k[1], v) for k, v in ctx.shared.items() if isinstance(k, tuple) and k[0] == "top_eigenvalue"]
    optimizer = ctx.spec.optimizer
    if not taken or optimizer is None or optimizer.checked_lr <= 0:
        return None
    iterations, value = max(taken, key=lambda item: item[0])
    if not (math.isfinite(value) and value > 0):
        return None
    return Curvature(float(value), optimizer.checked_lr, stability_bound(optimizer), optimizer.describe(), iterations)


def _name(node: Any, renamed: dict[str, str]) -> str:
    """A layer by its module path; a functional op by the module whose forward called it. An ONNX
    model's layers by the ONNX node they came from (`renamed`), as its findings name them."""
    if node.kind == "layer":
        return renamed.get(node.path, node.path) or MODEL
    return f"{node.path}.{node.name}" if node.path else node.name


def _unique(names) -> tuple[str, ...]:
    """Names made unique by call order (`relu`, `relu#2`): an op called twice in one forward, or a
    layer called at two depths, are two points on the x axis."""
    seen: dict[str, int] = {}
    result = []
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        result.append(name if seen[name] == 1 else f"{name}#{seen[name]}")
    return tuple(result)


# Significant digits in the JSON: a float32 measurement holds about 7, and past the sixth none of
# them is reproducible across machines; the full repr would more than double the document.
DIGITS = 6


def _digit(value: float | None) -> float | None:
    return None if value is None else float(f"{value:.{DIGITS}g}")


def _digits(values) -> list[float | None]:
    return [_digit(v) for v in values]


def _finite(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None
