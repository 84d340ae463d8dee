"""The import graph of gradlint's own modules, read from the source with `ast` (nothing is imported).

    python docs/import_graph.py                 # Markdown adjacency list of gradlint/
    python docs/import_graph.py --dot           # the same graph for Graphviz: | dot -Tsvg > graph.svg
    python docs/import_graph.py --rules         # with the built-in rules, one node per family
    python docs/import_graph.py --update        # rewrite the "after" graph in docs/architecture.md

Each module lists the modules it imports; `name*` marks an import made only inside a function
(deferred until the function runs: gradlint defers torch and onnx that way). Imports under
`if TYPE_CHECKING:` are annotations only and never run, so they are left out. The last line
names every import cycle (strongly connected component), or says there is none.
docs/architecture.md shows the graph before and after the measure layer;
tests/test_architecture.py holds gradlint/ to an acyclic graph.
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections.abc import Iterator
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[1]
TOP, LOCAL = "top", "local"


def modules(root: Path, package: str) -> dict[str, Path]:
    """Dotted module name -> file, for every .py file under `root` (the folder of `package`)."""
    found = {}
    for path in sorted(root.rglob("*.py")):
        parts = [package, *path.relative_to(root).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def imports(path: Path, module: str) -> Iterator[tuple[str, tuple[str, ...], bool]]:
    """(module, names, made inside a function) for each import statement in the file: `import a.b`
    gives ("a.b", (), ...), `from a import b, c` gives ("a", ("b", "c"), ...), relative imports
    resolved. Imports under `if TYPE_CHECKING:` are skipped."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]

    def walk(node: ast.AST, local: bool) -> Iterator[tuple[str, tuple[str, ...], bool]]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child.test):
                for statement in child.orelse:
                    yield from visit(statement, local)
            else:
                yield from visit(child, local)

    def visit(node: ast.AST, local: bool) -> Iterator[tuple[str, tuple[str, ...], bool]]:
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, (), local
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parts = parts[:len(parts) - (node.level - 1)]
                base = ".".join([*parts, *([node.module] if node.module else [])])
            yield base, tuple(alias.name for alias in node.names), local
        else:
            yield from walk(node, local or isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)))

    yield from walk(ast.parse(path.read_text(encoding="utf-8")), False)


def _is_type_checking(test: ast.AST) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or \
        (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def import_graph(root: Path = REPOSITORY / "gradlint", package: str = "gradlint",
                 with_rules: bool = False) -> dict[str, dict[str, set[str]]]:
    """module -> {imported module of the same tree -> {"top", "local"}}: how it imports it (at
    module level, inside a function, or both). A name that is not a module resolves to the module
    that defines it (`from gradlint.load import Overrides` is an edge to gradlint.load).

    `with_rules` adds the built-in rules (rules/, installed as gradlint.rules), each family folded
    into one node (gradlint.rules.optimizer stands for its rules and helpers)."""
    known = modules(root, package)
    if with_rules:
        known.update(modules(REPOSITORY / "rules", f"{package}.rules"))

    def defining(name: str) -> str | None:
        while name and name not in known:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, dict[str, set[str]]] = {name: {} for name in known}
    for name, path in known.items():
        for imported, names, local in imports(path, name):
            # `from a import b` imports the submodule a.b when there is one, else a name a defines.
            targets = {f"{imported}.{n}" if f"{imported}.{n}" in known else defining(imported) for n in names} \
                if names else {defining(imported)}
            for target in targets - {None, name}:
                graph[name].setdefault(target, set()).add(LOCAL if local else TOP)
    if with_rules:
        graph = _fold_rule_families(graph, f"{package}.rules")
    return graph


def _fold_rule_families(graph: dict[str, dict[str, set[str]]], rules: str) -> dict[str, dict[str, set[str]]]:
    def family(name: str) -> str:
        if not name.startswith(rules + "."):
            return name
        parts = name[len(rules) + 1:].split(".")
        return f"{rules}.{parts[0]}" if len(parts) > 1 else name  # rules/_helpers.py stay themselves

    folded: dict[str, dict[str, set[str]]] = {}
    for name, targets in graph.items():
        entry = folded.setdefault(family(name), {})
        for target, how in targets.items():
            if family(target) != family(name):
                entry.setdefault(family(target), set()).update(how)
    return folded


def cycles(graph: dict[str, dict[str, set[str]]], kinds: frozenset[str] = frozenset({TOP, LOCAL})) -> list[list[str]]:
    """The import cycles: every strongly connected component of more than one module (Tarjan),
    over the edges of the given kinds."""
    edges = {name: sorted(t for t, how in targets.items() if how & kinds) for name, targets in graph.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in edges.get(node, ()):
            if target not in index:
                connect(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            connect(node)
    return sorted(found)


def markdown(graph: dict[str, dict[str, set[str]]]) -> str:
    lines = []
    for name in sorted(graph):
        targets = ", ".join(f"{t}{'' if TOP in how else '*'}" for t, how in sorted(graph[name].items()))
        lines.append(f"- `{name}` -> {targets or '(nothing of gradlint)'}")
    found = cycles(graph)
    lines.append("")
    lines.append("Cycles: " + ("; ".join(" <-> ".join(c) for c in found) if found else "none"))
    return "\n".join(lines)


def dot(graph: dict[str, dict[str, set[str]]]) -> str:
    lines = ["digraph gradlint {", "  rankdir=LR;", "  node [shape=box, fontname=monospace];"]
    for name in sorted(graph):
        for target, how in sorted(graph[name].items()):
            style = "" if TOP in how else " [style=dashed]"  # dashed: imported inside a function only
            lines.append(f'  "{name}" -> "{target}"{style};')
    lines.append("}")
    return "\n".join(lines)


START, END = "<!-- import-graph:after -->\n", "\n<!-- /import-graph -->"
PAGE = REPOSITORY / "docs" / "architecture.md"


def committed_graph() -> str:
    """The graph docs/architecture.md shows as the current one."""
    return PAGE.read_text(encoding="utf-8").split(START, 1)[1].split(END, 1)[0]


def update_architecture_page(graph: str) -> None:
    text = PAGE.read_text(encoding="utf-8")
    head, _, rest = text.partition(START)
    _, _, tail = rest.partition(END)
    PAGE.write_text(head + START + graph + END + tail, encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dot", action="store_true", help="print Graphviz dot instead of Markdown")
    parser.add_argument("--root", default=str(REPOSITORY / "gradlint"), help="the package's folder")
    parser.add_argument("--package", default="gradlint", help="the package's dotted name")
    parser.add_argument("--rules", action="store_true", help="add the built-in rules, one node per family")
    parser.add_argument("--update", action="store_true",
                        help="rewrite docs/architecture.md's current graph (with the rules) and exit")
    options = parser.parse_args(argv)
    if options.update:
        update_architecture_page(markdown(import_graph(with_rules=True)))
        return 0
    graph = import_graph(Path(options.root), options.package, with_rules=options.rules)
    print(dot(graph) if options.dot else markdown(graph))
    return 0


if __name__ == "__main__":
    sys.exit(main())
