"""BERT-base masked-language-model pre-training: AdamW at lr 1e-4 after a 10,000-step warmup, clipped at 1.0.

Architecture: Devlin et al. 2018 (arXiv:1810.04805), built by `transformers` from a BertConfig
with random init: 12 Post-LN layers (x = LN(x + attention(x)), x = LN(x + FFN(x))), width 768,
12 heads, FFN 3072, GELU, dropout 0.1, WordPiece vocabulary 30522, and the masked-LM head.

Recipe: the paper's pre-training setup: Adam with decoupled weight decay 0.01, lr 1e-4,
betas (0.9, 0.999), linear warmup over the first 10,000 steps then linear decay to 0 at 1M, global
gradient clipping at 1.0 (as in the released training code); 15% of the tokens are selected for
prediction, 80% of those replaced by [MASK], 10% by a random token, 10% kept.

`SIZE`: `full` (BERT-base), `train` (12 layers of width 128 and a 20-step warmup, so that a
200-step CPU run reaches the peak lr), `small` (width 32, for the test). gradlint never reads
`make_batch` or `TRAIN_STEPS`.
"""

import torch
import torch.nn.functional as F
from transformers import BertConfig, BertForMaskedLM

SIZE = "full"
SIZES = {
    "full": {"hidden": 768, "layers": 12, "heads": 12, "vocab": 30522, "batch": 4, "length": 128, "warmup": 10_000},
    "train": {"hidden": 128, "layers": 12, "heads": 4, "vocab": 1000, "batch": 8, "length": 64, "warmup": 20},
    "small": {"hidden": 32, "layers": 12, "heads": 2, "vocab": 100, "batch": 8, "length": 16, "warmup": 20},
}
TRAIN_STEPS = 200
TOTAL_STEPS = 1_000_000
SPECIAL = 5  # ids 0-4 stand for [PAD], [UNK], [CLS], [SEP], [MASK]
MASK_ID = 4
gradient_clip_val = 1.0


def build_model():
    size = SIZES[SIZE]
    config = BertConfig(vocab_size=size["vocab"], hidden_size=size["hidden"], num_hidden_layers=size["layers"],
                        num_attention_heads=size["heads"], intermediate_size=4 * size["hidden"],
                        max_position_embeddings=512)
    return BertForMaskedLM(config)


def _frequencies(vocab):
    """Zipf's law over the ordinary tokens, as in text: the token of rank r has weight 1/r."""
    weights = torch.zeros(vocab)
    weights[SPECIAL:] = 1.0 / torch.arange(1, vocab - SPECIAL + 1, dtype=torch.float32)
    return weights


def _successors(vocab):
    """A fixed Markov chain over the ordinary tokens: each has 4 possible successors, drawn by frequency."""
    draws = torch.multinomial(_frequencies(vocab), vocab * 4, replacement=True,
                              generator=torch.Generator().manual_seed(1810))
    return draws.view(vocab, 4)


def make_batch(step):
    """Token sequences from the chain, masked as in BERT; targets are -100 except where selected."""
    size = SIZES[SIZE]
    g = torch.Generator().manual_seed(step)
    table = _successors(size["vocab"])
    tokens = torch.empty(size["batch"], size["length"], dtype=torch.long)
    tokens[:, 0] = torch.multinomial(_frequencies(size["vocab"]), size["batch"], replacement=True, generator=g)
    choices = torch.randint(0, 4, (size["batch"], size["length"]), generator=g)
    for t in range(1, size["length"]):
        tokens[:, t] = table[tokens[:, t - 1], choices[:, t]]
    selected = torch.rand(tokens.shape, generator=g) < 0.15
    roll = torch.rand(tokens.shape, generator=g)
    inputs = tokens.clone()
    inputs[selected & (roll < 0.8)] = MASK_ID
    randomized = selected & (roll >= 0.8) & (roll < 0.9)
    inputs[randomized] = torch.randint(SPECIAL, size["vocab"], tokens.shape, generator=g)[randomized]
    targets = torch.where(selected, tokens, torch.full_like(tokens, -100))
    return (inputs,), targets


def example_inputs():
    return make_batch(0)[0]


def example_targets():
    return make_batch(0)[1]


def loss_fn(output, targets):
    logits = output.logits
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=-100)


def _lr_factor(step):
    warmup = SIZES[SIZE]["warmup"]
    if step < warmup:
        return step / warmup
    return max(0.0, (TOTAL_STEPS - step) / (TOTAL_STEPS - warmup))


def configure_optimizers(model):
    no_decay = [p for name, p in model.named_parameters() if name.endswith("bias") or "LayerNorm" in name]
    decay = [p for p in model.parameters() if all(p is not q for q in no_decay)]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01},
                                   {"params": no_decay, "weight_decay": 0.0}], lr=1e-4, betas=(0.9, 0.999),
                                  eps=1e-6)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, _lr_factor)
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}
