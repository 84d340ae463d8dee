"""Load a model file or import string into a ModelSpec, following gradlint's public conventions.

A model file may define (all but the model optional):
  build_model()                -> nn.Module   (or a module-level `model`, or a no-argument nn.Module subclass)
  example_inputs()             -> tuple of tensors (or one tensor): forward's positional arguments
  example_targets()            -> the targets for that batch
  loss_fn(output, targets)     -> scalar training loss
  configure_optimizers(model)  -> optimizer (any return shape PyTorch Lightning accepts)
  gradient_clip_val            -> number (global grad-norm clipping, Lightning's name)
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import importlib.util
import inspect
import os
import sys
from dataclasses import dataclass, replace
from typing import Any

from gradlint import sources, stages
from gradlint.discover import Target
from gradlint.errors import LoadError, NoModel
from gradlint.findings import Location
from gradlint.guesses import BATCH, conventions, infer
from gradlint.locations import class_location, display_path, is_library_file, record_construction_sites
from gradlint.spec import Guess, ModelSpec, OptimizerInfo

DEFAULT_LR = 1e-3


@dataclass(frozen=True)
class Overrides:
    """Command-line settings that beat what the model file says."""

    input_shape: tuple[int, ...] | None = None
    lr: float | None = None
    optimizer: str | None = None  # a torch.optim class name, case-insensitive
    seed: int = 0
    batch_size: int | None = None  # of the random batch gradlint infers when there is no example_inputs()
    loss: str | None = None  # the default loss without a loss_fn: "cross-entropy" or "mse" (losses.LOSSES)
    gradient_clip_val: float | None = None  # instead of the file's (an ONNX file has none)


def load_target(target: Target, overrides: Overrides = Overrides()) -> ModelSpec:
    """The ModelSpec of a target. Linting it needs `importable(target)` open while the model runs
    too (engine.lint_target does that): a model's code may import lazily, inside forward."""
    stages.enter("import", user_code=True)
    if target.kind == "onnx":
        from gradlint.onnx import load_onnx_spec  # only ONNX runs pay for the onnx import

        return load_onnx_spec(target.path, overrides)
    with importable(target):  # again, for callers that lint in their own process (benchmarks)
        if target.kind == "import":
            module_name, _, name = target.path.partition(":")
            namespace = _import_string_module(module_name)
            return spec_from_namespace(namespace, _module_file(namespace), name, overrides, label=target.path)
        namespace = import_file(target.path)
        return spec_from_namespace(namespace, target.path, target.name, overrides)


@contextlib.contextmanager
def importable(target: Target):
    """sys.path as running the target's code expects it, from loading until the lint is done:

    - a file inside a package (folders with __init__.py up to a root, as pytest finds it) is
      imported as its dotted module, with the folder above the outermost package first on the
      path, so `from .blocks import Block` and `from mypkg.blocks import Block` both work;
    - a file outside any package has its own folder first, as under `python model.py`;
    - an import string `pkg.module:NAME` has the working directory first, as under `python -m`;
    - the working directory comes last in every case, after the installed packages, so that a
      script can import the project's own package when it is run from the project root without
      it shadowing anything installed.
    The path is restored afterwards, and no bytecode is written next to the user's files."""
    if target.kind == "onnx":
        yield
        return
    if target.kind == "import":
        first = os.getcwd()
    else:
        absolute = os.path.abspath(target.path)
        found = package_root(absolute)
        first = found[0] if found is not None else os.path.dirname(absolute)
    saved = list(sys.path)
    sys.path.insert(0, first)
    sys.path.append(os.getcwd())
    previous, sys.dont_write_bytecode = sys.dont_write_bytecode, True
    try:
        yield
    finally:
        sys.path[:] = saved
        sys.dont_write_bytecode = previous


def package_root(path: str) -> tuple[str, str] | None:
    """(the folder above the outermost package holding `path`, the file's dotted module name), or
    None when the file's folder is no package (has no __init__.py)."""
    folder, parts = os.path.dirname(path), [os.path.splitext(os.path.basename(path))[0]]
    while os.path.isfile(os.path.join(folder, "__init__.py")):
        parts.insert(0, os.path.basename(folder))
        parent = os.path.dirname(folder)
        if parent == folder:
            break
        folder = parent
    if len(parts) == 1:
        return None
    if parts[-1] == "__init__":
        parts.pop()
    return folder, ".".join(parts)


