"""Shared helpers for the corpus cases in benchmarks/cases/.

Only the shared parts live here: seeded synthetic data sets, and model builders that take the
varied factor as an argument (init scheme, depth, normalization, attention scale, mask value),
so a case shows its model and its one varied factor in a single call. Each case keeps its
optimizer, loss and data choice in its own file.

Every data helper takes `step` and returns `(inputs_tuple, targets)`, drawn from a
torch.Generator seeded by the step, so batches do not depend on (or disturb) the global
seed that truth.py sets per training run. Fixed "world" parameters (teacher networks,
Markov chains) use their own constant seeds, so every step and every case sees the same task.
"""

from __future__ import annotations

import functools
import math

import torch
from torch import nn

_WORLD_SEED = 20240601  # the fixed task (teacher weights, transition table)


def generator(step: int, salt: int = 0) -> torch.Generator:
    """A generator for the data of one step; `salt` separates independent streams."""
    return torch.Generator().manual_seed(1_000_003 * salt + step)


def _world(salt: int) -> torch.Generator:
    return torch.Generator().manual_seed(_WORLD_SEED + salt)


# --------------------------------------------------------------------------- vector tasks

@functools.lru_cache(maxsize=None)
def _teacher(in_dim: int, out_dim: int, hidden: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    g = _world(in_dim * 1000 + out_dim)
    w1 = torch.randn(in_dim, hidden, generator=g) / math.sqrt(in_dim)
    # Scaled so targets have roughly unit variance (tanh of a unit Gaussian has variance ~0.4).
    w2 = torch.randn(hidden, out_dim, generator=g) / math.sqrt(0.4 * hidden)
    return w1, w2


def teacher_regression(step: int, batch: int = 32, in_dim: int = 32, out_dim: int = 4,
                       target_scale: float = 1.0) -> tuple[tuple[torch.Tensor], torch.Tensor]:
    """x ~ N(0, I); y = target_scale * tanh(x W1) W2 for a fixed random teacher (y ~ unit variance)."""
    w1, w2 = _teacher(in_dim, out_dim)
    x = torch.randn(batch, in_dim, generator=generator(step))
    y = torch.tanh(x @ w1) @ w2
    return (x,), target_scale * y


def poisson_counts_batch(step: int, batch: int = 32, in_dim: int = 32,
                         log_rate_scale: float = 1.5) -> tuple[tuple[torch.Tensor], torch.Tensor]:
    """Count regression: y ~ Poisson(exp(log_rate_scale * teacher(x))), so counts reach the tens."""
    (x,), z = teacher_regression(step, batch, in_dim, out_dim=1)
    rate = torch.exp(log_rate_scale * z.squeeze(1))
    return (x,), torch.poisson(rate, generator=generator(step, salt=4))


def bag_of_words_batch(step: int, batch: int = 32, vocab: int = 64, topics: int = 4,
                       mean_length: float = 6.0) -> tuple[tuple[torch.Tensor], torch.Tensor]:
    """Word-count vectors (B, vocab) of short documents, labelled by the topic that wrote them.

    Document lengths are Poisson(mean_length), so now and then a document is empty (all zeros):
    at mean_length 6 about one batch in 13 holds one, but never step 0.
    """
    g = generator(step, salt=3)
    topic_words = torch.softmax(3.0 * torch.randn(topics, vocab, generator=_world(3)), dim=1)
    label = torch.randint(0, topics, (batch,), generator=g)
    lengths = torch.poisson(torch.full((batch,), mean_length), generator=g).long()
    counts = torch.zeros(batch, vocab)
    for i in range(batch):
        if lengths[i] > 0:
            words = torch.multinomial(topic_words[label[i]], int(lengths[i]), replacement=True, generator=g)
            counts[i].index_add_(0, words, torch.ones(len(words)))
    return (counts,), label


def multi_hot_tags_batch(step: int, batch: int = 32, tags: int = 32, classes: int = 4,
                         mean_tags: float = 6.0) -> tuple[tuple[torch.Tensor], torch.Tensor]:
    """Multi-hot tag vectors (B, tags), each tag present independently with a class-dependent
    probability (`mean_tags` per row on average), labelled by the class. Now and then a row has
    no tag at all (all zeros): about 0.4% of rows at the defaults.
    """
    g = generator(step, salt=5)
    weights = torch.sigmoid(2.0 * torch.randn(classes, tags, generator=_world(5)))
    probs = (weights * (mean_tags / weights.sum(1, keepdim=True))).clamp(max=0.95)
    label = torch.randint(0, classes, (batch,), generator=g)
    present = torch.rand(batch, tags, generator=g) < probs[label]
    return (present.float(),), label


@functools.lru_cache(maxsize=None)
def _digits() -> tuple[torch.Tensor, torch.Tensor]:
    from sklearn.datasets import load_digits  # local data shipped with scikit-learn

    data = load_digits()
    return torch.tensor(data.data, dtype=torch.float32), torch.tensor(data.target, dtype=torch.long)


def digits_batch(step: int, batch: int = 32, image: bool = False,
                 raw_pixels: bool = False) -> tuple[tuple[torch.Tensor], torch.Tensor]:
    """A batch of the 8x8 sklearn digits (10 classes).

    Pixels are 0..16; scaled to 0..1 unless `raw_pixels`. `image` gives (B, 1, 8, 8), else (B, 64).
    """
    x_all, y_all = _digits()
    idx = torch.randint(0, len(y_all), (batch,), generator=generator(step))
    x = x_all[idx] if raw_pixels else x_all[idx] / 16.0
    if image:
        x = x.view(batch, 1, 8, 8)
    return (x,), y_all[idx]


def digits_denoising_batch(step: int, batch: int = 32,
                           noise: float = 0.3) -> tuple[tuple[torch.Tensor], torch.Tensor]:
    """Image-to-image regression: digits (B, 1, 8, 8) scaled to 0..1 plus Gaussian noise -> clean."""
    (clean,), _ = digits_batch(step, batch, image=True)
    noisy = clean + noise * torch.randn(clean.shape, generator=generator(step, salt=5))
    return (noisy,), clean


# --------------------------------------------------------------------------- sequence tasks

def delay_regression(step: int, batch: int = 16, seq_len: int = 32, in_dim: int = 8,
                     out_dim: int = 4, delay: int = 2) -> tuple[tuple[torch.Tensor], torch.Tensor]:
    """x ~ N(0, I) of shape (B, T, in_dim); y_t = x_{t-delay} A (zero before `delay`).

    A short-memory task an RNN learns in a few hundred steps. Batch-first tensors.
    """
    a = torch.randn(in_dim, out_dim, generator=_world(7)) / math.sqrt(in_dim)
    x = torch.randn(batch, seq_len, in_dim, generator=generator(step))
    y = torch.zeros(batch, seq_len, out_dim)
    y[:, delay:] = x[:, :-delay] @ a
    return (x,), y


@functools.lru_cache(maxsize=None)
def _successors(vocab: int, branching: int) -> torch.Tensor:
    return torch.randint(0, vocab, (vocab, branching), generator=_world(vocab * 10 + branching))


def markov_tokens(step: int, batch: int = 16, seq_len: int = 16, vocab: int = 128,
                  branching: int = 3) -> torch.Tensor:
    """Token sequences (B, seq_len) from a fixed random Markov chain with `branching` successors.

    Next-token loss can fall from ln(vocab) to about ln(branching), so a working LM trains.
    """
    g = generator(step, salt=1)
    table = _successors(vocab, branching)
    tokens = torch.empty(batch, seq_len, dtype=torch.long)
    tokens[:, 0] = torch.randint(0, vocab, (batch,), generator=g)
    for t in range(1, seq_len):
        pick = torch.randint(0, branching, (batch,), generator=g)
        tokens[:, t] = table[tokens[:, t - 1], pick]
    return tokens


def lm_batch(step: int, batch: int = 16, seq_len: int = 16,
             vocab: int = 128) -> tuple[tuple[torch.Tensor], torch.Tensor]:
    """Next-token prediction: inputs tokens[:, :-1], targets tokens[:, 1:]."""
    tokens = markov_tokens(step, batch, seq_len + 1, vocab)
    return (tokens[:, :-1],), tokens[:, 1:]


def majority_batch(step: int, batch: int = 32, seq_len: int = 15,
                   vocab: int = 128) -> tuple[tuple[torch.Tensor], torch.Tensor]:
    """Sequence classification: label 1 if most tokens are in the lower half of the vocabulary.

    Token 0 is kept free (a [CLS]-like id at position 0); seq_len counts it.
    """
    g = generator(step, salt=2)
    body = torch.randint(1, vocab, (batch, seq_len - 1), generator=g)
    label = ((body < vocab // 2).sum(dim=1) * 2 > seq_len - 1).long()
    cls = torch.zeros(batch, 1, dtype=torch.long)
    return (torch.cat([cls, body], dim=1),), label


def low_token_fraction_batch(step: int, batch: int = 32, seq_len: int = 15, vocab: int = 128,
                             target_scale: float = 1.0) -> tuple[tuple[torch.Tensor], torch.Tensor]:
    """Sequence regression: the fraction of lower-half tokens, standardized to mean 0 and std 1
    (then times target_scale). Same inputs as majority_batch; targets have shape (B, 1)."""
    (tokens,), _ = majority_batch(step, batch, seq_len, vocab)
    n = seq_len - 1
    fraction = (tokens[:, 1:] < vocab // 2).float().mean(dim=1, keepdim=True)
    return (tokens,), target_scale * (fraction - 0.5) / math.sqrt(0.25 / n)


def left_padded_lm_batch(step: int, batch: int = 16, seq_len: int = 16, vocab: int = 128,
                         max_pad: int = 6) -> tuple[tuple[torch.Tensor, torch.Tensor], torch.Tensor]:
    """lm_batch with 0..max_pad pad positions on the left of each row (as batched generation
    pipelines do). Inputs (tokens, pad_mask) with pad_mask True at padding; padded targets are
    -100, which cross_entropy ignores."""
    (tokens,), targets = lm_batch(step, batch, seq_len, vocab)
    pad = torch.randint(0, max_pad + 1, (batch, 1), generator=generator(step, salt=6))
    pad_mask = torch.arange(seq_len)[None, :] < pad
    return (tokens.masked_fill(pad_mask, 0), pad_mask), targets.masked_fill(pad_mask, -100)


def lm_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over all positions of (B, T, V) logits."""
    return nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))


# --------------------------------------------------------------------------- models

def init_(model: nn.Module, scheme: str, gain: float = 1.0) -> nn.Module:
    """Re-initialise every Linear/Conv weight of `model` in place; biases to zero.

    scheme: "normal" = N(0, gain^2) regardless of fan-in (the classic mistake),
    "xavier" = Glorot normal, "kaiming" = He normal (fan-in, ReLU), "default" = leave PyTorch's init.
    """
    if scheme == "default":
        return model
    for module in model.modules():
        if isinstance(module, (nn.Linear, nn.Conv1d, nn.Conv2d)):
            if scheme == "normal":
                nn.init.normal_(module.weight, std=gain)
            elif scheme == "xavier":
                nn.init.xavier_normal_(module.weight, gain=gain)
            elif scheme == "kaiming":
                nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
                module.weight.data.mul_(gain)
            else:
                raise ValueError(f"unknown init scheme {scheme!r}")
            if module.bias is not None:
                nn.init.zeros_(module.bias)
    return model


def mlp(in_dim: int, width: int, depth: int, out_dim: int, act: type[nn.Module] = nn.ReLU,
        init: str = "default", gain: float = 1.0, norm: type[nn.Module] | None = None) -> nn.Sequential:
    """`depth` hidden layers of `width` units (Linear [-> norm] -> act), then a Linear head."""
    layers: list[nn.Module] = []
    for i in range(depth):
        layers.append(nn.Linear(in_dim if i == 0 else width, width))
        if norm is not None:
            layers.append(norm(width))
        layers.append(act())
    layers.append(nn.Linear(width if depth else in_dim, out_dim))
    return init_(nn.Sequential(*layers), init, gain)






def cnn(depth: int, channels: int = 16, classes: int = 10, batchnorm: bool = False,
        init: str = "default", gain: float = 1.0) -> nn.Sequential:
    """`depth` 3x3 convs (padding 1) [-> BatchNorm] -> ReLU on 1x8x8 images, then a Linear
    classifier on the flattened feature map."""
    layers: list[nn.Module] = []
    for i in range(depth):
        layers.append(nn.Conv2d(1 if i == 0 else channels, channels, 3, padding=1))
        if batchnorm:
            layers.append(nn.BatchNorm2d(channels))
        layers.append(nn.ReLU())
    layers += [nn.Flatten(), nn.Linear(channels * 8 * 8, classes)]
    return init_(nn.Sequential(*layers), init, gain)


def denoiser(depth: int, channels: int = 16, init: str = "kaiming") -> nn.Sequential:
    """Fully convolutional image-to-image net: `depth` 3x3 conv -> ReLU, then a 3x3 conv to 1 channel."""
    layers: list[nn.Module] = []
    for i in range(depth):
        layers += [nn.Conv2d(1 if i == 0 else channels, channels, 3, padding=1), nn.ReLU()]
    layers.append(nn.Conv2d(channels, 1, 3, padding=1))
    return init_(nn.Sequential(*layers), init)


class ResidualMLP(nn.Module):
    """Input Linear -> `blocks` residual blocks -> output Linear, for vector regression/classification.

    Each block computes x + branch_scale * W2 act(W1 norm(x)) (norm only when prenorm=True).
    Branch weights use Kaiming init; zero_init_branch zeroes W2 (Fixup / "ReZero"-style start).
    """

    def __init__(self, in_dim: int, width: int, blocks: int, out_dim: int, prenorm: bool = False,
                 branch_scale: float = 1.0, zero_init_branch: bool = False):
        super().__init__()
        self.inp = nn.Linear(in_dim, width)
        self.norms = nn.ModuleList(nn.LayerNorm(width) if prenorm else nn.Identity() for _ in range(blocks))
        self.branches = nn.ModuleList(
            nn.Sequential(nn.Linear(width, width), nn.ReLU(), nn.Linear(width, width)) for _ in range(blocks))
        self.final_norm = nn.LayerNorm(width) if prenorm else nn.Identity()
        self.out = nn.Linear(width, out_dim)
        self.branch_scale = branch_scale
        init_(self.branches, "kaiming")
        if zero_init_branch:
            for branch in self.branches:
                nn.init.zeros_(branch[2].weight)

    def forward(self, x):
        x = self.inp(x)
        for norm, branch in zip(self.norms, self.branches):
            x = x + self.branch_scale * branch(norm(x))
        return self.out(self.final_norm(x))


class ResidualConvDenoiser(nn.Module):
    """Stem conv -> `blocks` residual blocks x + conv(relu(conv(x))) [with BatchNorm] -> 1-channel conv.

    Kaiming init everywhere: without normalization each block doubles the stream's variance.
    """

    def __init__(self, blocks: int, channels: int = 8, batchnorm: bool = False):
        super().__init__()

        def norm():
            return nn.BatchNorm2d(channels) if batchnorm else nn.Identity()

        self.stem = nn.Conv2d(1, channels, 3, padding=1)
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1), norm(), nn.ReLU(),
                          nn.Conv2d(channels, channels, 3, padding=1), norm())
            for _ in range(blocks))
        self.head = nn.Conv2d(channels, 1, 3, padding=1)
        init_(self, "kaiming")

    def forward(self, x):
        x = self.stem(x)
        for block in self.blocks:
            x = x + block(x)
        return self.head(x)


def set_spectral_radius_(weight: torch.Tensor, radius: float) -> torch.Tensor:
    """Rescale a square recurrent matrix in place so its largest |eigenvalue| is `radius`."""
    with torch.no_grad():
        weight.mul_(radius / torch.linalg.eigvals(weight).abs().max())
    return weight


class SequenceRegressor(nn.Module):
    """A batch-first recurrent layer (nn.RNN / nn.LSTM / nn.GRU) with a Linear readout at every step."""

    def __init__(self, rnn: nn.Module, out_dim: int):
        super().__init__()
        self.rnn = rnn
        self.readout = nn.Linear(rnn.hidden_size, out_dim)

    def forward(self, x):
        hidden, _ = self.rnn(x)
        return self.readout(hidden)


class RecurrentLM(nn.Module):
    """Embedding -> batch-first recurrent layer (nn.RNN / nn.LSTM / nn.GRU) -> Linear over the vocabulary."""

    def __init__(self, vocab: int, rnn: nn.Module):
        super().__init__()
        self.embed = nn.Embedding(vocab, rnn.input_size)
        self.rnn = rnn
        self.head = nn.Linear(rnn.hidden_size, vocab)

    def forward(self, tokens):
        hidden, _ = self.rnn(self.embed(tokens))
        return self.head(hidden)


def causal_mask(length: int) -> torch.Tensor:
    """Float mask for nn.TransformerEncoder: -inf above the diagonal (no looking ahead)."""
    return torch.triu(torch.full((length, length), float("-inf")), diagonal=1)


class TorchTransformerLM(nn.Module):
    """Causal LM from nn.TransformerEncoderLayer: token + learned position embeddings, `layers`
    layers (Post-LN unless norm_first), a final LayerNorm for Pre-LN, and a Linear head. No dropout."""

    def __init__(self, vocab: int, d_model: int = 64, heads: int = 4, layers: int = 2,
                 norm_first: bool = False, max_len: int = 32):
        super().__init__()
        self.embed = nn.Embedding(vocab, d_model)
        self.pos = nn.Parameter(0.02 * torch.randn(max_len, d_model))
        layer = nn.TransformerEncoderLayer(d_model, heads, dim_feedforward=4 * d_model, dropout=0.0,
                                           batch_first=True, norm_first=norm_first)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.final_norm = nn.LayerNorm(d_model) if norm_first else nn.Identity()
        self.head = nn.Linear(d_model, vocab)

    def forward(self, tokens):
        x = self.embed(tokens) + self.pos[: tokens.shape[1]]
        x = self.encoder(x, mask=causal_mask(tokens.shape[1]), is_causal=True)
        return self.head(self.final_norm(x))


class SelfAttention(nn.Module):
    """Hand-written causal multi-head self-attention; softmax(q k^T * scale) v.

    `scale` is explicit so a case can show it: head_dim ** -0.5 is the standard choice.
    Blocked scores (future positions, padded keys) are filled with `mask_value`; with -inf a
    query that sees only padding gets a row of -inf and softmax returns NaN.
    """

    def __init__(self, d_model: int, heads: int, scale: float, mask_value: float = float("-inf")):
        super().__init__()
        self.heads, self.scale, self.mask_value = heads, scale, mask_value
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.out = nn.Linear(d_model, d_model)

    def forward(self, x, pad_mask=None):
        b, t, d = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        blocked = torch.ones(t, t, dtype=torch.bool).triu(1)  # (T, T): no looking ahead
        if pad_mask is not None:  # (B, T), True at padding: no attending to padded keys
            blocked = blocked | pad_mask[:, None, None, :]
        scores = ((q @ k.transpose(-1, -2)) * self.scale).masked_fill(blocked, self.mask_value)
        mixed = torch.softmax(scores, dim=-1) @ v
        return self.out(mixed.transpose(1, 2).reshape(b, t, d))


class HandwrittenTransformerLM(nn.Module):
    """Causal LM of `layers` residual blocks x + attn(norm(x)), x + mlp(norm(x)).

    prenorm=False drops every LayerNorm (a plain residual stack); attn_scale and mask_value go to
    SelfAttention. forward(tokens, pad_mask=None) takes an optional (B, T) bool padding mask.
    """

    def __init__(self, vocab: int, d_model: int = 64, heads: int = 4, layers: int = 2,
                 attn_scale: float | None = None, prenorm: bool = True, max_len: int = 32,
                 mask_value: float = float("-inf")):
        super().__init__()
        scale = attn_scale if attn_scale is not None else (d_model // heads) ** -0.5

        def norm():
            return nn.LayerNorm(d_model) if prenorm else nn.Identity()

        self.embed = nn.Embedding(vocab, d_model)
        self.pos = nn.Parameter(0.02 * torch.randn(max_len, d_model))
        self.attn_norms = nn.ModuleList(norm() for _ in range(layers))
        self.attns = nn.ModuleList(SelfAttention(d_model, heads, scale, mask_value) for _ in range(layers))
        self.mlp_norms = nn.ModuleList(norm() for _ in range(layers))
        self.mlps = nn.ModuleList(
            nn.Sequential(nn.Linear(d_model, 4 * d_model), nn.GELU(), nn.Linear(4 * d_model, d_model))
            for _ in range(layers))
        self.final_norm = norm()
        self.head = nn.Linear(d_model, vocab)

    def forward(self, tokens, pad_mask=None):
        x = self.embed(tokens) + self.pos[: tokens.shape[1]]
        for attn_norm, attn, mlp_norm, mlp in zip(self.attn_norms, self.attns, self.mlp_norms, self.mlps):
            x = x + attn(attn_norm(x), pad_mask)
            x = x + mlp(mlp_norm(x))
        return self.head(self.final_norm(x))


class FirstTokenClassifier(nn.Module):
    """Linear head on the first position of an encoder that returns `.last_hidden_state`
    (e.g. transformers.T5EncoderModel, which has no classification head of its own)."""

    def __init__(self, encoder: nn.Module, hidden: int, classes: int):
        super().__init__()
        self.encoder = encoder
        self.head = nn.Linear(hidden, classes)

    def forward(self, tokens):
        return self.head(self.encoder(tokens).last_hidden_state[:, 0])
