"""Critical initialization gains by activation, shared by the init, activation and depth rules.

The critical weight variance is Var(W) = gain**2 / fan_in: with it, the mean squared
pre-activation is preserved from layer to layer (chi_1 = 1, Poole et al. 2016; He et al. 2015).

Also here: each activation's slope phi' (for chi_1 = sigma_w**2 * E[phi'(h)**2]), and
`SignalFlow`, the trace's dataflow seen as chains of weighted layers joined by activations
only: the stretches of a network where per-layer gains multiply (normalization and residual
adds end a chain).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

# gain**2 per activation (torch.nn.init.calculate_gain): ReLU 2 (He), tanh ~ 1 (25/9 by torch's
# convention, but 1 is critical for small biases: docs/theory.md A1), linear/SELU 1 (LeCun).
CRITICAL_GAIN_SQUARED = {
    "ReLU": 2.0, "relu": 2.0, "relu_": 2.0, "ReLU6": 2.0, "relu6": 2.0,
    "LeakyReLU": 2.0 / (1 + 0.01 ** 2), "leaky_relu": 2.0 / (1 + 0.01 ** 2),
    "GELU": 2.0, "gelu": 2.0, "SiLU": 2.0, "silu": 2.0, "Mish": 2.0, "Hardswish": 2.0,
    "Tanh": 1.0, "tanh": 1.0, "Softsign": 1.0, "Hardtanh": 1.0,
    "Sigmoid": 1.0, "sigmoid": 1.0,
    "SELU": 1.0, "selu": 1.0, "ELU": 1.0, "elu": 1.0, "CELU": 1.0,
}
INIT_ADVICE = {
    2.0: 'nn.init.kaiming_normal_({w}, nonlinearity="relu")',
    1.0: "nn.init.xavier_uniform_({w})",
}


def critical_gain_squared(activation: str | None) -> float:
    return CRITICAL_GAIN_SQUARED.get(activation or "", 1.0)


def init_call(activation: str | None, weight: str) -> str:
    """The nn.init call that puts `weight` at the critical scale for `activation`."""
    name = activation or ""
    if critical_gain_squared(name) > 1.5:
        return f'nn.init.kaiming_normal_({weight}, nonlinearity="relu")'
    if name.lower().startswith("selu"):
        return f'nn.init.kaiming_normal_({weight}, nonlinearity="linear")  # LeCun normal for SELU'
    if name.lower().startswith(("tanh", "sigmoid", "softsign", "hardtanh")):
        return f"nn.init.xavier_normal_({weight})"
    return f'nn.init.kaiming_normal_({weight}, nonlinearity="linear")'



# -- Weighted layers ----------------------------------------------------------------------
# Layers whose weight sets the per-layer gain: Var(W) * fan_in with fan_in = in_features, or
# in_channels / groups * kernel size for convolutions (weight[0].numel() in both cases).
WEIGHTED = ("Linear", "Conv1d", "Conv2d", "Conv3d", "LazyLinear")
SATURATING = frozenset({"Tanh", "tanh", "tanh_", "Sigmoid", "sigmoid", "sigmoid_", "Hardtanh", "hardtanh",
                        "Softsign", "softsign"})
# Activations whose zero-gradient side makes a unit "dead" when it is negative for every input.
RECTIFIERS = frozenset({"ReLU", "relu", "relu_", "ReLU6", "relu6"})


def is_weighted(node) -> bool:
    """A Linear or convolution call whose weight sets a per-layer gain. Complex layers are not:
    the critical gains (He, Glorot, chi_1) are derived for real weights feeding real activations,
    and a complex weight read as real would lose its imaginary part."""
    weight = getattr(node.module, "weight", None)
    return node.kind == "layer" and node.name in WEIGHTED and weight is not None and weight.dim() >= 2 \
        and not weight.is_complex()


def weight_gain(module) -> float:
    """sigma_w**2 = E[W**2] * fan_in: the mean-field weight variance (mean included, so a
    constant init counts at its full size). NaN when the weight holds NaN or Inf: it has no
    scale to judge (GL501 reports the non-finite values), and every comparison with NaN is false."""
    weight = module.weight.detach().float()
    gain = float(weight.pow(2).mean()) * weight[0].numel()
    if not math.isfinite(gain) and not bool(weight.isfinite().all()):
        return math.nan
    return gain


# -- Activation slopes --------------------------------------------------------------------
def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))


def _gelu_slope(x: float) -> float:
    return 0.5 * (1 + math.erf(x / math.sqrt(2))) + x * math.exp(-x * x / 2) / math.sqrt(2 * math.pi)


def _silu_slope(x: float) -> float:
    s = _sigmoid(x)
    return s * (1 + x * (1 - s))


def _mish_slope(x: float) -> float:
    softplus = math.log1p(math.exp(-abs(x))) + max(x, 0.0)
    t = math.tanh(softplus)
    return t + x * _sigmoid(x) * (1 - t * t)


_SELU_SCALE, _SELU_ALPHA = 1.0507009873554805, 1.6732632423543772
_RELU = lambda x: 1.0 if x > 0 else 0.0  # noqa: E731
_ELU = lambda x: 1.0 if x > 0 else math.exp(x)  # noqa: E731
# phi'(x) by activation name (module class or functional op), default parameters.
SLOPES = {
    **dict.fromkeys(("ReLU", "relu", "relu_"), _RELU),
    **dict.fromkeys(("ReLU6", "relu6"), lambda x: 1.0 if 0 < x < 6 else 0.0),
    **dict.fromkeys(("LeakyReLU", "leaky_relu"), lambda x: 1.0 if x > 0 else 0.01),
    **dict.fromkeys(("PReLU", "prelu"), lambda x: 1.0 if x > 0 else 0.25),
    **dict.fromkeys(("Hardswish", "hardswish"), lambda x: 0.0 if x < -3 else 1.0 if x > 3 else (2 * x + 3) / 6),
    **dict.fromkeys(("GELU", "gelu"), _gelu_slope),
    **dict.fromkeys(("SiLU", "silu"), _silu_slope),
    **dict.fromkeys(("Mish", "mish"), _mish_slope),
    **dict.fromkeys(("ELU", "elu", "CELU"), _ELU),
    **dict.fromkeys(("SELU", "selu"), lambda x: _SELU_SCALE * (1.0 if x > 0 else _SELU_ALPHA * math.exp(x))),
    **dict.fromkeys(("Softplus", "softplus"), _sigmoid),
    **dict.fromkeys(("Tanh", "tanh", "tanh_"), lambda x: 1.0 - math.tanh(x) ** 2),
    **dict.fromkeys(("Sigmoid", "sigmoid", "sigmoid_"), lambda x: _sigmoid(x) * (1 - _sigmoid(x))),
    **dict.fromkeys(("Hardtanh", "hardtanh"), lambda x: 1.0 if abs(x) < 1 else 0.0),
    **dict.fromkeys(("Softsign", "softsign"), lambda x: 1.0 / (1 + abs(x)) ** 2),
}
# E over z ~ N(0, 1) by the midpoint rule on [-8, 8]; an even number of cells puts 0 on a cell
# boundary, so the ReLU-like steps are integrated exactly.
_GRID = 320
_Z = [-8 + 16 * (i + 0.5) / _GRID for i in range(_GRID)]
_PDF = [math.exp(-z * z / 2) / math.sqrt(2 * math.pi) * 16 / _GRID for z in _Z]
# The standard deviation that stands for q -> 0+: every slope is read just beside 0, on its side of it.
_SMALL_SIGNAL = 1e-30


def mean_squared_slope(activation: str | None, q: float) -> float:
    """E[phi'(h)**2] for h ~ N(0, q): the activation's factor in the backward gain chi_1
    (Poole et al. 2016). 1 for no activation; 1/2 for ReLU whatever q."""
    slope = SLOPES.get(activation or "")
    if slope is None:
        return 1.0
    # An exploded forward pass can report q = inf (or nan): any huge scale gives the same slopes.
    # q = 0, a pre-activation that is exactly zero on the whole batch (features standardized by
    # the statistics of a batch of one, a layer fed zeros), is taken as its limit q -> 0+: the
    # activation's small-signal slope. Evaluated at 0 itself, a kink's one-sided derivative
    # (ReLU'(0) = 0 in PyTorch) would make the gain 0 and call a batch that carries no signal
    # there a vanishing initialization; a smooth activation's limit is phi'(0)**2 either way.
    scale = math.sqrt(min(q, 1e30)) if q > 0 else (1e15 if q != q else _SMALL_SIGNAL)
    return sum(p * slope(scale * z) ** 2 for z, p in zip(_Z, _PDF))


# -- Dataflow through activations only ----------------------------------------------------
# Ops and layers a signal crosses unchanged in scale (or only pooled): a chain of weighted
# layers may run through them. Normalization, residual adds, concatenation, attention and
# anything else end it.
_PASS_THROUGH_OPS = {
    "view", "reshape", "flatten", "transpose", "permute", "contiguous", "squeeze", "unsqueeze", "__getitem__",
    "dropout", "Dropout", "Identity", "Flatten", "expand", "pad", "clone", "float", "to", "Unflatten",
}


def is_normalization(name: str) -> bool:
    lowered = name.lower()
    return "norm" in lowered and not lowered.startswith("normal")


def _passes_through(node) -> bool:
    return node.name in _PASS_THROUGH_OPS or "pool" in node.name.lower() or node.name in SLOPES


@dataclass(frozen=True)
class Link:
    """How the output of one weighted layer reaches what consumes it, through activations and
    reshapes only: `target` is the next weighted layer, or None when the path ends elsewhere
    (`end`: the node that ends it, None when the signal forks or is the model's output)."""

    source: Any  # Node
    activation: Any = None  # the first activation node on the way, if any
    pre_activation: Any = None  # the node feeding that activation (its RMS**2 is q)
    target: Any = None
    end: Any = None

    @property
    def q(self) -> float:
        stats = self.pre_activation.stats if self.pre_activation is not None else None
        return stats.rms ** 2 if stats is not None else 1.0

    @property
    def activation_name(self) -> str | None:
        return self.activation.name if self.activation is not None else None

    def slope(self) -> float:
        """E[phi'(h)**2] of the activation on the way, at the measured pre-activation scale."""
        return mean_squared_slope(self.activation_name, self.q)

    def gain(self) -> float:
        """Backward gain of E||delta||**2 across this link: sigma_w**2 of the target layer times
        E[phi'(h)**2] of the activation between (chi_1 of mean-field theory, docs/theory.md A1)."""
        return weight_gain(self.target.module) * self.slope()


@dataclass(frozen=True)
class Chain:
    """Weighted layers connected through activations only: the gain compounds along it."""

    layers: tuple  # Nodes, input side first
    links: tuple  # Links between consecutive layers, then the trailing link of the last layer

    @property
    def inner_links(self) -> tuple:
        return tuple(link for link in self.links if link.target is not None)

    def gain(self) -> float:
        return math.prod(link.gain() for link in self.inner_links)

    def activation_names(self) -> list[str]:
        return [link.activation_name for link in self.links if link.activation is not None]

    def dominant_activation(self) -> str | None:
        names = self.activation_names()
        return max(set(names), key=names.count) if names else None

    def gain_by_site(self) -> list[tuple]:
        """(first layer, product of link gains, number of layers) per construction line: layers
        built in one loop share a line and a fix, so a finding points at the line that
        contributes most."""
        sites: dict = {}
        for link in self.inner_links:
            layer, product, count = sites.get(link.target.location, (link.target, 1.0, 0))
            sites[link.target.location] = (layer, product * link.gain(), count + 1)
        return list(sites.values())

    def span(self) -> str:
        """`input ... output` for the message (a layer called in a loop shows its path once)."""
        first, last = label(self.layers[0].path), label(self.layers[-1].path)
        return first if first == last else f"{first} ... {last}"


def _compounding(link: Link) -> Link:
    """The link, or the link ended at its target when that target's weights are all zero."""
    if link.target is not None and not bool(link.target.module.weight.detach().any()):
        return replace(link, target=None, end=link.target)
    return link


def label(path: str) -> str:
    """A module path for a message: `layers.3`, or `layer 3` inside a bare nn.Sequential."""
    return f"layer {path}" if path[:1].isdigit() else path or "the model"


class SignalFlow:
    """The trace's dataflow, seen as chains of weighted layers joined by activations."""

    def __init__(self, trace):
        self.trace = trace
        self.nodes = list(trace.nodes)
        self._by_index = {node.index: node for node in self.nodes}
        self._consumers: dict[int, list] = {}
        for node in self.nodes:
            for producer in node.producers:
                self._consumers.setdefault(producer, []).append(node)

    def consumers(self, node) -> list:
        return self._consumers.get(node.index, [])

    def producers(self, node) -> list:
        return [self._by_index[i] for i in node.producers if i in self._by_index]

    def link(self, source, through_norms: bool = False) -> Link:
        """Follow `source`'s output while it neither forks nor meets anything but activations,
        reshapes, dropout and pooling (and normalization layers, when `through_norms`)."""
        node, activation, pre_activation = source, None, None
        while True:
            consumers = self.consumers(node)
            if len(consumers) != 1:
                return Link(source, activation, pre_activation)
            following = consumers[0]
            if is_weighted(following):
                return Link(source, activation, pre_activation, target=following)
            crosses = _passes_through(following) or (through_norms and is_normalization(following.name))
            if not crosses:
                return Link(source, activation, pre_activation, end=following)
            if activation is None and following.name in SLOPES:
                activation, pre_activation = following, node
            node = following

    def chains(self) -> list[Chain]:
        """Maximal chains over every weighted layer call (a layer called in a loop counts each time).
        A zero-initialized layer (Fixup classifier, ReZero branch end) has no gain to compound
        yet: a chain ends before it and the next one starts at it."""
        links = {node.index: _compounding(self.link(node)) for node in self.nodes if is_weighted(node)}
        targets = {link.target.index for link in links.values() if link.target is not None}
        chains = []
        for index, link in links.items():
            if index in targets:
                continue  # not the start of a chain
            layers, chain_links = [link.source], [link]
            while link.target is not None and link.target.index in links:
                link = links[link.target.index]
                layers.append(link.source)
                chain_links.append(link)
            chains.append(Chain(tuple(layers), tuple(chain_links)))
        return chains

    def feeding_layer(self, node):
        """The weighted layer whose output reaches `node` through reshapes/pooling only."""
        while True:
            producers = self.producers(node)
            if len(producers) != 1:
                return None
            node = producers[0]
            if is_weighted(node):
                return node
            if not _passes_through(node) or node.name in SLOPES:
                return None

    def output_node(self):
        """The model's output: the last node whose output nothing consumed."""
        return self.trace.output