def import_file(path: str) -> Any:
    """Import a .py file: as its dotted module inside a package, else as a fresh module under a
    private name. See `importable` for the path it needs."""
    # Read and decoded first, as Python will: a FIFO, a device, a huge, binary or undecodable
    # file gets a one-line reason (SourceError, a LoadError) instead of a hang or a bare
    # "syntax error at line None".
    sources.read_python_source(path)
    absolute = os.path.abspath(path)
    found = package_root(absolute)
    if found is not None:
        return _import_package_module(found[1], absolute)
    module_name = "gradlint_target_" + hashlib.sha1(absolute.encode()).hexdigest()[:12]
    spec = importlib.util.spec_from_file_location(module_name, absolute)
    if spec is None or spec.loader is None:
        raise LoadError("not an importable Python file")
    module = importlib.util.module_from_spec(spec)
    # Registered under a private name: inspect finds class lines through sys.modules.
    sys.modules[module_name] = module
    try:
        with _import_errors():
            spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(module_name, None)
        raise
    return module


def _import_package_module(dotted: str, absolute: str) -> Any:
    with _import_errors():
        module = importlib.import_module(dotted)
    imported = os.path.abspath(getattr(module, "__file__", "") or "")
    if imported != absolute:  # the package's name is taken by an installed or already imported one
        raise LoadError(f"imported as {dotted}, but that name is {display_path(imported) or 'a namespace'}: "
                        f"rename the package, or lint it as {dotted}:NAME from the right folder")
    return module


@contextlib.contextmanager
def _import_errors():
    """A failing import as a LoadError with one line: SystemExit and KeyboardInterrupt pass through
    (the worker names them); gradlint's own exceptions are already LoadErrors."""
    try:
        yield
    except LoadError:
        raise
    except SyntaxError as error:
        raise LoadError(sources.syntax_error_message(error)) from error
    except ImportError as error:
        raise LoadError(f"import failed: {type(error).__name__}: {error}") from error
    except Exception as error:
        raise LoadError(f"error while importing: {type(error).__name__}: {error}") from error


def _import_string_module(module_name: str) -> Any:
    with _import_errors():
        return importlib.import_module(module_name)


def _module_file(module: Any) -> str:
    filename = getattr(module, "__file__", None)
    return display_path(filename) if filename else module.__name__


def spec_from_namespace(namespace: Any, path: str, name: str | None, overrides: Overrides = Overrides(),
                        label: str | None = None) -> ModelSpec:
    """Build the model and read the training configuration from a loaded module.

    The target's label is `path::factory` unless given (import strings keep their own form).
    """
    import torch

    factory_name, factory = find_factory(namespace, name)
    label = label or f"{path}::{factory_name}"
    torch.manual_seed(overrides.seed)
    stages.enter(f"{factory_name}()", user_code=True)
    with record_construction_sites() as sites:
        try:
            model = factory()
        except Exception as error:
            raise LoadError(f"{factory_name}() raised {type(error).__name__}: {error}") from error
    if not isinstance(model, torch.nn.Module):
        raise LoadError(f"{factory_name} gave {type(model).__name__}, not a torch.nn.Module")
    if not any(True for _ in model.parameters()):
        raise LoadError(f"{factory_name} gave a model with no parameters: nothing to train")

    assumptions: list[str] = []
    eager = _inside_torch_compile(model)
    if eager is not None:
        model = eager
        assumptions.append("model: the module inside torch.compile, run eagerly")
    stages.enter("example_inputs()", user_code=True)
    guesses = _example_inputs(namespace, model, overrides)
    targets = _call_optional(namespace, "example_targets")
    loss_fn = getattr(namespace, "loss_fn", None)
    if not callable(loss_fn) and targets is None and overrides.loss is None:
        guesses = (*conventions(model, guesses[0]), *guesses)
    first = guesses[0]
    assumptions.extend(first.notes)
    stages.enter("configure_optimizers()", user_code=True)
    optimizer_object, optimizer = resolve_optimizer(namespace, model, overrides, assumptions)
    if overrides.gradient_clip_val is not None:
        clip = overrides.gradient_clip_val
        _check_clip(clip, "in the config")
    else:
        clip = getattr(namespace, "gradient_clip_val", None)
        _check_clip(clip, "in the model file")
    return ModelSpec(
        target=label,
        path=path,
        model=model,
        inputs=first.inputs,
        input_kwargs=first.kwargs,
        # Tried in turn by the first forward when gradlint made the batch up or guessed a convention.
        guesses=guesses if len(guesses) > 1 or first.described else (),
        targets=targets,
        loss_fn=loss_fn if callable(loss_fn) else None,
        optimizer=optimizer,
        optimizer_object=optimizer_object,
        gradient_clip_val=float(clip) if clip else None,
        sites=sites,
        model_location=_model_location(model, path, factory, sites, factory_name),
        assumptions=tuple(assumptions),
        loss=first.loss,
    )


