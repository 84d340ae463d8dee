"""Weight tensors whose size means something other than it seems: what makes a large first update,
or a high curvature, harmless (GL601, GL602).

- **Scale-invariant weights.** A Linear or convolution whose output nothing reads but a
  normalization that divides out its scale: BatchNorm or InstanceNorm (per channel, so the layer's
  bias is subtracted with the mean: BN(a W x + b) = BN(W x) for every a > 0), or LayerNorm, RMSNorm
  and GroupNorm when the layer has no bias. The loss then does not depend on the weight's norm,
  only on its direction. Its gradient is orthogonal to the weight and shrinks as 1/||W||, so an
  update large against the weight turns it and grows its norm, which shrinks the next updates:
  gradient descent on such weights tunes its own rate and converges at any lr (Arora, Li & Lyu
  2019, arXiv:1812.03981; van Laarhoven 2017, arXiv:1706.05350). Neither their relative update
  nor the curvature along them says whether training diverges.
- **Down-scaled residual branches.** The last weighted layer of a residual branch initialized
  below the branch's other weighted layers, as GPT-2 (1/sqrt(2 n_layer)), Fixup and T-Fixup do, so
  that the sum of many branches keeps the stream's scale. Its update is large against that small
  weight by design; what the first step must not overwrite is the branch's scale, the layer's
  size at its peers' gain. Zero-initialized layers, the limit of this, are already exempt
  (measure.optimizer.first_update_ratios).

- **The output layer.** Its weight's scale acts on the model's output and on the gradient it sends
  back, nothing more: the output's scale is GL205's measurement, so GL201 leaves the layer to it;
  and under SGD the loss is convex in that weight (cross-entropy or squared error of an output
  linear in it), so whether a step on it is too long is exactly the curvature bound lr * lambda < 2
  (GL602's test), not the step's size against the weight (GL601).

- **Cross-entropy on the output layer.** Cross-entropy is Lipschitz in the logits (its gradient in
  them is p - y, at most sqrt(2) per example), and so in the output layer's weight: a step too
  long for the curvature along that layer makes it oscillate, and the softmax saturates as it
  does, which lowers the curvature until the step fits. A squared error has no such bound.

Scales compare fan-in-normalized sizes, RMS(W) * sqrt(fan_in), so layers of different fan-in at
the same init (PyTorch's default, He, LeCun) compare equal: a Transformer's FFN output layer, whose
fan-in is 4x its input layer's, is not down-scaled by that.
"""

from __future__ import annotations

import math
from typing import Any

from gradlint.measure.graph import branch_nodes, branch_tail, forward_reaches, is_norm, is_weighted
from gradlint.trace import TRANSPARENT, Node, Trace


def scale_invariant_weights(trace: Trace, model: Any) -> frozenset[str]:
    """Parameter names (as model.named_parameters() gives them) of the weights whose every call's
    output is read only by a normalization that divides out its scale."""
    calls: dict[str, list[Node]] = {}
    for node in trace.nodes:
        if node.kind == "layer" and is_weighted(node) and node.module is not None:
            calls.setdefault(node.path, []).append(node)
    weights = {id(nodes[0].module.weight) for nodes in calls.values()
               if getattr(nodes[0].module, "weight", None) is not None
               and all(_normalized_away(trace, node) for node in nodes)}
    return frozenset(name for name, parameter in model.named_parameters() if id(parameter) in weights)


def _normalized_away(trace: Trace, node: Node) -> bool:
    readers = list(forward_reaches(trace, node, lambda n: n.name not in TRANSPARENT))
    if not readers:
        return False
    biased = _has_bias(node.module)
    return all(_per_channel(reader) or (is_norm(reader) and not biased) for reader in readers)


def _per_channel(node: Node) -> bool:
    """A norm that subtracts a mean per channel over the batch (or the positions): it removes any
    per-channel bias too."""
    return is_norm(node) and any(kind in node.name for kind in ("BatchNorm", "InstanceNorm", "batch_norm",
                                                                 "instance_norm"))


def _has_bias(module: Any) -> bool:
    bias = getattr(module, "bias", None)
    return bias is not None and bool(bias.detach().abs().max() > 0)


def downscaled_residual_outputs(trace: Trace, model: Any) -> dict[str, float]:
    """Parameter name -> the RMS the weight would have at its branch's scale, for each residual
    branch's last weighted layer whose fan-in-normalized size is below that of every other
    weighted layer of the branch (and above zero: a zero weight is exempt on its own)."""
    references: dict[int, float] = {}
    for add in trace.residual_adds:
        tail = branch_tail(trace, add)
        if tail is None or not is_weighted(tail) or tail.module is None:
            continue
        peers = {node.path: node.module for node in branch_nodes(trace, add)
                 if node.kind == "layer" and is_weighted(node) and node.path != tail.path and node.module is not None}
        gains = [g for g in (_gain(module) for module in peers.values()) if g > 0]
        own = _gain(tail.module)
        if not gains or own <= 0 or own >= min(gains):
            continue
        weight = tail.module.weight
        reference = min(gains) / math.sqrt(_fan_in(weight))
        references[id(weight)] = min(references.get(id(weight), math.inf), reference)
    return {name: references[id(parameter)] for name, parameter in model.named_parameters()
            if id(parameter) in references}


def _gain(module: Any) -> float:
    """RMS(W) * sqrt(fan_in): 1/sqrt(3) for PyTorch's default init, sqrt(2) for He's, whatever the width."""
    weight = getattr(module, "weight", None)
    if weight is None or weight.dim() < 2 or weight.numel() == 0:
        return 0.0
    rms = float(weight.detach().float().pow(2).mean().sqrt())
    return rms * math.sqrt(_fan_in(weight)) if math.isfinite(rms) else 0.0


def _fan_in(weight: Any) -> int:
    """Inputs per output unit: in_features, or in_channels x the kernel (torch.nn.init's fan_in)."""
    return max(1, math.prod(weight.shape[1:]))


def output_weights(trace: Trace, model: Any) -> frozenset[str]:
    """Parameter names of the weight of the layer that produces the model's output, looking back
    through reshapes and dropout (a classifier head, a language model's decoder)."""
    node = trace.output
    while node is not None and node.name in TRANSPARENT:
        real = [p for p in node.producers if p >= 0]
        node = trace.nodes[real[0]] if len(real) == 1 else None
    if node is None or node.kind != "layer" or not is_weighted(node) or node.module is None:
        return frozenset()
    weight = getattr(node.module, "weight", None)
    return frozenset(name for name, parameter in model.named_parameters() if parameter is weight)



# Losses Lipschitz in the model's output (logits): cross-entropy and its parts, binary cross-entropy on logits.
CROSS_ENTROPIES = frozenset({"cross_entropy", "nll_loss", "log_softmax", "binary_cross_entropy_with_logits",
                             "CrossEntropyLoss", "NLLLoss", "LogSoftmax", "BCEWithLogitsLoss"})


def cross_entropy_loss(trace: Trace) -> bool:
    """The loss computed from the model's output (the trace after the forward) is a cross-entropy."""
    if trace.forward_end is None:
        return False
    return any(node.name in CROSS_ENTROPIES for node in trace.nodes[trace.forward_end:])
