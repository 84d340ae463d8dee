"""GL801 attention-missing-scale."""

from __future__ import annotations

import math

from gradlint.rule import Rule, RuleContext, Fix, MAX_LOGIT, MIN_HEAD_DIM, Severity, Stage, scores_fix_code

# The weight grows with the logit size reached at init: 0.2 at |logit| 5 (a scaled head's
# typical maximum), 0.6 at 25 (the unscaled d = 64 head of docs/theory.md G7).
WEIGHT_LOW, WEIGHT_HIGH, LOGIT_LOW, LOGIT_HIGH = 0.2, 0.6, 5.0, 25.0


class AttentionMissingScale(Rule):
    """
    ## What it does
    Finds hand-written attention (a softmax over `q @ k^T`, `bmm` or `einsum` scores) whose
    logits reach the softmax without the 1/sqrt(d) scaling, by measuring the factor every
    multiplication or division on the way applies (on the scores, or on q and k before the
    product). Reports the logit size at init: max |logit| and the attention entropy.

    ## Why is this bad?
    q . k sums d products, so unscaled logits have standard deviation ~sqrt(d) times the
    scaled ones: 8x at d = 64. The softmax saturates to near one-hot rows, its gradient
    vanishes for most keys and explodes for the few that win, and attention-logit growth is
    a known cause of training divergence (Vaswani et al. 2017; Dehghani et al. 2023). Measured
    at d = 64, T = 128: logit std 8.2, entropy 0.12 x ln T, against 1.0 and 0.9 x ln T scaled.

    ## Example
    ```python
    scores = q @ k.transpose(-2, -1)
    attn = scores.softmax(dim=-1)
    ```

    ## Use instead
    ```python
    scores = (q @ k.transpose(-2, -1)) * q.shape[-1] ** -0.5
    attn = scores.softmax(dim=-1)        # or F.scaled_dot_product_attention(q, k, v)
    ```

    ## References
    - Vaswani et al. 2017, Attention Is All You Need, arXiv:1706.03762 (section 3.2.1)
    - Dehghani et al. 2023, Scaling Vision Transformers to 22 Billion Parameters, arXiv:2302.05442
    - Zhai et al. 2023, Stabilizing Transformer Training by Preventing Attention Entropy Collapse, arXiv:2303.06296
    - docs/theory.md, C4 (attention logit scale) and G7 (measured at init)
    """

    code = "GL801"
    name = "attention-missing-scale"
    family = "attention"
    severity = Severity.INFO
    stages = frozenset({Stage.TRACE})

    INVALID = ('''
import torch
import torch.nn as nn

class SelfAttention(nn.Module):
    def __init__(self, dim=64):
        super().__init__()
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)

    def forward(self, x):
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        scores = q @ k.transpose(-2, -1)  # expect: GL801
        return self.out(scores.softmax(dim=-1) @ v)

def build_model():
    return SelfAttention()

def example_inputs():
    return (torch.randn(4, 32, 64),)
''',)
    VALID = ('''
import torch
import torch.nn as nn

class SelfAttention(nn.Module):
    def __init__(self, dim=64):
        super().__init__()
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)

    def forward(self, x):
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        scores = q @ k.transpose(-2, -1) / q.shape[-1] ** 0.5
        return self.out(scores.softmax(dim=-1) @ v)

def build_model():
    return SelfAttention()

def example_inputs():
    return (torch.randn(4, 32, 64),)
''',)

    def check(self, ctx: RuleContext):
        for scores in ctx.attention_scores():
            if not scores.missing_scale:
                continue
            d = scores.head_dim
            yield self.finding(
                ctx,
                f"attention scores over head dim {d} reach the softmax scaled by {scores.scale:.3g} instead of "
                f"1/sqrt({d}) = {scores.expected_scale:.3g}: {scores.describe_logits()} at init "
                f"(collapse: > {MAX_LOGIT:g} or entropy < 0.3 x ln T)",
                location=scores.matmul.location,
                module=scores.matmul.path,
                fix=Fix(f"multiply the scores by {d} ** -0.5 before the softmax, or call "
                        "F.scaled_dot_product_attention(q, k, v), which scales internally",
                        scores_fix_code(scores, f"{d} ** -0.5")),
                # An info even when the attention has collapsed: of the 5 corpus cases flagged (all
                # collapsed), 2 failed to train (BENCHMARKS.md, "Severities").
                weight=_weight(scores),
            )


def _weight(scores) -> float:
    if scores.max_logit is None:  # only the structure is known: the expected logit growth is sqrt(d)
        return WEIGHT_LOW + 0.1 * math.log2(scores.head_dim / MIN_HEAD_DIM)
    share = (scores.max_logit - LOGIT_LOW) / (LOGIT_HIGH - LOGIT_LOW)
    return WEIGHT_LOW + (WEIGHT_HIGH - WEIGHT_LOW) * min(1.0, max(0.0, share))
