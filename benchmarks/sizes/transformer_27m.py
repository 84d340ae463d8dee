"""A mid-sized model for the cost of a default run: a 6-layer Pre-LN Transformer LM (d_model 512,
vocabulary 8000, 27M parameters) on 8 x 64 tokens, AdamW lr 3e-4. Not a corpus case (no labels):
it measures what GL604's FLOP budget saves on a model larger than the corpus's (BENCHMARKS.md).
"""

import torch
import torch.nn as nn


class LM(nn.Module):
    def __init__(self, vocab=8000, d=512, layers=6):
        super().__init__()
        self.embed = nn.Embedding(vocab, d)
        layer = nn.TransformerEncoderLayer(d, 8, 4 * d, dropout=0.0, batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.head = nn.Linear(d, vocab)

    def forward(self, tokens):
        return self.head(self.encoder(self.embed(tokens)))


def build_model():
    return LM()


def example_inputs():
    return (torch.randint(0, 8000, (8, 64), generator=torch.Generator().manual_seed(0)),)


def example_targets():
    return torch.randint(0, 8000, (8, 64), generator=torch.Generator().manual_seed(1))


def loss_fn(output, targets):
    return nn.functional.cross_entropy(output.flatten(0, 1), targets.flatten())


def configure_optimizers(model):
    return torch.optim.AdamW(model.parameters(), lr=3e-4)
