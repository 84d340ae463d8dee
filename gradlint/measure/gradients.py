"""Shared measurements of the probe-backward rules (GL5xx).

`observed(ctx)`: the recorded forward pass and the probe's backward signal per node.
`backward_profile(...)`: the backward signal delta = dloss/d(output) and the activation h at
every weighted layer, input to output. `growth(...)`: how delta grows from layer to layer
(docs/theory.md, A1). `depth_fix(...)`: the fix for a depth-wise gradient problem, mapped from
its likely cause (docs/theory.md, F1).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from gradlint.findings import Fix
from gradlint.measure.signal import critical_gain_squared, init_call, weight_gain
from gradlint.measure.signal import is_weighted as is_fan_in_scaled

# Layers and ops that average over positions (pooling, mean over a sequence).
AVERAGING = ("AdaptiveAvgPool", "AvgPool", "adaptive_avg_pool", "avg_pool", "mean")
NORM_LAYERS = ("BatchNorm", "LayerNorm", "GroupNorm", "InstanceNorm", "RMSNorm", "LocalResponseNorm")
# Var(W) * fan_in this many times above / below the critical value marks a layer's init as the
# likely cause of a growing / shrinking backward signal (chi_1 = ratio per layer, docs/theory.md A1).
# HIGH sits above the 2x that He init gives a layer with no activation after it (the last layer
# of a residual branch is conventionally He-initialized); LOW above PyTorch's default init
# (Var(W) = 1/(3 fan_in): ratio 1/6 before a ReLU, 1/3 otherwise), the vanishing case of
# docs/theory.md A1 (the marks: docs/theory.md, F1).
INIT_RATIO_HIGH = 2.5
INIT_RATIO_LOW = 0.5
CLIP_ADVICE = "gradient_clip_val = 1.0"


# -- the observation --------------------------------------------------------------------------
@dataclass(frozen=True)
class Observed:
    """The recorded forward pass and dloss/d(output) RMS per node index, from the probe."""

    trace: Any  # gradlint.trace.Trace
    grad_rms: dict

    def node(self, index: int) -> Any:
        return self.trace.nodes[index]


def observed(ctx: Any) -> Observed:
    return Observed(ctx.trace, ctx.probe.output_grad_rms if ctx.probe is not None else {})


def has_weight_matrix(module: Any) -> bool:
    """Layers with their own weight matrix or kernel (Linear, Conv, Embedding, RNN, attention)."""
    return module is not None and any(p.dim() >= 2 for p in module.parameters(recurse=False))


def is_norm(node: Any) -> bool:
    return node.kind == "layer" and node.name.startswith(NORM_LAYERS)


# -- the backward-signal profile ------------------------------------------------------------
@dataclass(frozen=True)
class LayerSignal:
    """One weighted layer's output h and backward signal delta = dloss/dh, as L2 norms over the batch."""

    node: Any
    delta: float
    activation: float
    # sqrt(positions averaged) over the average pools between this layer and the output: see
    # _pooling_factors. delta * pooling is what the depth rules compare to find the layer to blame.
    pooling: float = 1.0

    @property
    def path(self) -> str:
        return self.node.path

    @property
    def pooled_delta(self) -> float:
        return self.delta * self.pooling


def backward_profile(obs: Observed) -> tuple[LayerSignal, ...]:
    """Weighted layers in execution order (first call each) that the backward signal reached.

    Norms, not RMS: with fan-in-scaled weights ||delta||^2 changes by chi_1 per layer whatever the
    layer widths (docs/theory.md, A1), while the RMS also moves with the width ratio.
    """
    pooling = _pooling_factors(obs)
    signals = []
    for node in obs.trace.layers:
        rms = obs.grad_rms.get(node.index)
        if not has_weight_matrix(node.module) or rms is None or node.stats is None or not node.output_shape:
            continue
        size = math.sqrt(math.prod(node.output_shape))
        delta = rms * size
        if 0.0 < delta < math.inf and node.stats.finite:
            signals.append(LayerSignal(node, delta, node.stats.rms * size, pooling[node.index]))
    return tuple(signals)


def _pooling_factors(obs: Observed) -> dict[int, float]:
    """Node index -> product of sqrt(input size / output size) over the averaging nodes after it.

    Averaging P positions hands each one 1/P of the gradient, so ||delta|| drops by sqrt(P)
    while the weight gradients, which sum over the positions, drop by less: a global average
    pool would otherwise be blamed as a 30x "vanishing" layer. Only poolings on the main path
    count (the sole consumer of their input), not the mean of a hand-written normalization.
    """
    factors, factor = {}, 1.0
    for node in reversed(obs.trace.nodes):
        factors[node.index] = factor
        if node.name.startswith(AVERAGING) and node.output_shape and node.input_shapes and _sole_consumer(obs, node):
            factor *= math.sqrt(max(1, math.prod(node.input_shapes[0])) / max(1, math.prod(node.output_shape)))
    return factors


