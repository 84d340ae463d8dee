"""Plain data helpers with no model: gradlint skips this file in a directory scan.

It neither imports torch nor defines build_model(), a module-level `model` or an nn.Module
subclass, so `gradlint samples/` leaves it out without importing it (discover.may_define_model
is a cheap text check). It stands for the utility modules that sit next to real model code.
"""

from __future__ import annotations

import math
from collections.abc import Sequence


def normalize(values: Sequence[float], eps: float = 1e-8) -> list[float]:
    """Shift and scale `values` to mean 0 and standard deviation 1 (population std)."""
    if not values:
        return []
    mean = sum(values) / len(values)
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))
    return [(v - mean) / (std + eps) for v in values]


def batches(items: Sequence, size: int) -> list[Sequence]:
    """Split `items` into consecutive chunks of at most `size` elements."""
    if size < 1:
        raise ValueError("size must be at least 1")
    return [items[i:i + size] for i in range(0, len(items), size)]
