"""Flat vectors over tuples of tensors (one tensor per trainable parameter): the dot products,
norms and axpys of Lanczos and of the first step's numbers.

A complex parameter is a pair of real ones, as autograd and torch.optim treat it: its .grad is
dL/d(re) + i dL/d(im) (for L = |z|^2 it is 2z), and the optimizers step the real view. So every
inner product here is the real one, re . re + im . im, over that view: the loss change a step
predicts, the Hessian-vector product's g . v, Lanczos' dot products. A complex product instead
would give a complex "dot" that no float() can hold.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any


def real(tensor: Any) -> Any:
    """`tensor` as real numbers: a complex one as its (real, imaginary) pairs, a real one as it is."""
    import torch

    return torch.view_as_real(tensor.resolve_conj()) if tensor.is_complex() else tensor


def random_like(parameter: Any, generator: Any) -> Any:
    """A standard normal vector shaped like `parameter`; random in both parts of a complex one."""
    import torch

    if parameter.is_complex():
        return torch.view_as_complex(torch.randn((*parameter.shape, 2), generator=generator)).to(parameter)
    return torch.randn(parameter.shape, generator=generator).to(parameter)


def dot(a: Sequence[Any], b: Sequence[Any]) -> float:
    return float(sum((real(x.detach()).double() * real(y.detach()).double()).sum() for x, y in zip(a, b)))


def norm(a: Sequence[Any]) -> float:
    return math.sqrt(max(dot(a, a), 0.0))


def axpy(alpha: float, x: Sequence[Any], y: Sequence[Any]) -> tuple:
    return tuple(b + alpha * a for a, b in zip(x, y))


def normalized(a: Sequence[Any]) -> tuple:
    length = norm(a)
    return tuple(x / length for x in a) if length > 0 else tuple(a)


def squared_norm(tensor: Any) -> float:
    """||tensor||^2 without a copy of the tensor (no pow(2) temporary the size of a parameter).

    A float32 norm overflows at 3.4e38 while every value is still finite (an update of 1e36 in
    each of a million weights): the values are then scaled by their largest first, so a huge
    update keeps a size to report instead of becoming inf. Only that case pays for the copy."""
    import torch

    values = tensor.detach()
    norm = float(torch.linalg.vector_norm(values))
    if math.isinf(norm):
        largest = float(values.abs().max())
        if math.isfinite(largest) and largest > 0:
            norm = float(torch.linalg.vector_norm(values / largest)) * largest
    return norm * norm  # a float: inf past 1.8e308, where ** 2 would raise OverflowError


def flat_dot(a: Any, b: Any) -> float:
    """a . b over all elements, in float64 when the float32 sum overflows but the values are finite."""
    import torch

    a, b = a.reshape(-1), b.reshape(-1)
    dot = float(torch.dot(a, b))
    if not math.isfinite(dot) and bool(torch.isfinite(a).all()) and bool(torch.isfinite(b).all()):
        dot = float(torch.dot(a.double(), b.double()))
    return dot
