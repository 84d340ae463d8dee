"""Example inputs for an ONNX model, built from the graph's declared input types.

Dimensions without a fixed size (a symbolic name such as "batch", or none at all) get
DYNAMIC_BATCH when they look like the batch and DYNAMIC_OTHER otherwise: big enough for
batch statistics and attention over several positions, small enough to probe quickly. An
unnamed dimension is the batch when it comes first. A named one is the same size in every
input that uses it (a sequence-first x ["seq", "b", d] and its key_padding_mask ["b", "seq"]
agree), and is the batch when its name says so ("batch...", "b", "bs", "bsz", "n") or, with
any other name, when no input has it anywhere but first.
Float inputs are standard normal. Integer inputs are token ids: uniform in [0, V) where V
is the row count of the embedding table they index (found by following the input through
casts and reshapes to a Gather on a 2-D float initializer), else DEFAULT_VOCABULARY. Inputs
named like masks are all "attend": ones when integer (Hugging Face's convention), False when
boolean (torch's key_padding_mask / attn_mask convention: True masks out).
"""

from __future__ import annotations

import onnx
import torch

from gradlint.errors import LoadError
from gradlint.onnx.tensors import torch_dtype

DYNAMIC_BATCH = 2
DYNAMIC_OTHER = 8
DEFAULT_VOCABULARY = 10

_FLOAT_TYPES = {onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.BFLOAT16, onnx.TensorProto.DOUBLE}

# Ops that pass token ids through unchanged in value, on the way to the embedding Gather.
_ID_PRESERVING = {"Cast", "Identity", "Reshape", "Unsqueeze", "Squeeze", "Flatten", "Transpose", "Expand"}


def example_inputs(model: onnx.ModelProto, seed: int = 0, batch_size: int = DYNAMIC_BATCH,
                   shape: tuple[int, ...] | None = None) -> tuple[torch.Tensor, ...]:
    """One random tensor per graph input. `batch_size` fills the dynamic batch dimensions;
    `shape` replaces the declared shape of the only input (--input-shape)."""
    graph = model.graph
    generator = torch.Generator().manual_seed(seed)
    inputs = runtime_inputs(model)
    if shape is not None and len(inputs) != 1:
        names = ", ".join(value.name for value in inputs)
        raise LoadError(f"an input shape sets the model's only input, but it has {len(inputs)}: {names}")
    named = _named_sizes(inputs, batch_size)
    tensors = []
    for value in inputs:
        if not value.type.HasField("tensor_type"):
            raise LoadError(f"graph input '{value.name}' is not a tensor (sequence or map inputs are not supported)")
        tensor_type = value.type.tensor_type
        if shape is None and not tensor_type.HasField("shape"):
            raise LoadError(f"graph input '{value.name}' declares no shape to build an example input from")
        sizes = list(shape) if shape is not None else \
            [_size(dim, i == 0, named, batch_size) for i, dim in enumerate(tensor_type.shape.dim)]
        try:
            dtype = torch_dtype(tensor_type.elem_type)
        except TypeError as error:
            raise LoadError(f"graph input '{value.name}': {error}") from None
        tensors.append(_random(value.name, sizes, dtype, graph, generator))
    return tuple(tensors)


def runtime_inputs(model: onnx.ModelProto) -> list[onnx.ValueInfoProto]:
    """The graph inputs forward takes (old exporters also list the initializers as inputs)."""
    initializers = {t.name for t in model.graph.initializer}
    return [value for value in model.graph.input if value.name not in initializers]


def dynamic_dims(model: onnx.ModelProto) -> list[str]:
    """The names of the inputs' dimensions without a fixed size ("batch", or "?" unnamed)."""
    names = []
    for value in runtime_inputs(model):
        if value.type.HasField("tensor_type"):
            for dim in value.type.tensor_type.shape.dim:
                if not (dim.HasField("dim_value") and dim.dim_value > 0):
                    names.append(dim.dim_param or "?")
    return list(dict.fromkeys(names))


_BATCH_NAMES = {"b", "bs", "bsz", "n"}


def _named_sizes(inputs: list[onnx.ValueInfoProto], batch_size: int) -> dict[str, int]:
    only_first: dict[str, bool] = {}
    for value in inputs:
        dims = value.type.tensor_type.shape.dim if value.type.HasField("tensor_type") else []
        for i, dim in enumerate(dims):
            if dim.HasField("dim_param"):
                only_first[dim.dim_param] = only_first.get(dim.dim_param, True) and i == 0
    return {
        name: batch_size if "batch" in name.lower() or name.lower() in _BATCH_NAMES or first else DYNAMIC_OTHER
        for name, first in only_first.items()
    }


def _size(dim: onnx.TensorShapeProto.Dimension, first: bool, named: dict[str, int], batch_size: int) -> int:
    if dim.HasField("dim_value") and dim.dim_value > 0:
        return dim.dim_value
    if dim.HasField("dim_param"):
        return named[dim.dim_param]
    return batch_size if first else DYNAMIC_OTHER


def _random(name: str, shape: list[int], dtype: torch.dtype, graph, generator) -> torch.Tensor:
    is_mask = "mask" in name.lower()
    if dtype.is_floating_point:
        return torch.randn(shape, generator=generator).to(dtype)
    if dtype == torch.bool:
        if is_mask:
            return torch.zeros(shape, dtype=torch.bool)
        return torch.randint(0, 2, shape, generator=generator).bool()
    if is_mask:
        return torch.ones(shape, dtype=dtype)
    return torch.randint(0, vocabulary_size(graph, name), shape, generator=generator).to(dtype)


def vocabulary_size(graph: onnx.GraphProto, name: str) -> int:
    """Rows of the smallest embedding table `name` indexes, else DEFAULT_VOCABULARY."""
    tables = {t.name: t.dims for t in graph.initializer if t.data_type in _FLOAT_TYPES}
    for node in graph.node:  # dedupe Identity copies of a table (see graph.Graph._fold)
        if node.op_type == "Identity" and node.input and node.input[0] in tables:
            tables[node.output[0]] = tables[node.input[0]]
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in graph.node:
        for value in node.input:
            consumers.setdefault(value, []).append(node)
    sizes, frontier, seen = [], [name], set()
    while frontier:
        value = frontier.pop()
        if value in seen:
            continue
        seen.add(value)
        for node in consumers.get(value, []):
            if node.op_type == "Gather" and len(node.input) > 1 and node.input[1] == value:
                dims = tables.get(node.input[0])
                if dims is not None and len(dims) == 2 and not _axis(node):
                    sizes.append(dims[0])
            elif node.op_type in _ID_PRESERVING and node.input[0] == value:
                frontier.extend(node.output)
    return min(sizes) if sizes else DEFAULT_VOCABULARY


def _axis(node: onnx.NodeProto) -> int:
    return next((a.i for a in node.attribute if a.name == "axis"), 0)
