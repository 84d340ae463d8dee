"""The defaults gradlint assumes when a model file gives only its model, on real kinds of model:
language models (a causal LM's next-token loss, a Hugging Face model's labels=, a nanoGPT-style
forward(idx, targets)), image networks (the size they need, einops and patch embeddings, the
first layer the data meets), a minGPT-like package, and the messages around them.

Every model is written here, small, from the published architectures (VGG's stacked 3x3
convolutions and poolings, ViT's patches, GPT's decoder blocks); none is copied.
"""

from __future__ import annotations

import json
import textwrap

import pytest
from click.testing import CliRunner

from gradlint.cli import main

LM_BLOCKS = """
import torch
import torch.nn as nn
import torch.nn.functional as F

VOCAB, WIDTH, CONTEXT = 40, 16, 32


class Block(nn.Module):
    # GPT's pre-LN decoder block: causal self-attention and an MLP, each on a residual path.
    def __init__(self):
        super().__init__()
        self.ln1 = nn.LayerNorm(WIDTH)
        self.attn = nn.MultiheadAttention(WIDTH, 2, batch_first=True)
        self.ln2 = nn.LayerNorm(WIDTH)
        self.mlp = nn.Sequential(nn.Linear(WIDTH, 4 * WIDTH), nn.GELU(), nn.Linear(4 * WIDTH, WIDTH))

    def forward(self, x):
        length = x.shape[1]
        future = torch.triu(torch.ones(length, length, dtype=torch.bool), 1)
        h = self.ln1(x)
        x = x + self.attn(h, h, h, attn_mask=future, need_weights=False)[0]
        return x + self.mlp(self.ln2(x))


class Trunk(nn.Module):
    def __init__(self):
        super().__init__()
        self.tokens = nn.Embedding(VOCAB, WIDTH)
        self.positions = nn.Embedding(CONTEXT, WIDTH)
        # Position ids kept as a buffer, as BERT keeps them: backward reads the slice it indexed with.
        self.register_buffer("position_ids", torch.arange(CONTEXT))
        self.blocks = nn.ModuleList(Block() for _ in range(2))
        self.norm = nn.LayerNorm(WIDTH)
        self.head = nn.Linear(WIDTH, VOCAB, bias=False)

    def logits(self, ids):
        x = self.tokens(ids) + self.positions(self.position_ids[:ids.shape[1]])
        for block in self.blocks:
            x = block(x)
        return self.head(self.norm(x))
"""

NEXT_TOKEN = ("loss: next-token cross-entropy on the input (a causal LM: integer (N, T) input, (N, T, V) output; "
              "no loss_fn)")
LABELS = ("loss: the loss the model computes given labels=input_ids (its forward takes labels, as a Hugging Face "
          "model's does; no loss_fn)")
TARGETS = ("loss: the loss the model computes given targets=the next tokens (its forward takes targets, as "
           "nanoGPT's and minGPT's do; no loss_fn)")
TOKENS = ("inputs: random batch of shape (8, 16) inferred from the first layer tokens (Embedding); define "
          "example_inputs() for a real one")
OPTIMIZER = "optimizer: AdamW(lr=0.001) (no configure_optimizers)"
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


# -- language models ------------------------------------------------------------------------------
def test_causal_lm_default_is_next_token_cross_entropy(tmp_path):
    source = LM_BLOCKS + """

class LM(Trunk):
    def forward(self, ids):
        return self.logits(ids)


def build_model():
    return LM()
"""
    report = model_report(write(tmp_path, "lm.py", source))
    assert report["assumptions"] == [TOKENS, OPTIMIZER, NEXT_TOKEN]


def test_next_token_loss_is_the_input_shifted_by_one():
    import torch
    import torch.nn.functional as F

    from gradlint.losses import training_loss

    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(4, 6, 10, generator=generator, requires_grad=True)
    ids = torch.randint(0, 10, (4, 6), generator=generator)
    loss, note = training_loss(logits, None, None, inputs=(ids,))
    expected = F.cross_entropy(logits[:, :-1].reshape(-1, 10), ids[:, 1:].reshape(-1))
    assert note == NEXT_TOKEN and torch.equal(loss, expected)
    # Ids the output has no logit for, or an output that is not one per position, are no causal LM.
    assert training_loss(logits, None, None, inputs=(ids + 10,))[1] == \
        "loss: mean squared error against random targets (no loss_fn)"
    assert training_loss(logits[:, :5], None, None, inputs=(ids,))[1] == \
        "loss: mean squared error against random targets (no loss_fn)"


