"""Curvature and one-step lookahead on the example batch: what the optimizer rules measure.

The optimizer's stability depends on the loss surface around the initial parameters: the top
Hessian eigenvalue against 2/lr for gradient descent (Cohen et al. 2021, arXiv:2103.00065), and
the loss after the optimizer's actual first step. Everything here runs the model as the probe
does (training mode, a fixed seed, so dropout masks and default random labels repeat between
passes) and leaves the model and the optimizer exactly as found:

- parameters are never written: shifted parameters enter the model through
  torch.func.functional_call;
- the optimizer steps a deep copy of itself whose parameters are clones of the model's;
- gradients, buffers (BatchNorm running statistics), modes and device are restored by the
  probe's `preserved`.

Costs, in passes over the example batch (`LossSurface.passes`; rules report them through
ctx.count_passes):
- gradient: 1 forward + 1 backward
- Hessian-vector product: 1 more forward + backward each (a double backward through the kept
  graph); the finite-difference fallback, for ops without double backward, costs 2 + 2
- lookahead: 1 forward per step size

Memory, in multiples of the trainable parameters (P): a full first step holds the gradient, the
update, cloned parameters and the optimizer's state (3-5 P); Lanczos keeps its basis (one P per
iteration). Above LEAN_BYTES of parameters the optimizer rules run lean (RuleContext.lean): the
first step goes one tensor at a time (`first_step(lean=True)`, well under 1 P), and the probes
that need whole vectors (Lanczos, lookahead) are skipped and say so.
"""

from __future__ import annotations

import contextlib
import copy
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from gradlint.losses import training_loss
from gradlint.optimizers import UnsupportedOptimizer, at_checked_lr, fresh_optimizer, optimizer_from_info
from gradlint.probe import each_gradient, on_device, preserved
from gradlint.spec import ModelSpec

# Models with more trainable parameter bytes than this get the lean optimizer probes (see above):
# a 256 MB model then lints within about 1.5x its size of extra memory (BENCHMARKS.md).
LEAN_BYTES = 256 * 2**20

# Lanczos stops once the top Ritz value is this close (relative) to an eigenvalue: plenty for
# comparing lr * lambda against a bound of 2.
EIGEN_TOLERANCE = 1e-2
# Finite-difference HVP step, relative to the parameter norm (docs/theory.md, P2).
FD_RELATIVE_STEP = 1e-3


@dataclass(frozen=True)
class Eigen:
    """The top Hessian eigenvalue from power iteration, and how it was obtained."""

    value: float
    iterations: int
    converged: bool


@dataclass(frozen=True)
class TensorUpdate:
    """One trainable parameter's share of the first step, in numbers: all a lean step keeps."""

    name: str  # parameter path, e.g. "encoder.layers.0.linear1.weight"
    dim: int
    weight_rms: float
    update_rms: float
    grad_sq: float  # ||g||^2, before clipping
    update_sq: float  # ||u||^2
    dot: float  # g . u, with g before clipping


@dataclass(frozen=True)
class FirstStep:
    """The optimizer's first update on the example batch, computed on copies of the parameters."""

    loss: float
    tensors: tuple  # TensorUpdate per trainable parameter
    grad_norm: float  # global L2 norm of the gradient, before clipping
    clip_scale: float  # min(1, clip / grad_norm): the factor clipping applied to the gradient (1 without clipping)
    # The whole vectors, per trainable parameter; None for a lean step (`first_step(lean=True)`),
    # which never holds more than one parameter's gradient and update at a time.
    gradient: tuple | None = None  # before clipping
    update: tuple | None = None  # the change the first optimizer step makes (zero if not optimized)

    @property
    def descent(self) -> float:
        """-g . update: the loss decrease a linear model predicts (positive for a descent step)."""
        return -sum(t.dot for t in self.tensors)


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
        terms = [(_real(g) * _real(v)).sum() for g, v in zip(self._graph_gradient, vector) if g.requires_grad]
        if not terms:  # no gradient depends on the parameters twice over: nothing to differentiate
            raise RuntimeError("the gradient has no graph")
        product = torch.autograd.grad(sum(terms), self.params, retain_graph=True, allow_unused=True)
        return tuple(torch.zeros_like(p) if h is None else h.detach() for p, h in zip(self.params, product))

    def _finite_difference_hvp(self, vector: Sequence[Any]) -> tuple:
        """(grad L(theta + eps v) - grad L(theta - eps v)) / 2 eps."""
        scale = _norm(self.params) * FD_RELATIVE_STEP / max(_norm(vector), 1e-30)
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


