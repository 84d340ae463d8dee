"""The example batch gradlint makes up for a model file that gives none (no example_inputs()), and
the training convention a language model's forward takes when the file gives no targets and no
loss_fn.

The batch is shaped for the first layer the data meets, found in the order the model registers
its modules (nested nn.Sequential included), looking through modules that keep the shape
(Dropout, norms over the last axis, activations):

- nn.Linear: a (batch, in_features) batch; nn.Embedding: (batch, 16) token ids; an RNN, an
  nn.MultiheadAttention or nn.TransformerEncoderLayer: (batch, 16, width), or sequence-first
  as the layer says;
- a convolution: an image (or signal, or volume) with its in_channels, at the first size of
  IMAGE_SIZES the network runs at: a VGG's five poolings need 32, a ViT's position table 224;
- a LayerNorm over several axes ([3, 32, 32]): exactly that shape;
- einops' Rearrange ('b c (h p1) (w p2) -> b (h w) (p1 p2 c)', then a Linear): the image it cuts
  into patches, its channels solved from the next layer's width. einops need not be installed:
  the layer is known by its class name and its `pattern` and `axes_lengths` attributes.

Registration order is not always the order the data flows in (a head registered before its
backbone, a patch embedding that reshapes before its Linear), so each kind of layer found later
is a further guess, and a Linear whose in_features is c * p * p also guesses an image cut into
p x p patches. The first forward pass (probe.observe) tries the guesses in turn and keeps the
first the model runs (ModelSpec.settle); only when none runs does the error name the first one
and ask for example_inputs() or --input-shape. The choice cannot be made when the file is
loaded: --no-probe never runs the model.

Why 32 first: it is the smallest size real image networks are built for (CIFAR, and five
halvings leave 1x1), and the probe runs the batch ~80 times, so each size up costs that many
passes at 4x the pixels; 28 (MNIST) follows for networks that 32 does not fit, then the sizes
ImageNet-style networks need.
"""

from __future__ import annotations

import inspect
import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any

from gradlint.errors import LoadError
from gradlint.losses import is_token_batch, returned_loss, select_output
from gradlint.overrides import DEFAULT_BATCH
from gradlint.spec import Guess

LENGTH = 16
IMAGE_SIZES = (32, 28, 64, 128, 224, 256, 384)
VOLUME_SIZES = (32, 28, 64)  # a 384^3 volume is 57M values per channel: no 3-D network is checked that way
_SIZE_WORDS = {3: "length", 4: "image size", 5: "size"}  # by the rank of the batch
NO_FIRST_LAYER = ("cannot infer an input batch (no Linear, Conv, Embedding, RNN, attention or einops Rearrange layer "
                  "first): define example_inputs() or pass --input-shape")


@dataclass(frozen=True)
class _Proposal:
    """Batches shaped for one layer the data may meet first, in the order to try them."""

    kind: str  # one proposal per kind is kept: the first layer of that kind
    path: str
    layer: str  # how the assumption names the layer: "Conv2d", "Rearrange '...' into fc (Linear)"
    shapes: tuple[tuple[int, ...], ...]
    draw: Callable[[tuple, Any], Any]  # (shape, generator or None) -> a random batch
    varies: bool = False  # the shapes are sizes of the same layer's input, tried in turn
    fitted: tuple[int, ...] = ()  # sizes a position table is made for (tried first)


def infer(model: Any, batch_size: int = DEFAULT_BATCH, loss: str | None = None) -> tuple[Guess, ...]:
    """The batches to try, in order, for a model without example_inputs(); a LoadError saying
    what to add when no layer tells the input's shape."""
    import torch

    proposals: list[_Proposal] = []
    for proposal in _proposals(model, batch_size):
        if any(p.kind == proposal.kind for p in proposals):
            continue
        if proposal.kind == "linear patches" and not any(p.path == proposal.path for p in proposals):
            continue  # only the Linear the data meets first may be a patch embedding, not a hidden layer
        if not proposal.shapes:  # the first layer is one whose input cannot be worked out
            if not proposals:
                raise LoadError(f"cannot infer an input batch: gradlint cannot read the input shape of the first layer "
                                f"{proposal.path} ({proposal.layer}): define example_inputs() or pass --input-shape")
            continue
        proposals.append(proposal)
    if not proposals:
        raise LoadError(NO_FIRST_LAYER)
    # The first guess draws from the global generator, after build_model, as gradlint always has;
    # the others are drawn when tried, from a copy of the same state, and leave it alone.
    state = torch.get_rng_state()
    guesses = []
    for proposal in proposals:
        for shape in proposal.shapes:
            described = f"the {shape} batch inferred from the first layer {proposal.path} ({proposal.layer})"
            notes = (_note(proposal, shape),)
            if not guesses:
                guesses.append(Guess(inputs=(proposal.draw(shape, None),), loss=loss, notes=notes, described=described))
            else:
                guesses.append(Guess(inputs=None, draw=_later(proposal.draw, shape, state), loss=loss, notes=notes,
                                     described=described))
    return tuple(guesses)


