"""Defaults gradlint assumes, and the messages around them, on models written here small from the
published architectures (VGG's stacked 3x3 convolutions and poolings, ViT's patches), none
copied: the input batch of an image network (the size it needs, einops and patch embeddings, the
first layer the data meets), findings about gradlint's own optimizer, a trend with depth made by
one layer, a first optimizer step whose size overflows float32.
"""

from __future__ import annotations

import json
import textwrap

import pytest
from click.testing import CliRunner

from gradlint.cli import main

SIZES = "sizes tried in turn until forward runs: 32, 28, 64, 128, 224, 256, 384"


def write(directory, name: str, source: str) -> str:
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(source))
    return str(path)


def lint_json(*args: str) -> tuple[int, dict]:
    result = CliRunner().invoke(main, ["--format", "json", *args])
    return result.exit_code, json.loads(result.output)


def model_report(path: str, *args: str) -> dict:
    code, document = lint_json(*args, path)
    (report,) = document["models"]
    assert "error" not in report, report
    return report


# -- images ---------------------------------------------------------------------------------------
def vgg_like(head_features: str) -> str:
    # VGG's stages: 3x3 convolutions with ReLU, each stage closed by a 2x2 max-pool that halves the
    # image; five of them leave 1/32 of it. A Dropout and a nested nn.Sequential come first.
    return f"""
    import torch.nn as nn

    def stage(cin, cout):
        return [nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)]

    def build_model():
        features = nn.Sequential(nn.Dropout(0.1), *stage(3, 8), *stage(8, 16), *stage(16, 16), *stage(16, 16),
                                 *stage(16, 16))
        return nn.Sequential(nn.Sequential(features), nn.Flatten(), nn.Linear({head_features}, 10))
    """


@pytest.mark.parametrize("head_features,size", [("16", 32), ("16 * 7 * 7", 224)])
def test_image_size_is_the_first_the_network_runs_at(tmp_path, head_features, size):
    path = write(tmp_path, "vgg.py", vgg_like(head_features))
    report = model_report(path, "--select", "GL5")
    assert report["assumptions"][0] == (
        f"inputs: random batch of shape (8, 3, {size}, {size}) inferred from the first layer 0.0.1 (Conv2d), "
        f"image size {size} ({SIZES}); define example_inputs() for a real one")
    # --no-probe never runs the model: the first size is named, and nothing is tried.
    report = model_report(path, "--no-probe")
    assert report["assumptions"][0] == (
        "inputs: random batch of shape (8, 3, 32, 32) inferred from the first layer 0.0.1 (Conv2d), "
        f"image size 32 ({SIZES}); define example_inputs() for a real one")


REARRANGE = """
class Rearrange(nn.Module):
    # einops.layers.torch.Rearrange's interface (pattern, axes_lengths), for this one pattern:
    # einops need not be installed, and gradlint knows the layer by its name and attributes.
    def __init__(self, pattern, **axes_lengths):
        super().__init__()
        self.pattern = pattern
        self.axes_lengths = axes_lengths

    def forward(self, x):
        p1, p2 = self.axes_lengths["p1"], self.axes_lengths["p2"]
        b, c, h, w = x.shape
        x = x.reshape(b, c, h // p1, p1, w // p2, p2).permute(0, 2, 4, 3, 5, 1)
        return x.reshape(b, (h // p1) * (w // p2), p1 * p2 * c)
"""

