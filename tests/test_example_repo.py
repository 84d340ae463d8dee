"""gradlint in a repository laid out like real ML code (tests/example_repo, see its README):
by path, by directory, what it skips and excludes, with exact output. Each test works on a
copy, so a .git folder or an ignored file can be added without touching the repository."""

from __future__ import annotations

import json
import pathlib
import shutil
import subprocess

import pytest
from click.testing import CliRunner

from gradlint.cli import main
from tests.conftest import risk_text

EXAMPLE = pathlib.Path(__file__).parent / "example_repo"
ASSUMED_OPTIMIZER = "  assumed optimizer: AdamW(lr=0.001) (no configure_optimizers)\n"
ASSUMED_LOSS = "  assumed loss: cross-entropy against random labels (no loss_fn)\n"


@pytest.fixture
def repo(tmp_path, monkeypatch):
    copy = tmp_path / "repo"
    shutil.copytree(EXAMPLE, copy)
    monkeypatch.chdir(copy)
    return copy


def gradlint(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def risks(*paths: str) -> dict[str, str]:
    """target -> its risk text, read from json (the calibration changes when it is refitted)."""
    return {m["target"]: risk_text(m) for m in json.loads(gradlint("--format", "json", *paths)[1])["models"]}


def wide_finding() -> str:
    (model,) = json.loads(gradlint("--format", "json", "mylab/models/wide.py")[1])["models"]
    return model["findings"][0]["message"]


def test_a_model_with_relative_imports_by_path(repo):
    risk = risks("mylab/models/mlp.py")["mylab/models/mlp.py::build_model"]
    assert gradlint("mylab/models/mlp.py") == (0, (
        f"mylab/models/mlp.py::build_model: risk {risk}\n" + ASSUMED_OPTIMIZER + ASSUMED_LOSS +
        "Found 0 findings in 1 model.\n"), "")


def test_the_whole_repository(repo):
    """Layers that need sizes and parameter-free modules are skipped and counted, never errors;
    a utility without torch is never imported; `experiments` is excluded by the config; a script
    imports the project's package and, inside build_model, a sibling module."""
    r = risks(".")
    assert gradlint() == (1, (
        f"mylab/models/mlp.py::build_model: risk {r['mylab/models/mlp.py::build_model']}\n"
        + ASSUMED_OPTIMIZER + ASSUMED_LOSS +
        f"mylab/models/wide.py:10:19: GL201 [error] fc: {wide_finding()}\n"
        f"mylab/models/wide.py::build_model: risk {r['mylab/models/wide.py::build_model']}; "
        "causes: GL201 init-scale-too-large\n" + ASSUMED_OPTIMIZER + ASSUMED_LOSS +
        f"scripts/train.py::build_model: risk {r['scripts/train.py::build_model']}\n" + ASSUMED_LOSS +
        "Found 1 finding in 3 models (1 error); 2 files without a model skipped.\n"), "")


def test_verbose_names_the_skipped_files(repo):
    _, _, err = gradlint("-v", "mylab/")
    assert err == ("mylab/activations.py: skipped: its nn.Module classes have no parameters\n"
                   "mylab/layers.py: skipped: its nn.Module classes (Block, Head) all need constructor arguments; "
                   "name a factory with file.py::NAME or build_model() to lint one\n")


def test_a_named_factory_is_never_skipped(repo):
    """`file.py::NAME` says there is a model: a class that needs arguments is an error."""
    code, out, _ = gradlint("mylab/layers.py::Block")
    assert code == 2
    assert out.startswith("mylab/layers.py: error: Block() raised TypeError: ")


def test_show_files(repo):
    assert gradlint("--show-files") == (0, "mylab/activations.py\nmylab/layers.py\nmylab/models/mlp.py\n"
                                           "mylab/models/wide.py\nscripts/train.py\n", "")
    # --exclude replaces the default list (as ruff's does); the config's extend-exclude still adds to it.
    assert gradlint("--show-files", "--exclude", "scripts") == (
        0, "mylab/activations.py\nmylab/layers.py\nmylab/models/mlp.py\nmylab/models/wide.py\n", "")
    assert gradlint("--show-files", "--extend-exclude", "mylab/models/*,*.onnx") == (
        0, "mylab/activations.py\nmylab/layers.py\nscripts/train.py\n", "")


def test_named_paths_are_linted_unless_force_exclude(repo):
    assert gradlint("--show-files", "experiments/scratch.py") == (0, "experiments/scratch.py\n", "")
    assert gradlint("--show-files", "experiments") == (0, "experiments/scratch.py\n", "")  # a named folder too
    assert gradlint("--show-files", "--force-exclude", "experiments") == (0, "", "")
    assert gradlint("--show-files", "--force-exclude", "experiments/scratch.py", "scripts/train.py") == (
        0, "scripts/train.py\n", "")


def test_files_git_ignores_are_passed_over(repo):
    subprocess.run(["git", "init", "-q"], check=True)
    (repo / ".gitignore").write_text("scripts/\n")
    assert "scripts/train.py" not in gradlint("--show-files")[1]
    assert "scripts/train.py" in gradlint("--show-files", "--no-respect-gitignore")[1]
    # Named on the command line, an ignored file is linted, unless --force-exclude.
    assert gradlint("--show-files", "scripts/train.py")[1] == "scripts/train.py\n"
    assert gradlint("--show-files", "--force-exclude", "scripts/train.py")[1] == ""


def test_show_settings(repo):
    code, out, _ = gradlint("--show-settings", "mylab/models/mlp.py")
    assert code == 0
    lines = out.splitlines()
    assert lines[:2] == ["Resolved settings for: mylab/models/mlp.py",
                         f"Settings path: {repo / 'pyproject.toml'}"]
    assert 'select = ["GL201"]' in lines
    assert lines[lines.index("[probe]") + 1:lines.index("[probe]") + 3] == ["run = true", 'device = "cpu"']
