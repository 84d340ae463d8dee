"""The walls between gradlint's stages, checked from the source with `ast` (docs/architecture.md).

- Rules import nothing of gradlint but the contract, gradlint.rule, and rules/ holds rules only:
  shared measurement code lives in gradlint.measure, where every rule and plugin can reach it
  through the contract.
- gradlint/ has no import cycle, and gradlint.measure imports nothing of the stages above it.
- An import made inside a function says why (torch or onnx kept out of import time, or a cheap
  `import gradlint`), so that a deferred import never hides a cycle again.
"""

from __future__ import annotations

import ast
import importlib.util
import sys
from pathlib import Path

import pytest

REPOSITORY = Path(__file__).resolve().parents[1]


def _graph_tool():
    spec = importlib.util.spec_from_file_location("import_graph", REPOSITORY / "docs" / "import_graph.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("import_graph", module)
    spec.loader.exec_module(module)
    return module


graph_tool = _graph_tool()
RULE_FILES = sorted(p for p in (REPOSITORY / "rules").rglob("*.py") if p.name != "__init__.py")


def _gradlint_imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every import of gradlint in the file, at any depth, TYPE_CHECKING included."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names if alias.name.split(".")[0] == "gradlint"]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                found.append((node.lineno, "." * node.level + (node.module or "")))
            elif node.module and node.module.split(".")[0] == "gradlint":
                found.append((node.lineno, node.module))
    return found


@pytest.mark.parametrize("path", RULE_FILES, ids=lambda p: str(p.relative_to(REPOSITORY)))
def test_rules_import_only_the_contract(path):
    wrong = [f"{path.relative_to(REPOSITORY)}:{line} imports {module}"
             for line, module in _gradlint_imports(path) if module != "gradlint.rule"]
    assert not wrong, "rules import gradlint.rule only (measurements go to gradlint/measure/):\n" + "\n".join(wrong)


@pytest.mark.parametrize("path", RULE_FILES, ids=lambda p: str(p.relative_to(REPOSITORY)))
def test_rules_folder_holds_one_rule_per_file(path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    rules = [node.name for node in tree.body if isinstance(node, ast.ClassDef)
             and any(getattr(base, "id", None) == "Rule" for base in node.bases)]
    assert len(rules) == 1, f"{path.relative_to(REPOSITORY)} defines {len(rules)} rules: {rules}"


def test_the_contract_exports_what_it_lists():
    import gradlint.rule

    missing = [name for name in gradlint.rule.__all__ if not hasattr(gradlint.rule, name)]
    assert not missing
    assert len(set(gradlint.rule.__all__)) == len(gradlint.rule.__all__)


def test_gradlint_has_no_import_cycle():
    graph = graph_tool.import_graph(REPOSITORY / "gradlint", "gradlint")
    assert graph_tool.cycles(graph) == []


def test_the_graph_tool_finds_a_cycle(tmp_path):
    """The cycle test above can fail: the tool sees a cycle through a function-local import."""
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from pkg.b import f\n")
    (package / "b.py").write_text("def f():\n    from pkg.a import g\n")
    graph = graph_tool.import_graph(package, "pkg")
    assert graph_tool.cycles(graph) == [["pkg.a", "pkg.b"]]


STAGES_ABOVE_MEASURE = ("gradlint.api", "gradlint.cli", "gradlint.config", "gradlint.engine", "gradlint.emit",
                        "gradlint.load", "gradlint.registry", "gradlint.rule", "gradlint.runner", "gradlint.worker")


def test_measure_imports_no_stage_above_it():
    graph = graph_tool.import_graph(REPOSITORY / "gradlint", "gradlint")
    wrong = [f"{name} -> {target}" for name, targets in graph.items() if name.startswith("gradlint.measure")
             for target in targets if target.startswith(STAGES_ABOVE_MEASURE)]
    assert not wrong


# The function-local imports of gradlint's own modules, each with its reason. A new one fails this
# test until it is hoisted or added here with why.
DEFERRED = {
    ("gradlint", "gradlint.api"): "`import gradlint` (pytest loads the plugin in every session) stays cheap",
    ("gradlint.pytest_plugin", "gradlint.testing"): "the same: the plugin imports the engine only when used",
    ("gradlint.load", "gradlint.onnx"): "only ONNX runs pay for importing onnx",
}


def test_function_local_imports_of_gradlint_are_the_justified_ones():
    graph = graph_tool.import_graph(REPOSITORY / "gradlint", "gradlint")
    deferred = {(name, target) for name, targets in graph.items() for target, how in targets.items()
                if how == {graph_tool.LOCAL}}
    assert deferred == set(DEFERRED)


def test_the_architecture_page_shows_the_current_graph():
    """docs/architecture.md's "after" graph is `python docs/import_graph.py --rules` of this tree."""
    current = graph_tool.markdown(graph_tool.import_graph(REPOSITORY / "gradlint", "gradlint", with_rules=True))
    assert graph_tool.committed_graph() == current, \
        "docs/architecture.md is stale: run `python docs/import_graph.py --update`"
