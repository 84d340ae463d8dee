"""Suppression comments, config ignores by file and module, and GL901 for those that matched nothing."""

from __future__ import annotations

import os
import textwrap

import pytest

from gradlint import suppress
from gradlint.sources import MAX_SOURCE_BYTES
from tests._gl201 import ASSUMED, BROKEN, FC1, FC2, HEALTHY, finding, gl201, run, with_comment
from tests.conftest import never_blocks, no_evidence_risk


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def lint(workdir, source: str, *args: str, select: str = "GL201,GL901"):
    (workdir / "model.py").write_text(source)
    return run("-q", *args, "model.py", select=select)


@pytest.mark.parametrize("comment", [
    "# noqa: GL201",
    "# NOQA:gl201",
    "# noqa: E501, GL201",
    "# noqa: GL2",
    "# gradlint: ignore[GL201]",
    "# gradlint: ignore[init-scale-too-large]",
    "# gradlint: ignore[GL2 init-scale-too-large]",
    "# gradlint: ignore",
    "# gradlint: noqa",
    "# type: ignore[assignment]  # noqa: GL201",
])
def test_comment_on_the_construction_line_suppresses(workdir, comment):
    assert lint(workdir, with_comment(BROKEN, FC1, comment)) == (0, "", "")


@pytest.mark.parametrize("comment", ["# noqa", "# noqa: E501", "# noqa: F401, E501"])
def test_comments_for_other_tools_are_left_alone(workdir, comment):
    # A bare noqa is meant for flake8/ruff; it does not hide an exploding gradient, and is not "unused".
    assert lint(workdir, with_comment(BROKEN, FC1, comment)) == (1, finding(), "")


def test_comment_anywhere_on_a_multi_line_statement(workdir):
    source = BROKEN.replace(FC1, "        self.fc1 = nn.Linear(\n            64, 64,\n        )  # noqa: GL201")
    assert lint(workdir, source) == (0, "", "")


def test_own_line_ignore_covers_the_next_statement(workdir):
    source = BROKEN.replace(FC1, "        # gradlint: ignore[GL201]\n" + FC1)
    assert lint(workdir, source) == (0, "", "")


def test_own_line_noqa_covers_only_its_own_line(workdir):
    source = BROKEN.replace(FC1, "        # noqa: GL201\n" + FC1)
    assert lint(workdir, source) == (1, "model.py:8:9: GL901 [warning] unused `# noqa: GL201` (unused: GL201)\n" +
                                     finding().replace(":8:", ":9:"), "")


def test_file_level_noqa_skips_the_file(workdir):
    code, out, _ = lint(workdir, "# gradlint: noqa\n" + BROKEN.replace("import torch\n", "import torch  # noqa\n", 1))
    assert (code, out) == (0, "")
    (workdir / "model.py").write_text("# gradlint: noqa\n" + BROKEN)
    assert run("model.py") == (0, "Found 0 findings in 0 models.\n", "")


def test_file_level_noqa_with_codes(workdir):
    _, risk = gl201()
    (workdir / "model.py").write_text("# gradlint: noqa: GL201\n" + BROKEN)
    assert run("model.py") == (0, f"model.py::build_model: {no_evidence_risk('GL201,GL901')}\n" + ASSUMED +
                               "Found 0 findings in 1 model.\n", "")


def test_a_suppression_in_a_string_is_not_one(workdir):
    source = 'DOC = """\n# gradlint: noqa\n"""\n' + with_comment(BROKEN, FC2, '"# noqa: GL201"')
    source = source.replace(f'{FC2}  "# noqa: GL201"', f'{FC2}; _ = "# noqa: GL201"')
    assert lint(workdir, source) == (1, finding().replace(":8:", ":11:"), "")


def test_ignore_noqa_reports_what_comments_hide(workdir):
    assert lint(workdir, with_comment(BROKEN, FC1, "# noqa: GL201"), "--ignore-noqa") == (1, finding(), "")


def test_suppression_in_the_file_that_builds_the_layer(workdir):
    # The layer is built in a helper module: the finding points there, and so must the comment.
    (workdir / "blocks.py").write_text(textwrap.dedent("""\
        import torch.nn as nn


        def wide_layer():
            layer = nn.Linear(64, 64)  # noqa: GL201
            nn.init.normal_(layer.weight, std=1.0)
            return layer
        """))
    source = BROKEN.replace(FC1, "        self.fc1 = wide_layer()").replace(
        "import torch.nn as nn\n", "import torch.nn as nn\nfrom blocks import wide_layer\n")
    assert lint(workdir, source) == (0, "", "")


# -- GL901 unused-suppression -------------------------------------------------------------------

