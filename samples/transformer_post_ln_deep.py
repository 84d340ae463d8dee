"""A 12-layer Post-LN Transformer encoder, Adam at lr 5e-3 and no warmup: it never starts learning.

Problem: a Post-LN layer computes x = LN(x + F(x)), so the LayerNorm sits on the main path and
every gradient to earlier layers passes through all the LayerNorms after it. At init the gradient
of the parameters near the output is ~sqrt(L) times larger than in a Pre-LN stack, and Adam's
first full-size steps (no warmup) make large, badly scaled updates; deep Post-LN stacks then
diverge or get stuck, which is why they need a learning-rate warmup (Xiong et al. 2020, "On Layer
Normalization in the Transformer Architecture"; Liu et al. 2020, "Understanding the Difficulty
of Training Transformers").
Twin: transformer_pre_ln.py sets norm_first=True (x = x + F(LN(x)): a clean identity path), adds
a final LayerNorm and uses lr 1e-3.

Measured (torch 2.13 CPU, method in samples/README.md): gradient norm of the last layer's
parameters at init 0.29 vs 0.081 for the Pre-LN twin (3.6x, ~sqrt(12)). Trained 300 steps on
fresh random batches of the reversal task the loss stays at ln(32) = 3.47, chance level (Pre-LN
twin at lr 1e-3: 3.51 -> 1.63; Pre-LN at 5e-3: -> 0.007; this Post-LN at 1e-3: only 3.34).
"""

import torch
import torch.nn as nn

LAYERS, D_MODEL, HEADS, VOCAB, BATCH, SEQ_LEN = 12, 32, 4, 32, 8, 16


class PostLNEncoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(VOCAB, D_MODEL)
        self.pos = nn.Embedding(SEQ_LEN, D_MODEL)  # learned positions: the task depends on them
        layer = nn.TransformerEncoderLayer(D_MODEL, HEADS, dim_feedforward=4 * D_MODEL, dropout=0.0,
                                           batch_first=True, norm_first=False)  # Post-LN
        self.encoder = nn.TransformerEncoder(layer, num_layers=LAYERS, enable_nested_tensor=False)
        self.head = nn.Linear(D_MODEL, VOCAB)

    def forward(self, tokens):
        x = self.embed(tokens) + self.pos(torch.arange(tokens.shape[1]))
        return self.head(self.encoder(x))  # (batch, seq, vocab)


def build_model():
    return PostLNEncoder()


def example_inputs():
    g = torch.Generator().manual_seed(0)
    return (torch.randint(0, VOCAB, (BATCH, SEQ_LEN), generator=g),)


def example_targets():
    # Task: output the input sequence reversed (needs attention across positions).
    return example_inputs()[0].flip(1)


def configure_optimizers(model):
    return torch.optim.Adam(model.parameters(), lr=5e-3)  # no warmup schedule