VIT = """
class ViT(nn.Module):
    # ViT: the image cut into patches, each projected to a token, a class token and a learned
    # position table added, a Transformer encoder, a linear head on the class token.
    def __init__(self, image=IMAGE, patch=PATCH, width=16):
        super().__init__()
        count = (image // patch) ** 2
        self.to_patch_embedding = nn.Sequential(
            Rearrange("b c (h p1) (w p2) -> b (h w) (p1 p2 c)", p1=patch, p2=patch),
            nn.LayerNorm(patch * patch * 3), nn.Linear(patch * patch * 3, width), nn.LayerNorm(width))
        self.cls_token = nn.Parameter(torch.randn(1, 1, width))
        self.pos_embedding = nn.Parameter(torch.randn(1, count + 1, width))
        layer = nn.TransformerEncoderLayer(width, 2, 2 * width, batch_first=True, norm_first=True)
        self.transformer = nn.TransformerEncoder(layer, 1)
        self.head = nn.Linear(width, 10)

    def forward(self, img):
        x = self.to_patch_embedding(img)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + self.pos_embedding
        return self.head(self.transformer(x)[:, 0])


def build_model():
    return ViT()
"""


def test_einops_vit_gets_an_image(tmp_path):
    source = "import torch\nimport torch.nn as nn\n\nIMAGE, PATCH = 64, 8\n" + REARRANGE + VIT
    report = model_report(write(tmp_path, "vit.py", source), "--select", "GL5")
    assert report["assumptions"][0] == (
        "inputs: random batch of shape (8, 3, 64, 64) inferred from the first layer to_patch_embedding.0 "
        "(Rearrange 'b c (h p1) (w p2) -> b (h w) (p1 p2 c)' into to_patch_embedding.1 (LayerNorm)), image size 64, "
        "which its position table is made for; define example_inputs() for a real one")


def test_real_einops_rearrange(tmp_path):
    pytest.importorskip("einops")
    source = ("import torch\nimport torch.nn as nn\nfrom einops.layers.torch import Rearrange\n\n"
              "IMAGE, PATCH = 32, 4\n" + VIT)
    report = model_report(write(tmp_path, "vit.py", source), "--select", "GL5")
    assert report["assumptions"][0].startswith("inputs: random batch of shape (8, 3, 32, 32) inferred from the "
                                               "first layer to_patch_embedding.0 (Rearrange ")


def test_patch_embedding_convolution_gets_the_size_its_position_table_holds(tmp_path):
    # A single 16x16 patch broadcasts over the whole position table: the smallest size that runs
    # is not the one the model is built for.
    source = """
    import torch
    import torch.nn as nn

    class PatchEmbed(nn.Module):
        def __init__(self):
            super().__init__()
            self.proj = nn.Conv2d(3, 16, kernel_size=16, stride=16)

        def forward(self, x):
            return self.proj(x).flatten(2).transpose(1, 2)

    class ViT(nn.Module):
        def __init__(self):
            super().__init__()
            self.patch_embed = PatchEmbed()
            self.pos_embed = nn.Parameter(torch.zeros(1, 14 * 14, 16))
            self.head = nn.Linear(16, 10)

        def forward(self, x):
            return self.head((self.patch_embed(x) + self.pos_embed).mean(1))

    def build_model():
        return ViT()
    """
    report = model_report(write(tmp_path, "vit.py", source), "--select", "GL5")
    assert report["assumptions"][0] == (
        "inputs: random batch of shape (8, 3, 224, 224) inferred from the first layer patch_embed.proj (Conv2d), "
        "image size 224, which its position table is made for; define example_inputs() for a real one")


def test_custom_patch_embedding_that_cuts_the_image_itself(tmp_path):
    source = """
    import torch.nn as nn

    class Patches(nn.Module):
        def __init__(self, patch=4):
            super().__init__()
            self.patch = patch
            self.proj = nn.Linear(3 * patch * patch, 16)

        def forward(self, x):
            b, c, _, _ = x.shape
            p = self.patch
            x = x.unfold(2, p, p).unfold(3, p, p).permute(0, 2, 3, 1, 4, 5).reshape(b, -1, c * p * p)
            return self.proj(x)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.patches = Patches()
            self.head = nn.Linear(16, 10)

        def forward(self, x):
            return self.head(self.patches(x).mean(1))

    def build_model():
        return Net()
    """
    report = model_report(write(tmp_path, "patches.py", source), "--select", "GL5")
    assert report["assumptions"][0] == (
        "inputs: random batch of shape (8, 3, 32, 32) inferred from the first layer patches.proj (Linear reading 4x4 "
        f"patches of 3 channels), image size 32 ({SIZES}); define example_inputs() for a real one")


