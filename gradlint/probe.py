"""Observe the model: one recorded forward (trace) and, when rules need it, one backward (probe).

The probe runs in training mode with a fixed seed, as the first training step would, and
leaves the model as it found it: gradients, buffers (BatchNorm running stats) and mode.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, field
from typing import Any

from gradlint.errors import LoadError
from gradlint.losses import training_loss
from gradlint.spec import ModelSpec
from gradlint.trace import ForwardError, Trace, run_recorded


@dataclass(frozen=True)
class ParamStats:
    path: str  # e.g. "encoder.layers.0.linear1.weight"
    module_path: str
    shape: tuple[int, ...]
    rms: float
    fan_in: int
    grad_norm: float | None
    grad_rms: float | None
    grad_finite: bool


@dataclass(frozen=True)
class Probe:
    """Measurements of one forward+backward at initialization."""

    loss: float
    loss_finite: bool
    global_grad_norm: float
    grads_finite: bool
    # Node index -> RMS of dloss/d(node output): the backward signal at each layer (delta).
    output_grad_rms: dict = field(default_factory=dict)
    params: tuple[ParamStats, ...] = ()


@dataclass(frozen=True)
class Observation:
    trace: Trace | None
    probe: Probe | None
    assumptions: tuple[str, ...]
    passes: dict


def fan_in(shape: tuple[int, ...]) -> int:
    if len(shape) < 2:
        return shape[0] if shape else 1
    return shape[1] * math.prod(shape[2:])


def observe(spec: ModelSpec, want_trace: bool, want_probe: bool, device: str = "cpu", seed: int = 0) -> Observation:
    """Run what the selected rules need: nothing, one forward, or one forward+backward."""
    if not (want_trace or want_probe):
        return Observation(None, None, (), {"forward": 0, "backward": 0})
    import torch

    model = spec.model
    if any(p.is_meta for p in model.parameters()):
        raise LoadError("the model's parameters are on the meta device (no values to run): build it on a real "
                        "device, or use --no-probe")
    with preserved(model):
        try:
            model.to(device)
        except Exception as error:
            raise LoadError(f"cannot move the model to {device!r}: {error}") from error
        targets = spec.targets.to(device) if isinstance(spec.targets, torch.Tensor) else spec.targets
        model.train()
        grad_context = contextlib.nullcontext() if want_probe else torch.no_grad()
        with grad_context:
            # The loss is computed even without a backward: it validates the output (an integer
            # or dict output is reported the same whichever rules run) and states its assumption.
            output, (loss, assumption), trace, recorder, forwards = _first_forward(
                spec, targets, device, seed, want_probe)
        assumptions = (assumption,) if assumption else ()
        if not want_probe:
            return Observation(trace, None, assumptions, {"forward": forwards, "backward": 0})
        model.zero_grad(set_to_none=True)
        with _gradient_stats(model) as grad_stats:
            try:
                loss.backward()
            except Exception as error:
                raise LoadError(f"backward raised {type(error).__name__}: {_first_line(error)}") from error
        probe = _measure(spec, loss, recorder, grad_stats)
    return Observation(trace, probe, assumptions, {"forward": forwards, "backward": 1})


def on_device(value: Any, device: str) -> Any:
    """Forward's arguments on `device`: tensors moved, in a tuple or a dict of keyword arguments."""
    import torch

    if isinstance(value, dict):
        return {key: on_device(item, device) for key, item in value.items()}
    if isinstance(value, tuple):
        return tuple(on_device(item, device) for item in value)
    return value.to(device) if isinstance(value, torch.Tensor) else value


# Errors no input shape causes: a forward raising one fails on every guessed batch alike.
_NOT_THE_INPUT = (RecursionError, NameError, ImportError, NotImplementedError, ZeroDivisionError)


class _Rejected(Exception):
    """A guessed batch whose output does not fit the convention it guessed (load.py's guesses)."""


def _first_forward(spec: ModelSpec, targets: Any, device: str, seed: int, want_probe: bool):
    """The recorded forward, and the loss, of the example batch: when gradlint guessed the batch
    (spec.guesses), of the first guess the model runs and whose output fits it, which the spec
    then keeps for every rule after (ModelSpec.settle). A guess that fails leaves the model as it
    found it. Returns run_recorded's result and the number of forward passes made."""
    import torch

    guesses = spec.guesses or (None,)
    failures: list[tuple[Any, BaseException]] = []
    for number, guess in enumerate(guesses):
        last = number == len(guesses) - 1
        guess = guess.drawn() if guess is not None else None
        inputs = on_device(guess.inputs if guess is not None else spec.inputs, device)
        kwargs = on_device(guess.kwargs if guess is not None else spec.input_kwargs, device)
        kind = guess.loss if guess is not None else spec.loss

        def loss_of(output, guess=guess, inputs=inputs, kind=kind):
            if guess is not None and guess.accepts is not None and not guess.accepts(output):
                raise _Rejected()
            return training_loss(output, targets, spec.loss_fn, seed, needs_grad=want_probe, kind=kind, inputs=inputs)

        # Put back what a failed guess changed (BatchNorm's running statistics) before the next; a
        # guess that runs keeps its changes, as a single pass would: its graph saved those buffers.
        restore = snapshot(spec.model) if not last else (lambda: None)
        torch.manual_seed(seed)
        try:
            output, result, trace, recorder = run_recorded(spec, inputs, retain_grads=want_probe, then=loss_of,
                                                           kwargs=kwargs)
        except _Rejected:
            restore()
            continue
        except ForwardError as error:
            cause = error.error
            if isinstance(cause, LoadError):
                raise cause from cause
            if isinstance(cause, _NOT_THE_INPUT):  # no other batch would run: the model's own error
                raise LoadError(f"forward raised {type(cause).__name__}: {_first_line(cause)}") from cause
            failures.append((guess, cause))
            if not last:
                restore()
                continue
            raise _forward_failure(failures) from cause
        if guess is not None:
            spec.settle(guess)
        return output, result, trace, recorder, number + 1
    raise _forward_failure(failures)  # the last guess was rejected: unreachable, it has no check


