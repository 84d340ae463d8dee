"""GL204 embedding-scale-too-large."""

from __future__ import annotations

import math

from gradlint.rule import Rule, RuleContext, Fix, Severity, SignalFlow, Stage, is_normalization

# RMS of the embedding vectors as the next layer reads them (after any constant scaling such
# as `* sqrt(d_model)`). nn.Embedding's default N(0, 1) gives 1; T-Fixup (Huang et al. 2020)
# and fairseq initialize at d**-0.5 so that the sqrt(d) scaling brings them back to 1.
# Flag well above 1 (warning), and at AUTOTRAINER's "abnormal" activation magnitude (error).
RMS_WARNING = 3.0
RMS_ERROR = 10.0
EMBEDDINGS = {"Embedding", "EmbeddingBag"}
# What an embedding output goes through before a layer reads it: constant scaling, adding
# positional embeddings, dropout and reshapes.
_SCALING = {"mul", "__mul__", "__rmul__", "mul_", "multiply"}
_COMBINING = {"add", "__add__", "__radd__", "add_", "__iadd__"}
_RESHAPING = {"view", "reshape", "transpose", "permute", "contiguous", "unsqueeze", "squeeze", "dropout", "Dropout",
              "__getitem__", "expand"}


class EmbeddingScaleTooLarge(Rule):
    """
    ## What it does
    Flags embedding tables whose vectors reach the next layer with an RMS far above 1 (over
    3), after any constant scaling such as `* math.sqrt(d_model)`, when no normalization
    layer reads them first.

    ## Why is this bad?
    The first layer after the embedding multiplies whatever scale it gets: attention logits
    grow with the square of it and saturate the softmax, tanh/LSTM gates saturate, and in a
    plain stack the excess scale travels all the way to the logits. `nn.Embedding` starts at
    N(0, 1), which is fine on its own or under a LayerNorm, but the Transformer convention of
    multiplying by sqrt(d_model) assumes vectors initialized at d_model**-0.5; with the
    default init the entries have RMS 22 at d_model = 512.

    ## Example
    ```python
    self.embed = nn.Embedding(vocab, 512)
    ...
    x = self.embed(tokens) * math.sqrt(512)   # RMS 22.6
    ```

    ## Use instead
    ```python
    nn.init.normal_(self.embed.weight, std=512 ** -0.5)   # RMS 1 after the scaling
    ```

    ## References
    - Vaswani et al. 2017, Attention Is All You Need, arXiv:1706.03762 (section 3.4, the sqrt(d_model) scaling)
    - Huang, Perez, Ba & Volkovs 2020, Improving Transformer Optimization Through Better Initialization (T-Fixup), ICML
    - Zhang et al. 2021, AUTOTRAINER (mean |a| >= 10 as abnormal), ICSE
    - docs/theory.md, C4 (attention logit scale) and T3 (AUTOTRAINER's activation magnitude)
    """

    code = "GL204"
    name = "embedding-scale-too-large"
    family = "init"
    severity = Severity.WARNING
    stages = frozenset({Stage.TRACE})

    INVALID = ('''
import math
import torch
import torch.nn as nn

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(100, 64)  # expect: GL204
        self.rnn = nn.GRU(64, 64, batch_first=True)
        self.head = nn.Linear(64, 100)

    def forward(self, tokens):
        x = self.embed(tokens) * math.sqrt(64)
        return self.head(self.rnn(x)[0][:, -1])

def build_model():
    return Net()

def example_inputs():
    return (torch.randint(0, 100, (8, 12)),)
''',)
    VALID = ('''
import math
import torch
import torch.nn as nn

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(100, 64)
        self.rnn = nn.GRU(64, 64, batch_first=True)
        self.head = nn.Linear(64, 100)
        nn.init.normal_(self.embed.weight, std=64 ** -0.5)

    def forward(self, tokens):
        x = self.embed(tokens) * math.sqrt(64)
        return self.head(self.rnn(x)[0][:, -1])

def build_model():
    return Net()

def example_inputs():
    return (torch.randint(0, 100, (8, 12)),)
''', '''
import math
import torch
import torch.nn as nn

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(100, 64)
        self.norm = nn.LayerNorm(64)
        self.head = nn.Linear(64, 100)

    def forward(self, tokens):
        x = self.norm(self.embed(tokens) * math.sqrt(64))  # normalized before use
        return self.head(x[:, -1])

def build_model():
    return Net()

def example_inputs():
    return (torch.randint(0, 100, (8, 12)),)
''')

    def check(self, ctx: RuleContext):
        flow = ctx.signal_flow()
        for layer in ctx.trace.layers:
            if layer.name not in EMBEDDINGS or layer.stats is None or not layer.stats.finite:
                continue  # a lookup that returns NaN/Inf reads a table holding them: GL501 reports it
            reached, readers = _as_read(flow, layer)
            if any(is_normalization(reader.name) for reader in readers):
                continue
            rms = max(node.stats.rms for node in reached if node.stats is not None)
            if rms <= RMS_WARNING:
                continue
            yield self._finding(ctx, layer, rms)

    def _finding(self, ctx: RuleContext, layer, rms: float):
        table_rms = float(layer.module.weight.detach().float().pow(2).mean().sqrt())
        scaled = f" (table RMS {table_rms:.3g}, scaled after lookup)" if rms > 1.5 * table_rms else ""
        expression = ctx.spec.expression(layer.path)
        target_std = table_rms / rms
        return self.finding(
            ctx,
            f"{layer.path} hands the next layer vectors of RMS {rms:.3g}{scaled} with no normalization first: "
            f"that layer's pre-activations, attention logits or gates start {rms:.3g}x too large",
            module=layer.path,
            fix=Fix("initialize the table so that the vectors the next layer reads have RMS ~1",
                    f"nn.init.normal_({expression}.weight, std={target_std:.3g})"),
            severity=Severity.ERROR if rms > RMS_ERROR else Severity.WARNING,
            weight=min(0.6, 0.2 + 0.3 * math.log10(rms / RMS_WARNING) / math.log10(RMS_ERROR / RMS_WARNING)),
        )


def _as_read(flow: SignalFlow, embedding) -> tuple[list, list]:
    """(nodes the embedding output passes through before a layer reads it, those readers):
    scaling, positional adds and reshapes are followed, anything else reads it."""
    reached, readers, frontier = [embedding], [], list(flow.consumers(embedding))
    while frontier:
        node = frontier.pop(0)
        follows = node.name in _SCALING or node.name in _RESHAPING or (node.name in _COMBINING and not node.residual)
        if follows and node not in reached:
            reached.append(node)
            frontier.extend(flow.consumers(node))
        elif not follows:
            readers.append(node)
    return reached, readers
