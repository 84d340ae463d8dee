"""A nanoGPT-style GPT (6 layers) trained with AdamW at lr 6e-4 after a linear warmup, clipped at 1.0.

Architecture: GPT-2 (Radford et al. 2019) as nanoGPT builds it: token and position embeddings,
Pre-LN blocks x = x + attn(LN(x)), x = x + mlp(LN(x)) with causal multi-head attention and a
4x GELU MLP, a final LayerNorm, and an output layer tied to the token embedding. Every linear
and embedding weight starts at N(0, 0.02) with zero biases, except the two output projections of
each block (`c_proj`), which GPT-2 scales by 1/sqrt(2 * n_layer): 2 * n_layer residual branches
add to the stream, and the scaling keeps its variance from growing with depth.

Recipe: nanoGPT's GPT-2 training defaults: AdamW lr 6e-4, betas (0.9, 0.95), weight decay 0.1 on
matrices and embeddings only, a linear warmup over 2000 iterations then cosine decay to 6e-5 at
600000, gradient clipping at 1.0 (the lr is set per step: Lightning's interval "step").

Written here from those descriptions. `SIZE`: `full` (6 layers at GPT-2's width and vocabulary),
`train` (narrower, a 100-step warmup, nanoGPT's own value for its character-level config, so that
a CPU run reaches the peak), `small` (for the test). gradlint never reads `make_batch` or
`TRAIN_STEPS`.
"""

import math

import torch
import torch.nn.functional as F
from torch import nn

SIZE = "full"
SIZES = {
    "full": {"layers": 6, "heads": 12, "width": 768, "vocab": 50304, "block": 1024, "batch": 4, "length": 128,
             "warmup": 2000},
    "train": {"layers": 6, "heads": 6, "width": 192, "vocab": 512, "block": 64, "batch": 8, "length": 64,
              "warmup": 100},
    "small": {"layers": 6, "heads": 2, "width": 32, "vocab": 64, "block": 16, "batch": 8, "length": 16,
              "warmup": 100},
}
TRAIN_STEPS = 200
LR, MIN_LR, DECAY_STEPS = 6e-4, 6e-5, 600_000
gradient_clip_val = 1.0


class CausalSelfAttention(nn.Module):
    def __init__(self, width, heads):
        super().__init__()
        self.heads = heads
        self.c_attn = nn.Linear(width, 3 * width)
        self.c_proj = nn.Linear(width, width)

    def forward(self, x):
        batch, length, width = x.shape
        q, k, v = self.c_attn(x).split(width, dim=2)
        q, k, v = (t.view(batch, length, self.heads, width // self.heads).transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.c_proj(y.transpose(1, 2).reshape(batch, length, width))


class MLP(nn.Module):
    def __init__(self, width):
        super().__init__()
        self.c_fc = nn.Linear(width, 4 * width)
        self.c_proj = nn.Linear(4 * width, width)

    def forward(self, x):
        return self.c_proj(F.gelu(self.c_fc(x)))


class Block(nn.Module):
    def __init__(self, width, heads):
        super().__init__()
        self.ln_1 = nn.LayerNorm(width)
        self.attn = CausalSelfAttention(width, heads)
        self.ln_2 = nn.LayerNorm(width)
        self.mlp = MLP(width)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    def __init__(self, layers, heads, width, vocab, block):
        super().__init__()
        self.wte = nn.Embedding(vocab, width)
        self.wpe = nn.Embedding(block, width)
        self.blocks = nn.ModuleList([Block(width, heads) for _ in range(layers)])
        self.ln_f = nn.LayerNorm(width)
        self.lm_head = nn.Linear(width, vocab, bias=False)
        self.lm_head.weight = self.wte.weight  # tied
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.normal_(module.weight, 0.0, 0.02)
            if isinstance(module, nn.Linear) and module.bias is not None:
                nn.init.zeros_(module.bias)
        for name, parameter in self.named_parameters():
            if name.endswith("c_proj.weight"):
                nn.init.normal_(parameter, 0.0, 0.02 / math.sqrt(2 * layers))

    def forward(self, idx):
        positions = torch.arange(idx.shape[1], device=idx.device)
        x = self.wte(idx) + self.wpe(positions)
        for block in self.blocks:
            x = block(x)
        return self.lm_head(self.ln_f(x))


def build_model():
    size = SIZES[SIZE]
    return GPT(size["layers"], size["heads"], size["width"], size["vocab"], size["block"])


def _frequencies(vocab):
    """Zipf's law, as in text: the token of rank r has weight 1/r."""
    return 1.0 / torch.arange(1, vocab + 1, dtype=torch.float32)


def _successors(vocab):
    """A fixed Markov chain: each token has 4 possible successors, drawn by frequency."""
    draws = torch.multinomial(_frequencies(vocab), vocab * 4, replacement=True,
                              generator=torch.Generator().manual_seed(2019))
    return draws.view(vocab, 4)


def make_batch(step):
    """Token sequences from the chain; the targets are the inputs shifted by one token."""
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


def _lr_factor(step):
    """nanoGPT's get_lr, as a factor of the peak lr: linear warmup, then cosine decay to MIN_LR."""
    warmup = SIZES[SIZE]["warmup"]
    if step < warmup:
        return (step + 1) / (warmup + 1)
    progress = min(1.0, (step - warmup) / (DECAY_STEPS - warmup))
    return (MIN_LR + 0.5 * (1.0 + math.cos(math.pi * progress)) * (LR - MIN_LR)) / LR


def configure_optimizers(model):
    parameters = [p for p in model.parameters() if p.requires_grad]
    groups = [{"params": [p for p in parameters if p.dim() >= 2], "weight_decay": 0.1},
              {"params": [p for p in parameters if p.dim() < 2], "weight_decay": 0.0}]
    optimizer = torch.optim.AdamW(groups, lr=LR, betas=(0.9, 0.95))
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, _lr_factor)
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}
