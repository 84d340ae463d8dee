"""What gradlint knows about a model and how it will be trained: the input to tracing and rules."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from gradlint.findings import Location


@dataclass(frozen=True)
class OptimizerInfo:
    """The hyper-parameters of the optimizer training will use (first param group)."""

    name: str  # class name: SGD, Adam, AdamW, ...
    lr: float
    momentum: float = 0.0
    betas: tuple[float, float] | None = None
    eps: float | None = None
    weight_decay: float = 0.0
    nesterov: bool = False
    # The LR schedule's largest lr over the first few hundred steps (gradlint.schedule), when it
    # exceeds lr, and where it is reached ("the OneCycleLR peak at step 60").
    peak_lr: float | None = None
    schedule: str | None = None
    scheduler: str | None = None  # the scheduler's class name, e.g. OneCycleLR
    # gradlint's default, not the file's: the file has no configure_optimizers (findings say so).
    assumed: bool = False

    @property
    def checked_lr(self) -> float:
        """The lr the stability rules check: the schedule's peak, else the lr."""
        return self.peak_lr if self.peak_lr is not None else self.lr

    @property
    def is_adaptive(self) -> bool:
        return self.betas is not None or self.name in {"Adagrad", "RMSprop", "Adadelta", "Adamax"}

    def describe(self) -> str:
        extra = f", momentum={self.momentum:g}" if self.momentum else ""
        peak = f", {self.schedule}" if self.peak_lr is not None else ""
        return f"{self.name}(lr={self.checked_lr:g}{extra}{peak})"


@dataclass(frozen=True)
class ModelSpec:
    """A built model and its training configuration, as loaded from a file or given to `check`."""

    target: str
    path: str
    model: Any = field(repr=False)  # nn.Module; typed loosely so this module does not import torch
    inputs: tuple = field(repr=False)
    targets: Any = field(default=None, repr=False)
    loss_fn: Callable | None = field(default=None, repr=False)
    optimizer: OptimizerInfo | None = None
    optimizer_object: Any = field(default=None, repr=False)
    gradient_clip_val: float | None = None
    # Construction site of each module (module -> Location); the model's class line is the fallback.
    sites: Any = field(default=None, repr=False)
    model_location: Location | None = None
    assumptions: tuple[str, ...] = ()
    source_format: str = "python"  # python | onnx | api
    # ONNX: child module path -> ONNX node name, so findings can name the node.
    node_names: dict = field(default_factory=dict)
    # The default training loss when there is no loss_fn: "cross-entropy" or "mse" (--loss);
    # None picks one from the output and targets (losses.training_loss).
    loss: str | None = None
    # Why the model cannot run (an ONNX op without a torch equivalent): only static rules run.
    cannot_run: str | None = None

    def location_of(self, module: Any) -> Location:
        """Where the module was constructed; else its class line (user classes); else the model's."""
        from gradlint.locations import class_location

        site = self.sites.get(module) if self.sites is not None else None
        return site or class_location(module) or self.model_location or Location(self.path, 1, 1)

    def expression(self, path: str) -> str:
        """Python for the module at `path` as the user would write it at its construction site:
        `self.fc` inside the __init__ that built it, else `model.layers[3]`."""
        module = self.model.get_submodule(path) if path else self.model
        owner = self.sites.owners.get(module) if self.sites is not None else None
        if owner is not None:
            for owner_path, candidate in self.model.named_modules():
                if candidate is owner and path.startswith(owner_path):
                    relative = path[len(owner_path):].lstrip(".")
                    return _attribute_chain("self", relative)
        return _attribute_chain("model", path)


def _attribute_chain(root: str, path: str) -> str:
    expression = root
    for part in filter(None, path.split(".")):
        expression += f"[{part}]" if part.isdigit() else f".{part}"
    return expression
