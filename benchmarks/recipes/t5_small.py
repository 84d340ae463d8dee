"""T5-small, an encoder-decoder, pre-trained on a denoising objective with Adafactor at lr 0.01.

Architecture: Raffel et al. 2019 (arXiv:1910.10683), built by `transformers` from a T5Config with
random init: 6 encoder and 6 decoder Pre-LN layers (RMS LayerNorm without bias, relative position
buckets), width 512, 8 heads of 64, FFN 2048 with ReLU, dropout 0.1, vocabulary 32128, the
output layer tied to the embedding.

Recipe: the paper's pre-training setup: Adafactor with an inverse-square-root schedule
1/sqrt(max(n, 10^4)), i.e. lr 0.01 for the first 10^4 steps, no clipping and no weight decay.
`torch.optim.Adafactor(lr=1e-2)` is that schedule: its relative step is min(lr, 1/sqrt(step)).
The objective here is simpler than span corruption: 15% of the input tokens are replaced by a
sentinel and the decoder reproduces the original sequence.

`SIZE`: `full` (T5-small), `train` (width 128, for benchmarks/train_recipes.py), `small` (width 32,
for the test). gradlint never reads `make_batch` or `TRAIN_STEPS`.
"""

import torch
import torch.nn.functional as F
from transformers import T5Config, T5ForConditionalGeneration

SIZE = "full"
SIZES = {
    "full": {"width": 512, "ff": 2048, "layers": 6, "heads": 8, "vocab": 32128, "batch": 4, "length": 64},
    "train": {"width": 128, "ff": 512, "layers": 6, "heads": 4, "vocab": 1000, "batch": 16, "length": 32},
    "small": {"width": 32, "ff": 64, "layers": 6, "heads": 2, "vocab": 100, "batch": 8, "length": 16},
}
TRAIN_STEPS = 200
PAD, SENTINEL, SPECIAL = 0, 2, 3  # the decoder starts from PAD, as in T5


def build_model():
    size = SIZES[SIZE]
    config = T5Config(vocab_size=size["vocab"], d_model=size["width"], d_kv=size["width"] // size["heads"],
                      d_ff=size["ff"], num_layers=size["layers"], num_heads=size["heads"], dropout_rate=0.1,
                      decoder_start_token_id=PAD, pad_token_id=PAD, eos_token_id=1, use_cache=False)
    return T5ForConditionalGeneration(config)


def _frequencies(vocab):
    """Zipf's law over the ordinary tokens, as in text: the token of rank r has weight 1/r."""
    weights = torch.zeros(vocab)
    weights[SPECIAL:] = 1.0 / torch.arange(1, vocab - SPECIAL + 1, dtype=torch.float32)
    return weights


def _successors(vocab):
    """A fixed Markov chain: each token has 4 possible successors, drawn by frequency."""
    draws = torch.multinomial(_frequencies(vocab), vocab * 4, replacement=True,
                              generator=torch.Generator().manual_seed(1910))
    return draws.view(vocab, 4)


def make_batch(step):
    """(input_ids, attention_mask, decoder_input_ids) and the original tokens as targets."""
    size = SIZES[SIZE]
    g = torch.Generator().manual_seed(step)
    table = _successors(size["vocab"])
    tokens = torch.empty(size["batch"], size["length"], dtype=torch.long)
    tokens[:, 0] = torch.multinomial(_frequencies(size["vocab"]), size["batch"], replacement=True, generator=g)
    choices = torch.randint(0, 4, (size["batch"], size["length"]), generator=g)
    for t in range(1, size["length"]):
        tokens[:, t] = table[tokens[:, t - 1], choices[:, t]]
    corrupted = torch.where(torch.rand(tokens.shape, generator=g) < 0.15, torch.full_like(tokens, SENTINEL), tokens)
    decoder_inputs = torch.cat([torch.full_like(tokens[:, :1], PAD), tokens[:, :-1]], dim=1)
    return (corrupted, torch.ones_like(tokens), decoder_inputs), tokens


def example_inputs():
    return make_batch(0)[0]


def example_targets():
    return make_batch(0)[1]


def loss_fn(output, targets):
    logits = output.logits
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))


def configure_optimizers(model):
    return torch.optim.Adafactor(model.parameters(), lr=1e-2)
