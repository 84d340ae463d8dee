"""GL402 post-ln-deep."""

from __future__ import annotations

import math
from collections import Counter

from gradlint.rule import (
    Rule, RuleContext, DEFAULT_LR, Fix, Severity, Stage, TRANSPARENT, enclosing, encoder_call, forward_reaches,
    is_layer_norm, sited_path, skip_and_branch, stream_source,
)

# Post-LN stacks from this many blocks: Liu et al. 2020 (arXiv:2004.08249) train 6-layer
# Post-LN Transformers on WMT14 but see 12- and 18-layer ones diverge; docs/theory.md G5
# measures 6-layer Post-LN failing without warmup from lr 5e-3.
MIN_BLOCKS = 6
# The smallest Adam learning rate at which Post-LN stacks failed without warmup (docs/theory.md
# G5, copy task): 5e-3 at 6 layers, 3e-3 at 12. Interpolated as a power law in depth.
FAILING_LR_AT_6 = 5e-3
FAILING_LR_AT_12 = 3e-3
# lr / failing lr from which the finding is a warning (docs/theory.md G5: L=12 trained at a third
# of it).
WARNING_RATIO = 0.5


def failing_lr(blocks: int) -> float:
    """The Adam learning rate from which a Post-LN stack of `blocks` blocks fails without warmup."""
    exponent = math.log(FAILING_LR_AT_12 / FAILING_LR_AT_6) / math.log(2)
    return FAILING_LR_AT_6 * (blocks / 6) ** exponent


