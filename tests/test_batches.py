"""gradlint.batches: which rows a batch has, and drawing them without pairing an input with another
row's target."""

from __future__ import annotations

from collections import namedtuple

import torch

from gradlint.batches import bootstrap_index, shared_rows, take_rows


def test_shared_rows_is_the_first_dimension_all_tensors_agree_on():
    x, y = torch.zeros(8, 3), torch.zeros(8)
    assert shared_rows((x,), y) == 8
    assert shared_rows(({"input_ids": torch.zeros(8, 5, dtype=torch.long), "mask": torch.ones(8, 5)},), None) == 8
    assert shared_rows((x, 0.5, "mean"), [y]) == 8  # what is not a tensor has no rows
    assert shared_rows((torch.zeros(1, 3),), torch.zeros(1)) == 1
    assert shared_rows((torch.tensor(2.0),), None) == 1  # a scalar has no rows to draw


def test_shared_rows_refuses_tensors_that_disagree():
    seq_first = torch.zeros(12, 8, 3)  # (time, batch, features) beside per-row targets
    assert shared_rows((seq_first,), torch.zeros(8)) is None
    assert shared_rows((torch.zeros(8, 3),), torch.zeros(8 * 5)) is None  # flattened targets
    assert shared_rows(({"input_ids": torch.zeros(8, 5), "position_ids": torch.zeros(1, 5)},), None) is None


def test_take_rows_draws_the_same_rows_from_every_tensor_and_keeps_the_containers():
    Pair = namedtuple("Pair", "x mask")
    x = torch.arange(8.0).unsqueeze(1).repeat(1, 3)
    batch = (Pair(x, torch.arange(8)), {"scale": torch.ones(1, 3), "rows": torch.arange(8.0)}, "tag")  # take_rows
    # draws from tensors with 8 rows and leaves the rest; shared_rows decides whether to draw at all
    index = torch.tensor([7, 0, 0, 3, 1, 1, 2, 6])
    drawn = take_rows(batch, index, 8)
    assert isinstance(drawn[0], Pair) and isinstance(drawn[1], dict) and drawn[2] == "tag"
    assert drawn[0].x[:, 0].tolist() == [7, 0, 0, 3, 1, 1, 2, 6]
    assert drawn[0].mask.tolist() == drawn[1]["rows"].tolist() == [7, 0, 0, 3, 1, 1, 2, 6]
    assert drawn[1]["scale"] is batch[1]["scale"]  # not 8 rows: left as it was
    assert x[:, 0].tolist() == list(range(8))  # the example batch itself is not touched


def test_bootstrap_index_is_seeded_and_draws_with_replacement():
    first = bootstrap_index(32, torch.Generator().manual_seed(0))
    again = bootstrap_index(32, torch.Generator().manual_seed(0))
    other = bootstrap_index(32, torch.Generator().manual_seed(1))
    assert first.tolist() == again.tolist() != other.tolist()
    assert first.shape == (32,) and 0 <= int(first.min()) and int(first.max()) < 32
    assert len(set(first.tolist())) < 32  # with replacement: some rows twice, some not at all