def test_causal_lm_with_given_token_batch_and_no_targets(tmp_path):
    source = LM_BLOCKS + """

class LM(Trunk):
    def forward(self, ids):
        return self.logits(ids)


def build_model():
    return LM()


def example_inputs():
    return torch.randint(0, VOCAB, (4, 12), generator=torch.Generator().manual_seed(1))
"""
    report = model_report(write(tmp_path, "lm.py", source))
    assert report["assumptions"] == [OPTIMIZER, NEXT_TOKEN]


HF_LIKE = LM_BLOCKS + """

class Output(dict):
    # Hugging Face's ModelOutput is a dict whose keys are also attributes.
    __getattr__ = dict.__getitem__


class CausalLM(Trunk):
    # A Hugging Face causal LM's convention: forward(input_ids, ..., labels=None) shifts the labels
    # itself and returns its loss beside the logits.
    def forward(self, input_ids, attention_mask=None, labels=None):
        logits = self.logits(input_ids)
        if labels is None:
            return Output(logits=logits)
        if not torch.equal(labels, input_ids):  # on every pass, resampled rows included
            raise AssertionError("labels are not the input ids")
        loss = F.cross_entropy(logits[:, :-1].reshape(-1, VOCAB), labels[:, 1:].reshape(-1))
        return Output(loss=loss, logits=logits)


class Classifier(Trunk):
    # A sequence classifier takes labels too, one per sequence: given token ids as labels it fails,
    # and gradlint falls back to its default loss for (N, C) logits.
    def forward(self, input_ids, labels=None):
        logits = self.logits(input_ids)[:, -1, :3]
        if labels is None:
            return Output(logits=logits)
        return Output(loss=F.cross_entropy(logits, labels), logits=logits)


def build_model():
    return CausalLM()


def build_classifier():
    return Classifier()
"""


def test_model_that_takes_labels_computes_its_own_loss(tmp_path):
    path = write(tmp_path, "hf_like.py", HF_LIKE)
    report = model_report(path)
    assert report["assumptions"] == [TOKENS, OPTIMIZER, LABELS]
    assert report["passes"]["forward"] > 20  # every optimizer rule ran with labels= too
    classifier = model_report(path + "::build_classifier")
    assert classifier["assumptions"] == [TOKENS, OPTIMIZER, "loss: cross-entropy against random labels (no loss_fn)"]


def test_hugging_face_causal_lm_from_a_config(tmp_path):
    pytest.importorskip("transformers")
    source = """
    from transformers import GPT2Config, GPT2LMHeadModel

    def build_model():
        config = GPT2Config(vocab_size=64, n_positions=32, n_embd=16, n_layer=1, n_head=2)
        return GPT2LMHeadModel(config)  # random init: nothing is downloaded
    """
    report = model_report(write(tmp_path, "gpt2.py", source), "--select", "GL5")
    assert report["assumptions"] == [
        "inputs: random batch of shape (8, 16) inferred from the first layer transformer.wte (Embedding); define "
        "example_inputs() for a real one", OPTIMIZER, LABELS]


NANO_GPT_LIKE = LM_BLOCKS + """

class GPT(Trunk):
    # nanoGPT's convention: forward(idx, targets=None) returns (logits, loss) with targets, the next
    # tokens; without them only the last position's logits, for sampling.
    def forward(self, idx, targets=None):
        logits = self.logits(idx)
        if targets is None:
            return logits[:, [-1], :], None
        if not torch.equal(targets[:, :-1], idx[:, 1:]):
            raise AssertionError("targets are not the next tokens")
        return logits, F.cross_entropy(logits.reshape(-1, VOCAB), targets.reshape(-1), ignore_index=-1)


def build_model():
    return GPT()
"""