def parameter_bytes(model: Any) -> int:
    """Bytes of the model's trainable parameters (tied weights counted once)."""
    return sum(p.numel() * p.element_size() for p in model.parameters() if p.requires_grad)


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


# -- measurements --------------------------------------------------------------------------------
def top_eigenvalue(surface: LossSurface, iterations: int, start: Sequence[Any] | None = None,
                   restarts: int = 0) -> Eigen:
    """The largest Hessian eigenvalue, by Lanczos iteration on Hessian-vector products (as
    PyHessian, arXiv:1912.07145, and Cohen et al.'s edge-of-stability code do; reimplemented).

    Lanczos converges to the extreme eigenvalues much faster than power iteration and is not
    misled by a large negative eigenvalue. It starts from `start` (the gradient is a good
    guess: it lies mostly in the top eigenspace, Gur-Ari et al. 2018, arXiv:1812.04754), then
    from `restarts` random vectors, and returns the largest estimate. Each iteration is one HVP.
    """
    import torch

    generator = torch.Generator().manual_seed(surface.seed)
    starts = [start] if start is not None else []
    while len(starts) < 1 + restarts:
        starts.append([_random_like(p, generator) for p in surface.params])
    estimates = [_lanczos(surface, vector, iterations) for vector in starts]
    return max(estimates, key=lambda estimate: estimate.value)


def _lanczos(surface: LossSurface, start: Sequence[Any], iterations: int) -> Eigen:
    """The top Ritz value of `iterations` Lanczos steps, with full reorthogonalization (the
    basis is small). Stops early once the Ritz residual |beta_k * s_k| is below
    EIGEN_TOLERANCE times the value: the estimate is then within that of an eigenvalue."""
    import torch

    basis = [_normalized(start)]
    alphas: list[float] = []
    betas: list[float] = []
    value = 0.0
    for step in range(1, iterations + 1):
        w = surface.hvp(basis[-1])
        alphas.append(_dot(w, basis[-1]))
        for vector in basis:  # full reorthogonalization: subtract every earlier direction
            w = _axpy(-_dot(w, vector), vector, w)
        beta = _norm(w)
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


def first_step(surface: LossSurface, optimizer: Any, optimizer_info: Any = None,
               clip: float | None = None, lean: bool = False) -> FirstStep:
    """The update the optimizer's first step makes on the example batch, with global grad-norm
    clipping at `clip` applied first (g <- g * min(1, clip/||g||), as clip_grad_norm_ and
    Lightning's gradient_clip_val do). The optimizer steps a copy of itself on cloned parameters.

    `lean` keeps memory at one parameter's size: each tensor's update is computed the moment
    backward has accumulated its gradient, by a one-tensor copy of the optimizer, and only
    numbers are kept (torch.optim's first step is per tensor). It costs one more forward and
    backward when clipping needs the global gradient norm first."""
    if lean:
        return _lean_first_step(surface, optimizer, optimizer_info, clip)
    loss, gradient = surface.gradient()
    grad_norm = _norm(gradient)
    clip_scale = _clip_scale(clip, grad_norm)
    clipped = tuple(g * clip_scale for g in gradient) if clip_scale < 1.0 else gradient
    update = _step_on_copies(optimizer, optimizer_info, surface.params, clipped)
    tensors = tuple(_tensor_update(name, p, g, u)
                    for name, p, g, u in zip(surface.names, surface.params, gradient, update))
    return FirstStep(loss=float(loss), tensors=tensors, grad_norm=grad_norm, clip_scale=clip_scale,
                     gradient=gradient, update=update)


def _clip_scale(clip: float | None, grad_norm: float) -> float:
    return min(1.0, clip / (grad_norm + 1e-6)) if clip else 1.0


def _tensor_update(name: str, parameter: Any, gradient: Any, update: Any) -> TensorUpdate:
    """The numbers of one tensor's whole step."""
    import torch

    return _numbers(name, parameter, _squared_norm(gradient), _squared_norm(update),
                    _flat_dot(_real(gradient.detach()), _real(update)))


def _numbers(name: str, parameter: Any, grad_sq: float, update_sq: float, dot: float) -> TensorUpdate:
    count = max(parameter.numel(), 1)
    return TensorUpdate(name=name, dim=parameter.dim(), weight_rms=math.sqrt(_squared_norm(parameter) / count),
                        update_rms=math.sqrt(update_sq / count), grad_sq=grad_sq, update_sq=update_sq, dot=dot)