def _sole_consumer(obs: Observed, node: Any) -> bool:
    real = [p for p in node.producers if p >= 0]
    return bool(real) and all(len(obs.trace.consumers(obs.node(p))) == 1 for p in real)


@dataclass(frozen=True)
class Growth:
    """How the backward signal changes from the output layer down to the input layer."""

    layers: tuple[LayerSignal, ...]
    gain: float  # ||delta_first|| / ||delta_last||
    chi: float  # fitted per-layer factor of ||delta||^2, going backward (chi_hat, docs/theory.md A1)
    steps: tuple[float, ...]  # ||delta_l|| / ||delta_l+1|| for consecutive weighted layers, through pooling

    @property
    def per_layer(self) -> float:
        """Fitted factor of ||delta|| per layer, going backward."""
        return math.sqrt(self.chi)

    @property
    def first(self) -> LayerSignal:
        return self.layers[0]

    @property
    def last(self) -> LayerSignal:
        return self.layers[-1]

    def steepest(self, growing: bool) -> tuple[LayerSignal, float]:
        """The layer the backward signal grows (or shrinks) the most through, and by how much.

        delta_l = phi'(h_l) * W_l+1^T delta_l+1: the step from layer l+1 down to layer l is made by
        layer l+1's weights, so that is the layer returned.
        """
        pick = max if growing else min
        index = pick(range(len(self.steps)), key=lambda i: self.steps[i])
        return self.layers[index + 1], self.steps[index]


def growth(profile: tuple[LayerSignal, ...]) -> Growth | None:
    """Fit log ||delta_l||^2 = a + b * l over the weighted layers; chi_hat = exp(-b)."""
    if len(profile) < 2:
        return None
    logs = [2.0 * math.log(layer.delta) for layer in profile]
    slope = _least_squares_slope(logs)
    # Gain and chi_hat are the measured ||delta|| (docs/theory.md, A1); only the search for the layer
    # to blame looks through average pooling, which no layer fix would change.
    steps = tuple(a.pooled_delta / b.pooled_delta for a, b in zip(profile, profile[1:]))
    return Growth(profile, profile[0].delta / profile[-1].delta, math.exp(-slope), steps)


def _least_squares_slope(values: list[float]) -> float:
    n = len(values)
    mean_x, mean_y = (n - 1) / 2, sum(values) / n
    covariance = sum((x - mean_x) * (y - mean_y) for x, y in enumerate(values))
    variance = sum((x - mean_x) ** 2 for x in range(n))
    return covariance / variance


def relative_sensitivities(profile: tuple[LayerSignal, ...]) -> list[float]:
    """Gradient scale coefficient of each weighted layer relative to the last one (docs/theory.md A4):
    GSC_k = ||dL/dh_k|| ||h_k|| / (||dL/dh_L|| ||h_L||), how strongly the loss responds to a
    relative change of layer k's output compared with the same relative change of the output
    layer's. Invariant to rescaling a layer, unlike raw gradient norms (Philipp et al. 2018).

    Each side is divided by sqrt(positions per sample) (pixels, tokens): the loss's response
    <dL/dh, h> sums that many terms of random sign at init, which grow as its square root, while
    the product of norms grows linearly and would flag every wide feature map.
    """
    def scale(layer: LayerSignal) -> float:
        return layer.delta * layer.activation / math.sqrt(_positions(layer.node))

    reference = scale(profile[-1])
    return [scale(layer) / reference for layer in profile]


def _positions(node: Any) -> float:
    """Values per feature: batch x pixels for conv maps, batch x tokens for sequences."""
    shape = node.output_shape
    features = shape[1] if node.name.startswith("Conv") and len(shape) > 2 else shape[-1]
    return max(1.0, math.prod(shape) / max(1, features))


# -- causes and fixes -------------------------------------------------------------------------
def init_ratio(obs: Observed, node: Any) -> tuple[float, str | None] | None:
    """Var(W) * fan_in over the critical value for the activation that follows (1: critical),
    for Linear and convolution layers (embeddings are not fan-in scaled by design)."""
    if not is_fan_in_scaled(node):
        return None
    activation = obs.trace.next_activation(node)
    name = activation.name if activation is not None else None
    return weight_gain(node.module) / critical_gain_squared(name), name


