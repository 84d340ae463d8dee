"""Convert an ONNX graph into a torch nn.Module that gradlint can trace like any other model.

Each node becomes one step of `OnnxModule.forward`, run in graph order (ONNX graphs are
topologically sorted): a child module where torch has one (layers.py, rnn.py) or a functional
torch call (ops.py). Layers sit at the source model's module paths when the exporter's names
tell them (paths.py), inside OnnxScope modules that stand for the source's other modules. A
functional step runs in the OnnxScope of the module whose forward ran it (or in
OnnxModule.forward): never inside a leaf module, because gradlint's recorder ignores functional
ops inside leaf modules, and residual adds, matmuls and softmaxes must stay visible to the rules.
"""

from __future__ import annotations

import keyword
import re
from dataclasses import replace

import onnx
from torch import nn

from gradlint.errors import LoadError
from gradlint.onnx import paths, structure
from gradlint.onnx.conversion import Layer, Unsupported, Weights
from gradlint.onnx.graph import DEFAULT_DOMAINS, Graph, Node
from gradlint.onnx.inputs import example_inputs
from gradlint.onnx.layers import LAYERS
from gradlint.onnx.module import NodeError, OnnxModule, OnnxScope, Step
from gradlint.onnx.ops import CHECKS, OPS

__all__ = ["NodeError", "OnnxModule", "OnnxScope", "UnsupportedOpError", "example_inputs", "to_torch"]

_NODES_LISTED = 3  # per op type in the unsupported-op message


class UnsupportedOpError(LoadError):
    """Nodes the converter cannot run. `problems` maps an op type (with the setting at fault,
    if any) to its node names; `partial` is the model built from every other node: it cannot
    run, but holds the converted layers and all the weights for static analysis."""

    def __init__(self, problems: dict[str, list[str]], partial: "OnnxModule | None" = None):
        self.problems = problems
        self.partial = partial
        parts = []
        for op_type, nodes in problems.items():
            listed = ", ".join(nodes[:_NODES_LISTED])
            more = f" and {len(nodes) - _NODES_LISTED} more" if len(nodes) > _NODES_LISTED else ""
            parts.append(f"{op_type} (node{'s' if len(nodes) > 1 else ''} {listed}{more})")
        super().__init__("unsupported ONNX op(s): " + ", ".join(parts))


def to_torch(model: onnx.ModelProto) -> OnnxModule:
    """Build the module. Raises UnsupportedOpError listing every node it cannot run (with the
    partial module for static analysis)."""
    return _Builder(Graph(model)).build()


