"""GL207 regression-targets-unscaled."""

from __future__ import annotations

import ast
import math
from typing import Any

from gradlint.rule import (
    Rule, RuleContext, Fix, Location, Severity, Stage, TRANSPARENT, display_path, parsed_source, replace_in_line,
)

# Standardized targets have RMS ~1, the scale a freshly initialized output starts at. A squared
# error grows with the square of the gap between the two and its gradient with the gap itself:
# targets of RMS 10 start the run with a loss ~100x and gradients ~10x those of standardized
# targets, so a learning rate that suits one is 10x too large for the other. In the corpus the
# five cases with targets at 100-1000x unit scale (MLP, CNN denoiser, LSTM, GRU, BERT regression)
# all diverged and their standardized twins did not (BENCHMARKS.md).
SCALE_WARNING = 10.0
SCALE_ERROR = 100.0
# Recorded ops that compare the model output with a target value by their difference. Losses of
# other kinds (Poisson or Gaussian likelihoods, cross-entropy on soft labels) ask for outputs on
# another scale than their targets', and are left alone.
COMPARISONS = {"mse_loss", "l1_loss", "smooth_l1_loss", "huber_loss", "sub", "rsub"}
# Ops between the output and the comparison that keep its values (a squeeze, a dtype cast).
KEEPS_VALUES = TRANSPARENT | {"to", "float", "double", "type_as"}


class RegressionTargetsUnscaled(Rule):
    """
    ## What it does
    Compares the RMS of the regression targets the loss compares the model output with (float
    targets with one value per output, in a squared, absolute or Huber error, after whatever the
    loss does to them first) with the RMS of the output at initialization, measured in one forward
    pass, and flags targets more than 10x larger (100x: an error). The fix standardizes them with
    the example batch's mean and standard deviation, on the line where the loss takes them.

    ## Why is this bad?
    A network starts with outputs near unit scale. Against targets of scale s, a squared error
    starts near s^2 and its gradients near s: every learning rate is effectively s times larger
    than on standardized targets, and the first steps overshoot. House prices in dollars, pixels
    in 0..255 or temperatures in kelvin are the usual culprits. Standardizing the targets (and
    un-standardizing predictions) keeps the loss near 1 at the start, so learning rates tuned on
    other problems carry over.

    ## Example
    ```python
    def loss_fn(output, targets):            # targets: prices, RMS ~ 3e5
        return F.mse_loss(output, targets)
    ```

    ## Use instead
    ```python
    def loss_fn(output, targets):
        return F.mse_loss(output, (targets - 2.9e5) / 8.1e4)   # predict 8.1e4 * output + 2.9e5
    ```

    ## References
    - LeCun, Bottou, Orr & Mueller 1998, Efficient BackProp (normalize inputs and targets)
    - Karpathy 2019, A Recipe for Training Neural Networks ("verify loss @ init")
    """

    code = "GL207"
    name = "regression-targets-unscaled"
    family = "init"
    severity = Severity.WARNING
    stages = frozenset({Stage.TRACE})

    INVALID = ('''
import torch
import torch.nn as nn

def build_model():
    return nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 1))

def example_inputs():
    return (torch.randn(64, 8, generator=torch.Generator().manual_seed(0)),)

def example_targets():
    return 300.0 + 10.0 * torch.randn(64, 1, generator=torch.Generator().manual_seed(1))

def loss_fn(output, targets):
    return nn.functional.mse_loss(output, targets)  # expect: GL207
''',)
    VALID = (INVALID[0].replace("300.0 + 10.0 * torch.randn", "torch.randn"),)

    def check(self, ctx: RuleContext):
        targets = _regression_targets(ctx)
        output = ctx.trace.output
        if targets is None or output is None or output.stats is None or output.output_shape is None:
            return
        if math.prod(output.output_shape) != targets.numel():
            return  # not one target per output value: a likelihood head, a sequence of logits, ...
        compared = _compared_with(ctx.trace)
        if compared is None:
            return  # not a difference-based regression loss
        values = targets.detach().double().cpu()
        if not bool(values.isfinite().all()):
            return
        rms, mean = float(values.square().mean().sqrt()), float(values.mean())
        std = float(values.std()) if values.numel() > 1 else 0.0
        # What the loss compares with: the targets, or what loss_fn made of them (standardized).
        seen = compared.stats.rms if compared.stats is not None else rms
        out_rms = output.stats.rms
        scale = seen / max(out_rms, 1.0)  # how far the output must grow to reach it
        ctx.record("target_scale", math.log10(scale) if scale > 1.0 else 0.0)
        if scale <= SCALE_WARNING:
            return
        as_given = math.isclose(seen, rms, rel_tol=1e-3)
        what = (f"the regression targets have RMS {rms:.3g} (mean {mean:.3g}, std {std:.3g})" if as_given else
                f"the regression targets, as loss_fn transforms them, have RMS {seen:.3g}")
        location, code = _loss_site(ctx, mean, std) if as_given else (None, None)
        advice = (f"standardize the targets with the example batch's mean and std: train on "
                  f"{_standardized('targets', mean, std)} and predict {_restored('output', mean, std)}" if as_given else
                  "standardize the targets: subtract their mean and divide by their standard deviation")
        yield self.finding(
            ctx,
            f"{what} against a model output of RMS {out_rms:.3g} at init: a squared error starts "
            f"~{scale ** 2:.2g}x larger than on standardized targets and its gradients ~{scale:.3g}x, "
            f"as if the learning rate were {scale:.3g}x higher",
            location=location,
            fix=Fix(advice, code),
            severity=Severity.ERROR if scale > SCALE_ERROR else Severity.WARNING,
            weight=min(0.8, 0.3 + 0.25 * math.log10(scale / SCALE_WARNING)),
        )


