"""GL101 deep-plain-stack."""

from __future__ import annotations

import math

from gradlint.rule import Rule, RuleContext, Fix, Severity, Stage, is_norm, is_weighted, longest_run

# Weighted layers in a row with neither normalization nor a skip connection. Ours, to calibrate:
# Simonyan & Zisserman (VGG, arXiv:1409.1556) could train only their 11-layer plain net from a
# random init and initialized deeper ones from it; He et al. (arXiv:1512.03385) show plain nets
# degrading from 18 to 34 layers. 8 flags stacks deeper than VGG-11's conv part.
MIN_DEPTH = 8
# Change of the gradient's mean square across the stack, in decades, that makes it a warning or
# an error: the signal-propagation bounds of docs/theory.md A1 (chi^L outside [1e-2, 1e2] warn,
# outside [1e-4, 1e4] error). Measured on the backward signal: biases put a floor under the
# forward one, so the activations can look fine while the gradient vanishes (docs/theory.md, A1).
WARNING_DECADES = 2.0
ERROR_DECADES = 4.0


class DeepPlainStack(Rule):
    """
    ## What it does
    Flags paths of 8 or more weighted layers (Linear, convolutions) in a row with no
    normalization layer and no residual connection between them, and reports how much the
    gradient's mean square changes along the stack at initialization.

    ## Why is this bad?
    In a plain stack every layer multiplies the mean square of the forward signal, and of the
    backward gradient, by its gain chi_1; nothing resets the scale, so the gains compound
    exponentially with depth (Poole et al. 2016; Schoenholz et al. 2017). PyTorch's default
    init has chi_1 = 1/6 before a ReLU: ten layers shrink the gradient's mean square by 6e7.
    Even at the critical init, plain nets get harder to optimize with depth (He et al. 2016)
    while normalized or residual ones keep training.

    ## Example
    ```python
    self.layers = nn.Sequential(*[nn.Sequential(nn.Linear(64, 64), nn.ReLU()) for _ in range(12)])
    ```

    ## Use instead
    ```python
    self.layers = nn.Sequential(*[nn.Sequential(nn.Linear(64, 64), nn.LayerNorm(64), nn.ReLU())
                                  for _ in range(12)])
    # or residual blocks: x = x + block(x)
    ```

    ## References
    - Schoenholz et al. 2017, Deep Information Propagation, arXiv:1611.01232
    - Poole et al. 2016, Exponential expressivity in deep neural networks, arXiv:1606.05340
    - He et al. 2016, Deep Residual Learning for Image Recognition, arXiv:1512.03385
    - Simonyan & Zisserman 2014, Very Deep Convolutional Networks, arXiv:1409.1556
    - docs/theory.md, A1 (the per-layer gain chi_1, PyTorch's default init, the decade thresholds)
    """

    code = "GL101"
    name = "deep-plain-stack"
    family = "depth"
    severity = Severity.WARNING
    stages = frozenset({Stage.PROBE})

    INVALID = ('''
import torch.nn as nn

def build_model():
    layers = [nn.Linear(32, 64), nn.ReLU()]  # expect: GL101
    for _ in range(9):
        layers += [nn.Linear(64, 64), nn.ReLU()]
    layers.append(nn.Linear(64, 10))
    return nn.Sequential(*layers)
''',)
    VALID = ('''
import torch.nn as nn

def build_model():
    layers = [nn.Linear(32, 64), nn.ReLU()]
    for _ in range(9):
        layers += [nn.Linear(64, 64), nn.LayerNorm(64), nn.ReLU()]
    layers.append(nn.Linear(64, 10))
    return nn.Sequential(*layers)
''',)

    def check(self, ctx: RuleContext):
        stack = longest_run(ctx.trace, counts=is_weighted, breaks=lambda node: is_norm(node) or node.residual)
        if len(stack) < MIN_DEPTH:
            return
        first, last = stack[0], stack[-1]
        decades = _gradient_decades(ctx, first, last)
        drift = ""
        if decades is not None:
            per_layer = 10 ** (decades / (len(stack) - 1))
            drift = (f"; the gradient's mean square changes {10 ** decades:.2g}x from the last of them to the first "
                     f"({per_layer:.2g}x per layer)")
        yield self.finding(
            ctx,
            f"{len(stack)} weighted layers in a row with no normalization or skip connection "
            f"({first.path} -> {last.path}){drift}",
            module=first.path,
            fix=Fix("normalize each layer's output (or give the layers residual connections, x = x + f(x))",
                    _normalized(first.module)),
            severity=_severity(decades),
            weight=_weight(decades),
        )


def _gradient_decades(ctx: RuleContext, first, last) -> float | None:
    """log10 of the gradient's mean square at the first layer's output over the last's:
    positive when gradients grow toward the input, negative when they vanish."""
    grads = ctx.probe.output_grad_rms
    at_first, at_last = grads.get(first.index), grads.get(last.index)
    if not at_first or not at_last:
        return None
    return 2 * math.log10(at_first / at_last)


def _severity(decades: float | None) -> Severity:
    size = abs(decades) if decades is not None else 0.0
    if size >= ERROR_DECADES:
        return Severity.ERROR
    return Severity.WARNING if size >= WARNING_DECADES else Severity.INFO


def _weight(decades: float | None) -> float:
    """A growing signal can diverge; a shrinking one only stalls training (small weight)."""
    if decades is None:
        return 0.1
    if decades > 0:  # capped: the init and probe rules weigh the explosion itself
        return min(0.5, 0.1 + 0.1 * decades)
    return min(0.15, 0.05 + 0.025 * -decades)


def _normalized(module) -> str | None:
    """`nn.Sequential(<the layer>, <a norm for its output>)`, from the layer's own repr."""
    if module is None:
        return None
    kind = type(module).__name__
    if kind.endswith("Linear"):
        norm = f"nn.LayerNorm({module.out_features})"
    elif "Conv" in kind and kind[-2:] in {"1d", "2d", "3d"}:
        norm = f"nn.BatchNorm{kind[-2:]}({module.out_channels})"
    else:
        return None
    return f"nn.Sequential(nn.{module!r}, {norm})"