def test_model_that_takes_targets_computes_its_own_loss(tmp_path):
    report = model_report(write(tmp_path, "nano.py", NANO_GPT_LIKE))
    assert report["assumptions"] == [TOKENS, OPTIMIZER, TARGETS]
    # The file's loss_fn, and --loss, come first: the model then gets no targets.
    source = NANO_GPT_LIKE + """

def loss_fn(output, targets):
    return output[0].float().pow(2).mean()
"""
    report = model_report(write(tmp_path, "with_loss.py", source))
    assert report["assumptions"] == [TOKENS, OPTIMIZER]
    report = model_report(write(tmp_path, "nano2.py", NANO_GPT_LIKE), "--loss", "cross-entropy")
    assert report["assumptions"] == [TOKENS, OPTIMIZER,
                                     "loss: cross-entropy against random labels (loss = cross-entropy)"]


MIN_GPT_UTILS = '''
class CfgNode:
    """Settings as attributes, filled in by the script that builds the model."""

    def __init__(self, **settings):
        self.__dict__.update(settings)

    def merge_from_dict(self, settings):
        self.__dict__.update(settings)
'''

MIN_GPT_MODEL = '''
import math

import torch
import torch.nn as nn
from torch.nn import functional as F

from mingpt.utils import CfgNode as CN


class CausalSelfAttention(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd)
        self.n_head = config.n_head
        self.register_buffer("bias", torch.tril(torch.ones(config.block_size, config.block_size)))

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(C, dim=2)
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))
        att = (q @ k.transpose(-2, -1)) / math.sqrt(k.shape[-1])
        att = att.masked_fill(self.bias[:T, :T] == 0, float("-inf")).softmax(dim=-1)
        return self.c_proj((att @ v).transpose(1, 2).reshape(B, T, C))


class Block(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = nn.LayerNorm(config.n_embd)
        self.mlp = nn.Sequential(nn.Linear(config.n_embd, 4 * config.n_embd), nn.GELU(),
                                 nn.Linear(4 * config.n_embd, config.n_embd))

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    @staticmethod
    def get_default_config():
        return CN(n_layer=2, n_head=2, n_embd=16, vocab_size=None, block_size=None)

    def __init__(self, config):
        super().__init__()
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(config.vocab_size, config.n_embd),
            wpe=nn.Embedding(config.block_size, config.n_embd),
            h=nn.ModuleList(Block(config) for _ in range(config.n_layer)),
            ln_f=nn.LayerNorm(config.n_embd)))
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)

    def forward(self, idx, targets=None):
        x = self.transformer.wte(idx) + self.transformer.wpe(torch.arange(idx.shape[1]))
        for block in self.transformer.h:
            x = block(x)
        logits = self.lm_head(self.transformer.ln_f(x))
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1), ignore_index=-1)
        return logits, loss
'''

MIN_GPT_SCRIPT = '''
from mingpt.model import GPT


def build_model():
    config = GPT.get_default_config()
    config.merge_from_dict(dict(vocab_size=50, block_size=32))
    return GPT(config)
'''


def test_min_gpt_package_and_a_script_beside_it(tmp_path, monkeypatch):
    write(tmp_path, "mingpt/__init__.py", "")
    write(tmp_path, "mingpt/utils.py", MIN_GPT_UTILS)
    write(tmp_path, "mingpt/model.py", MIN_GPT_MODEL)
    write(tmp_path, "train.py", MIN_GPT_SCRIPT)
    monkeypatch.chdir(tmp_path.parent)  # no help from the working directory: run from elsewhere
    result = CliRunner().invoke(main, [str(tmp_path / "mingpt/model.py"), str(tmp_path / "train.py")])
    # model.py imports as mingpt.model (its package root on the path) and holds no model gradlint
    # can build by itself (GPT needs a config); the script beside the package imports it too.
    assert result.exit_code == 0, result.output
    assert result.output.endswith("Found 0 findings in 1 model; 1 file without a model skipped.\n")
    assert ("  assumed inputs: random batch of shape (8, 16) inferred from the first layer transformer.wte "
            "(Embedding); define example_inputs() for a real one\n"
            f"  assumed {OPTIMIZER}\n  assumed {TARGETS}\n") in result.output
    # Findings about gradlint's optimizer point at the script's factory, where configure_optimizers
    # goes, not at the class line in the package.
    report = model_report(str(tmp_path / "train.py"), "--select", "GL604", "--lr", "3")
    assert [(f["code"], f["path"], f["line"], f["col"]) for f in report["findings"]] == [
        ("GL604", f"{tmp_path.name}/train.py", 5, 1)]  # def build_model():


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
