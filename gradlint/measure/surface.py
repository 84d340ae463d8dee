"""The training loss on the example batch as a function of the trainable parameters: the loss
surface the curvature, first-step and one-step lookahead measurements read.

Everything here runs the model as the probe does (training mode, a fixed seed, so dropout masks
and default random labels repeat between passes) and leaves the model exactly as found:
parameters are never written (shifted parameters enter the model through
torch.func.functional_call); gradients, buffers (BatchNorm running statistics), modes and device
are restored by the probe's `preserved`.

Costs, in passes over the example batch (`LossSurface.passes`; rules report them through
ctx.count_passes): a gradient is 1 forward + 1 backward; a Hessian-vector product 1 more forward
and backward each (a double backward through the kept graph), or 2 + 2 by finite differences for
ops without double backward; a shifted loss 1 forward.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

from gradlint.losses import training_loss
from gradlint.measure.vectors import norm, real
from gradlint.probe import on_device, preserved
from gradlint.spec import ModelSpec

# Finite-difference HVP step, relative to the parameter norm (docs/theory.md, P2).
FD_RELATIVE_STEP = 1e-3


class LossSurface:
    """The training loss on the example batch as a function of the trainable parameters."""

    def __init__(self, spec: ModelSpec, inputs: tuple, targets: Any, seed: int, kwargs: dict | None = None):
        self.spec = spec
        self.model = spec.model
        self.inputs = inputs
        self.kwargs = kwargs or {}
        self.targets = targets
        self.seed = seed
        named = [(name, p) for name, p in self.model.named_parameters() if p.requires_grad]
        self.names = tuple(name for name, _ in named)
        self.params = tuple(p for _, p in named)
        self.passes = {"forward": 0, "backward": 0}
        self._graph_gradient: tuple | None = None  # the gradient with its graph, kept for HVPs
        self._double_backward = True  # False once an op in the model turned out not to support it

    # -- passes -----------------------------------------------------------------------------
    def loss(self, params: Sequence[Any] | None = None) -> Any:
        """The loss at the current parameters, or at `params` (same order as self.params)."""
        import torch
        from torch.func import functional_call

        torch.manual_seed(self.seed)  # the same dropout masks on every pass
        self.passes["forward"] += 1
        if params is None:
            output = self.model(*self.inputs, **self.kwargs)
        else:
            output = functional_call(self.model, dict(zip(self.names, params)), self.inputs, self.kwargs)
        loss, _ = training_loss(output, self.targets, self.spec.loss_fn, self.seed, inputs=self.inputs,
                                needs_grad=torch.is_grad_enabled(), kind=self.spec.loss)  # shifted_loss: no_grad
        return loss

    def gradient(self, params: Sequence[Any] | None = None, create_graph: bool = False) -> tuple:
        import torch

        loss = self.loss(params)
        inputs = self.params if params is None else params
        self.passes["backward"] += 1
        grads = torch.autograd.grad(loss, inputs, create_graph=create_graph, allow_unused=True)
        grads = tuple(torch.zeros_like(p) if g is None else g for p, g in zip(inputs, grads))
        return (loss, grads) if create_graph else (loss.detach(), tuple(g.detach() for g in grads))

    def hvp(self, vector: Sequence[Any]) -> tuple:
        """H @ vector: a double backward through one kept graph; finite differences where an op
        in the model has no double backward (fused kernels, cuDNN RNNs)."""
        if self._double_backward:
            try:
                return self._autograd_hvp(vector)
            except (RuntimeError, NotImplementedError):  # an op without double backward
                self._double_backward, self._graph_gradient = False, None
        return self._finite_difference_hvp(vector)

    def _autograd_hvp(self, vector: Sequence[Any]) -> tuple:
        import torch

        if self._graph_gradient is None:
            _, self._graph_gradient = self.gradient(create_graph=True)
        self.passes["forward"] += 1
        self.passes["backward"] += 1
        # H v as the gradient of the scalar g . v rather than autograd.grad(g, grad_outputs=v): the
        # same vector-Jacobian product, but tensor grad_outputs make torch import sympy for its
        # shape check (~0.5 s, more than the whole curvature probe of a small model).
        terms = [(real(g) * real(v)).sum() for g, v in zip(self._graph_gradient, vector) if g.requires_grad]
        if not terms:  # no gradient depends on the parameters twice over: nothing to differentiate
            raise RuntimeError("the gradient has no graph")
        product = torch.autograd.grad(sum(terms), self.params, retain_graph=True, allow_unused=True)
        return tuple(torch.zeros_like(p) if h is None else h.detach() for p, h in zip(self.params, product))

    def _finite_difference_hvp(self, vector: Sequence[Any]) -> tuple:
        """(grad L(theta + eps v) - grad L(theta - eps v)) / 2 eps."""
        scale = norm(self.params) * FD_RELATIVE_STEP / max(norm(vector), 1e-30)
        plus = [p.detach() + scale * v for p, v in zip(self.params, vector)]
        minus = [p.detach() - scale * v for p, v in zip(self.params, vector)]
        plus = [p.requires_grad_() for p in plus]
        minus = [p.requires_grad_() for p in minus]
        _, grad_plus = self.gradient(plus)
        _, grad_minus = self.gradient(minus)
        return tuple((a - b) / (2 * scale) for a, b in zip(grad_plus, grad_minus))

    def shifted_loss(self, offsets: Sequence[Any], scale: float = 1.0) -> float:
        """The loss at theta + scale * offsets (one forward, no gradient)."""
        import torch

        with torch.no_grad():
            shifted = [p.detach() + scale * o for p, o in zip(self.params, offsets)]
            return float(self.loss(shifted))


@contextlib.contextmanager
def loss_surface(spec: ModelSpec, device: str = "cpu", seed: int = 0) -> Iterator[LossSurface]:
    """The example-batch loss surface, with the model prepared as the probe prepares it and
    restored afterwards."""
    import torch

    model = spec.model
    with preserved(model), _double_backward_attention():
        model.to(device)
        model.train()
        inputs = tuple(t.to(device) if isinstance(t, torch.Tensor) else t for t in spec.inputs)
        targets = spec.targets.to(device) if isinstance(spec.targets, torch.Tensor) else spec.targets
        yield LossSurface(spec, inputs, targets, seed, on_device(spec.input_kwargs, device))


@contextlib.contextmanager
def _double_backward_attention():
    """Fused attention kernels have no double backward; the math backend does."""
    try:
        from torch.nn.attention import SDPBackend, sdpa_kernel
    except ImportError:  # torch < 2.3
        yield
        return
    with sdpa_kernel(SDPBackend.MATH):
        yield