def test_unused_suppression(workdir):
    out = "model.py:9:38: GL901 [warning] unused `# noqa: GL201` (unused: GL201)\n"
    assert lint(workdir, with_comment(HEALTHY, FC2, "# noqa: GL201")) == (1, out, "")


def test_unused_suppression_full_format(workdir):
    code, out, _ = lint(workdir, with_comment(HEALTHY, FC2, "# gradlint: ignore[GL201]"), "--format", "full")
    assert code == 1
    assert out == (
        "GL901 [warning] unused-suppression: unused `# gradlint: ignore[GL201]` (unused: GL201)\n"
        "  --> model.py:9:38\n"
        "  |\n"
        "9 |         self.fc2 = nn.Linear(64, 4)  # gradlint: ignore[GL201]\n"
        "  |                                      ^\n"
        "  help: remove the comment\n"
    )


def test_suppression_naming_an_unknown_code(workdir):
    out = "model.py:9:38: GL901 [warning] unused `# noqa: GL999` (unknown: GL999)\n"
    assert lint(workdir, with_comment(HEALTHY, FC2, "# noqa: GL999")) == (1, out, "")


def test_unused_and_unknown_codes_in_one_comment(workdir):
    source = with_comment(BROKEN, FC1, "# gradlint: ignore[GL201, GL999, init-scale-too-big]")
    out = ("model.py:8:39: GL901 [warning] unused `# gradlint: ignore[GL201, GL999, init-scale-too-big]` "
           "(unknown: GL999, init-scale-too-big)\n")
    assert lint(workdir, source) == (1, out, "")
    code, out, _ = lint(workdir, source, "--format", "json-lines")
    assert '"fix": {"message": "remove GL999, init-scale-too-big from it", "code": null}' in out


def test_unused_blanket_and_file_level(workdir):
    from gradlint.registry import all_rules

    source = "# gradlint: noqa: GL201\n" + with_comment(HEALTHY, FC2, "# gradlint: ignore")
    out = "model.py:1:1: GL901 [warning] unused file-level `# gradlint: noqa: GL201` (unused: GL201)\n"
    assert lint(workdir, source) == (1, out, "")  # a blanket comment is judged only when every rule ran:
    unused = suppress.apply([], "model.py", "python", all_rules(), suppress.SuppressionConfig())
    assert [(f.location.line, f.location.col, f.message) for f in unused] == [
        (1, 1, "unused file-level `# gradlint: noqa: GL201` (unused: GL201)"),
        (10, 38, "unused blanket `# gradlint: ignore`"),
    ]


def test_unused_is_judged_only_for_rules_that_ran(workdir):
    source = with_comment(HEALTHY, FC2, "# noqa: GL201")
    assert lint(workdir, source, "--no-probe") == (0, "", "")  # GL201 needs the trace
    assert lint(workdir, source, select="GL201") == (0, "", "")  # GL901 not selected


def test_unknown_codes_declared_external(workdir):
    (workdir / "pyproject.toml").write_text('[tool.gradlint]\nexternal = ["GL77"]\n')
    assert lint(workdir, with_comment(HEALTHY, FC2, "# noqa: GL777")) == (0, "", "")


def test_gl901_can_be_silenced_and_judged_itself(workdir):
    assert lint(workdir, with_comment(HEALTHY, FC2, "# noqa: GL201, GL901")) == (0, "", "")
    out = "model.py:9:38: GL901 [warning] unused `# gradlint: ignore[GL901]` (unused: GL901)\n"
    assert lint(workdir, with_comment(HEALTHY, FC2, "# gradlint: ignore[GL901]")) == (1, out, "")


# -- config: per-file-ignores, by file and by module (ONNX node names) ------------------------------

def test_per_file_ignores(workdir):
    (workdir / "legacy").mkdir()
    (workdir / "legacy" / "old.py").write_text(BROKEN)
    (workdir / "pyproject.toml").write_text('[tool.gradlint.per-file-ignores]\n"legacy/*.py" = ["GL2"]\n')
    (workdir / "model.py").write_text(BROKEN)
    assert run("-q", "legacy/old.py", "model.py") == (1, finding(), "")


def test_per_file_ignores_by_module(workdir):
    (workdir / "pyproject.toml").write_text(textwrap.dedent("""\
        [tool.gradlint.per-file-ignores]
        "model.py::fc1" = ["init-scale-too-large"]
        "model.py::fc2" = ["GL201"]
        "*.py::decoder.*" = ["GL201"]
        """))
    out = 'pyproject.toml:3:1: GL901 [warning] unused per-file-ignores entry "model.py::fc2" (unused: GL201)\n'
    assert lint(workdir, BROKEN) == (1, out, "")


# -- the directive parser -----------------------------------------------------------------------