class PostLnDeep(Rule):
    """
    ## What it does
    Flags Transformer-style stacks of 6 or more Post-LN blocks, x = LayerNorm(x + f(x)) (the
    default of `nn.TransformerEncoderLayer`, `norm_first=False`), weighing the finding by the
    optimizer's learning rate against the rate at which such stacks fail without warmup. A
    block is a layer of the stack with its attention and feed-forward sublayers: BERT's
    12 layers, two Post-LN norms each, are 12 blocks.

    ## Why is this bad?
    In a Post-LN block every LayerNorm sits on the residual path, so the identity path is
    normalized away. At initialization the gradients of the last layers are large and do not
    shrink with depth (Xiong et al. 2020), and each layer depends heavily on its residual
    branch, which amplifies parameter updates (Liu et al. 2020). With Adam at full learning
    rate and no warmup, deep Post-LN stacks diverge or collapse to chance loss: 6 layers fail
    from lr 5e-3, 12 layers from 3e-3 (docs/theory.md, G5); Pre-LN trains at those rates.

    ## Example
    ```python
    layer = nn.TransformerEncoderLayer(256, 8)   # norm_first=False
    self.encoder = nn.TransformerEncoder(layer, num_layers=12)
    ```

    ## Use instead
    ```python
    layer = nn.TransformerEncoderLayer(256, 8, norm_first=True)
    self.encoder = nn.TransformerEncoder(layer, num_layers=12, norm=nn.LayerNorm(256))
    # or keep Post-LN with a learning-rate warmup, Admin (Liu et al. 2020) or DeepNorm (Wang et al. 2022)
    ```

    ## References
    - Xiong et al. 2020, On Layer Normalization in the Transformer Architecture, arXiv:2002.04745
    - Liu et al. 2020, Understanding the Difficulty of Training Transformers, arXiv:2004.08249
    - Wang et al. 2022, DeepNet: Scaling Transformers to 1,000 Layers, arXiv:2203.00555
    - docs/theory.md, C1 (Post-LN and Pre-LN), C2 (Admin, DeepNorm) and G5 (the failing learning rates)
    """

    code = "GL402"
    name = "post-ln-deep"
    family = "norm"
    severity = Severity.WARNING
    stages = frozenset({Stage.TRACE})
    reads_lr = True

    INVALID = ('''
import torch
import torch.nn as nn

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(16, 16)
        layer = nn.TransformerEncoderLayer(16, 2, dim_feedforward=32, dropout=0.0, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, num_layers=6, enable_nested_tensor=False)  # expect: GL402
        self.head = nn.Linear(16, 16)

    def forward(self, tokens):
        return self.head(self.encoder(self.embed(tokens)))

def build_model():
    return Net()

def example_inputs():
    return (torch.randint(0, 16, (2, 6)),)

def configure_optimizers(model):
    return torch.optim.Adam(model.parameters(), lr=5e-3)
''', '''
import torch
import torch.nn as nn

class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(16, 16)
        self.norm = nn.LayerNorm(16)  # expect: GL402

    def forward(self, x):
        return self.norm(x + self.fc(x))

def build_model():
    return nn.Sequential(nn.Linear(8, 16), *[Block() for _ in range(8)], nn.Linear(16, 4))
''', '''
import torch
import torch.nn as nn

class AddNorm(nn.Module):  # BERT's layout: each sub-layer's output module holds its own Post-LN norm
    def __init__(self, inputs):
        super().__init__()
        self.dense = nn.Linear(inputs, 16)
        self.LayerNorm = nn.LayerNorm(16)  # expect: GL402

    def forward(self, hidden, residual):
        return self.LayerNorm(residual + self.dense(hidden))

class Layer(nn.Module):  # two Post-LN norms, in two submodules: one block
    def __init__(self):
        super().__init__()
        self.attention = nn.Linear(16, 16)
        self.attention_output = AddNorm(16)
        self.intermediate = nn.Linear(16, 32)
        self.output = AddNorm(32)

    def forward(self, x):
        x = self.attention_output(self.attention(x), x)
        return self.output(torch.relu(self.intermediate(x)), x)

def build_model():
    return nn.Sequential(nn.Linear(8, 16), *[Layer() for _ in range(6)], nn.Linear(16, 4))

def configure_optimizers(model):
    return torch.optim.Adam(model.parameters(), lr=5e-3)
''')
    VALID = ('''
import torch
import torch.nn as nn

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(16, 16)
        layer = nn.TransformerEncoderLayer(16, 2, dim_feedforward=32, dropout=0.0, batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, num_layers=6, norm=nn.LayerNorm(16), enable_nested_tensor=False)
        self.head = nn.Linear(16, 16)

    def forward(self, tokens):
        return self.head(self.encoder(self.embed(tokens)))

def build_model():
    return Net()

def example_inputs():
    return (torch.randint(0, 16, (2, 6)),)

def configure_optimizers(model):
    return torch.optim.Adam(model.parameters(), lr=5e-3)
''', '''
import torch
import torch.nn as nn

class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(16, 16)
        self.norm = nn.LayerNorm(16)

    def forward(self, x):
        return x + self.fc(self.norm(x))

def build_model():
    return nn.Sequential(nn.Linear(8, 16), *[Block() for _ in range(8)], nn.LayerNorm(16), nn.Linear(16, 4))
''', '''
import torch
import torch.nn as nn

class AddNorm(nn.Module):  # BERT's layout: each sub-layer's output module holds its own Post-LN norm
    def __init__(self, inputs):
        super().__init__()
        self.dense = nn.Linear(inputs, 16)
        self.LayerNorm = nn.LayerNorm(16)

    def forward(self, hidden, residual):
        return self.LayerNorm(residual + self.dense(hidden))

class Layer(nn.Module):  # two Post-LN norms, in two submodules: one block
    def __init__(self):
        super().__init__()
        self.attention = nn.Linear(16, 16)
        self.attention_output = AddNorm(16)
        self.intermediate = nn.Linear(16, 32)
        self.output = AddNorm(32)

    def forward(self, x):
        x = self.attention_output(self.attention(x), x)
        return self.output(torch.relu(self.intermediate(x)), x)

def build_model():
    return nn.Sequential(nn.Linear(8, 16), *[Layer() for _ in range(5)], nn.Linear(16, 4))

def configure_optimizers(model):
    return torch.optim.Adam(model.parameters(), lr=5e-3)
''')

    def check(self, ctx: RuleContext):
        norms = _post_ln_norms(ctx.trace)
        blocks = _block_count(norms)
        if blocks < MIN_BLOCKS:
            return
        optimizer = ctx.spec.optimizer
        lr = optimizer.lr if optimizer is not None else DEFAULT_LR
        adaptive = optimizer is None or optimizer.is_adaptive
        limit = failing_lr(blocks)
        ratio = lr / limit
        described = optimizer.describe() if optimizer is not None else f"AdamW(lr={DEFAULT_LR:g})"
        if optimizer is None or optimizer.assumed:  # gradlint's default, not the file's
            described += " (assumed)"
        comparison = (f"{ratio:.2g}x the lr ~{limit:.2g} at which {blocks}-block Post-LN stacks failed to train "
                      f"without warmup with Adam" if adaptive else "measured failure rates are for Adam")
        first = norms[0]
        encoder_path = enclosing(ctx.model, first.path, ("TransformerEncoder",))
        module = sited_path(ctx.spec, encoder_path if encoder_path is not None else first.path)
        yield self.finding(
            ctx,
            f"{blocks} Post-LN blocks (x = LayerNorm(x + f(x)), first {first.path}) trained with {described}: "
            f"{comparison}",
            module=module,
            fix=_fix(ctx, first, encoder_path),
            severity=_severity(ratio, adaptive),
            weight=_weight(ratio, adaptive),
        )