def _squared_norm(tensor: Any) -> float:
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


def _flat_dot(a: Any, b: Any) -> float:
    """a . b over all elements, in float64 when the float32 sum overflows but the values are finite."""
    import torch

    a, b = a.reshape(-1), b.reshape(-1)
    dot = float(torch.dot(a, b))
    if not math.isfinite(dot) and bool(torch.isfinite(a).all()) and bool(torch.isfinite(b).all()):
        dot = float(torch.dot(a.double(), b.double()))
    return dot


def _lean_first_step(surface: LossSurface, optimizer: Any, info: Any, clip: float | None) -> FirstStep:
    index = {id(p): i for i, p in enumerate(surface.params)}
    grad_sq = [0.0] * len(surface.params)

    def add_norm(parameter: Any) -> None:
        grad_sq[index[id(parameter)]] = _squared_norm(parameter.grad)

    clip_scale = 1.0
    if clip:  # the scale every tensor's gradient gets needs the global norm: one pass first
        _stream_gradients(surface, add_norm)
        clip_scale = _clip_scale(clip, math.sqrt(sum(grad_sq)))
    tensors: list[TensorUpdate | None] = [None] * len(surface.params)

    def step_tensor(parameter: Any) -> None:
        i = index[id(parameter)]
        tensors[i] = _lean_tensor_update(surface.names[i], optimizer, info, parameter, parameter.grad.detach(),
                                         clip_scale)

    loss = _stream_gradients(surface, step_tensor)
    for i, parameter in enumerate(surface.params):
        if tensors[i] is None:  # backward never reached it (an unused parameter): no gradient, no update
            tensors[i] = _numbers(surface.names[i], parameter, 0.0, 0.0, 0.0)
    grad_norm = math.sqrt(sum(t.grad_sq for t in tensors))
    return FirstStep(loss=loss, tensors=tuple(tensors), grad_norm=grad_norm, clip_scale=clip_scale)


def _stream_gradients(surface: LossSurface, visit: Any) -> float:
    """One forward and backward in which `visit(parameter)` sees each parameter's gradient as
    soon as backward has accumulated it (probe.each_gradient). Returns the loss."""
    for parameter in surface.params:
        parameter.grad = None
    with each_gradient(surface.params, visit):
        loss = surface.loss()
        surface.passes["backward"] += 1
        loss.backward()
    return float(loss.detach())


def lookahead(surface: LossSurface, step: FirstStep, scale: float = 1.0) -> float:
    """The example-batch loss after the first update scaled by `scale`. The first step of SGD,
    momentum and Adam(W) is linear in lr, so `scale` is exactly a learning-rate multiplier."""
    return surface.shifted_loss(step.update, scale)


def _step_on_copies(optimizer: Any, info: Any, params: Sequence[Any], grads: Sequence[Any]) -> tuple:
    """Step a copy of `optimizer` whose parameters are clones of `params`; the updates it made."""
    clones = {id(p): p.detach().clone().requires_grad_(p.requires_grad) for p in params}
    twin = at_checked_lr(_twin(optimizer, info, clones), info)
    for p, g in zip(params, grads):
        clones[id(p)].grad = g.detach().clone()
    _step(twin)
    return tuple(clones[id(p)].detach().sub_(p.detach()) for p in params)


# torch.optim classes whose first step treats every element on its own: a parameter can be
# stepped in slices, which bounds the lean step's memory by the slice (Adafactor's factored
# moments, and unknown optimizers, get whole tensors).
ELEMENTWISE = {"SGD", "ASGD", "Adam", "AdamW", "Adamax", "NAdam", "RAdam", "RMSprop", "Adagrad", "Adadelta", "Rprop"}
SLICE_ELEMENTS = 2**20


def _lean_tensor_update(name: str, optimizer: Any, info: Any, parameter: Any, gradient: Any,
                        clip_scale: float) -> TensorUpdate:
    """One parameter's first-step numbers, stepping it in slices where the optimizer allows."""
    import torch

    state = optimizer.state.get(parameter) if optimizer is not None else None
    name_of_class = type(optimizer).__name__ if optimizer is not None else info.name
    whole = state or name_of_class not in ELEMENTWISE or not parameter.is_contiguous()
    values = parameter.detach() if whole else parameter.detach().reshape(-1)
    grads = gradient if whole else gradient.reshape(-1)
    size = values.numel() if whole else SLICE_ELEMENTS
    update_sq = dot = 0.0
    for start in range(0, max(values.numel(), 1), max(size, 1)):
        value, grad = (values, grads) if whole else (values[start:start + size], grads[start:start + size])
        update = _step_one_tensor(optimizer, info, parameter, value, grad * clip_scale if clip_scale < 1 else grad)
        update_sq += _squared_norm(update)
        dot += _flat_dot(_real(grad), _real(update))
    return _numbers(name, parameter, _squared_norm(gradient), update_sq, dot)


