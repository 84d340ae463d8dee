"""Hand-written attention without the 1/sqrt(d) scale and with a torch.log(torch.softmax(...)) loss.

Problem 1: q . k summed over d = 64 coordinates has a standard deviation sqrt(d) = 8 times that of
one coordinate product. The softmax over such scores is nearly one-hot: its Jacobian
diag(p) - p p^T is ~0 for the saturated rows and large for the near-ties, so the attention
gradients are all-or-nothing and training pushes the softmax further into saturation ("for large
values of d_k, the dot products grow large in magnitude, pushing the softmax function into
regions where it has extremely small gradients", Vaswani et al. 2017, "Attention Is All You
Need", section 3.2.1).
Problem 2: loss_fn takes torch.log of a softmax. Once a logit trails the largest by more than
~104 (float32), softmax underflows to 0 and log gives -inf: the loss becomes inf and the
gradients NaN, where F.log_softmax (log-sum-exp) stays finite.
Twin: attention_scaled.py divides the scores by sqrt(d) and uses F.log_softmax.

Measured (torch 2.13 CPU, method in samples/README.md): score std 16.7 at init (twin 2.1); 59% of
the attention rows put > 0.99 of their weight on one key (twin 0.8%); with the output weights
scaled by 30 (logit gaps > 104, as a confident model reaches) the loss is inf and the gradients
NaN (twin: loss 26.8, finite). 50 AdamW(lr=1e-3) steps: loss 3.05 -> 1.40 (twin 2.87 -> 0.99).
"""

import torch
import torch.nn as nn

D, VOCAB, BATCH, SEQ_LEN = 64, 16, 8, 16


class SingleHeadAttention(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(VOCAB, D)  # N(0, 1) entries
        self.pos = nn.Embedding(SEQ_LEN, D)
        self.q = nn.Linear(D, D)
        self.k = nn.Linear(D, D)
        self.v = nn.Linear(D, D)
        self.out = nn.Linear(D, VOCAB)
        self._init_weights()

    def _init_weights(self):
        for proj in (self.q, self.k, self.v):
            nn.init.xavier_normal_(proj.weight)  # keeps q, k, v at unit variance per coordinate
            nn.init.zeros_(proj.bias)

    def forward(self, tokens):
        x = self.embed(tokens) + self.pos(torch.arange(tokens.shape[1]))
        q, k, v = self.q(x), self.k(x), self.v(x)
        scores = q @ k.transpose(-2, -1)  # the bug: no / sqrt(D); std ~ sqrt(D) = 8
        return self.out(torch.softmax(scores, dim=-1) @ v)  # (batch, seq, vocab)


def build_model():
    return SingleHeadAttention()


def example_inputs():
    g = torch.Generator().manual_seed(0)
    return (torch.randint(0, VOCAB, (BATCH, SEQ_LEN), generator=g),)


def example_targets():
    return example_inputs()[0].flip(1)  # task: reverse the sequence (needs attention across positions)


def loss_fn(output, targets):
    log_probs = torch.log(torch.softmax(output, dim=-1))  # the bug: -inf once softmax underflows to 0
    return -log_probs.gather(-1, targets.unsqueeze(-1)).mean()
