"""GL802 attention-logits-too-large."""

from __future__ import annotations

from gradlint.rule import Rule, RuleContext, Fix, MAX_LOGIT, MIN_ENTROPY, Severity, Stage

# Weight by how far the logits are past the mark: 0.25 at max |logit| 10, 0.6 at 40.
WEIGHT_LOW, WEIGHT_HIGH, LOGIT_HIGH = 0.25, 0.6, 40.0


class AttentionLogitsTooLarge(Rule):
    """
    ## What it does
    Measures hand-written attention at initialization, when the scores are scaled by
    1/sqrt(d) (or the head is too small for GL801): flags max |logit| > 10 or a normalized
    attention entropy below 0.3 x ln T at the softmax, from the recorded forward pass.

    ## Why is this bad?
    Large attention logits make the softmax near one-hot: the entropy collapses, gradients
    flow through a few keys only, and logit growth from there is what diverged ViT-22B and
    the small-scale proxies of Wortsman et al. (2023). Already at init it means q and k are
    too large: inputs without normalization, large projection init, or a temperature below 1.

    ## Example
    ```python
    q, k = self.q(x), self.k(x)               # x has RMS 8: no LayerNorm before attention
    attn = (q @ k.transpose(-2, -1) / d ** 0.5).softmax(-1)
    ```

    ## Use instead
    ```python
    q, k = self.q_norm(self.q(x)), self.k_norm(self.k(x))   # qk-layernorm
    attn = (q @ k.transpose(-2, -1) / d ** 0.5).softmax(-1)
    ```

    ## References
    - Dehghani et al. 2023, Scaling Vision Transformers to 22 Billion Parameters, arXiv:2302.05442 (qk-layernorm)
    - Zhai et al. 2023, Stabilizing Transformer Training by Preventing Attention Entropy Collapse, arXiv:2303.06296
    - Wortsman et al. 2023, Small-scale proxies for large-scale Transformer training instabilities, arXiv:2309.14322
    - docs/theory.md, C4 (attention logit scale and entropy collapse) and G7 (measured at init)
    """

    code = "GL802"
    name = "attention-logits-too-large"
    family = "attention"
    severity = Severity.WARNING
    stages = frozenset({Stage.TRACE})

    INVALID = ('''
import torch
import torch.nn as nn

class SelfAttention(nn.Module):
    def __init__(self, dim=64):
        super().__init__()
        self.q = nn.Linear(dim, dim)
        self.k = nn.Linear(dim, dim)

    def forward(self, x):
        q, k = self.q(x), self.k(x)
        scores = q @ k.transpose(-2, -1) / 8.0  # expect: GL802
        return scores.softmax(dim=-1) @ x

def build_model():
    return SelfAttention()

def example_inputs():
    return (8 * torch.randn(4, 32, 64),)
''',)
    VALID = ('''
import torch
import torch.nn as nn

class SelfAttention(nn.Module):
    def __init__(self, dim=64):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.q = nn.Linear(dim, dim)
        self.k = nn.Linear(dim, dim)

    def forward(self, x):
        h = self.norm(x)
        q, k = self.q(h), self.k(h)
        scores = q @ k.transpose(-2, -1) / 8.0
        return scores.softmax(dim=-1) @ x

def build_model():
    return SelfAttention()

def example_inputs():
    return (8 * torch.randn(4, 32, 64),)
''',)

    def check(self, ctx: RuleContext):
        for scores in ctx.attention_scores():
            if scores.missing_scale or not scores.collapsed:
                continue  # a missing scale is GL801's finding: that is the cause to fix
            yield self.finding(
                ctx,
                f"attention logits are already large at init: {scores.describe_logits()} "
                f"(collapse: max |logit| > {MAX_LOGIT:g} or entropy < {MIN_ENTROPY:g} x ln T); the softmax "
                "is near one-hot and logit growth from here diverges",
                location=scores.matmul.location,
                module=scores.matmul.path,
                fix=Fix("normalize q and k before the product (qk-layernorm: nn.LayerNorm(head_dim) on each), or "
                        "normalize the attention input and shrink the q/k projection init",
                        "q, k = self.q_norm(q), self.k_norm(k)  # self.q_norm = self.k_norm = nn.LayerNorm(head_dim)"),
                severity=Severity.ERROR if (scores.max_logit or 0) > 2 * MAX_LOGIT else Severity.WARNING,
                weight=_weight(scores.max_logit),
            )


def _weight(max_logit: float | None) -> float:
    if max_logit is None:  # flagged by entropy alone
        return WEIGHT_LOW
    share = (max_logit - MAX_LOGIT) / (LOGIT_HIGH - MAX_LOGIT)
    return WEIGHT_LOW + (WEIGHT_HIGH - WEIGHT_LOW) * min(1.0, max(0.0, share))