def _step_one_tensor(optimizer: Any, info: Any, parameter: Any, value: Any, gradient: Any) -> Any:
    """The first update of `value` (`parameter` or a slice of it) alone: a new optimizer of the
    same class, with the hyper-parameters of the parameter's param group and its state, steps a
    clone of it."""
    clone = value.detach().clone().requires_grad_()
    # The gradient itself, not a copy: torch.optim's steps read it without writing it.
    clone.grad = gradient.detach()
    if optimizer is None:
        twin = optimizer_from_info(info, [clone])
    else:
        group = next((g for g in optimizer.param_groups if any(p is parameter for p in g["params"])),
                     optimizer.param_groups[0])
        try:
            twin = fresh_optimizer(optimizer, [clone], group)
        except Exception as error:  # a constructor that wants more than its param group holds
            raise UnsupportedOptimizer(f"cannot rebuild {type(optimizer).__name__} for one tensor: {error}") from error
        if optimizer.state.get(parameter):  # only whole tensors get here with state
            twin.state[clone] = copy.deepcopy(optimizer.state[parameter])
    _step(at_checked_lr(twin, info))
    return clone.detach().sub_(value.detach())


def _step(optimizer: Any) -> None:
    try:
        # The class's step, not the instance attribute: LR schedulers patch `optimizer.step`
        # with a wrapper bound to the original optimizer.
        type(optimizer).step(optimizer)
    except (TypeError, RuntimeError, ValueError) as error:  # e.g. LBFGS: step() needs a closure
        raise UnsupportedOptimizer(f"{type(optimizer).__name__}.step cannot run outside training: {error}") from error


def _twin(optimizer: Any, info: Any, clones: dict) -> Any:
    """A copy of `optimizer` over the cloned parameters, its state included."""
    if optimizer is not None:
        try:
            # deepcopy with a memo that maps each model parameter to its clone: the copy holds
            # the clones in its param groups and state; the user's optimizer is never touched.
            return copy.deepcopy(optimizer, memo=dict(clones))
        except Exception:  # an optimizer holding something uncopyable: same class and hyper-parameters
            pass
    return optimizer_from_info(info, list(clones.values()))


# -- flat-vector helpers over tuples of tensors ------------------------------------------------------
# A complex parameter is a pair of real ones, as autograd and torch.optim treat it: its .grad is
# dL/d(re) + i dL/d(im) (for L = |z|^2 it is 2z), and the optimizers step the real view. So every
# inner product here is the real one, re . re + im . im, over that view: the loss change a step
# predicts, the Hessian-vector product's g . v, Lanczos' dot products. A complex product instead
# would give a complex "dot" that no float() can hold.
def _real(tensor: Any) -> Any:
    """`tensor` as real numbers: a complex one as its (real, imaginary) pairs, a real one as it is."""
    import torch

    return torch.view_as_real(tensor.resolve_conj()) if tensor.is_complex() else tensor


def _random_like(parameter: Any, generator: Any) -> Any:
    """A standard normal vector shaped like `parameter`; random in both parts of a complex one."""
    import torch

    if parameter.is_complex():
        return torch.view_as_complex(torch.randn((*parameter.shape, 2), generator=generator)).to(parameter)
    return torch.randn(parameter.shape, generator=generator).to(parameter)


def _dot(a: Sequence[Any], b: Sequence[Any]) -> float:
    return float(sum((_real(x.detach()).double() * _real(y.detach()).double()).sum() for x, y in zip(a, b)))


def _norm(a: Sequence[Any]) -> float:
    return math.sqrt(max(_dot(a, a), 0.0))


def _axpy(alpha: float, x: Sequence[Any], y: Sequence[Any]) -> tuple:
    return tuple(b + alpha * a for a, b in zip(x, y))


def _normalized(a: Sequence[Any]) -> tuple:
    norm = _norm(a)
    return tuple(x / norm for x in a) if norm > 0 else tuple(a)
