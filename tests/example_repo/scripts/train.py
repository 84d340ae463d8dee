"""A training script outside the package: it imports the project's package (run from the project
root, as `python scripts/train.py` is with the project installed) and, inside build_model, a
sibling module."""

import torch

from mylab.models.mlp import Net


def build_model():
    from config import WIDTH

    return Net(width=WIDTH)


def example_inputs():
    return (torch.randn(8, 16, generator=torch.Generator().manual_seed(0)),)


def configure_optimizers(model):
    return torch.optim.AdamW(model.parameters(), lr=3e-4)


if __name__ == "__main__":
    model = build_model()