def test_the_first_layer_the_data_meets(tmp_path):
    # The head is registered before the body, and the body starts with Dropout inside nested
    # nn.Sequential: the data meets the convolution first.
    source = """
    import torch.nn as nn

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.head = nn.Linear(8, 10)
            self.body = nn.Sequential(nn.Sequential(nn.Dropout(0.1), nn.Conv2d(3, 8, 3)), nn.ReLU(),
                                      nn.AdaptiveAvgPool2d(1), nn.Flatten())

        def forward(self, x):
            return self.head(self.body(x))

    def build_model():
        return Net()
    """
    report = model_report(write(tmp_path, "net.py", source), "--select", "GL5")
    assert report["assumptions"][0] == (
        f"inputs: random batch of shape (8, 3, 32, 32) inferred from the first layer body.0.1 (Conv2d), image size 32 "
        f"({SIZES}); define example_inputs() for a real one")


def test_layer_norm_over_an_image_gives_its_shape(tmp_path):
    source = """
    import torch.nn as nn

    def build_model():
        return nn.Sequential(nn.LayerNorm([3, 20, 20]), nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(),
                             nn.Linear(4 * 18 * 18, 10))
    """
    report = model_report(write(tmp_path, "ln.py", source), "--select", "GL5")
    assert report["assumptions"][0] == ("inputs: random batch of shape (8, 3, 20, 20) inferred from the first layer 0 "
                                        "(LayerNorm over (3, 20, 20)); define example_inputs() for a real one")


def test_inputs_gradlint_cannot_know_are_one_line_asking_for_them(tmp_path):
    unreadable = """
    import torch.nn as nn

    class Rearrange(nn.Module):
        def __init__(self, pattern):
            super().__init__()
            self.pattern = pattern

        def forward(self, x):
            return x.flatten(1)

    def build_model():
        return nn.Sequential(Rearrange("b ... -> b (...)"), nn.Linear(48, 10))
    """
    never_runs = """
    import torch.nn as nn

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3)

        def forward(self, x):
            if x.shape[-1] != 17:  # no size gradlint tries
                raise ValueError(f"width {x.shape[-1]}, not 17")
            return self.conv(x)

    def build_model():
        return Net()
    """
    code, document = lint_json(write(tmp_path, "unreadable.py", unreadable), write(tmp_path, "never.py", never_runs))
    errors = [model["error"] for model in document["models"]]
    assert code == 2 and errors == [
        "cannot infer an input batch: gradlint cannot read the input shape of the first layer 0 (Rearrange "
        "'b ... -> b (...)' into 1 (Linear)): define example_inputs() or pass --input-shape",
        "forward raised ValueError: width 32, not 17 on the (8, 3, 32, 32) batch inferred from the first layer conv "
        "(Conv2d) (and on 6 other shapes): define example_inputs() or pass --input-shape"]