class _Builder:
    def __init__(self, graph: Graph):
        self.graph = graph
        self.weights = Weights(graph)
        self.module = OnnxModule([v.name for v in graph.inputs], list(graph.outputs))
        self.names = _Names(self.module)
        self.containers: set[str] = set()

    def build(self) -> OnnxModule:
        problems: dict[str, list[str]] = {}
        failed: list[Node] = []
        entries: list[Step | tuple[Node, Layer] | None] = []
        position: dict[int, int] = {}  # id(node) -> its entry
        absorbed: set[int] = set()
        for node in self.graph.nodes:
            if id(node) in absorbed:
                continue
            try:
                step = self._step(node)
            except Unsupported as error:
                label = f"{node.label} with {error}" if str(error) else node.label
                problems.setdefault(label, []).append(node.name)
                failed.append(node)
                continue
            if isinstance(step, Layer):
                for other in step.absorbed:
                    absorbed.add(id(other))
                    if id(other) in position:  # a node before the layer (the Transpose of its weight)
                        entries[position[id(other)]] = None
                step = (node, step)
            position[id(node)] = len(entries)
            entries.append(step)
        self._place([entry for entry in entries if entry is not None])
        structure.recover(self.module, self.graph)
        self._store_static_values({name for node in failed for name in node.inputs})
        if problems:
            raise UnsupportedOpError(problems, partial=self.module)
        return self.module

    def _step(self, node: Node) -> Step | Layer:
        if node.domain not in DEFAULT_DOMAINS:
            raise Unsupported("")
        converter = LAYERS.get(node.op_type)
        layer = converter(node, self.graph, self.weights) if converter else None
        if layer is not None:
            return layer
        if node.op_type not in OPS:
            raise Unsupported("")
        reason = CHECKS[node.op_type](node) if node.op_type in CHECKS else None
        if reason:
            raise Unsupported(reason)
        return Step(node.name, node.op_type, node.inputs, node.outputs, fn=OPS[node.op_type], op_node=node)

    # -- the module tree ----------------------------------------------------------------------

    def _place(self, entries: list) -> None:
        """Give every layer its module path, build the OnnxScopes above them, and put each
        functional step in the scope that ran it."""
        layers = [entry for entry in entries if isinstance(entry, tuple)]
        placed, aliases = _layer_paths(layers)
        # Scopes and layers are registered in graph order, as the source model's were in __init__.
        order = [scope for path in placed.values() for scope in reversed(paths.ancestors(path)[:-1])]
        self.containers = set(order)
        prefixes = {}
        for node in self.graph.nodes:
            for scope, prefix in paths.scope_prefixes(node.name):
                prefixes.setdefault(scope, prefix)
        children: dict[str, list[str]] = {}
        for path in dict.fromkeys([*order, *placed.values()]):
            children.setdefault(paths.parent(path), []).append(path.rpartition(".")[2])
        for scope in dict.fromkeys(order):
            owner, _, name = scope.rpartition(".")
            (self.module.get_submodule(owner) if owner else self.module).add_module(
                name, _container(scope in prefixes, children.get(scope, [])))
            if scope in prefixes:
                self.module.node_names[scope] = prefixes[scope]
        for entry in entries:
            if not isinstance(entry, tuple):
                scope = _alias(paths.scope_path(paths.scope_components(entry.node) or ()), aliases)
                scope = next((s for s in (scope, *paths.ancestors(scope)) if s in self.containers), "")
                self.module._steps.append(replace(entry, scope=scope))
                continue
            node, layer = entry
            path = placed[id(layer)]
            if path not in self.module.op_types:
                owner, _, name = path.rpartition(".")
                (self.module.get_submodule(owner) if owner else self.module).add_module(name, layer.module)
                self.module.node_names[path] = node.name
                self.module.op_types[path] = layer.op_type
                for param, source in layer.sources.items():
                    self.module.param_sources[f"{path}.{param}"] = source
            self.module._steps.append(Step(
                node.name, layer.op_type, layer.inputs, layer.outputs,
                module=path, prepare=layer.prepare, finish=layer.finish,
            ))

    def _store_static_values(self, also_read: set[str]) -> None:
        """Register the initializers and constants that steps read at runtime: float
        initializers (and weights modules share with steps) as Parameters, the rest as buffers.
        Initializers only layers read already live inside those layers. `also_read`: inputs of
        nodes that could not be converted, kept so static analysis sees their weights.

        A value whose name is a parameter's qualified name goes where the source model had it
        ("pos_embedding" at the root, "blocks.0.scale" in the blocks.0 scope)."""
        read = {name for step in self.module._steps for name in step.inputs} | set(self.graph.outputs) | also_read
        graph, module = self.graph, self.module
        for name in [*graph.initializers, *graph.constants]:
            if name not in read:
                continue
            owner, attr = self._home(name)
            if name in self.weights.parameters or graph.is_weight(name):
                owner.register_parameter(attr, self.weights.shared(name))
            elif name in graph.initializers:
                owner.register_buffer(attr, graph.initializers[name])
            else:  # Constant nodes are part of the program, not of the state
                owner.register_buffer(attr, graph.constants[name], persistent=False)
            path = f"{self._path_of(owner)}.{attr}".lstrip(".")
            module._stored[name] = path
            module.param_sources[path] = name

    def _home(self, name: str) -> tuple[nn.Module, str]:
        parts = name.split(".")
        scope, leaf = ".".join(parts[:-1]), parts[-1]
        if len(parts) > 1 and scope in self.containers and paths.clean_path(name) == name:
            owner = self.module.get_submodule(scope)
            if not hasattr(owner, leaf):
                return owner, leaf
        return self.module, self.names.take(name)

    def _path_of(self, owner: nn.Module) -> str:
        return next(path for path, candidate in self.module.named_modules() if candidate is owner)


_RESERVED = frozenset(dir(OnnxModule([], []))) | frozenset(dir(OnnxScope())) | frozenset(dir(nn.ModuleList()))


