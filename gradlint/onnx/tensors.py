"""ONNX tensor and attribute values as torch tensors and plain Python values."""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
import torch
from onnx import AttributeProto, TensorProto, numpy_helper

# ONNX element type -> torch dtype, for Cast, graph inputs and initializers.
TORCH_DTYPES: dict[int, torch.dtype] = {
    TensorProto.FLOAT: torch.float32,
    TensorProto.DOUBLE: torch.float64,
    TensorProto.FLOAT16: torch.float16,
    TensorProto.BFLOAT16: torch.bfloat16,
    TensorProto.INT8: torch.int8,
    TensorProto.INT16: torch.int16,
    TensorProto.INT32: torch.int32,
    TensorProto.INT64: torch.int64,
    TensorProto.UINT8: torch.uint8,
    TensorProto.BOOL: torch.bool,
}
# Wider unsigned types arrived in torch 2.3; gradlint supports older torch too.
for _elem, _name in ((TensorProto.UINT16, "uint16"), (TensorProto.UINT32, "uint32"), (TensorProto.UINT64, "uint64")):
    if hasattr(torch, _name):
        TORCH_DTYPES[_elem] = getattr(torch, _name)


def torch_dtype(elem_type: int) -> torch.dtype:
    try:
        return TORCH_DTYPES[elem_type]
    except KeyError:
        name = TensorProto.DataType.Name(elem_type) if elem_type in TensorProto.DataType.values() else elem_type
        raise TypeError(f"ONNX element type {name} has no torch equivalent") from None


def to_tensor(proto: TensorProto) -> torch.Tensor:
    """A TensorProto (initializer or attribute) as a torch tensor that owns its memory.

    External data is read from its file straight into the tensor: the one copy gradlint makes
    of it (load.py points `location` at the file's absolute path and checks its size).
    """
    dtype = torch_dtype(proto.data_type)
    if proto.data_location == TensorProto.EXTERNAL:
        return _read_external(proto, dtype)
    array = numpy_helper.to_array(proto)
    if array.dtype.kind == "V" or str(array.dtype) == "bfloat16":
        # bfloat16 comes back as an ml_dtypes array torch cannot wrap; float32 holds it exactly.
        array = array.astype(np.float32)
    if not array.flags.writeable:  # torch.from_numpy shares memory and wants it writable
        array = array.copy()
    return torch.from_numpy(array).to(dtype)


def external_data(proto: TensorProto) -> tuple[str, int, int | None]:
    """(location, offset, length or None) of a tensor stored in an external file."""
    entries = {entry.key: entry.value for entry in proto.external_data}
    length = entries.get("length")
    return entries.get("location", ""), int(entries.get("offset") or 0), int(length) if length else None


def nbytes(proto: TensorProto) -> int:
    """The size of a tensor's data in bytes (from its dims and type)."""
    count = 1
    for dim in proto.dims:
        count *= dim
    return count * torch.empty((), dtype=torch_dtype(proto.data_type)).element_size()


def _read_external(proto: TensorProto, dtype: torch.dtype) -> torch.Tensor:
    location, offset, _ = external_data(proto)
    size = nbytes(proto)
    data = np.fromfile(location, dtype=np.uint8, count=size, offset=offset)  # a writable array of its own
    tensor = torch.from_numpy(data)
    if tensor.numel() != size:
        raise OSError(f"external data file '{location}' ends before tensor '{proto.name}'")
    return tensor.view(dtype).reshape(tuple(proto.dims))


def attributes(node: onnx.NodeProto) -> dict[str, Any]:
    """A node's attributes as Python values: ints, floats, str, lists, torch tensors."""
    values: dict[str, Any] = {}
    for attribute in node.attribute:
        if attribute.type == AttributeProto.TENSOR:
            try:
                values[attribute.name] = to_tensor(attribute.t)
            except TypeError:  # string tensors: kept as protos; no op gradlint runs reads them
                values[attribute.name] = attribute.t
        elif attribute.type in (AttributeProto.GRAPH, AttributeProto.GRAPHS):
            values[attribute.name] = attribute  # subgraphs: only control-flow ops have them (unsupported)
        else:
            value = onnx.helper.get_attribute_value(attribute)
            if attribute.type == AttributeProto.FLOAT:
                value = shortest(value)
            elif attribute.type == AttributeProto.FLOATS:
                value = [shortest(v) for v in value]
            elif isinstance(value, bytes):
                value = value.decode()
            elif isinstance(value, list):
                value = [v.decode() if isinstance(v, bytes) else v for v in value]
            values[attribute.name] = value
    return values


def shortest(value: float) -> float:
    """A float32 attribute as the shortest decimal that rounds to it (epsilon 1e-05, not
    9.999999747378752e-06), as the source model wrote it."""
    return float(str(np.float32(value)))
