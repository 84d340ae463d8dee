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
import functools
import hashlib
import importlib
import importlib.util
import inspect
import os
import sys
from typing import Any

from gradlint import sources, stages
from gradlint.discover import Target
from gradlint.errors import LoadError, NoModel
from gradlint.findings import Location
from gradlint.guesses import conventions, infer
from gradlint.locations import class_location, display_path, is_library_file, record_construction_sites
from gradlint.optimizers import check_gradient_clip, resolve_optimizer
from gradlint.overrides import DEFAULT_BATCH, Overrides
from gradlint.spec import Guess, ModelSpec


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
    # The file's configure_optimizers, called once the overrides say it is wanted (--optimizer skips it).
    configure = functools.partial(_call_optional, namespace, "configure_optimizers", model) \
        if getattr(namespace, "configure_optimizers", None) is not None else None
    optimizer_object, optimizer = resolve_optimizer(configure, model, overrides, assumptions)
    if overrides.gradient_clip_val is not None:
        clip = overrides.gradient_clip_val
        check_gradient_clip(clip, "in the config")
    else:
        clip = getattr(namespace, "gradient_clip_val", None)
        check_gradient_clip(clip, "in the model file")
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
        return infer_inputs(model, overrides.batch_size or DEFAULT_BATCH, overrides.loss)
    if isinstance(inputs, torch.Tensor):
        return (Guess(inputs=(inputs,), loss=overrides.loss),)
    if isinstance(inputs, (list, tuple)):
        return (Guess(inputs=tuple(inputs), loss=overrides.loss),)
    raise LoadError(f"example_inputs() returned {type(inputs).__name__}; return a tensor or a tuple of tensors")


def infer_inputs(model: Any, batch_size: int = DEFAULT_BATCH, loss: str | None = None) -> tuple[Guess, ...]:
    """Random batches shaped for the first layer the data meets, to try in turn (guesses.infer),
    or a LoadError saying what to add."""
    return infer(model, batch_size, loss)


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