def _later(draw: Callable[[tuple, Any], Any], shape: tuple, state: Any) -> Callable[[], tuple]:
    def batch() -> tuple:
        import torch

        generator = torch.Generator()
        generator.set_state(state)
        return (draw(shape, generator),)

    return batch


def _note(proposal: _Proposal, shape: tuple) -> str:
    size = ""
    if proposal.varies:
        word = _SIZE_WORDS.get(len(shape), "size")
        if shape[-1] in proposal.fitted:
            size = f", {word} {shape[-1]}, which its position table is made for"
        else:
            sizes = ", ".join(str(s[-1]) for s in proposal.shapes)
            size = f", {word} {shape[-1]} (sizes tried in turn until forward runs: {sizes})"
    return (f"inputs: random batch of shape {shape} inferred from the first layer {proposal.path} ({proposal.layer})"
            f"{size}; define example_inputs() for a real one")


def _normal(shape: tuple, generator: Any) -> Any:
    import torch

    return torch.randn(*shape, generator=generator)


def _tokens(count: int) -> Callable[[tuple, Any], Any]:
    def draw(shape: tuple, generator: Any) -> Any:
        import torch

        return torch.randint(0, count, shape, generator=generator)

    return draw


def _proposals(model: Any, batch: int) -> Iterator[_Proposal]:
    modules = list(model.named_modules())
    for index, (path, module) in enumerate(modules):
        yield from _proposals_for(model, path, module, modules[index + 1:], batch)


def _proposals_for(model: Any, path: str, module: Any, following: list, batch: int) -> Iterator[_Proposal]:
    import torch.nn as nn

    name = type(module).__name__
    if isinstance(module, nn.Linear):
        yield _Proposal("features", path, name, ((batch, module.in_features),), _normal)
        channels, patch = _patch_of(module.in_features)
        if patch:  # a custom patch embedding that cuts the image itself, then projects each patch
            fitted = _table_sizes(model, module.out_features, patch)
            images = tuple((batch, channels, size, size) for size in _sizes(IMAGE_SIZES, fitted) if size % patch == 0)
            yield _Proposal("linear patches", path, f"{name} reading {patch}x{patch} patches of {channels} channels",
                            images, _normal, varies=True, fitted=fitted)
    elif isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
        rank = module.weight.dim() - 2
        sizes, fitted, patch = VOLUME_SIZES if rank == 3 else IMAGE_SIZES, (), module.stride[0]
        if rank == 2 and patch > 1 and tuple(module.kernel_size) == tuple(module.stride):  # a ViT's patch embedding
            fitted = _table_sizes(model, module.out_channels, patch)
        yield _Proposal(f"conv{rank}d", path, name,
                        tuple((batch, module.in_channels, *(size,) * rank) for size in _sizes(sizes, fitted)), _normal,
                        varies=True, fitted=fitted)
    elif isinstance(module, nn.Embedding):
        yield _Proposal("tokens", path, name, ((batch, LENGTH),), _tokens(module.num_embeddings))
    elif isinstance(module, nn.RNNBase):
        yield _Proposal("sequence", path, name, (_sequence(batch, module.input_size, module.batch_first),), _normal)
    elif isinstance(module, (nn.MultiheadAttention, nn.TransformerEncoderLayer)):
        # Whole layers the data enters as one: their inner out_proj Linear is what it meets last.
        attention = module if isinstance(module, nn.MultiheadAttention) else module.self_attn
        yield _Proposal("sequence", path, name, (_sequence(batch, attention.embed_dim, attention.batch_first),),
                        _normal)
    elif isinstance(module, nn.LayerNorm) and len(module.normalized_shape) >= 2:
        shape = (batch, *module.normalized_shape)
        yield _Proposal("normalized", path, f"LayerNorm over {tuple(module.normalized_shape)}", (shape,), _normal)
    elif is_rearrange(module):
        yield _rearrange_proposal(model, path, module, following, batch)


