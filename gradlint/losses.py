"""The training loss for the probe: the user's loss_fn, or a stated default."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gradlint.errors import LoadError


def select_output(output: Any) -> tuple[Any, Any]:
    """(tensor to train on, model-computed loss or None) from tensors, tuples, dicts and HF ModelOutputs."""
    import torch

    if isinstance(output, torch.Tensor):
        return output, None
    if isinstance(output, Mapping) or hasattr(output, "keys"):
        items = dict(output.items()) if hasattr(output, "items") else {}
        loss = items.get("loss")
        if "logits" in items and isinstance(items["logits"], torch.Tensor):
            return items["logits"], loss
        for value in items.values():
            if isinstance(value, torch.Tensor) and value.is_floating_point() and value.dim() > 0:
                return value, loss
    if isinstance(output, (list, tuple)):
        for value in output:
            if isinstance(value, torch.Tensor):
                return value, None
    raise LoadError(f"the model returned {type(output).__name__}; gradlint needs a tensor, a tuple of tensors, "
                    "or a dict with 'logits' or 'loss'")


LOSSES = ("cross-entropy", "mse")  # the default losses --loss and [tool.gradlint.models] can pick

# The loss a model computes itself when gradlint passes it the training targets, by the name of
# forward's parameter that takes them (load.py guesses these for language models): Hugging Face
# models take labels=input_ids and shift them themselves; nanoGPT and minGPT take targets= the
# next tokens, already shifted.
MODEL_LOSSES = {
    "labels": "loss: the loss the model computes given labels=input_ids (its forward takes labels, as a "
              "Hugging Face model's does; no loss_fn)",
    "targets": "loss: the loss the model computes given targets=the next tokens (its forward takes targets, as "
               "nanoGPT's and minGPT's do; no loss_fn)",
}
NEXT_TOKEN = ("loss: next-token cross-entropy on the input (a causal LM: integer (N, T) input, (N, T, V) output; "
              "no loss_fn)")


def training_loss(output: Any, targets: Any, loss_fn: Any, generator_seed: int = 0,
                  needs_grad: bool = True, kind: str | None = None, inputs: tuple = ()) -> tuple[Any, str | None]:
    """The scalar loss to backpropagate, and the assumption made when no loss_fn was given.

    Without a loss_fn, `kind` ("cross-entropy" or "mse", from --loss) picks the default loss;
    "labels" or "targets" (MODEL_LOSSES) take the loss the model computed from the targets it
    was given; None picks it from the output, the targets and `inputs` (forward's positional
    arguments, for a language model's next-token loss).
    """
    import torch
    import torch.nn.functional as F

    if loss_fn is not None:
        try:
            loss = loss_fn(output, targets)
        except Exception as error:
            raise LoadError(f"loss_fn raised {type(error).__name__}: {error}") from error
        return _check_scalar(loss, "loss_fn", needs_grad), None

    if kind in MODEL_LOSSES:
        loss = returned_loss(output)
        if loss is None:
            raise LoadError(f"given {kind}=, the model returned {type(output).__name__} without a scalar loss")
        return _check_scalar(loss, "the model's loss", needs_grad), MODEL_LOSSES[kind]
    prediction, model_loss = select_output(output)
    if kind is None and model_loss is not None and isinstance(model_loss, torch.Tensor) and model_loss.numel() == 1:
        return model_loss.reshape(()), "loss: the loss the model returned"
    if not prediction.is_floating_point():
        raise LoadError(f"the model output is an integer tensor ({prediction.dtype}); gradlint needs a float "
                        "output to backpropagate through")
    generator = torch.Generator(device="cpu").manual_seed(generator_seed)
    if kind is not None:
        return _chosen_loss(kind, prediction, targets, generator)
    if targets is not None and isinstance(targets, torch.Tensor):
        if not targets.is_floating_point() and prediction.dim() >= 2:
            logits = prediction.reshape(-1, prediction.shape[-1]) if prediction.dim() > 2 else prediction
            return F.cross_entropy(logits, targets.reshape(-1).to(prediction.device)), \
                "loss: cross-entropy against example_targets (no loss_fn)"
        return F.mse_loss(prediction, targets.to(prediction)), "loss: mean squared error against example_targets (no loss_fn)"
    tokens = token_input(inputs, prediction)
    if tokens is not None:
        # Position t predicts token t + 1: mean squared error against noise on (N, T, V) logits
        # trains nothing a language model learns, and its gradients are not the ones training sees.
        vocabulary = prediction.shape[-1]
        return F.cross_entropy(prediction[:, :-1].reshape(-1, vocabulary),
                               tokens[:, 1:].reshape(-1).to(prediction.device)), NEXT_TOKEN
    if prediction.dim() == 2 and prediction.shape[1] > 1:
        labels = torch.randint(0, prediction.shape[1], (prediction.shape[0],), generator=generator)
        return F.cross_entropy(prediction, labels.to(prediction.device)), \
            "loss: cross-entropy against random labels (no loss_fn)"
    noise = torch.randn(prediction.shape, generator=generator).to(prediction)
    return F.mse_loss(prediction, noise), "loss: mean squared error against random targets (no loss_fn)"


def token_input(inputs: tuple, prediction: Any) -> Any:
    """The input a causal language model's (N, T, V) output predicts the next token of: an
    integer (N, T) tensor whose ids are all < V. None for any other model."""
    if prediction.dim() != 3 or prediction.shape[1] < 2 or prediction.shape[2] < 2:
        return None
    for tensor in inputs:
        if is_token_batch(tensor) and tuple(tensor.shape) == tuple(prediction.shape[:2]) \
                and int(tensor.min()) >= 0 and int(tensor.max()) < prediction.shape[2]:
            return tensor
    return None


def is_token_batch(tensor: Any) -> bool:
    """An integer (N, T) tensor: token ids, as a language model reads them."""
    import torch

    return isinstance(tensor, torch.Tensor) and tensor.dim() == 2 and tensor.numel() > 0 and \
        not (tensor.is_floating_point() or tensor.is_complex() or tensor.dtype == torch.bool)


def returned_loss(output: Any) -> Any:
    """The scalar loss a model returned beside its prediction: a dict's or ModelOutput's `loss`,
    or the 0-d float tensor of a tuple such as nanoGPT's (logits, loss); None when there is none."""
    import torch

    if isinstance(output, Mapping) or hasattr(output, "items"):
        loss = dict(output.items()).get("loss")
    elif isinstance(output, (list, tuple)):
        loss = next((value for value in output if isinstance(value, torch.Tensor) and value.dim() == 0), None)
    else:
        loss = None
    if isinstance(loss, torch.Tensor) and loss.numel() == 1 and loss.is_floating_point():
        return loss
    return None


def _chosen_loss(kind: str, prediction: Any, targets: Any, generator: Any) -> tuple[Any, str]:
    """The loss the user picked with --loss (or `loss` in [tool.gradlint.models])."""
    import torch
    import torch.nn.functional as F

    given = isinstance(targets, torch.Tensor)
    against = "example_targets" if given else None
    if kind == "mse":
        target = targets.to(prediction) if given else torch.randn(prediction.shape, generator=generator).to(prediction)
        note = f"loss: mean squared error against {against or 'random targets'} (loss = mse)"
        return F.mse_loss(prediction, target), note
    if kind != "cross-entropy":
        raise LoadError(f"unknown loss {kind!r}; use one of: {', '.join(LOSSES)}")
    # Class logits on the last axis ([batch, classes], [batch, seq, vocab]); on axis 1 from rank 4
    # on ([batch, classes, height, width]), as F.cross_entropy takes them.
    if prediction.dim() < 2 or prediction.shape[1 if prediction.dim() >= 4 else -1] < 2:
        raise LoadError(f"loss = cross-entropy needs class logits, but the model output has shape "
                        f"{tuple(prediction.shape)}; use loss = mse")
    if prediction.dim() >= 4:
        logits, classes = prediction, prediction.shape[1]
        label_shape = (prediction.shape[0], *prediction.shape[2:])
    else:
        logits, classes = prediction.reshape(-1, prediction.shape[-1]), prediction.shape[-1]
        label_shape = (logits.shape[0],)
    if given and not targets.is_floating_point():
        labels = targets.reshape(label_shape)
    else:
        labels = torch.randint(0, classes, label_shape, generator=generator)
        against = None
    return F.cross_entropy(logits, labels.to(prediction.device)), \
        f"loss: cross-entropy against {against or 'random labels'} (loss = cross-entropy)"


def _check_scalar(loss: Any, source: str, needs_grad: bool) -> Any:
    import torch

    if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
        raise LoadError(f"{source} must return a scalar tensor, got {type(loss).__name__}")
    if needs_grad and not loss.requires_grad:
        raise LoadError(f"{source} returned a loss that does not depend on the model's parameters")
    return loss.reshape(())
