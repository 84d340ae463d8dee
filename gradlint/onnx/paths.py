"""Module paths for a converted graph: the source model's own, recovered from the exporter's names.

torch.onnx.export names each node after the module calls that ran it, one component per call
scope, then the op: "/blocks/blocks.0/conv1/Conv" is the Conv of `blocks[0].conv1`. A
component names its module relative to the scope above it ("conv1" inside "blocks.0"), except
that the children of a called container are named relative to the same scope as the container
itself ("blocks" then "blocks.0"; "seq", "seq.1", "seq.1.0"). A module called a second time
gets a suffix ("/act_1/Relu" for the second call of `act`). Parameters keep their qualified
names as initializer names ("blocks.0.conv1.weight"), which settle the cases the scopes do not
(a ModuleDict entry is scoped by its key alone).

Names from other exporters ("sequential/dense/MatMul", "Gemm_3", "node_12") become paths the
same way, component by component, made into valid module names.
"""

from __future__ import annotations

import re

_PART = re.compile(r"^(?:[A-Za-z_]\w*|\d+)$")


def scope_components(node_name: str) -> tuple[str, ...] | None:
    """The call-scope components of a node name (the op dropped); None without any scope."""
    if "/" not in node_name:
        return None
    parts = [part for part in node_name.split("/") if part]
    return tuple(parts[:-1])


def scope_path(components: tuple[str, ...]) -> str:
    """("blocks", "blocks.0", "conv1") -> "blocks.0.conv1"."""
    stack: list[tuple[str, str]] = []  # (component, the path it is relative to)
    full = ""
    for component in components:
        base = stack[-1][1] if stack and component.startswith(stack[-1][0] + ".") else full
        full = f"{base}.{component}" if base else component
        stack.append((component, base))
    return clean_path(full)


def scope_prefixes(node_name: str) -> list[tuple[str, str]]:
    """(module path, ONNX name prefix) for every scope enclosing the node, outermost first:
    "/blocks/blocks.0/Add" -> [("blocks", "/blocks"), ("blocks.0", "/blocks/blocks.0")]."""
    components = scope_components(node_name)
    if not components:
        return []
    lead = "/" if node_name.startswith("/") else ""
    return [(scope_path(components[:i]), lead + "/".join(components[:i])) for i in range(1, len(components) + 1)]


def source_path(source: str, param: str) -> str | None:
    """The module path in a parameter's qualified name: ("blocks.0.conv1.weight", "weight") ->
    "blocks.0.conv1"; ("attn.in_proj_weight", "weight") -> "attn.in_proj". None when the
    initializer name is no qualified parameter name ("onnx::MatMul_12", "w")."""
    parts = source.split(".")
    if len(parts) < 2 or not all(_PART.match(part) for part in parts):
        return None
    leaf = parts[-1]
    if leaf != param and leaf.endswith("_" + param):
        return ".".join([*parts[:-1], leaf[: -len(param) - 1]])
    return ".".join(parts[:-1])


def clean_path(path: str) -> str:
    """Each dotted component made a valid module name ("a-b" -> "a_b", "" -> "_")."""
    return ".".join(clean_part(part) for part in path.split(".")) if path else ""


def clean_part(part: str) -> str:
    if part.isdigit():
        return part
    cleaned = re.sub(r"\W", "_", part) or "_"
    return "n_" + cleaned if cleaned[0].isdigit() else cleaned


def parent(path: str) -> str:
    return path.rpartition(".")[0]


def ancestors(path: str) -> list[str]:
    """Strict ancestors, innermost first, ending with the root ""."""
    result = []
    while path:
        path = parent(path)
        result.append(path)
    return result


def is_within(path: str, scope: str) -> bool:
    return not scope or path == scope or path.startswith(scope + ".")
