"""The standard recipes (benchmarks/recipes/: published architectures with the recipes their authors
train them with, each confirmed to train by benchmarks/train_recipes.py) must lint clean: no error,
no warning, and a low risk. Linted at their small size (tiny widths, the published depth where it
matters: 6 GPT blocks for GPT-2's scaled init, 12 Post-LN BERT layers), through the command line,
as a user runs gradlint on them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from gradlint.cli import main

RECIPES = sorted(p for p in (Path(__file__).resolve().parents[1] / "benchmarks" / "recipes").glob("*.py")
                 if not p.name.startswith("_"))
FULL, SMALL = 'SIZE = "full"', 'SIZE = "small"'


@pytest.fixture(scope="module")
def reports(tmp_path_factory):
    """Each recipe at its small size, every one linted in one run; the json models by file stem."""
    folder = tmp_path_factory.mktemp("recipes")
    for path in RECIPES:
        text = path.read_text()
        assert text.count(FULL) == 1, f"{path.name} must pick its size with one `{FULL}` line"
        (folder / path.name).write_text(text.replace(FULL, SMALL))
    result = CliRunner().invoke(main, ["--isolated", "--format", "json", "-j", "2", str(folder)])
    assert result.exit_code in (0, 1), result.output
    return {Path(model["target"]).stem: model for model in json.loads(result.output)["models"]}


def test_every_recipe_is_here():
    # The list: one model file per recipe.
    assert {p.stem for p in RECIPES} == {"bert_base", "lstm_word_lm", "nanogpt", "resnet18_cifar", "t5_small",
                                         "unet", "vgg16_bn_cifar", "vit_s16"}


@pytest.mark.parametrize("name", [p.stem for p in RECIPES])
def test_recipe_lints_clean(reports, name):
    model = reports[name]
    assert "error" not in model, model.get("error")
    loud = [f"{f['code']} [{f['severity']}] {f['message']}" for f in model["findings"]
            if f["severity"] in ("error", "warning")]
    assert loud == []
    assert model["risk"] is not None and model["risk"] < 0.3, (model["risk"], model["causes"])
    assert "risk_incomplete" not in model  # every rule the risk weighs ran


def test_small_sizes_are_small():
    # The test's speed rests on the small sizes staying tiny; the full sizes are the published ones.
    import importlib.util

    for path in RECIPES:
        spec = importlib.util.spec_from_file_location(f"recipe_{path.stem}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        module.SIZE = "small"
        parameters = sum(p.numel() for p in module.build_model().parameters())
        assert parameters < 300_000, (path.name, parameters)