def _check_clip(clip: Any, where: str) -> None:
    """gradient_clip_val as Lightning reads it, with its silent failures made errors. None or 0
    means no clipping, as in Lightning (Trainer's default is None, and its precision plugin skips
    clipping when the value is <= 0), so both stay allowed. A negative value, which Lightning also
    skips without a word, is a mistake; NaN makes clip_grad_norm_ write NaN into every gradient;
    inf never clips; a bool is a number to Python (True clips at 1) but not what anyone means."""
    import math

    if clip is None:
        return
    if not isinstance(clip, (int, float)):
        raise LoadError(f"gradient_clip_val must be a number, not {type(clip).__name__}")
    if isinstance(clip, bool) or clip < 0 or not math.isfinite(clip):
        raise LoadError(f"gradient_clip_val = {_number(clip)} {where}: must be a positive finite number")


def _inside_torch_compile(model: Any) -> Any:
    """The module a torch.compile wrapper (OptimizedModule) holds, else None. gradlint's trace and
    probe hook the model's layers, and compiled code does not run hooks the way eager code does
    (dynamo rejects the trace's hooks); compiling changes no weight, gradient or number the rules
    read, so the eager module is the model to lint. Found by name, without importing dynamo."""
    import torch.nn as nn

    inner = getattr(model, "_orig_mod", None)
    return inner if type(model).__name__ == "OptimizedModule" and isinstance(inner, nn.Module) else None


def find_factory(namespace: Any, name: str | None):
    """The callable that builds the model, and the name it goes by."""
    import torch.nn as nn

    if name is not None:
        if not hasattr(namespace, name):
            raise LoadError(f"no name {name!r} in the file")
        return name, _as_factory(getattr(namespace, name), name)
    if callable(getattr(namespace, "build_model", None)):
        return "build_model", namespace.build_model
    if isinstance(getattr(namespace, "model", None), nn.Module):
        return "model", _as_factory(namespace.model, "model")
    defined = _module_classes(namespace)
    classes = [cls for cls in defined if not _required_arguments(cls)]
    if not defined:
        raise NoModel("no build_model(), module-level `model` or nn.Module class")
    if not classes:
        names = ", ".join(cls.__name__ for cls in defined[:3]) + (", ..." if len(defined) > 3 else "")
        raise NoModel(f"its nn.Module classes ({names}) all need constructor arguments; name a factory with "
                      "file.py::NAME or build_model() to lint one")
    # Several classes: the outermost model holds the others, so it has the most parameters.
    built = []
    for cls in classes:
        try:
            built.append((sum(p.numel() for p in cls().parameters()), cls))
        except Exception:
            continue
    if not built:
        raise LoadError("no model found: every nn.Module subclass in the file failed to construct")
    count, cls = max(built, key=lambda pair: pair[0])
    if count == 0:  # activations, losses, parameter-free blocks: layers of a model, not one
        raise NoModel("its nn.Module classes have no parameters")
    return cls.__name__, cls