def _post_ln_norms(trace) -> list:
    """LayerNorms that the residual stream passes through: each consumes a residual add that
    feeds nothing else, and either its output is the skip operand of a later residual add or
    its add's skip operand is such a norm (the stack's last block). That leaves out a Pre-LN
    stack's final norm, whose add's skip operand is the previous add."""
    def not_transparent(node):
        return node.name not in TRANSPARENT

    def skip_source(add):
        return stream_source(trace, skip_and_branch(trace, add)[0])

    normalized_sums = {}  # norm index -> the residual add it normalizes
    for node in trace.nodes:
        if not is_layer_norm(node) or not node.producers:
            continue
        source = stream_source(trace, node.producers[0])
        if source is None or not source.residual:
            continue
        if [n.index for n in forward_reaches(trace, source, not_transparent)] == [node.index]:
            normalized_sums[node.index] = source  # otherwise Pre-LN: the add also feeds the next add
    carried = {index for index in normalized_sums
               if any(add.residual and skip_source(add) is trace.nodes[index]
                      for add in forward_reaches(trace, trace.nodes[index], not_transparent))}
    return [trace.nodes[index] for index, add in normalized_sums.items()
            if index in carried or getattr(skip_source(add), "index", None) in carried]


def _block_count(norms: list) -> int:
    """Blocks holding Post-LN norms: one per repeated block, the module at the last numbered
    step of a norm's path (`encoder.layer.3` for BERT's `encoder.layer.3.attention.output.LayerNorm`
    and `encoder.layer.3.output.LayerNorm`, so its two norms per layer count once); without a
    numbered step, one per module that runs norms; and a norm pair per block when one forward()
    runs the whole stack."""
    per_block = Counter(_block_of(n) for n in norms)
    return sum(max(1, count // 2) for count in per_block.values())


def _block_of(norm) -> str:
    path = norm.path if norm.kind == "layer" else norm.path + ".?"  # an op: the module that ran it
    parts = path.split(".")
    numbered = [i for i, part in enumerate(parts[:-1]) if part.isdigit()]
    if numbered:  # a ModuleList or Sequential entry: the repeated block
        return ".".join(parts[:numbered[-1] + 1])
    return path.rpartition(".")[0]


def _severity(ratio: float, adaptive: bool) -> Severity:
    if not adaptive or ratio < WARNING_RATIO:
        return Severity.INFO
    return Severity.ERROR if ratio >= 1 else Severity.WARNING


def _weight(ratio: float, adaptive: bool) -> float:
    """~0.7 at the learning rate where such stacks failed, rising above it, falling below."""
    if not adaptive:
        return 0.1
    if ratio < 1:
        return 0.7 * ratio
    return min(0.9, 0.7 + 0.4 * math.log10(ratio))


def _fix(ctx: RuleContext, norm, encoder_path: str | None) -> Fix:
    if encoder_path is not None:
        return Fix("use Pre-LN layers (norm_first=True) with a final LayerNorm; or keep Post-LN and warm the "
                   "learning rate up", encoder_call(ctx.module_at(encoder_path), norm_first=True))
    norm_expr = ctx.spec.expression(norm.path) if norm.kind == "layer" else "self.norm"
    return Fix("normalize the branch input instead of the sum (Pre-LN) and add a LayerNorm before the head; "
               "or keep Post-LN and warm the learning rate up",
               f"x = x + f({norm_expr}(x))  # instead of x = {norm_expr}(x + f(x))")