def test_parse_file(tmp_path):
    path = tmp_path / "m.py"
    path.write_text(textwrap.dedent("""\
        # gradlint: noqa: GL3
        import torch.nn as nn  # noqa: F401

        # gradlint: ignore[GL201]
        layer = nn.Linear(
            4, 4)  # gradlint: ignore[GL1, deep-plain-stack]
        s = "# noqa: GL201"
        # noqa: GL201
        """))
    found = [(d.text, d.codes, d.first, d.last, d.location.line, d.location.col)
             for d in suppress.parse_file(str(path))]
    assert found == [
        ("# gradlint: noqa: GL3", ("GL3",), 0, 0, 1, 1),
        ("# gradlint: ignore[GL1, deep-plain-stack]", ("GL1", "deep-plain-stack"), 5, 6, 6, 12),
        ("# gradlint: ignore[GL201]", ("GL201",), 5, 6, 4, 1),
        ("# noqa: GL201", ("GL201",), 8, 8, 8, 1),
    ]
    assert not suppress.file_exempt(str(path))


def test_parse_file_decodes_as_python_does_and_never_raises(tmp_path):
    declared = tmp_path / "declared.py"
    declared.write_bytes(b"# -*- coding: latin-1 -*-\n# gradlint: noqa\ns = 'caf\xe9'\n")
    # Python cannot read these: they have no directives. (Past line 2, where the tokenizer no
    # longer looks for a coding line, bad bytes used to raise UnicodeDecodeError.)
    undeclared = tmp_path / "undeclared.py"
    undeclared.write_bytes(b"# gradlint: noqa\nimport torch\ns = 'caf\xe9'\n")
    binary = tmp_path / "binary.py"
    binary.write_bytes(b"# gradlint: noqa\nimport torch\n" + bytes(range(256)))
    large = tmp_path / "large.py"  # over the size cap: never read, never linted
    large.write_text("# gradlint: noqa\n" + "#" * MAX_SOURCE_BYTES + "\n")
    assert suppress.file_exempt(str(declared))
    for path in (undeclared, binary, large):
        assert suppress.parse_file(str(path)) == [] and not suppress.file_exempt(str(path))


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="FIFOs and /dev/zero are POSIX")
def test_parse_file_reads_only_regular_files(tmp_path):
    os.mkfifo(tmp_path / "fifo.py")  # open() would wait for a writer forever
    os.symlink("/dev/zero", tmp_path / "zero.py")  # read() would never end
    with never_blocks():
        for name in ("fifo.py", "zero.py"):
            assert suppress.parse_file(str(tmp_path / name)) == []
            assert not suppress.file_exempt(str(tmp_path / name))


def test_class_line_suppresses_whole_model_findings(workdir):
    # Through the API the layers have no recorded construction site: findings fall back to the
    # model's class line, where a comment silences them.
    import importlib.util
    import sys

    import torch

    (workdir / "netmod.py").write_text(BROKEN.replace("class Net(nn.Module):", "class Net(nn.Module):  # noqa: GL201"))
    spec = importlib.util.spec_from_file_location("netmod_gl", workdir / "netmod.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["netmod_gl"] = module
    try:
        spec.loader.exec_module(module)
        from gradlint.api import check

        report = check(module.build_model(), torch.randn(8, 64), select=["GL201"])
    finally:
        del sys.modules["netmod_gl"]
    assert report.findings == ()


def test_onnx_findings_are_suppressed_by_node_name(workdir):
    # ONNX findings carry the node name as their module and point at the .onnx file (no comments there).
    from gradlint.config import load_config
    from gradlint.findings import Finding, Location, Severity
    from gradlint.registry import all_rules

    (workdir / "net.onnx").write_bytes(b"\x08\x07\x12\x00# noqa: GL201")
    (workdir / "pyproject.toml").write_text(textwrap.dedent("""\
        [tool.gradlint.per-file-ignores]
        "net.onnx::/encoder/MatMul_*" = ["GL201"]
        "net.onnx::/decoder/Gemm_0" = ["GL201"]
        """))
    ignores = suppress.SuppressionConfig(ignores=load_config("pyproject.toml").per_file_ignores)
    findings = [Finding("GL201", "init-scale-too-large", Severity.ERROR, "too large", Location("net.onnx"), module=node)
                for node in ("/encoder/MatMul_3", "/encoder/Gemm_1")]
    kept = suppress.apply(findings, "net.onnx", "onnx", all_rules(), ignores)
    assert [(f.code, f.location.path, f.location.line, f.module or f.message) for f in kept] == [
        ("GL201", "net.onnx", 1, "/encoder/Gemm_1"),
        ("GL901", "pyproject.toml", 3, 'unused per-file-ignores entry "net.onnx::/decoder/Gemm_0" (unused: GL201)'),
    ]