def _as_factory(obj: Any, name: str):
    import torch.nn as nn

    if isinstance(obj, nn.Module):
        return lambda: obj
    if callable(obj):
        return obj
    raise LoadError(f"{name} is a {type(obj).__name__}, not a model factory or nn.Module")


def _module_classes(namespace: Any) -> list[type]:
    """The nn.Module subclasses the file defines (not those it imports)."""
    import torch.nn as nn

    return [value for value in vars(namespace).values()
            if isinstance(value, type) and issubclass(value, nn.Module) and value.__module__ == namespace.__name__]


def _required_arguments(cls: type) -> bool:
    """Whether constructing the class needs arguments (a signature that cannot be read counts as yes)."""
    try:
        signature = inspect.signature(cls)
    except (TypeError, ValueError):
        return True
    return any(p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
               for p in signature.parameters.values())


def _call_optional(namespace: Any, name: str, *args: Any) -> Any:
    function = getattr(namespace, name, None)
    if function is None:
        return None
    try:
        return function(*args)
    except Exception as error:
        raise LoadError(f"{name}() raised {type(error).__name__}: {error}") from error


def _example_inputs(namespace: Any, model: Any, overrides: Overrides) -> tuple[Guess, ...]:
    """The example batch: the file's, --input-shape's, or the batches gradlint guesses for the
    model (guesses.py), in the order the first forward pass tries them."""
    import torch

    if overrides.input_shape is not None:
        note = f"inputs: random normal of shape {tuple(overrides.input_shape)} (--input-shape)"
        return (Guess(inputs=(torch.randn(*overrides.input_shape),), loss=overrides.loss, notes=(note,)),)
    inputs = _call_optional(namespace, "example_inputs")
    if inputs is None:
        return infer_inputs(model, overrides.batch_size or _BATCH, overrides.loss)
    if isinstance(inputs, torch.Tensor):
        return (Guess(inputs=(inputs,), loss=overrides.loss),)
    if isinstance(inputs, (list, tuple)):
        return (Guess(inputs=tuple(inputs), loss=overrides.loss),)
    raise LoadError(f"example_inputs() returned {type(inputs).__name__}; return a tensor or a tuple of tensors")


_BATCH = BATCH  # the batch gradlint invents (ONNX inputs use it too): small enough to be cheap


def infer_inputs(model: Any, batch_size: int = _BATCH, loss: str | None = None) -> tuple[Guess, ...]:
    """Random batches shaped for the first layer the data meets, to try in turn (guesses.infer),
    or a LoadError saying what to add."""
    return infer(model, batch_size, loss)


def resolve_optimizer(namespace: Any, model: Any, overrides: Overrides, assumptions: list[str]):
    """The optimizer training will use, from configure_optimizers or the defaults, after overrides."""
    if overrides.lr is not None:
        _check_lr(overrides.lr, f"--lr {_number(overrides.lr)}")
    optimizer = configured = None
    if overrides.optimizer is None and getattr(namespace, "configure_optimizers", None) is not None:
        configured = _call_optional(namespace, "configure_optimizers", model)
        if configured is None:
            # Lightning would warn and train with no optimizer at all; checking gradlint's AdamW
            # default instead would report on a setup the file does not have.
            raise LoadError(f"configure_optimizers() returned None: {OPTIMIZER_SHAPES}")
        optimizer = first_optimizer(configured)
        _check_parameters(optimizer, model)
        if overrides.lr is None:  # --lr replaces whatever the file set
            _check_group_lrs(optimizer)
    if optimizer is None:
        name = overrides.optimizer or "AdamW"
        lr = overrides.lr if overrides.lr is not None else DEFAULT_LR
        optimizer = make_optimizer(name, model.parameters(), lr)
        if overrides.optimizer is None:
            assumptions.append(f"optimizer: AdamW(lr={lr:g}) (no configure_optimizers)")
    elif overrides.lr is not None:  # --lr replaces the schedule too
        for group in optimizer.param_groups:
            group["lr"] = overrides.lr
    info = describe_optimizer(optimizer)
    if configured is None and overrides.optimizer is None:  # the optimizer findings say it is gradlint's
        info = replace(info, assumed=True)
    if configured is not None and overrides.lr is None:
        info = _with_schedule_peak(info, configured, optimizer, assumptions)
    return optimizer, info