# -- where optimizer findings point, and messages ----------------------------------------------------
def test_default_optimizer_findings_point_at_the_factory_and_say_it_is_assumed(tmp_path):
    # A model of a library class (nn.Sequential here, a Hugging Face model in practice) has no class
    # line in the file: findings about gradlint's AdamW used to point at line 1, the imports.
    source = """
    import torch
    import torch.nn as nn

    def build_model():
        torch.manual_seed(0)
        layers = [nn.Linear(32, 32), nn.Tanh()] * 1 + [nn.Linear(32, 10)]
        model = nn.Sequential(*layers)
        with torch.no_grad():
            model[0].weight.mul_(1e-3)
        return model

    def example_inputs():
        return torch.randn(16, 32, generator=torch.Generator().manual_seed(0))
    """
    report = model_report(write(tmp_path, "tiny.py", source), "--select", "GL603", "--lr", "1")
    (finding,) = report["findings"]
    assert finding["message"].endswith("; the optimizer is assumed (no configure_optimizers)")
    assert (finding["line"], finding["col"]) == (5, 1)  # def build_model():
    module_level = """
    import torch
    import torch.nn as nn

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(32, 32), nn.Tanh(), nn.Linear(32, 10))
    with torch.no_grad():
        model[0].weight.mul_(1e-3)

    def example_inputs():
        return torch.randn(16, 32, generator=torch.Generator().manual_seed(0))
    """
    report = model_report(write(tmp_path, "level.py", module_level), "--select", "GL603", "--lr", "1")
    (finding,) = report["findings"]
    assert (finding["line"], finding["col"]) == (6, 1)  # model = nn.Sequential(...)


def test_first_step_that_overflows_is_reported_in_numbers(tmp_path):
    # lr 1e37 moves every weight by ~1e37: each value is a finite float32, their norm is not.
    source = """
    import torch
    import torch.nn as nn

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1 = nn.Linear(256, 256)
            self.fc2 = nn.Linear(256, 10)

        def forward(self, x):
            return self.fc2(torch.relu(self.fc1(x)))

    def build_model():
        torch.manual_seed(0)
        return Net()

    def example_inputs():
        return torch.randn(16, 256, generator=torch.Generator().manual_seed(0))

    def configure_optimizers(model):
        return torch.optim.Adam(model.parameters(), lr=1e37)
    """
    report = model_report(write(tmp_path, "huge.py", source), "--select", "GL601,GL603")
    messages = {f["code"]: f["message"] for f in report["findings"]}
    assert "inf" not in messages["GL601"] and "nan" not in messages["GL601"]
    ratio = float(messages["GL601"].split(" by ")[1].split("x its norm")[0])
    assert 1e38 < ratio < 1e40, messages["GL601"]
    assert "%" not in messages["GL603"] and "to nan instead of the" in messages["GL603"]
    assert messages["GL603"].endswith("decrease its gradient predicts: the step is so large that the loss overflows")


def deep_linear(count: int, scale: float) -> str:
    # Orthogonal linear layers pass the gradient back unchanged, except the one scaled, next to last.
    return f"""
    import torch
    import torch.nn as nn

    def build_model():
        torch.manual_seed(0)
        layers = [nn.Linear(16, 16, bias=False) for _ in range({count})]
        for layer in layers:
            nn.init.orthogonal_(layer.weight)
        with torch.no_grad():
            layers[{count - 2}].weight.mul_({scale})
        return nn.Sequential(*layers)

    def example_inputs():
        return torch.randn(16, 16, generator=torch.Generator().manual_seed(0))

    def example_targets():
        return torch.randn(16, 16, generator=torch.Generator().manual_seed(1))
    """


@pytest.mark.parametrize("code,count,scale,expected", [
    ("GL502", 60, 300.0, "||dL/dh|| at 0 is 300x that at 59, over 60 weighted layers but not steadily (the fitted "
                         "growth per layer, chi_hat = 1.04, is ~1): the largest step is back through 58 (3e+02x)"),
    ("GL503", 200, 1e-5, "||dL/dh|| at 0 is 1.0e-5x that at 199, over 200 weighted layers but not steadily (the "
                         "fitted decay per layer, chi_hat = 0.993, is ~1): the largest drop is back through 198 "
                         "(1e-05x)"),
])
def test_gradient_trend_of_one_layer_is_not_a_factor_per_layer(tmp_path, code, count, scale, expected):
    # One layer makes the whole gain: "grows 1x per layer" (the fitted factor, rounded) said nothing.
    report = model_report(write(tmp_path, "deep.py", deep_linear(count, scale)), "--select", code)
    (finding,) = report["findings"]
    assert finding["message"] == expected
