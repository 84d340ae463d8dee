"""Batches that vary from step to step, drawn from the one example batch a model file provides.

Training never sees the same batch twice in a row; a lookahead that repeats the example batch has
no gradient noise at all, and hides the instabilities that only noise drives (heavy momentum
adding up noisy steps, an `exp` link overshooting on a batch of large counts). Drawing the example
batch's rows with replacement (a bootstrap resample) gives each step a different batch of the
same size and distribution, without reading anything the user did not provide.
"""

from __future__ import annotations

from typing import Any


def shared_rows(*batch: Any) -> int | None:
    """The number of rows every tensor in `batch` (nested in tuples, lists and dicts) has along its
    first dimension (1 when there is no tensor with one). None when the tensors disagree: a
    sequence-first layout, flattened targets, a (1, length) tensor meant to broadcast; drawing rows
    there could pair an input with another row's target, so nothing is drawn."""
    sizes = set(_leading_sizes(batch))
    if len(sizes) > 1:
        return None
    return sizes.pop() if sizes else 1


def take_rows(batch: Any, index: Any, rows: int) -> Any:
    """`batch` with the rows at `index` (a 1-D index tensor) of every tensor that has `rows` rows;
    everything else as it was."""
    import torch

    if isinstance(batch, torch.Tensor):
        return batch.index_select(0, index.to(batch.device)) if batch.dim() and batch.shape[0] == rows else batch
    if isinstance(batch, (tuple, list)):
        items = [take_rows(item, index, rows) for item in batch]
        return type(batch)(*items) if hasattr(batch, "_fields") else type(batch)(items)  # a namedtuple too
    if isinstance(batch, dict):
        return type(batch)({key: take_rows(item, index, rows) for key, item in batch.items()})
    return batch


def bootstrap_index(rows: int, generator: Any) -> Any:
    """`rows` row numbers drawn uniformly with replacement."""
    import torch

    return torch.randint(rows, (rows,), generator=generator)


def _leading_sizes(batch: Any):
    import torch

    if isinstance(batch, torch.Tensor):
        if batch.dim():
            yield batch.shape[0]
    elif isinstance(batch, (tuple, list)):
        for item in batch:
            yield from _leading_sizes(item)
    elif isinstance(batch, dict):
        for item in batch.values():
            yield from _leading_sizes(item)
