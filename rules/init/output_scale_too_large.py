"""GL205 output-scale-too-large."""

from __future__ import annotations

import math

from gradlint.rule import Rule, RuleContext, Fix, Severity, SignalFlow, Stage, is_fan_in_scaled, label

# RMS of the model's output at init when a Linear/conv layer produces it. A classifier should
# start near the uniform softmax (initial cross-entropy ln C, "verify loss @ init"); logits of
# RMS 5 over 10 classes already start at ~4x ln C with the softmax mostly saturated, and a
# regression output of RMS 5 on unit targets starts with a 25x loss and 5x gradients.
# At AUTOTRAINER's abnormal-magnitude level (mean |a| >= 10, i.e. RMS >~ 12.5) x2: error.
RMS_WARNING = 5.0
RMS_ERROR = 25.0
# Rows sampled to estimate the initial cross-entropy of Gaussian logits (fixed seed).
_SAMPLE_ROWS = 512
_SAMPLE_LIMIT = 4_000_000


class OutputScaleTooLarge(Rule):
    """
    ## What it does
    Flags models whose output layer produces values with an RMS above 5 at initialization
    (logits, or regression outputs), measured in one forward pass on the example batch. For
    a classifier under the default cross-entropy loss the message estimates the initial loss
    against the ln(C) of a uniform start.

    ## Why is this bad?
    Large initial logits saturate the softmax: the network starts out confidently wrong, the
    initial loss is several times ln(C), and the first updates are spent shrinking the
    logits rather than learning; in fp16 the exponentials overflow. Large regression outputs
    give a loss and gradients proportional to the output scale, the classic recipe for a
    first-step blow-up. Either the output layer is initialized too large (for example tied
    to an N(0, 1) embedding table) or the layers below it already grew the signal; the
    message says which.

    ## Example
    ```python
    self.head = nn.Linear(512, vocab)
    self.head.weight = self.embed.weight          # nn.Embedding: N(0, 1) -> logits RMS ~ 22
    ```

    ## Use instead
    ```python
    nn.init.normal_(self.embed.weight, std=0.02)   # GPT-2: logits RMS ~ 0.5
    ```

    ## References
    - Zhang, Dauphin & Ma 2019, Fixup Initialization, arXiv:1901.09321 (zero-init the classifier)
    - Radford et al. 2019, Language Models are Unsupervised Multitask Learners (GPT-2, std 0.02)
    - Karpathy 2019, A Recipe for Training Neural Networks ("verify loss @ init")
    - Zhang et al. 2021, AUTOTRAINER (mean |a| >= 10 as abnormal), ICSE
    - docs/theory.md, C5 (output logits) and T3 (AUTOTRAINER's activation magnitude)
    """

    code = "GL205"
    name = "output-scale-too-large"
    family = "init"
    severity = Severity.WARNING
    stages = frozenset({Stage.TRACE})

    INVALID = ('''
import torch.nn as nn

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(32, 64), nn.LayerNorm(64), nn.ReLU())
        self.head = nn.Linear(64, 10)  # expect: GL205
        nn.init.normal_(self.head.weight, std=1.0)

    def forward(self, x):
        return self.head(self.body(x))

def build_model():
    return Net()
''',)
    VALID = ('''
import torch.nn as nn

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(32, 64), nn.LayerNorm(64), nn.ReLU())
        self.head = nn.Linear(64, 10)
        nn.init.normal_(self.head.weight, std=64 ** -0.5)

    def forward(self, x):
        return self.head(self.body(x))

def build_model():
    return Net()
''',)

    def check(self, ctx: RuleContext):
        flow = ctx.signal_flow()
        output = flow.output_node()
        if output is None:
            return
        head = output if is_fan_in_scaled(output) else flow.feeding_layer(output)
        if head is None or head.stats is None or head.stats.rms <= RMS_WARNING:
            return
        rms = head.stats.rms
        yield self.finding(
            ctx,
            f"{label(head.path)}, the layer producing the model output, gives values of RMS {rms:.3g} at init{_loss_note(ctx, head)}{_cause(flow, head)}",
            module=head.path,
            fix=_fix(ctx, flow, head),
            severity=Severity.ERROR if rms > RMS_ERROR else Severity.WARNING,
            weight=min(0.8, 0.2 + 0.3 * math.log10(rms / RMS_WARNING) / math.log10(RMS_ERROR / RMS_WARNING)),
        )


def _input_rms(flow: SignalFlow, head) -> float | None:
    producers = flow.producers(head)
    return producers[0].stats.rms if producers and producers[0].stats is not None else None


def _cause(flow: SignalFlow, head) -> str:
    incoming = _input_rms(flow, head)
    if incoming is not None and incoming > RMS_WARNING:
        return f"; its input already has RMS {incoming:.3g}, so the growth happens below it"
    return ""


def _fix(ctx: RuleContext, flow: SignalFlow, head) -> Fix:
    expression = ctx.spec.expression(head.path)
    incoming = _input_rms(flow, head)
    if incoming is not None and incoming > RMS_WARNING:
        return Fix("fix the layers that grow the signal, or normalize the head's input",
                   f"nn.LayerNorm({head.module.weight.shape[1]})  # applied to the input of {expression}")
    fan_in = head.module.weight[0].numel()
    scale = incoming if incoming else 1.0
    return Fix("initialize the output layer small (zero is fine for a classifier: Fixup)",
               f"nn.init.normal_({expression}.weight, std={1 / (scale * math.sqrt(fan_in)):.3g})")


def _loss_note(ctx: RuleContext, head) -> str:
    """The expected initial cross-entropy, when the default cross-entropy loss will apply."""
    spec, shape = ctx.spec, head.output_shape
    targets = spec.targets
    is_default_ce = spec.loss_fn is None and shape is not None and len(shape) >= 2 and shape[-1] > 1 and (
        targets is None or not getattr(targets, "is_floating_point", lambda: True)())
    if not is_default_ce:
        return " (targets are O(1): the initial loss and its gradients scale with it)"
    classes = shape[-1]
    loss = _expected_cross_entropy(head.stats.rms, classes)
    return (f": over {classes} classes the softmax starts saturated, expected initial cross-entropy "
            f"{loss:.3g} vs ln({classes}) = {math.log(classes):.3g} for a uniform start")


def _expected_cross_entropy(rms: float, classes: int) -> float:
    """E[CE] of random labels under i.i.d. N(0, rms**2) logits, by sampling with a fixed seed."""
    import torch

    rows = max(16, min(_SAMPLE_ROWS, _SAMPLE_LIMIT // classes))
    generator = torch.Generator().manual_seed(0)
    logits = rms * torch.randn(rows, classes, generator=generator)
    labels = torch.randint(0, classes, (rows,), generator=generator)
    return float(torch.nn.functional.cross_entropy(logits, labels))
