"""Recover torch.nn modules that the exporter flattened into plain ops, so the converted model
has the source model's structure and gradlint's rules see what they see in the Python model.

nn.MultiheadAttention: torch.onnx.export writes its forward (F.multi_head_attention_forward) as
some forty nodes in the module's name scope around two projections, in_proj (E -> 3E) and
out_proj (E -> E). A scope holding just those projections (and the attention-weights Dropout)
that reads one runtime value (self-attention: query = key = value, no masks) and produces one
becomes one nn.MultiheadAttention holding the same Parameters, once a run on a random input
shows it computes what the ops compute; that run also settles num_heads and batch_first, which
the graph does not state. gradlint records an nn.MultiheadAttention as one opaque layer, in
the Python model and now in the ONNX one. Anything else (masks, cross-attention, kdim/vdim,
bias_k/v) stays as ops.

Transformer layers: a scope with self_attn (a recovered nn.MultiheadAttention), linear1,
linear2, norm1, norm2, dropout, dropout1 and dropout2 is an nn.TransformerEncoderLayer; a scope
whose `layers` are such layers (and an optional final `norm`) an nn.TransformerEncoder. Their
forward is already unrolled into the graph's steps, so they stay OnnxScopes, under the torch
class's name and with the attributes rules read (norm_first; num_layers, norm).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from gradlint.onnx.graph import Graph
from gradlint.onnx.module import OnnxScope, Step

_TOLERANCE = 1e-4
_SMALL = 1 << 16  # inputs this small are cheap enough to try every head count on


def recover(module: Any, graph: Graph) -> None:
    """Rewrite `module` (an OnnxModule under construction) in place."""
    scopes = [path for path, m in module.named_modules() if type(m) is OnnxScope]
    for path in reversed(scopes):  # innermost first
        _fold_attention(module, graph, path)
    _name_transformer_modules(module)


# -- nn.MultiheadAttention ----------------------------------------------------------------------


def _fold_attention(module: Any, graph: Graph, path: str) -> bool:
    scope = module.get_submodule(path)
    projections = _projections(scope)
    if projections is None:
        return False
    (in_name, in_proj), (out_name, out_proj), dropouts = projections
    inside = {f"{path}.{name}" for name in (in_name, out_name, *dropouts)}
    block = [i for i, step in enumerate(module._steps)
             if step.module in inside or (step.module is None and step.scope == path)]
    if not block:
        return False
    steps = [module._steps[i] for i in block]
    produced = {name for step in steps for name in step.outputs if name}
    external = {name for step in steps for name in step.inputs
                if name and name not in produced and graph.static(name) is None}
    outside = [step for i, step in enumerate(module._steps) if i not in set(block)]
    read_outside = {name for step in outside for name in step.inputs} | set(module.output_names)
    outputs = produced & read_outside
    if len(external) != 1 or len(outputs) != 1:
        return False
    (x_name,), (out_value,) = tuple(external), tuple(outputs)
    p = {scope.get_submodule(name).p for name in dropouts}
    attention = _attention(in_proj, out_proj, p.pop() if len(p) == 1 else 0.0) if len(p) <= 1 else None
    if attention is None or not _matches(module, graph, steps, x_name, out_value, attention):
        return False

    owner, _, name = path.rpartition(".")
    (module.get_submodule(owner) if owner else module)._modules[name] = attention
    for child in (in_name, out_name, *dropouts):
        module.op_types.pop(f"{path}.{child}", None)
        node = module.node_names.pop(f"{path}.{child}", None)
        if child == out_name and node is not None:
            module.node_names[f"{path}.out_proj"] = node
    sources = {key: module.param_sources.pop(key) for key in list(module.param_sources) if key.startswith(path + ".")}
    for param, renamed in (("weight", "in_proj_weight"), ("bias", "in_proj_bias")):
        if f"{path}.{in_name}.{param}" in sources:
            module.param_sources[f"{path}.{renamed}"] = sources[f"{path}.{in_name}.{param}"]
        if f"{path}.{out_name}.{param}" in sources:
            module.param_sources[f"{path}.out_proj.{param}"] = sources[f"{path}.{out_name}.{param}"]
    module.op_types[path] = "MultiheadAttention"
    module.node_names.setdefault(path, steps[0].node)
    step = Step(module.node_names[path], "MultiheadAttention", (x_name,), (out_value,), module=path,
                 prepare=_self_attention, finish=_attention_output)
    removed = set(block[:-1])  # the attention runs where its last op ran: every input is ready by then
    module._steps = [step if i == block[-1] else s for i, s in enumerate(module._steps) if i not in removed]
    return True


def _projections(scope: nn.Module):
    """((name, in_proj), (name, out_proj), dropout names) when the scope holds just two Linears,
    E -> 3E and E -> E, and Dropouts."""
    children = dict(scope.named_children())
    linears = {name: m for name, m in children.items() if type(m) is nn.Linear}
    dropouts = [name for name, m in children.items() if type(m) is nn.Dropout]
    if len(linears) != 2 or len(linears) + len(dropouts) != len(children):
        return None
    by_shape = {tuple(m.weight.shape): (name, m) for name, m in linears.items()}
    embed = next((shape[1] for shape in by_shape if shape[0] == shape[1]), None)
    if embed is None or (3 * embed, embed) not in by_shape or (embed, embed) not in by_shape:
        return None
    return by_shape[(3 * embed, embed)], by_shape[(embed, embed)], dropouts


def _attention(in_proj: nn.Linear, out_proj: nn.Linear, dropout: float) -> nn.MultiheadAttention | None:
    has_bias = in_proj.bias is not None
    if (out_proj.bias is not None) != has_bias:
        return None
    with torch.device("meta"):
        attention = nn.MultiheadAttention(out_proj.in_features, 1, dropout=dropout, bias=has_bias)
    attention.in_proj_weight = in_proj.weight
    attention.out_proj.weight = out_proj.weight
    if has_bias:
        attention.in_proj_bias = in_proj.bias
        attention.out_proj.bias = out_proj.bias
    return attention


def _matches(module: Any, graph: Graph, steps: list, x_name: str, out_name: str,
             attention: nn.MultiheadAttention) -> bool:
    """Set num_heads and batch_first to the values under which `attention` computes what the
    steps compute on a random input; False when none do."""
    embed = attention.embed_dim
    shape = graph.shapes.get(x_name)
    if shape is None or len(shape) != 3 or shape[2] not in (None, embed):
        return False
    sizes = [size or default for size, default in zip(shape, (2, 3, embed))]
    x = torch.randn(sizes, generator=torch.Generator().manual_seed(0))
    modes = {m: m.training for m in (*module.modules(), *attention.modules())}
    try:
        module.eval(), attention.eval()  # no dropout in either
        with torch.no_grad():
            expected = _run(module, graph, steps, {x_name: x})[out_name]
            for batch_first in (True, False):
                for heads in _head_counts(graph, steps, embed, small=x.numel() <= _SMALL):
                    attention.batch_first, attention.num_heads, attention.head_dim = batch_first, heads, embed // heads
                    got = attention(x, x, x, need_weights=False)[0]
                    if got.shape == expected.shape and torch.allclose(
                            got, expected, rtol=_TOLERANCE, atol=_TOLERANCE * float(expected.abs().max()) + 1e-12):
                        return True
    except Exception:  # the ops need other inputs, shapes or settings: not this attention
        return False
    finally:
        for m, training in modes.items():
            m.training = training
    return False


def _head_counts(graph: Graph, steps: list, embed: int, small: bool) -> list[int]:
    """Head counts to try: those whose head size appears among the small integer constants the
    steps reshape with, then (for a small input) every other divisor of the embedding size."""
    sizes = set()
    for step in steps:
        for name in step.inputs:
            value = graph.static(name) if name else None
            if value is not None and not value.is_floating_point() and value.numel() <= 8:
                sizes.update(int(v) for v in value.reshape(-1).tolist())
    divisors = [h for h in range(1, embed + 1) if embed % h == 0]
    likely = [h for h in divisors if embed // h in sizes]
    return likely + ([h for h in divisors if h not in likely] if small else [])


def _run(module: Any, graph: Graph, steps: list, values: dict) -> dict:
    values = dict(values)
    for step in steps:
        args = [None if not name else values[name] if name in values else graph.static(name) for name in step.inputs]
        out = module._run(step, args)
        for name, value in zip(step.outputs, out if isinstance(out, tuple) else (out,)):
            if name:
                values[name] = value
    return values


def _self_attention(x: torch.Tensor) -> tuple:
    return x, x, x, None, False  # query, key, value, key_padding_mask, need_weights


def _attention_output(out: tuple) -> torch.Tensor:
    return out[0]


# -- transformer layers ---------------------------------------------------------------------------

_ENCODER_LAYER = {
    "self_attn": nn.MultiheadAttention, "linear1": nn.Linear, "linear2": nn.Linear, "norm1": nn.LayerNorm,
    "norm2": nn.LayerNorm, "dropout": nn.Dropout, "dropout1": nn.Dropout, "dropout2": nn.Dropout,
}
_ACTIVATIONS = (nn.ReLU, nn.GELU, nn.SiLU, nn.Tanh, nn.Sigmoid, nn.LeakyReLU, nn.ELU)
_CLASSES: dict[str, type] = {}


def _named_scope(name: str) -> type:
    """An OnnxScope subclass named after the torch.nn class the scope was."""
    if name not in _CLASSES:
        _CLASSES[name] = type(name, (OnnxScope,), {
            "__module__": __name__,
            "__doc__": f"An OnnxScope recognized as a torch.nn.{name}: the exporter unrolled its forward.",
        })
    return _CLASSES[name]


def _name_transformer_modules(module: Any) -> None:
    first_use = {}
    for index, step in enumerate(module._steps):
        if step.module is not None:
            first_use.setdefault(step.module, index)
    for path, scope in list(module.named_modules()):
        if type(scope) is not OnnxScope:
            continue
        children = dict(scope.named_children())
        extra = [m for name, m in children.items() if name not in _ENCODER_LAYER]
        if all(type(children.get(name)) is cls for name, cls in _ENCODER_LAYER.items()) and \
                all(isinstance(m, _ACTIVATIONS) for m in extra):
            prefix = f"{path}." if path else ""
            scope.__class__ = _named_scope("TransformerEncoderLayer")
            scope.norm_first = first_use.get(prefix + "norm1", 0) < first_use.get(prefix + "self_attn", 0)
    for path, scope in list(module.named_modules()):
        if type(scope) is not OnnxScope:
            continue
        children = dict(scope.named_children())
        layers, norm = children.get("layers"), children.get("norm")
        if isinstance(layers, nn.ModuleList) and len(layers) and set(children) <= {"layers", "norm"} and \
                all(type(layer).__name__ == "TransformerEncoderLayer" for layer in layers) and \
                (norm is None or isinstance(norm, nn.LayerNorm)):
            scope.__class__ = _named_scope("TransformerEncoder")
            scope.num_layers = len(layers)
            if norm is None:
                scope.norm = None
