"""An ONNX file as a ModelSpec: the converted model, example inputs from the graph's input
types, and the training setup from the command line or [tool.gradlint.models], since an ONNX
file holds none (no optimizer, learning rate, loss, targets or gradient clipping).

The rules then run as on a Python model file: the converted model keeps the source model's
module paths where the exporter kept them (convert.py), findings name the ONNX node
(spec.node_names, mapped in engine.lint_spec) and point at the .onnx file. A graph with ops
gradlint cannot run still gets the static rules, on the layers that did convert
(ModelSpec.cannot_run).
"""

from __future__ import annotations

from gradlint.errors import LoadError
from gradlint.findings import Location
from gradlint.locations import display_path
from gradlint.onnx.convert import UnsupportedOpError, to_torch
from gradlint.onnx.inputs import dynamic_dims, example_inputs, runtime_inputs
from gradlint.onnx.load import load_onnx
from gradlint.optimizers import DEFAULT_LR, describe_optimizer, make_optimizer
from gradlint.overrides import DEFAULT_BATCH, Overrides
from gradlint.spec import ModelSpec, OptimizerInfo

SETUP_HINT = ("set --optimizer, --lr and --loss, or optimizer, lr, loss and gradient-clip-val in "
              "[tool.gradlint.models]")


def load_onnx_spec(path: str, overrides: Overrides = Overrides()) -> ModelSpec:
    import torch

    proto = load_onnx(path)
    cannot_run = None
    try:
        model = to_torch(proto)
    except UnsupportedOpError as error:
        model, cannot_run = error.partial, str(error)
    if model is None or not any(True for _ in model.parameters()):
        raise LoadError("the ONNX graph has no float weights (initializers): nothing to train")
    assumptions = [_inputs_assumption(proto, overrides)]
    batch = overrides.batch_size or DEFAULT_BATCH
    inputs = example_inputs(proto, seed=overrides.seed, batch_size=batch, shape=overrides.input_shape)
    del proto  # the converted model holds every weight; the proto holds no external data

    torch.manual_seed(overrides.seed)
    name = overrides.optimizer or "AdamW"
    lr = overrides.lr if overrides.lr is not None else DEFAULT_LR
    optimizer = make_optimizer(name, model.parameters(), lr)
    info: OptimizerInfo = describe_optimizer(optimizer)
    if overrides.optimizer is None or overrides.lr is None:
        given = "default lr" if overrides.optimizer else "default optimizer"
        assumptions.append(f"optimizer: {info.describe()} ({given}: an ONNX file holds no training setup; "
                           f"{SETUP_HINT})")
    return ModelSpec(
        target=path,
        path=path,
        model=model,
        inputs=inputs,
        optimizer=info,
        optimizer_object=optimizer,
        gradient_clip_val=overrides.gradient_clip_val,
        model_location=Location(display_path(path), 1, 1),
        assumptions=tuple(assumptions),
        source_format="onnx",
        node_names=dict(model.node_names),
        loss=overrides.loss,
        cannot_run=cannot_run,
    )


def _inputs_assumption(proto, overrides: Overrides) -> str:
    names = ", ".join(value.name for value in runtime_inputs(proto))
    if overrides.input_shape is not None:
        return f"inputs: {names} random, of shape {tuple(overrides.input_shape)} (input-shape)"
    dynamic = dynamic_dims(proto)
    batch = overrides.batch_size or DEFAULT_BATCH
    sizes = f"; dynamic dimensions {', '.join(dynamic)} filled in (batch {batch}; --batch-size, --input-shape)" \
        if dynamic else ""
    return f"inputs: {names} random, shaped as the graph declares{sizes}"