def _container(scoped: bool, children: list[str]) -> nn.Module:
    """An OnnxScope; or an nn.ModuleList for a module the exporter never scoped (it was never
    called) whose children are numbered 0, 1, ...: "/encoder/layers.0/..." has no "layers" scope."""
    if not scoped and children == [str(i) for i in range(len(children))]:
        return nn.ModuleList()
    return OnnxScope()


def _layer_paths(layers: list[tuple[Node, Layer]]) -> tuple[dict[int, str], dict[str, str]]:
    """id(layer) -> module path, and scope aliases (a scope path -> the path its parameters'
    names give, for ModuleDict entries). A repeated call of one module (same type, settings and
    Parameters: "/act/Relu", then "/act_1/Relu") gets the first call's path, so both steps run
    one module as in the source model."""
    wanted, aliases = [], {}
    for node, layer in layers:
        path, alias = _wanted_path(node, layer)
        wanted.append(path)
        if alias:
            aliases.setdefault(*alias)
    placed: dict[int, str] = {}
    holder: dict[str, Layer] = {}
    for (node, layer), path in zip(layers, wanted):
        base = re.sub(r"_\d+$", "", path)
        reused = next((p for p in dict.fromkeys((path, base)) if p in holder and _same_layer(holder[p], layer)), None)
        if reused is not None:
            placed[id(layer)] = reused
            continue
        path = _free(path, holder)
        holder[path] = layer
        placed[id(layer)] = path
    # A path that is also the scope of other layers becomes an OnnxScope: the layer moves inside it.
    while True:
        scopes = {scope for path in holder for scope in paths.ancestors(path)}
        clashes = [path for path in holder if path in scopes]
        if not clashes:
            break
        for path in clashes:
            layer = holder.pop(path)
            node = next(n for n, candidate in layers if candidate is layer)
            moved = _free(f"{path}.{paths.clean_part(node.name.rsplit('/', 1)[-1] or node.op_type)}", holder)
            holder[moved] = layer
            for key, value in placed.items():
                if value == path:
                    placed[key] = moved
    return placed, aliases


def _wanted_path(node: Node, layer: Layer) -> tuple[str, tuple[str, str] | None]:
    components = paths.scope_components(node.name)
    scope = paths.scope_path(components) if components else ""
    source = next(
        (found for param, name in sorted(layer.sources.items(), key=lambda item: item[0] != "weight")
         if (found := paths.source_path(name, param))),
        None,
    )
    if scope:
        if source and source != scope and source.endswith("." + scope):
            return _safe(source), (scope, source)
        if source and paths.is_within(source, scope):
            return _safe(source), None
        return _safe(scope), None
    if source:
        return _safe(source), None
    return _safe(paths.clean_part(node.name.rsplit("/", 1)[-1] or node.op_type)), None


def _safe(path: str) -> str:
    """No component may shadow an attribute of the modules that hold it ("forward", "training")."""
    return ".".join(part + "_" if part in _RESERVED else part for part in path.split("."))


def _free(path: str, taken: dict) -> str:
    candidate, counter = path, 1
    while candidate in taken:
        counter += 1
        candidate = f"{path}_{counter}"
    return candidate


def _same_layer(a: Layer, b: Layer) -> bool:
    if type(a.module) is not type(b.module) or a.op_type != b.op_type or a.sources != b.sources:
        return False
    if a.module.extra_repr() != b.module.extra_repr() or any(True for _ in b.module.buffers()):
        return False
    params_a, params_b = list(a.module.parameters()), list(b.module.parameters())
    return len(params_a) == len(params_b) and all(p is q for p, q in zip(params_a, params_b))


def _alias(scope: str, aliases: dict[str, str]) -> str:
    for candidate in (scope, *paths.ancestors(scope)):
        if candidate in aliases:
            return aliases[candidate] + scope[len(candidate):]
    return scope


class _Names:
    """Attribute names for children, parameters and buffers: ONNX names made into unique
    Python identifiers ("/layers.0/self_attn/MatMul" -> "layers_0_self_attn_MatMul")."""

    def __init__(self, module: nn.Module):
        self._module = module
        self._taken: set[str] = set()

    def take(self, onnx_name: str) -> str:
        base = re.sub(r"\W+", "_", onnx_name).strip("_") or "node"
        if base[0].isdigit() or keyword.iskeyword(base):
            base = "n_" + base
        name, counter = base, 1
        while name in self._taken or hasattr(self._module, name):
            counter += 1
            name = f"{base}_{counter}"
        self._taken.add(name)
        return name