# What configure_optimizers may return, as its errors say it.
OPTIMIZER_SHAPES = "return an optimizer, a list, a dict with 'optimizer', or (optimizers, schedulers)"


def _check_parameters(optimizer: Any, model: Any) -> None:
    """The optimizer must hold some of the model's parameters. A subset is fine (a frozen
    backbone), and so are tensors beside them (a loss's learnable weights, a temperature): the
    rules step the model's parameters and ignore the rest. An optimizer over none of them would
    have the rules measure a step that moves nothing they run."""
    tensors = [p for group in optimizer.param_groups for p in group["params"]]
    if not tensors:
        raise LoadError(f"configure_optimizers() returned {type(optimizer).__name__} over no parameters: "
                        "build it over model.parameters()")
    owned = {id(p) for p in model.parameters()}
    belong = sum(id(p) in owned for p in tensors)
    if belong == 0:
        raise LoadError(f"configure_optimizers() returned an optimizer over parameters that are not the model's "
                        f"({belong} of its {len(tensors)} tensors belong to the model)")


def _check_group_lrs(optimizer: Any) -> None:
    """Every param group's lr is a finite number >= 0. torch's constructors reject a negative lr
    (and all but SGD a NaN one), but accept inf, and nothing checks an lr written into
    param_groups afterwards or a custom optimizer's."""
    groups = optimizer.param_groups
    for index, group in enumerate(groups):
        where = f" in param group {index}" if len(groups) > 1 else ""
        _check_lr(group.get("lr", 0.0), f"configure_optimizers() returned {type(optimizer).__name__} with lr = "
                                        f"{_number(group.get('lr'))}{where}")


def _check_lr(lr: Any, what: str) -> None:
    """lr 0 is allowed: it takes no step, and the optimizer rules have nothing to check."""
    import math

    try:
        value = float(lr.item() if hasattr(lr, "item") else lr)
    except (TypeError, ValueError, RuntimeError):
        value = math.nan
    if not (math.isfinite(value) and value >= 0):
        raise LoadError(f"{what}: a learning rate must be a finite number >= 0")


def _number(value: Any) -> str:
    """A number as a message shows it: -1, 0.001, nan, inf (a tensor by its value); else its repr."""
    value = value.item() if hasattr(value, "item") else value
    return f"{value:g}" if isinstance(value, (int, float)) and not isinstance(value, bool) else repr(value)


def _with_schedule_peak(info: OptimizerInfo, configured: Any, optimizer: Any, assumptions: list[str]) -> OptimizerInfo:
    """`info` with the LR schedule's peak, which the optimizer rules check instead of lr."""
    import math
    from dataclasses import replace

    from gradlint.schedule import find_scheduler, peak_of

    found = find_scheduler(configured)
    peak = peak_of(*found, optimizer) if found is not None else None
    if peak is None:
        return info
    if not math.isfinite(peak.lr):  # a peak above every lr is one (a lambda that divides by 0, say)
        raise LoadError(f"configure_optimizers()'s {peak.scheduler} sets lr = {peak.lr:g} at {peak.interval} "
                        f"{peak.step}: a learning rate must be a finite number >= 0")
    if peak.interval == "epoch":
        assumptions.append(f"optimizer: {peak.scheduler} steps once per epoch (Lightning's default interval); "
                           "its peak over the first epochs is checked")
    return replace(info, peak_lr=peak.lr, schedule=peak.describe(), scheduler=peak.scheduler)


def make_optimizer(name: str, parameters: Any, lr: float) -> Any:
    import torch

    classes = {n.lower(): getattr(torch.optim, n) for n in dir(torch.optim)
               if isinstance(getattr(torch.optim, n), type) and issubclass(getattr(torch.optim, n), torch.optim.Optimizer)}
    cls = classes.get(name.lower())
    if cls is None or cls is torch.optim.Optimizer:
        raise LoadError(f"unknown optimizer {name!r}; use a torch.optim class name such as SGD, Adam or AdamW")
    return cls(parameters, lr=lr)


