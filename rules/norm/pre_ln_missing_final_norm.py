"""GL403 pre-ln-missing-final-norm."""

from __future__ import annotations

import math

from gradlint.rule import (
    Rule, RuleContext, Fix, ResidualChain, Severity, Stage, branch_nodes, enclosing, encoder_call, forward_reaches,
    is_layer_norm, is_norm, is_weighted, residual_chains, sited_path, skip_and_branch, stream_source,
)

# Pre-LN sublayers (residual adds whose branch starts with a LayerNorm of the stream) from
# which the stack counts: two Transformer layers (attention + MLP each). Below that the stream
# has barely grown (ours, to calibrate).
MIN_SUBLAYERS = 4


class PreLnMissingFinalNorm(Rule):
    """
    ## What it does
    Flags Pre-LN stacks (x = x + f(LayerNorm(x))) whose residual stream goes into the output
    layer without a final normalization, e.g. `nn.TransformerEncoder` built from
    `norm_first=True` layers without `norm=`.

    ## Why is this bad?
    In a Pre-LN stack nothing normalizes the residual stream itself: every block adds its
    branch to it, so its variance grows with depth. The final LayerNorm is part of the Pre-LN
    design (Xiong et al. 2020; GPT-2, ViT): without it the output layer reads a stream whose
    scale grows with the number of layers, the logits and their gradients grow with it, and
    the first updates of the head and the last blocks are too large for the learning rate
    tuned for a normalized input.

    ## Example
    ```python
    layer = nn.TransformerEncoderLayer(256, 8, norm_first=True)
    self.encoder = nn.TransformerEncoder(layer, num_layers=12)
    ```

    ## Use instead
    ```python
    self.encoder = nn.TransformerEncoder(layer, num_layers=12, norm=nn.LayerNorm(256))
    ```

    ## References
    - Xiong et al. 2020, On Layer Normalization in the Transformer Architecture, arXiv:2002.04745
    - Radford et al. 2019, Language Models are Unsupervised Multitask Learners (GPT-2: "an
      additional layer normalization was added after the final self-attention block")
    - docs/theory.md, C3 (the final normalization of a Pre-LN stack)
    """

    code = "GL403"
    name = "pre-ln-missing-final-norm"
    family = "norm"
    severity = Severity.WARNING
    stages = frozenset({Stage.TRACE})

    INVALID = ('''
import torch
import torch.nn as nn

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(16, 16)
        layer = nn.TransformerEncoderLayer(16, 2, dim_feedforward=32, dropout=0.0, batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, num_layers=3, enable_nested_tensor=False)  # expect: GL403
        self.head = nn.Linear(16, 16)

    def forward(self, tokens):
        return self.head(self.encoder(self.embed(tokens)))

def build_model():
    return Net()

def example_inputs():
    return (torch.randint(0, 16, (2, 6)),)
''', '''
import torch
import torch.nn as nn

class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.norm = nn.LayerNorm(16)
        self.fc = nn.Linear(16, 16)

    def forward(self, x):
        return x + self.fc(torch.relu(self.norm(x)))

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.input = nn.Linear(8, 16)
        self.blocks = nn.Sequential(*[Block() for _ in range(4)])
        self.head = nn.Linear(16, 4)  # expect: GL403

    def forward(self, x):
        return self.head(self.blocks(self.input(x)))

def build_model():
    return Net()
''')
    VALID = ('''
import torch
import torch.nn as nn

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(16, 16)
        layer = nn.TransformerEncoderLayer(16, 2, dim_feedforward=32, dropout=0.0, batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, num_layers=3, norm=nn.LayerNorm(16), enable_nested_tensor=False)
        self.head = nn.Linear(16, 16)

    def forward(self, tokens):
        return self.head(self.encoder(self.embed(tokens)))

def build_model():
    return Net()

def example_inputs():
    return (torch.randint(0, 16, (2, 6)),)
''', '''
import torch
import torch.nn as nn

class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.norm = nn.LayerNorm(16)
        self.fc = nn.Linear(16, 16)

    def forward(self, x):
        return x + self.fc(torch.relu(self.norm(x)))

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.input = nn.Linear(8, 16)
        self.blocks = nn.Sequential(*[Block() for _ in range(4)])
        self.norm = nn.LayerNorm(16)
        self.head = nn.Linear(16, 4)

    def forward(self, x):
        return self.head(self.norm(self.blocks(self.input(x))))

def build_model():
    return Net()
''')

    def check(self, ctx: RuleContext):
        trace = ctx.trace
        for chain in residual_chains(trace):
            if len(chain.adds) < MIN_SUBLAYERS or not _is_pre_ln(trace, chain):
                continue
            reached = list(forward_reaches(trace, chain.end, lambda n: is_norm(n) or is_weighted(n) or n.residual))
            heads = [node for node in reached if is_weighted(node)]
            if not heads or any(is_norm(node) for node in reached):
                continue
            yield self._finding(ctx, chain, heads[0])

    def _finding(self, ctx: RuleContext, chain: ResidualChain, head):
        rms = chain.end.stats.rms if chain.end.stats is not None else float("nan")
        growth = rms / chain.start.stats.rms if chain.start.stats.rms > 0 else float("nan")
        width = chain.end.output_shape[-1] if chain.end.output_shape else None
        encoder_path = enclosing(ctx.model, chain.end.path, ("TransformerEncoder",))
        if encoder_path is not None:
            module = sited_path(ctx.spec, encoder_path)
            fix = Fix("give the encoder a final LayerNorm", encoder_call(ctx.module_at(encoder_path), norm_first=True))
        else:
            module = head.path
            head_expr = ctx.spec.expression(head.path)
            fix = Fix(f"normalize the residual stream before {head_expr}: {head_expr}(self.final_norm(x))",
                      f"self.final_norm = nn.LayerNorm({width})")
        return self.finding(
            ctx,
            f"Pre-LN stack of {len(chain.adds)} residual sublayers feeds {head.path} without a final norm: "
            f"the stream reaches it at RMS {rms:.3g}, {growth:.3g}x its RMS entering the first block "
            f"(a LayerNorm'd input has RMS ~1)",
            module=module,
            fix=fix,
            weight=_weight(rms),
        )


def _is_pre_ln(trace, chain: ResidualChain) -> bool:
    """Every add's branch starts with a LayerNorm of the add's skip operand: x + f(LN(x))."""
    def normalizes_its_input(add) -> bool:
        skip_value = stream_source(trace, skip_and_branch(trace, add)[0])
        return any(is_layer_norm(node) and node.producers and stream_source(trace, node.producers[0]) is skip_value
                   for node in branch_nodes(trace, add))

    return all(normalizes_its_input(add) for add in chain.adds)


def _weight(rms: float) -> float:
    """Small when the stream is still near unit scale; grows with its mean square."""
    if not math.isfinite(rms):
        return 0.5
    return min(0.5, 0.1 + 0.2 * math.log10(max(rms * rms, 1.0)))
