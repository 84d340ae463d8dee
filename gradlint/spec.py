"""What gradlint knows about a model and how it will be trained: the input to tracing and rules."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Callable

from gradlint.findings import Location
from gradlint.locations import class_location


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
    # The LR schedule's largest lr over the first few hundred steps (gradlint.optimizers), when it
    # exceeds lr, and where it is reached ("the OneCycleLR peak at step 60").
    peak_lr: float | None = None
    schedule: str | None = None
    scheduler: str | None = None  # the scheduler's class name, e.g. OneCycleLR
    peak_step: int | None = None  # the step (or epoch, by peak_interval) at which the peak is reached
    peak_interval: str | None = None  # "step" or "epoch": how often the scheduler steps
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
class Guess:
    """A batch gradlint makes up when the model file does not give one (no example_inputs()), or
    gives no targets and no loss_fn for a language model: forward's arguments, the default loss
    that goes with them, the assumptions that describe them, and the check the model's first
    output must pass for the guess to stand (None: running without an error is enough)."""

    inputs: tuple | None = field(repr=False)  # None: drawn by `draw` when the guess is tried
    kwargs: dict = field(default_factory=dict, repr=False)
    loss: str | None = None  # the default loss kind (losses.training_loss), None: chosen from the output
    notes: tuple[str, ...] = ()  # the assumptions this guess makes (inputs), in the report
    # How an error names the batch: "the (8, 3, 32, 32) batch inferred from the first layer conv (Conv2d)".
    described: str = ""
    accepts: Callable[[Any], bool] | None = field(default=None, repr=False)
    optional: bool = False  # a convention tried first (labels=, targets=): its failure is not the model's
    draw: Callable[[], tuple] | None = field(default=None, repr=False)

    def drawn(self) -> Guess:
        """This guess with its batch drawn (guesses after the first are drawn only when tried: a
        list of image sizes would otherwise hold every size's batch at once)."""
        if self.inputs is not None:
            return self
        return replace(self, inputs=self.draw(), draw=None)


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
    # Keyword arguments of forward for the example batch (labels=input_ids for a Hugging Face
    # model, targets= for a nanoGPT-style one): the model is called as model(*inputs, **input_kwargs).
    input_kwargs: dict = field(default_factory=dict, repr=False)
    # The batches gradlint guessed, in the order the first forward pass tries them (settle): an
    # image size the network accepts, a training convention its forward takes. Until that pass
    # the fields above hold guesses[0]; --no-probe never runs the model, so the choice cannot be
    # made when the file is loaded.
    guesses: tuple = field(default=(), repr=False)

    def settle(self, guess: Guess) -> None:
        """Make `guess` the example batch, once, before any rule runs the model: the first forward
        (probe.observe) picks among `guesses`, and every rule after it must run that batch. The
        spec is frozen for the rules; this is its one write. The notes of the guess it held
        (guesses[0]) make way for `guess`'s, in the same place among the assumptions."""
        old = self.guesses[0].notes if self.guesses else ()
        at = next((i for i, note in enumerate(self.assumptions) if note in old), len(self.assumptions))
        kept = [note for note in self.assumptions if note not in old]
        for name, value in (("inputs", guess.inputs), ("input_kwargs", guess.kwargs), ("loss", guess.loss),
                            ("assumptions", (*kept[:at], *guess.notes, *kept[at:])), ("guesses", (guess,))):
            object.__setattr__(self, name, value)

    def location_of(self, module: Any) -> Location:
        """Where the module was constructed; else its class line (user classes); else the model's."""
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
