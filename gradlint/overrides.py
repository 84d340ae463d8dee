"""What the command line and the config impose on a target, beating what its file says, and the
defaults they fall back on. Both loaders take them: a Python model file (load.py) and an ONNX
file (onnx/spec.py), which holds no training setup at all."""

from __future__ import annotations

from dataclasses import dataclass

# The batch gradlint invents when a file gives none (no example_inputs(), an ONNX graph's dynamic
# batch dimension): small enough to be cheap, large enough for batch statistics.
DEFAULT_BATCH = 8


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