def _forward_failure(failures: list[tuple[Any, BaseException]]) -> LoadError:
    """The forward's error, naming the batch gradlint guessed when it guessed one: the first such
    guess that failed (conventions tried before it, such as labels=, are not the model's fault)."""
    if not failures:
        return LoadError("the model's output fits none of the batches gradlint guessed: define example_inputs()")
    guess, cause = next(((g, e) for g, e in failures if g is None or not g.optional), failures[-1])
    message = f"forward raised {type(cause).__name__}: {_first_line(cause)}"
    if guess is None or not guess.described:
        return LoadError(message)
    others = sum(1 for g, _ in failures if g is not None and not g.optional and g is not guess)
    also = f" (and on {others} other shape{'' if others == 1 else 's'})" if others else ""
    return LoadError(f"{message} on {guess.described}{also}: define example_inputs() or pass --input-shape")


@dataclass(frozen=True)
class _GradStats:
    norm: float  # L2 norm with non-finite entries clamped
    count: int
    finite: bool


@contextlib.contextmanager
def each_gradient(parameters: Any, visit: Any):
    """While active, backward calls `visit(parameter)` the moment it has accumulated that
    parameter's gradient, then drops the gradient: the whole gradient never exists at once, so
    memory stays near one parameter's size above the forward's (what lets a large ONNX model
    lint in ~1.4x its size). Used by the probe and the optimizer rules' lean first step."""
    def visit_and_drop(parameter: Any) -> None:
        visit(parameter)
        parameter.grad = None

    hooks = [p.register_post_accumulate_grad_hook(visit_and_drop) for p in parameters if p.requires_grad]
    try:
        yield
    finally:
        for hook in hooks:
            hook.remove()


@contextlib.contextmanager
def _gradient_stats(model: Any):
    """Each parameter's gradient norm and finiteness, measured as backward produces it."""
    import torch

    stats: dict[int, _GradStats] = {}

    def measure(parameter: Any) -> None:
        grad = parameter.grad.detach()
        norm = float(torch.linalg.vector_norm(grad))  # no copy of the gradient on the common path
        finite = math.isfinite(norm)
        if not finite:  # which entries overflowed, and the norm of the rest, clamped
            finite = bool(torch.isfinite(grad).all())
            # A complex gradient as its real and imaginary parts: .float() would drop the imaginary.
            values = torch.view_as_real(grad.resolve_conj()) if grad.is_complex() else grad
            norm = float(torch.nan_to_num(values.float(), nan=0.0, posinf=3e38, neginf=-3e38).norm())
        stats[id(parameter)] = _GradStats(norm, grad.numel(), finite)

    with each_gradient(model.parameters(), measure):
        yield stats


def _measure(spec: ModelSpec, loss: Any, recorder: Any, grad_stats: dict) -> Probe:
    import torch

    output_grad_rms = {}
    for index, tensor in recorder.outputs.items():
        if tensor.grad is not None:
            grad = torch.nan_to_num(tensor.grad.detach().float(), nan=0.0, posinf=3e38, neginf=-3e38)
            output_grad_rms[index] = float(grad.pow(2).mean().sqrt())
    params, total, finite = [], 0.0, True
    for path, parameter in spec.model.named_parameters():
        grad = grad_stats.get(id(parameter))
        grad_norm = grad_rms = None
        grad_finite = True
        if grad is not None:
            grad_norm, grad_finite = grad.norm, grad.finite
            grad_rms = grad_norm / math.sqrt(max(grad.count, 1))
            total += grad_norm ** 2
            finite &= grad_finite
        shape = tuple(parameter.shape)
        params.append(ParamStats(
            path=path, module_path=path.rpartition(".")[0], shape=shape,
            rms=float(torch.linalg.vector_norm(parameter.detach())) / math.sqrt(parameter.numel())
            if parameter.numel() else 0.0,
            fan_in=fan_in(shape), grad_norm=grad_norm, grad_rms=grad_rms, grad_finite=grad_finite,
        ))
    loss_value = float(loss.detach())
    return Probe(
        loss=loss_value, loss_finite=math.isfinite(loss_value), global_grad_norm=math.sqrt(total),
        grads_finite=finite, output_grad_rms=output_grad_rms, params=tuple(params),
    )


@contextlib.contextmanager
def preserved(model: Any):
    """Restore gradients, buffers, training mode and device after the probe."""
    restore = snapshot(model)
    try:
        yield
    finally:
        restore()


def snapshot(model: Any) -> Any:
    """A function that puts back the model's gradients, buffers, training mode and device as
    they are now (preserved calls it on the way out; a failed guess of the batch, right away)."""
    import torch

    grads = {p: p.grad for p in model.parameters()}
    buffers = {name: b.detach().clone() for name, b in model.named_buffers()}
    modes = {m: m.training for m in model.modules()}
    devices = {p.device for p in model.parameters()}

    def restore() -> None:
        if len(devices) == 1:
            model.to(next(iter(devices)))
        for parameter, grad in grads.items():
            parameter.grad = grad
        with torch.no_grad():
            for name, buffer in model.named_buffers():
                if name in buffers:
                    buffer.copy_(buffers[name].to(buffer.device))
        for module, training in modes.items():
            module.train(training)

    return restore


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else ""