def _compared_with(trace: Any) -> Any:
    """What the loss compares the model output with: the recorded node that produced the other
    operand of the first comparison (the targets after loss_fn transformed them), or a stand-in
    without stats when that operand is the targets themselves (no op produced it); None when the
    output first meets something other than a comparison."""
    end = trace.forward_end if trace.forward_end is not None else len(trace.nodes)
    derived = {trace.output.index}  # the output, and views of it
    for node in trace.nodes[end:]:
        if not derived.intersection(node.producers):
            continue
        if node.name in KEEPS_VALUES:
            if node.producers and node.producers[0] in derived:
                derived.add(node.index)
            # else the output is only a dtype/device reference: targets.to(output)
            continue
        if node.name not in COMPARISONS:
            return None
        others = [p for p in node.producers if p not in derived]
        if len(others) != 1:
            return None  # the output compared with itself, or with two things
        return trace.nodes[others[0]] if others[0] >= 0 else _UNRECORDED
    return None


class _Unrecorded:
    """The targets as given: no op in the loss transformed them."""

    stats = None


_UNRECORDED = _Unrecorded()


def _regression_targets(ctx: RuleContext) -> Any:
    """The example targets when they are floats and the loss is not a chosen cross-entropy."""
    import torch

    targets = ctx.spec.targets
    if ctx.spec.loss == "cross-entropy" or not isinstance(targets, torch.Tensor) or not targets.is_floating_point():
        return None
    return targets if targets.numel() else None


def _standardized(name: str, mean: float, std: float) -> str:
    """`(targets - 49.36) / 1190`, `(targets + 167) / 944.9`."""
    shifted = f"({name} {'-' if mean >= 0 else '+'} {abs(mean):.4g})"
    return f"{shifted} / {std:.4g}" if std > 0 else shifted


def _restored(name: str, mean: float, std: float) -> str:
    """`1190 * output + 49.36`: the prediction on the targets' own scale."""
    scaled = f"{std:.4g} * {name}" if std > 0 else name
    return f"{scaled} {'+' if mean >= 0 else '-'} {abs(mean):.4g}"


def _loss_site(ctx: RuleContext, mean: float, std: float) -> tuple[Location | None, str | None]:
    """The first call in loss_fn that takes the targets, and that line with them standardized;
    (None, None) without a loss_fn defined in a readable file (the finding then points at the model)."""
    code = getattr(ctx.spec.loss_fn, "__code__", None)
    parsed = parsed_source(code.co_filename) if code is not None else None
    if parsed is None:  # no loss_fn, a builtin, a functools.partial, source not on disk
        return None, None
    text, tree = parsed
    # co_firstlineno is the first decorator's line when there is one, the def's otherwise.
    definition = min((node for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)
                      and node.name == code.co_name and node.lineno >= code.co_firstlineno),
                     key=lambda node: node.lineno, default=None)
    if definition is None or len(definition.args.args) < 2:
        return None, None
    name = definition.args.args[1].arg
    for node in ast.walk(definition):
        if not isinstance(node, ast.Call):
            continue
        for argument in (*node.args, *(k.value for k in node.keywords)):
            if isinstance(argument, ast.Name) and argument.id == name:
                col = node.col_offset if node.lineno == argument.lineno else argument.col_offset
                location = Location(display_path(code.co_filename), argument.lineno, col + 1)
                return location, replace_in_line(location, argument, text, _standardized(name, mean, std))
    return None, None