def _sequence(batch: int, width: int, batch_first: bool) -> tuple[int, ...]:
    return (batch, LENGTH, width) if batch_first else (LENGTH, batch, width)


def _patch_of(features: int) -> tuple[int, int]:
    """(c, p) when p x p patches of c channels (3, else 1) flatten to `features` values, p >= 4
    as image patches are (a Linear(4, ...) is no 2 x 2 patch embedding); p = 0 otherwise."""
    for channels in (3, 1):
        patch = math.isqrt(features // channels) if features % channels == 0 else 0
        if patch >= 4 and channels * patch * patch == features:
            return channels, patch
    return 0, 0


def _sizes(sizes: tuple[int, ...], first: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(dict.fromkeys((*first, *sizes)))


def _table_sizes(model: Any, width: int, patch: int) -> tuple[int, ...]:
    """Image sizes a patch model's position table is made for: a (1, n, width) parameter, or an
    embedding of n vectors of that width, with n (or n - 1, with a class token) = s * s patches
    gives s * patch. Tried first: a table also broadcasts over a single patch, so the smallest
    size that runs is not the one the model was built for (a ViT-B/16 runs at 28 x 28)."""
    import torch.nn as nn

    # Parameters a model holds itself (torch's layers hold weights, not tables), and embeddings.
    tables = [p for m in model.modules() if not type(m).__module__.startswith("torch.")
              for p in m.parameters(recurse=False)
              if p.dim() >= 2 and p.shape[-1] == width and all(d == 1 for d in p.shape[:-2])]
    tables += [m.weight for m in model.modules() if isinstance(m, nn.Embedding) and m.embedding_dim == width]
    sizes = []
    for table in tables:
        for count in (table.shape[-2], table.shape[-2] - 1):
            side = math.isqrt(max(count, 0))
            if side >= 2 and side * side == count and side * patch not in sizes:
                sizes.append(side * patch)
    return tuple(sizes)


# -- einops ------------------------------------------------------------------------------------------
def is_rearrange(module: Any) -> bool:
    """einops.layers.torch.Rearrange, known without importing einops (it may not be installed)."""
    return type(module).__name__ == "Rearrange" and isinstance(getattr(module, "pattern", None), str)


def _rearrange_proposal(model: Any, path: str, module: Any, following: list, batch: int) -> _Proposal:
    """The input of a Rearrange layer: its pattern's left side, the axes it names solved from
    `axes_lengths` and from the width of the next layer that reads its output."""
    import torch.nn as nn

    pattern = module.pattern
    lengths = {key: int(value) for key, value in dict(getattr(module, "axes_lengths", {}) or {}).items()
               if isinstance(value, int)}
    reader = next(((p, m) for p, m in following
                   if isinstance(m, (nn.Linear, nn.LayerNorm, nn.Conv1d, nn.Conv2d, nn.Conv3d))), None)
    layer = f"Rearrange '{pattern}'"
    width, group = None, -1
    if reader is not None:
        reader_path, reader_module = reader
        layer += f" into {reader_path} ({type(reader_module).__name__})"
        if isinstance(reader_module, nn.Linear):
            width = reader_module.in_features
        elif isinstance(reader_module, nn.LayerNorm):
            width = reader_module.normalized_shape[-1]
        else:  # a convolution reads channels on axis 1
            width, group = reader_module.in_channels, 1
    patch = math.prod(lengths.values()) if lengths else 0
    projection = next((m for _, m in following if isinstance(m, nn.Linear)), None)
    fitted = _table_sizes(model, projection.out_features, math.isqrt(patch)) \
        if projection is not None and patch and math.isqrt(patch) ** 2 == patch else ()
    shapes = _rearranged_shapes(pattern, lengths, width, group, batch, _sizes(IMAGE_SIZES, fitted))
    return _Proposal("patches", path, layer, shapes, _normal, varies=len(shapes) > 1, fitted=fitted)


def _rearranged_shapes(pattern: str, lengths: dict, width: int | None, group: int, batch: int,
                       sizes: tuple[int, ...] = IMAGE_SIZES) -> tuple[tuple[int, ...], ...]:
    """Input shapes of an einops pattern, one per image size: () when it cannot be worked out
    (an ellipsis, an axis made of two unknown ones, a first axis that is not the batch)."""
    left, arrow, right = pattern.partition("->")
    inputs, outputs = _groups(left), _groups(right)
    if not arrow or inputs is None or outputs is None or len(inputs) < 2 or not outputs:
        return ()
    lengths = dict(lengths)
    if width is not None and -len(outputs) <= group < len(outputs):
        read = outputs[group]  # the output axis the next layer reads: solve its one unknown axis
        unknown = [axis for axis in read if axis not in lengths]
        known = math.prod(lengths[axis] for axis in read if axis in lengths)
        if len(unknown) == 1 and known and width % known == 0:
            lengths[unknown[0]] = width // known
    if len(inputs[0]) != 1 or inputs[0][0] in lengths:
        return ()
    shapes = []
    for size in sizes:
        shape: list[int] | None = [batch]
        for axes in inputs[1:]:
            unknown = [axis for axis in axes if axis not in lengths]
            known = math.prod(lengths[axis] for axis in axes if axis in lengths)
            if not unknown:
                shape.append(known)
            elif len(unknown) == 1 and known and size % known == 0:
                shape.append(size)
            else:
                shape = None
                break
        if shape is not None and tuple(shape) not in shapes:
            shapes.append(tuple(shape))
    return tuple(shapes)


_TOKEN = re.compile(r"\s*(\(|\)|[A-Za-z_][A-Za-z0-9_]*|\d+|\.\.\.|\S)")


def _groups(side: str) -> list[list[str]] | None:
    """'b c (h p1) (w p2)' -> [['b'], ['c'], ['h', 'p1'], ['w', 'p2']]; None for what this reader
    does not handle (an ellipsis, numbers, nested or unbalanced parentheses)."""
    groups: list[list[str]] = []
    current: list[str] | None = None
    for token in _TOKEN.findall(side):
        if token == "(":
            if current is not None:
                return None
            current = []
        elif token == ")":
            if current is None:
                return None
            groups.append(current)
            current = None
        elif token.isidentifier():
            if current is None:
                groups.append([token])
            else:
                current.append(token)
        else:
            return None
    return groups if current is None else None


# -- language models --------------------------------------------------------------------------------
def conventions(model: Any, base: Guess) -> tuple[Guess, ...]:
    """Guesses to try before `base` when it is a batch of token ids and the model's forward takes
    the training targets itself: labels=input_ids (Hugging Face models, which shift them), or
    targets= the next tokens (nanoGPT, minGPT: forward(idx, targets=None) returns
    (logits, loss), and without targets only the last position's logits). The model's own loss
    is then the training loss. Each stands only if the model runs with it and returns a scalar
    loss beside (N, T, V) logits; else the next guess is tried."""
    import torch


    if base.inputs is None or len(base.inputs) != 1 or base.kwargs or not is_token_batch(base.inputs[0]):
        return ()
    tokens = base.inputs[0]
    accepted = _keywords(model)
    found = []
    if "labels" in accepted:
        found.append(replace(base, kwargs={"labels": tokens}, loss="labels", accepts=_fits(tokens), optional=True))
    if "targets" in accepted:
        # Position t is trained to predict token t + 1; the last position wraps around to the first
        # token (random ids have no next token to miss; a real batch loses 1/T of its targets).
        following = torch.roll(tokens, -1, dims=1)
        found.append(replace(base, kwargs={"targets": following}, loss="targets", accepts=_fits(tokens),
                             optional=True))
    return tuple(found)


def _keywords(model: Any) -> set[str]:
    """forward's parameters after the first that can be passed by keyword."""
    try:
        parameters = list(inspect.signature(model.forward).parameters.values())
    except (TypeError, ValueError):
        return set()
    keyword = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return {p.name for p in parameters[1:] if p.kind in keyword}


def _fits(tokens: Any) -> Callable[[Any], bool]:
    def fits(output: Any) -> bool:
        import torch


        if returned_loss(output) is None:
            return False
        try:
            logits, _ = select_output(output)
        except LoadError:
            return False
        return isinstance(logits, torch.Tensor) and logits.dim() == 3 and logits.is_floating_point() and \
            tuple(logits.shape[:2]) == tuple(tokens.shape)

    return fits
