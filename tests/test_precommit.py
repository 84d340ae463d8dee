"""The pre-commit hooks: .pre-commit-hooks.yaml against pre-commit's own schema, a real commit
through the hook in a fresh git repository, and the cost of a run over files without a model."""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import sys
import textwrap

import pytest

from tests._gl201 import BROKEN, HEALTHY

ROOT = pathlib.Path(__file__).resolve().parent.parent
MANIFEST = ROOT / ".pre-commit-hooks.yaml"


def hooks() -> dict:
    from pre_commit.clientlib import load_manifest

    return {hook["id"]: hook for hook in load_manifest(str(MANIFEST))}  # raises on a schema error


def test_manifest_matches_pre_commits_schema():
    gradlint, onnx = hooks()["gradlint"], hooks()["gradlint-onnx"]
    assert gradlint["entry"] == "gradlint --skip-non-models --quiet"
    assert gradlint["types"] == ["python"] and gradlint["language"] == "python"
    assert gradlint["require_serial"] is True  # torch imported once, not once per CPU
    assert onnx["files"] == r"\.onnx$" and onnx["types"] == ["file"] and onnx["require_serial"] is True
    assert onnx["entry"] == "gradlint --quiet"
    for hook in (gradlint, onnx):
        assert "--thorough" not in hook["entry"] and not hook["args"]  # the default run stays fast
        assert hook["pass_filenames"] and hook["name"] and hook["description"]


@pytest.fixture
def repository(tmp_path):
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    repo = tmp_path / "repo"
    repo.mkdir()
    env = {**os.environ, "PRE_COMMIT_HOME": str(tmp_path / "cache"), "PRE_COMMIT_COLOR": "never",
           "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": str(tmp_path / "gitconfig"),
           "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com"}
    env.pop("PRE_COMMIT", None)

    def sh(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(args, cwd=repo, env=env, capture_output=True, text=True, timeout=600)

    sh("git", "init", "-q", "-b", "main")
    return repo, sh


def local_hook_config() -> str:
    """The published `gradlint` hook in the `repo: local` form (docs/pre-commit.md), running this
    environment's gradlint: `language: python` would install gradlint and torch into a new virtualenv."""
    import yaml

    hook = {key: value for key, value in yaml.safe_load(MANIFEST.read_text())[0].items()}
    hook["entry"] = hook["entry"].replace("gradlint", f"{sys.executable} -m gradlint", 1)
    hook["language"] = "unsupported"  # pre-commit >= 4.4 (`system` before)
    hook["args"] = ["--select", "GL201"]  # the rule whose output is stable while others are written
    return yaml.safe_dump({"repos": [{"repo": "local", "hooks": [hook]}]}, sort_keys=False)


def test_hook_blocks_a_commit_with_an_exploding_model(repository):
    pytest.importorskip("yaml")
    repo, sh = repository
    (repo / ".pre-commit-config.yaml").write_text(local_hook_config())
    (repo / "utils.py").write_text("def helper():\n    return 1\n")  # staged, no model: skipped
    (repo / "net.py").write_text(BROKEN)
    assert sh("git", "add", ".").returncode == 0
    installed = sh(sys.executable, "-m", "pre_commit", "install")
    assert installed.returncode == 0, installed.stderr

    commit = sh("git", "commit", "-q", "-m", "add a model")
    output = commit.stdout + commit.stderr  # git passes the hook's output on stderr
    assert commit.returncode == 1, output
    assert "gradlint" in output and "Failed" in output
    assert "net.py:8:20: GL201 [error] fc1: weight variance x fan_in is" in output
    assert "utils.py" not in output
    assert sh("git", "rev-parse", "--verify", "HEAD").returncode != 0  # nothing was committed

    (repo / "net.py").write_text(HEALTHY)
    sh("git", "add", "net.py")
    commit = sh("git", "commit", "-q", "-m", "add a healthy model")
    assert commit.returncode == 0, commit.stdout + commit.stderr
    assert "gradlint" in commit.stderr and "Passed" in commit.stderr


def test_files_without_a_model_never_import_torch(tmp_path):
    (tmp_path / "utils.py").write_text("import os\n\ndef helper():\n    return os.sep\n")
    (tmp_path / "notes.py").write_text("# mentions torch but defines no model\nimport torch\nx = 1\n")
    code = textwrap.dedent("""\
        import sys
        from gradlint.cli import main
        try:
            main(["--skip-non-models", "utils.py", "notes.py"])
        except SystemExit as exit:
            print("exit", exit.code, "torch" in sys.modules)
        """)
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.stdout == "Found 0 findings in 0 models.\nexit 0 False\n", result.stderr