def fresh_optimizer(like: Any, parameters: Any, group: dict | None = None) -> Any:
    """A new optimizer of `like`'s class and hyper-parameters (those of `group`, by default its
    first param group) over `parameters`, for steps on copies. Only the constructor's own
    arguments are passed: param_groups also hold derived keys (AdamW's decoupled_weight_decay)
    that the constructor rejects."""
    accepted = inspect.signature(type(like)).parameters
    group = like.param_groups[0] if group is None else group
    return type(like)(parameters, **{k: v for k, v in group.items() if k in accepted and k != "params"})


def first_optimizer(configured: Any) -> Any:
    """Accept every shape PyTorch Lightning's configure_optimizers may return; the first
    optimizer is the one checked."""
    import torch

    if isinstance(configured, torch.optim.Optimizer):
        return configured
    if isinstance(configured, dict):
        if "optimizer" not in configured:
            raise LoadError(f"configure_optimizers() returned a dict without 'optimizer': {OPTIMIZER_SHAPES}")
        return first_optimizer(configured["optimizer"])
    if isinstance(configured, (list, tuple)):
        if not configured:
            raise LoadError(f"configure_optimizers() returned an empty {type(configured).__name__}: {OPTIMIZER_SHAPES}")
        return first_optimizer(configured[0])
    raise LoadError(f"configure_optimizers() returned {type(configured).__name__}; {OPTIMIZER_SHAPES}")


def describe_optimizer(optimizer: Any) -> OptimizerInfo:
    group = optimizer.param_groups[0]
    betas = group.get("betas")
    lr = group.get("lr", 0.0)
    return OptimizerInfo(
        name=type(optimizer).__name__,
        lr=float(lr.item() if hasattr(lr, "item") else lr),
        momentum=float(group.get("momentum", 0.0) or 0.0),
        betas=tuple(float(b) for b in betas) if betas is not None else None,
        eps=float(group["eps"]) if group.get("eps") is not None else None,
        weight_decay=float(group.get("weight_decay", 0.0) or 0.0),
        nesterov=bool(group.get("nesterov", False)),
    )


def _model_location(model: Any, path: str, factory: Any = None, sites: Any = None, name: str = "model") -> Location:
    """Where findings about the whole model point (and the optimizer's, without a
    configure_optimizers, which is added to this file): the model's class line when the file
    defines the class; else the factory that builds it (`def build_model():`), when it is a
    function of the user's; else the class line in another of the user's files; else the line
    that constructed it (a module-level `model = nn.Sequential(...)`); the file's first line only
    when none is known."""
    found = here = class_location(model)
    if here is not None and os.path.exists(path) and here.path != display_path(path):
        found = None  # a class from another file: the factory here comes first
    if found is None and inspect.isfunction(factory):
        found = _function_location(factory)
    found = found or here
    if found is None and sites is not None:
        found = sites.get(model)
    if found is None and os.path.exists(path):  # built when the file was imported: its assignment
        found = _assignment_location(path, name)
    return found or Location(display_path(path) if os.path.exists(path) else path, 1, 1)


def _assignment_location(path: str, name: str) -> Location | None:
    """The file's top-level `name = ...` line (the last, as the name holds what it assigned)."""
    import ast

    try:
        tree = ast.parse(sources.read_python_source(path))
    except (LoadError, SyntaxError, ValueError):
        return None
    found = None
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] \
            if isinstance(node, ast.AnnAssign) else []
        if any(isinstance(t, ast.Name) and t.id == name for t in targets):
            found = Location(display_path(path), node.lineno, node.col_offset + 1)
    return found


def _function_location(function: Any) -> Location | None:
    """The `def` line of a function in the user's files (none for gradlint's and libraries')."""
    try:
        filename = inspect.getsourcefile(function)
    except TypeError:
        return None
    if filename is None or is_library_file(filename):  # gradlint's own files count as library files
        return None
    return Location(display_path(filename), function.__code__.co_firstlineno, 1)