def mis_initialized(obs: Observed, layers: tuple[LayerSignal, ...],
                    too_large: bool) -> list[tuple[LayerSignal, str | None]]:
    """The layers whose init is off the critical value in the direction that explains the trend."""
    found = []
    for layer in layers:
        measured = init_ratio(obs, layer.node)
        if measured is None:
            continue
        ratio, activation = measured
        if (too_large and ratio >= INIT_RATIO_HIGH) or (not too_large and ratio <= INIT_RATIO_LOW):
            found.append((layer, activation))
    return found


def depth_fix(ctx: Any, obs: Observed, layers: tuple[LayerSignal, ...], exploding: bool) -> Fix:
    """The fix for a backward signal that explodes or vanishes with depth, from its likely cause:
    off-critical init -> He/LeCun re-init; normalization without skips -> residual connections;
    unnormalized residual stack -> scaled branches; otherwise clipping and a lower learning rate."""
    fix = _cause_fix(ctx, obs, layers, exploding)
    if exploding and ctx.spec.gradient_clip_val is None and fix.code != CLIP_ADVICE:
        fix = Fix(f"{fix.message}; until then, clip gradients ({CLIP_ADVICE})", fix.code)
    return fix


def _cause_fix(ctx: Any, obs: Observed, layers: tuple[LayerSignal, ...], exploding: bool) -> Fix:
    culprits = mis_initialized(obs, layers, too_large=exploding)
    if culprits:
        return _reinit_fix(ctx, culprits)
    has_norm = any(is_norm(node) for node in obs.trace.nodes)
    has_skips = bool(obs.trace.residual_adds)
    if has_norm and not has_skips:
        return Fix("add residual connections around the normalized blocks: without skips, normalization "
                   "itself makes gradients grow with depth (Yang et al. 2019)", "x = x + block(x)")
    if has_skips and not has_norm and exploding:
        return Fix("scale each residual branch down at init (SkipInit/ReZero: a zero-initialized scalar; "
                   "or Fixup: zero-init each branch's last layer)",
                   "self.alpha = nn.Parameter(torch.zeros(()))  # then x = x + self.alpha * branch(x)")
    if exploding:
        return Fix("clip the global gradient norm and lower the learning rate", CLIP_ADVICE)
    return Fix("add normalization (BatchNorm/LayerNorm) or residual connections so the gradient reaches "
               "the first layers", "x = x + block(x)")


def _reinit_fix(ctx: Any, culprits: list[tuple[LayerSignal, str | None]]) -> Fix:
    names = [layer.path for layer, _ in culprits]
    shown = ", ".join(names[:4]) + (f" and {len(names) - 4} more" if len(names) > 4 else "")
    return Fix(f"re-initialize {shown} at the critical scale (He for ReLU-like, LeCun/Xavier otherwise)",
               "\n".join(_reinit_lines(ctx, culprits)[:3]))


def _reinit_lines(ctx: Any, culprits: list[tuple[LayerSignal, str | None]]) -> list[str]:
    """One init call per layer, or one loop per ModuleList whose layers all need it."""
    groups: dict[str, list] = {}
    for layer, activation in culprits:
        parent = layer.path.rpartition(".")[0]
        key = parent if _is_layer_list(ctx, parent) else layer.path
        groups.setdefault(key, []).append(activation)
    lines = []
    for path, activations in groups.items():
        activation = max(set(activations), key=activations.count, default=None)
        if len(activations) > 1:
            lines.append(f"for layer in {ctx.spec.expression(path)}:\n    {init_call(activation, 'layer.weight')}")
        else:
            lines.append(init_call(activation, f"{ctx.spec.expression(path)}.weight"))
    return lines


def _is_layer_list(ctx: Any, path: str) -> bool:
    import torch.nn as nn

    if not path:
        return False
    module = ctx.module_at(path)
    return isinstance(module, nn.ModuleList) and all(has_weight_matrix(child) for child in module)


# -- formatting -------------------------------------------------------------------------------
def sci(value: float) -> str:
    """2 significant digits, compact exponent: 1.4e14, 0.0031 -> 3.1e-3, 47, 290."""
    if value == 0 or not math.isfinite(value):
        return f"{value:g}"
    if 1e-2 <= abs(value) < 1e2:
        return f"{value:.2g}"
    if 1e2 <= abs(value) < 1e3:
        return f"{value:.0f}"
    mantissa, exponent = f"{value:.1e}".split("e")
    return f"{mantissa}e{int(exponent)}"
