"""A 2-layer LSTM word language model trained with plain SGD at lr 20, gradients clipped at 0.25.

Architecture and recipe: the PyTorch word-language-model example's defaults (after Zaremba et al.
2014, arXiv:1409.2329): an embedding of 200, two LSTM layers of 200 with dropout 0.2 between
layers and around them, and a linear decoder to the vocabulary (Wikitext-2's 33278 words); the
embedding and decoder weights start uniform in [-0.1, 0.1], the decoder bias at 0. Trained with
plain SGD at lr 20 (divided by 4 when validation stalls), global gradient-norm clipping at 0.25,
batches of 20 sequences of 35 tokens.

Written here from that description. `SIZE`: `full` (the example's model on Wikitext-2's
vocabulary), `train` (the same layers on a 10000-word vocabulary, Penn Treebank's size),
`small` (for the test). gradlint never reads `make_batch` or `TRAIN_STEPS`.
"""

import torch
import torch.nn.functional as F
from torch import nn

SIZE = "full"
SIZES = {
    "full": {"vocab": 33278, "width": 200, "batch": 20, "length": 35},
    "train": {"vocab": 10000, "width": 200, "batch": 20, "length": 35},
    "small": {"vocab": 64, "width": 16, "batch": 8, "length": 16},
}
TRAIN_STEPS = 200
gradient_clip_val = 0.25


class LSTMLanguageModel(nn.Module):
    def __init__(self, vocab, width, layers=2, dropout=0.2):
        super().__init__()
        self.drop = nn.Dropout(dropout)
        self.encoder = nn.Embedding(vocab, width)
        self.rnn = nn.LSTM(width, width, layers, dropout=dropout, batch_first=True)
        self.decoder = nn.Linear(width, vocab)
        nn.init.uniform_(self.encoder.weight, -0.1, 0.1)
        nn.init.uniform_(self.decoder.weight, -0.1, 0.1)
        nn.init.zeros_(self.decoder.bias)

    def forward(self, tokens):
        output, _ = self.rnn(self.drop(self.encoder(tokens)))
        return self.decoder(self.drop(output))


def build_model():
    size = SIZES[SIZE]
    return LSTMLanguageModel(size["vocab"], size["width"])


def _frequencies(vocab):
    """Zipf's law, as in text: the token of rank r has weight 1/r."""
    return 1.0 / torch.arange(1, vocab + 1, dtype=torch.float32)


def _successors(vocab):
    """A fixed Markov chain: each token has 4 possible successors, drawn by frequency."""
    draws = torch.multinomial(_frequencies(vocab), vocab * 4, replacement=True,
                              generator=torch.Generator().manual_seed(2014))
    return draws.view(vocab, 4)


def make_batch(step):
    size = SIZES[SIZE]
    g = torch.Generator().manual_seed(step)
    table = _successors(size["vocab"])
    tokens = torch.empty(size["batch"], size["length"] + 1, dtype=torch.long)
    tokens[:, 0] = torch.multinomial(_frequencies(size["vocab"]), size["batch"], replacement=True, generator=g)
    choices = torch.randint(0, 4, (size["batch"], size["length"]), generator=g)
    for t in range(size["length"]):
        tokens[:, t + 1] = table[tokens[:, t], choices[:, t]]
    return (tokens[:, :-1],), tokens[:, 1:]


def example_inputs():
    return make_batch(0)[0]


def example_targets():
    return make_batch(0)[1]


def loss_fn(output, targets):
    return F.cross_entropy(output.reshape(-1, output.shape[-1]), targets.reshape(-1))


def configure_optimizers(model):
    return torch.optim.SGD(model.parameters(), lr=20.0)
