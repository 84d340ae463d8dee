"""The top Hessian eigenvalue of the example-batch loss, which the optimizer's stability is
measured against: 2/lr for gradient descent (Cohen et al. 2021, arXiv:2103.00065), with momentum
and Adam's bounds in docs/theory.md. Each Lanczos iteration is one Hessian-vector product on the
loss surface (surface.LossSurface.hvp); its basis holds one copy of the parameters per iteration.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from gradlint.measure.surface import LossSurface
from gradlint.measure.vectors import axpy, dot, norm, normalized, random_like

# Lanczos stops once the top Ritz value is this close (relative) to an eigenvalue: plenty for
# comparing lr * lambda against a bound of 2.
EIGEN_TOLERANCE = 1e-2


@dataclass(frozen=True)
class Eigen:
    """The top Hessian eigenvalue from power iteration, and how it was obtained."""

    value: float
    iterations: int
    converged: bool


def top_eigenvalue(surface: LossSurface, iterations: int, start: Sequence[Any] | None = None,
                   restarts: int = 0, fixed: frozenset = frozenset()) -> Eigen:
    """The largest Hessian eigenvalue, by Lanczos iteration on Hessian-vector products (as
    PyHessian, arXiv:1912.07145, and Cohen et al.'s edge-of-stability code do; reimplemented).

    Lanczos converges to the extreme eigenvalues much faster than power iteration and is not
    misled by a large negative eigenvalue. It starts from `start` (the gradient is a good
    guess: it lies mostly in the top eigenspace, Gur-Ari et al. 2018, arXiv:1812.04754), then
    from `restarts` random vectors, and returns the largest estimate. Each iteration is one HVP.

    Parameters named in `fixed` are held still: the eigenvalue is that of the Hessian restricted
    to the others (its principal submatrix), the curvature along directions that leave them as
    they are. A model whose parameters are all fixed has curvature 0.
    """
    import torch

    keep = tuple(name not in fixed for name in surface.names)
    if not any(keep):
        return Eigen(0.0, 0, True)
    generator = torch.Generator().manual_seed(surface.seed)
    starts = [start] if start is not None else []
    while len(starts) < 1 + restarts:
        starts.append([random_like(p, generator) for p in surface.params])
    starts = [_restricted(vector, keep) for vector in starts]
    if not all(keep):
        starts = [v if norm(v) > 0 else _restricted([random_like(p, generator) for p in surface.params], keep)
                  for v in starts]  # a start that lay wholly along the fixed parameters
    estimates = [_lanczos(surface, vector, iterations, keep) for vector in starts]
    return max(estimates, key=lambda estimate: estimate.value)


def _restricted(vector: Sequence[Any], keep: Sequence[bool]) -> tuple:
    """`vector` with the entries of fixed parameters set to zero."""
    import torch

    return tuple(v if k else torch.zeros_like(v) for v, k in zip(vector, keep))


def _lanczos(surface: LossSurface, start: Sequence[Any], iterations: int, keep: Sequence[bool]) -> Eigen:
    """The top Ritz value of `iterations` Lanczos steps, with full reorthogonalization (the
    basis is small). Stops early once the Ritz residual |beta_k * s_k| is below
    EIGEN_TOLERANCE times the value: the estimate is then within that of an eigenvalue."""
    import torch

    basis = [normalized(start)]
    alphas: list[float] = []
    betas: list[float] = []
    value = 0.0
    for step in range(1, iterations + 1):
        w = surface.hvp(basis[-1])
        if not all(keep):
            w = _restricted(w, keep)
        alphas.append(dot(w, basis[-1]))
        for vector in basis:  # full reorthogonalization: subtract every earlier direction
            w = axpy(-dot(w, vector), vector, w)
        beta = norm(w)
        tridiagonal = torch.diag(torch.tensor(alphas, dtype=torch.float64))
        if betas:
            off = torch.tensor(betas, dtype=torch.float64)
            tridiagonal += torch.diag(off, 1) + torch.diag(off, -1)
        ritz_values, ritz_vectors = torch.linalg.eigh(tridiagonal)
        value = float(ritz_values[-1])
        if not math.isfinite(value):
            return Eigen(value, step, False)
        residual = beta * abs(float(ritz_vectors[-1, -1]))
        if residual <= EIGEN_TOLERANCE * max(abs(value), 1e-12) or beta == 0.0:
            return Eigen(value, step, True)
        betas.append(beta)
        basis.append(tuple(x / beta for x in w))
    return Eigen(value, iterations, False)
